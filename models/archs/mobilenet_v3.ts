// torchvision 0.14 MobileNetV3 (torchvision/models/mobilenetv3.py) with its exact module names:
// features.0 = Conv2dNormActivation (3×3/2, BN eps 1e-3, Hardswish); features.1…n = InvertedResidual whose
// `block` Sequential holds [expand Conv2dNormActivation (if the expansion changes the width)], depthwise
// Conv2dNormActivation (k×k, stride or dilation), SqueezeExcitation (avgpool, fc1, fc2, activation ReLU,
// scale_activation Hardsigmoid), projection Conv2dNormActivation without activation; the residual is added
// when the table's stride is 1 and the width is kept; features.n+1 = 1×1 Conv2dNormActivation to 6× the last
// width, Hardswish; avgpool; classifier = Linear, Hardswish, Dropout, Linear. Activations are ReLU ("RE") or
// Hardswish ("HS") per block. `dilated` (the segmentation backbones) gives the last stage stride 1 and
// dilation 2, so the output stride is 16.
//
// Widths follow `_mobilenet_v3_conf(arch, width_mult, reduced_tail, dilated)`, or are read block by block
// from a weights file (`mobilenetV3FromWeights`); kernels, strides, SE and activations are the table's.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Hardsigmoid, Hardswish, Identity, Linear, ReLU, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { invertedBlockWidths, SqueezeExcitation } from './blocks.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, makeDivisible } from './imagenet.ts';
import { conv2dNormActivation } from './mobilenet_v2.ts';
import { ShapeReader } from './shapes.ts';

export type MobileNetV3Arch = 'mobilenet_v3_large' | 'mobilenet_v3_small';

/** One InvertedResidualConfig of torchvision, after the width multiplier. */
export interface MobileNetV3Block {
  inputChannels: number;
  kernel: number;
  expandedChannels: number;
  outChannels: number;
  /** Width of the squeeze-and-excitation bottleneck; null when the block has none. */
  squeezeChannels: number | null;
  useHardswish: boolean;
  /** The table's stride (a dilated block runs at stride 1). */
  stride: number;
  dilation: number;
}

export interface MobileNetV3Setting {
  blocks: MobileNetV3Block[];
  /** Output width of the last 1×1 conv (torchvision: 6 × the last block's). */
  lastConvChannels: number;
  /** Hidden width of the classifier. */
  lastChannel: number;
  inChannels: number;
}

// Rows [input, kernel, expanded, out, SE, Hardswish, stride] of the MobileNetV3 paper's tables 1 and 2; the
// last stage (C4) is halved by reduced_tail and dilated by `dilated`.
type Row = [number, number, number, number, boolean, boolean, number];

function rows(arch: MobileNetV3Arch, r: number): { body: Row[]; tail: Row[]; last: number } {
  if (arch === 'mobilenet_v3_large') {
    return {
      body: [
        [16, 3, 16, 16, false, false, 1], [16, 3, 64, 24, false, false, 2], [24, 3, 72, 24, false, false, 1],
        [24, 5, 72, 40, true, false, 2], [40, 5, 120, 40, true, false, 1], [40, 5, 120, 40, true, false, 1],
        [40, 3, 240, 80, false, true, 2], [80, 3, 200, 80, false, true, 1], [80, 3, 184, 80, false, true, 1],
        [80, 3, 184, 80, false, true, 1], [80, 3, 480, 112, true, true, 1], [112, 3, 672, 112, true, true, 1],
      ],
      tail: [[112, 5, 672, 160 / r, true, true, 2], [160 / r, 5, 960 / r, 160 / r, true, true, 1], [160 / r, 5, 960 / r, 160 / r, true, true, 1]],
      last: 1280 / r,
    };
  }
  return {
    body: [
      [16, 3, 16, 16, true, false, 2], [16, 3, 72, 24, false, false, 2], [24, 3, 88, 24, false, false, 1],
      [24, 5, 96, 40, true, true, 2], [40, 5, 240, 40, true, true, 1], [40, 5, 240, 40, true, true, 1],
      [40, 5, 120, 48, true, true, 1], [48, 5, 144, 48, true, true, 1],
    ],
    tail: [[48, 5, 288, 96 / r, true, true, 2], [96 / r, 5, 576 / r, 96 / r, true, true, 1], [96 / r, 5, 576 / r, 96 / r, true, true, 1]],
    last: 1024 / r,
  };
}

export interface MobileNetV3Options {
  widthMult?: number;
  reducedTail?: boolean;
  dilated?: boolean;
}

/** torchvision `_mobilenet_v3_conf(arch, width_mult, reduced_tail, dilated)`. */
export function mobilenetV3Setting(arch: MobileNetV3Arch, o: MobileNetV3Options = {}): MobileNetV3Setting {
  const width = o.widthMult ?? 1;
  const adjust = (c: number) => makeDivisible(c * width, 8);
  const { body, tail, last } = rows(arch, o.reducedTail ? 2 : 1);
  const toBlock = ([inp, kernel, exp, out, se, hs, stride]: Row, dilation: number): MobileNetV3Block => {
    const expandedChannels = adjust(exp);
    return {
      inputChannels: adjust(inp),
      kernel,
      expandedChannels,
      outChannels: adjust(out),
      squeezeChannels: se ? makeDivisible(Math.floor(expandedChannels / 4), 8) : null,
      useHardswish: hs,
      stride,
      dilation,
    };
  };
  const blocks = [...body.map((row) => toBlock(row, 1)), ...tail.map((row) => toBlock(row, o.dilated ? 2 : 1))];
  return { blocks, lastConvChannels: 6 * blocks[blocks.length - 1].outChannels, lastChannel: adjust(last), inChannels: 3 };
}

