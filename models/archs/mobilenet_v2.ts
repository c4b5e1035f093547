// torchvision 0.14 MobileNetV2 (torchvision/models/mobilenetv2.py) with its exact module names:
// features.0 = Conv2dNormActivation (Conv 3×3/2, BN, ReLU6); features.1…17 = InvertedResidual whose
// `conv` Sequential holds [expand Conv2dNormActivation (if t ≠ 1)], depthwise Conv2dNormActivation, the
// 1×1 projection Conv2d and its BatchNorm2d; features.18 = 1×1 Conv2dNormActivation to last_channel;
// then functional adaptive average pooling (no module), flatten, classifier.0 Dropout, classifier.1 Linear.
// width_mult and the inverted-residual setting are configurable, as torchvision's constructor, and the
// widths (stem, each setting row's output, last conv), input channels and classes can be read from a
// weights file (`mobilenetV2Config`).

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { BatchNorm2d, Conv2d, Identity, Linear, ReLU6, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, makeDivisible } from './imagenet.ts';

export interface ConvNormActOptions {
  stride?: number;
  groups?: number;
  /** Activation module factory, or null for none (torchvision's activation_layer=None). */
  activation?: (() => Module) | null;
  /** Bias of the conv (torchvision: only when there is no norm layer). */
  bias?: boolean;
  /** Padding; torchvision's default is (k − 1) / 2. */
  padding?: number;
  /** Norm layer factory (default BatchNorm2d). */
  norm?: ((channels: number) => Module) | null;
  dilation?: number;
}

/** torchvision.ops.misc.Conv2dNormActivation: Sequential(Conv2d, norm, activation) named 0, 1, 2. */
export function conv2dNormActivation(inC: number, outC: number, kernel: number, o: ConvNormActOptions = {}): Sequential {
  const norm = o.norm === undefined ? (c: number) => new BatchNorm2d(c) : o.norm;
  const dilation = o.dilation ?? 1;
  const padding = o.padding ?? Math.floor((kernel - 1) / 2) * dilation;
  const layers: Module[] = [new Conv2d(inC, outC, kernel, { stride: o.stride ?? 1, padding, dilation, groups: o.groups ?? 1, bias: o.bias ?? norm === null })];
  if (norm) layers.push(norm(outC));
  const act = o.activation === undefined ? ReLU6 : o.activation;
  if (act) layers.push(act());
  return new Sequential(...layers);
}

export class InvertedResidual extends Module {
  private readonly conv: Sequential;
  readonly useResConnect: boolean;

  constructor(inp: number, oup: number, stride: number, expandRatio: number) {
    super();
    if (stride !== 1 && stride !== 2) throw new ModelError(`stride should be 1 or 2 insted of ${stride}`);
    const hidden = Math.round(inp * expandRatio);
    this.useResConnect = stride === 1 && inp === oup;
    const layers: Module[] = [];
    if (expandRatio !== 1) layers.push(conv2dNormActivation(inp, hidden, 1));
    layers.push(conv2dNormActivation(hidden, hidden, 3, { stride, groups: hidden }));
    layers.push(new Conv2d(hidden, oup, 1, { bias: false }));
    layers.push(new BatchNorm2d(oup));
    this.conv = this.add('conv', new Sequential(...layers));
  }

  forward(x: Tensor): Tensor {
    return this.useResConnect ? E.add(x, this.conv.call(x)) : this.conv.call(x);
  }
}

/** Rows [t (expansion), c (output width), n (blocks), s (first block's stride)]. */
export type InvertedResidualSetting = readonly (readonly [number, number, number, number])[];

export interface MobileNetV2Config {
  numClasses?: number;
  widthMult?: number;
  /** Rows [t, c, n, s]; torchvision's default when omitted. */
  invertedResidualSetting?: InvertedResidualSetting;
  roundNearest?: number;
  inChannels?: number;
  /** Explicit widths (read from a weights file): the stem conv's, each setting row's output, the last conv's. */
  widths?: { stem: number; stages: readonly number[]; last: number };
}

export const MOBILENET_V2_SETTING: InvertedResidualSetting = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

export class MobileNetV2 extends Module {
  private readonly features: Sequential;
  private readonly classifier: Sequential;
  readonly lastChannel: number;
  readonly numClasses: number;
  readonly inChannels: number;

  constructor(cfg: MobileNetV2Config = {}) {
    super();
    const setting = cfg.invertedResidualSetting ?? MOBILENET_V2_SETTING;
    const widths = cfg.widths ?? mobilenetV2Widths(setting, cfg.widthMult ?? 1, cfg.roundNearest ?? 8);
    let input = widths.stem;
    this.lastChannel = widths.last;
    this.numClasses = cfg.numClasses ?? 1000;
    this.inChannels = cfg.inChannels ?? 3;
    const features: Module[] = [conv2dNormActivation(this.inChannels, input, 3, { stride: 2 })];
    for (const [row, [t, , n, s]] of setting.entries()) {
      const output = widths.stages[row];
      for (let i = 0; i < n; i++) {
        features.push(new InvertedResidual(input, output, i === 0 ? s : 1, t));
        input = output;
      }
    }
    features.push(conv2dNormActivation(input, this.lastChannel, 1));
    this.features = this.add('features', new Sequential(...features));
    this.classifier = this.add('classifier', new Sequential(Identity('Dropout'), new Linear(this.lastChannel, this.numClasses)));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    const f = this.features.call(x);
    return this.classifier.call(E.flatten(E.adaptiveAvgPool2d(f, 1), 1));
  }
}

/** torchvision's widths for a width multiplier. */
function mobilenetV2Widths(setting: InvertedResidualSetting, width: number, round: number) {
  return {
    stem: makeDivisible(32 * width, round),
    stages: setting.map(([, c]) => makeDivisible(c * width, round)),
    last: makeDivisible(1280 * Math.max(1, width), round),
  };
}

/** torchvision's MobileNetV2 with the widths, input channels and classes of a weights file. */
export function mobilenetV2Config(weights: WeightShapes | undefined): MobileNetV2Config {
  const w = new ShapeReader(weights);
  const named = mobilenetV2Widths(MOBILENET_V2_SETTING, 1, 8);
  let block = 1;
  const stages = MOBILENET_V2_SETTING.map(([t, , n], row) => {
    // The row's first block: `conv` is [expand (t ≠ 1), depthwise, project conv, BN]; a depthwise weight is [C, 1, k, k].
    const first = w.shape(`features.${block}.conv.0.0.weight`, 4);
    const project = (first ? first[1] !== 1 : t !== 1) ? 2 : 1;
    const out = w.dim(`features.${block}.conv.${project}.weight`, 4, 0, named.stages[row]);
    block += n;
    return out;
  });
  return {
    inChannels: w.dim('features.0.0.weight', 4, 1, 3),
    widths: { stem: w.dim('features.0.0.weight', 4, 0, named.stem), stages, last: w.dim(`features.${block}.0.weight`, 4, 0, named.last) },
    numClasses: w.dim('classifier.1.weight', 2, 0, 1000),
  };
}

registerArchitecture({
  name: 'mobilenet_v2',
  build: (numClasses, weights) => {
    const cfg = mobilenetV2Config(weights);
    return new MobileNetV2({ ...cfg, numClasses: numClasses ?? cfg.numClasses });
  },
  defaultLayer: 'features.18',
  preprocessing: imagenetPreprocessing(256, 224),
  labels: IMAGENET_CLASSES,
});