/**
 * A setting with the widths found in a weights file whose MobileNetV3 `features` children are named
 * `<prefix>0`, `<prefix>1`, … (e.g. "features." or, in a segmentation model, "backbone.").
 */
export function mobilenetV3FromWeights(named: MobileNetV3Setting, weights: WeightShapes | undefined, prefix: string): MobileNetV3Setting {
  const w = new ShapeReader(weights, prefix);
  let input = w.dim('0.0.weight', 4, 0, named.blocks[0].inputChannels);
  const blocks = named.blocks.map((b, i) => {
    const found = invertedBlockWidths(w.under(`${i + 1}.block.`), b.squeezeChannels !== null);
    const block = {
      ...b,
      inputChannels: input,
      expandedChannels: found?.expanded ?? b.expandedChannels,
      squeezeChannels: b.squeezeChannels === null ? null : (found?.squeeze ?? b.squeezeChannels),
      outChannels: found?.out ?? b.outChannels,
    };
    input = block.outChannels;
    return block;
  });
  return {
    blocks,
    lastConvChannels: w.dim(`${blocks.length + 1}.0.weight`, 4, 0, 6 * input),
    lastChannel: named.lastChannel,
    inChannels: w.dim('0.0.weight', 4, 1, named.inChannels),
  };
}

const norm = (channels: number) => new BatchNorm2d(channels, 0.001);

export class InvertedResidual extends Module {
  private readonly block: Sequential;
  readonly useResConnect: boolean;

  constructor(b: MobileNetV3Block) {
    super();
    if (b.stride < 1 || b.stride > 2) throw new ModelError('illegal stride value');
    this.useResConnect = b.stride === 1 && b.inputChannels === b.outChannels;
    const activation = b.useHardswish ? Hardswish : ReLU;
    const exp = b.expandedChannels;
    const layers: Module[] = [];
    if (exp !== b.inputChannels) layers.push(conv2dNormActivation(b.inputChannels, exp, 1, { norm, activation }));
    const stride = b.dilation > 1 ? 1 : b.stride;
    layers.push(conv2dNormActivation(exp, exp, b.kernel, { stride, dilation: b.dilation, groups: exp, norm, activation }));
    if (b.squeezeChannels !== null) layers.push(new SqueezeExcitation(exp, b.squeezeChannels, ReLU, Hardsigmoid));
    layers.push(conv2dNormActivation(exp, b.outChannels, 1, { norm, activation: null }));
    this.block = this.add('block', new Sequential(...layers));
  }

  forward(x: Tensor): Tensor {
    const result = this.block.call(x);
    return this.useResConnect ? E.add(result, x) : result;
  }
}

/** MobileNetV3's `features`: the stem, the inverted residual blocks and the last 1×1 conv. */
export function mobilenetV3Features(s: MobileNetV3Setting): Sequential {
  const last = s.blocks[s.blocks.length - 1].outChannels;
  return new Sequential(
    conv2dNormActivation(s.inChannels, s.blocks[0].inputChannels, 3, { stride: 2, norm, activation: Hardswish }),
    ...s.blocks.map((b) => new InvertedResidual(b)),
    conv2dNormActivation(last, s.lastConvChannels, 1, { norm, activation: Hardswish }),
  );
}

/**
 * torchvision's stage indices in `features`: 0, every block whose table stride is 2 ("_is_cn"), and the
 * last conv. The segmentation heads tap features at stages[-4] (stride 8) and stages[-1].
 */
export function mobilenetV3Stages(s: MobileNetV3Setting): number[] {
  return [0, ...s.blocks.flatMap((b, i) => (b.stride > 1 ? [i + 1] : [])), s.blocks.length + 1];
}

export class MobileNetV3 extends Module {
  private readonly features: Sequential;
  private readonly avgpool: Module;
  private readonly classifier: Sequential;
  readonly inChannels: number;

  constructor(setting: MobileNetV3Setting, readonly numClasses = 1000) {
    super();
    this.inChannels = setting.inChannels;
    this.features = this.add('features', mobilenetV3Features(setting));
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.classifier = this.add(
      'classifier',
      new Sequential(new Linear(setting.lastConvChannels, setting.lastChannel), Hardswish(), Identity('Dropout'), new Linear(setting.lastChannel, numClasses)),
    );
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return this.classifier.call(E.flatten(this.avgpool.call(this.features.call(x)), 1));
  }
}

for (const arch of ['mobilenet_v3_large', 'mobilenet_v3_small'] as const) {
  registerArchitecture({
    name: arch,
    build: (numClasses, weights) => {
      const w = new ShapeReader(weights);
      const setting = mobilenetV3FromWeights(mobilenetV3Setting(arch), weights, 'features.');
      setting.lastChannel = w.dim('classifier.0.weight', 2, 0, setting.lastChannel);
      return new MobileNetV3(setting, numClasses ?? w.dim('classifier.3.weight', 2, 0, 1000));
    },
    // pytorch-grad-cam's choice for MobileNets: the last layer of `features` (the 1×1 conv to 960 / 576).
    defaultLayer: arch === 'mobilenet_v3_large' ? 'features.16' : 'features.12',
    // torchvision MobileNet_V3_{Large,Small}_Weights.IMAGENET1K_V1: resize 256, crop 224 (bilinear).
    preprocessing: imagenetPreprocessing(256, 224),
    labels: IMAGENET_CLASSES,
  });
}
