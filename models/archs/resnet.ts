// torchvision 0.14 ResNet / ResNeXt (torchvision/models/resnet.py) with its exact module names and order
// of operations, so torchvision state_dicts load unchanged: conv1, bn1, relu, maxpool, layer1…layer4 of
// BasicBlock/Bottleneck (downsample.0 = 1×1 conv, downsample.1 = BN), avgpool, fc. Bottleneck is
// "ResNet v1.5": the stride sits on the 3×3 conv (conv2). Like torchvision, each block owns one ReLU module
// called twice (hooks on "layer1.0.relu" see call 1 and call 2).
//
// `ResNetConfig` exposes what the registered names fix: stage planes and stem width (for reduced test
// models such as the case-2 fixture's "resnet18 at base width 16"), groups and width per group (ResNeXt),
// input channels, and torchvision's replace_stride_with_dilation (the segmentation backbones). `resnetConfig`
// reads the widths, input channels and classes of a weights file onto a named configuration; the number
// of blocks per stage stays the name's.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, ReLU, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing } from './imagenet.ts';

export interface ResNetConfig {
  block: 'basic' | 'bottleneck';
  /** Blocks per stage (four stages). */
  layers: readonly number[];
  numClasses?: number;
  /** Conv groups of the 3×3 convs (ResNeXt); BasicBlock needs 1. */
  groups?: number;
  /** torchvision `width_per_group` (base width; ResNeXt 50 32×4d uses 4); BasicBlock needs 64. */
  widthPerGroup?: number;
  /** `planes` of each stage; torchvision: [64, 128, 256, 512]. */
  planes?: readonly number[];
  /** Output channels of the stem conv (torchvision: 64, which is also layer1's inplanes). */
  stemWidth?: number;
  /** Input channels of conv1 (torchvision: 3). */
  inChannels?: number;
  /** torchvision's replace_stride_with_dilation for layer2…layer4. */
  replaceStrideWithDilation?: readonly [boolean, boolean, boolean];
}

const conv3x3 = (inp: number, out: number, stride = 1, groups = 1, dilation = 1) =>
  new Conv2d(inp, out, 3, { stride, padding: dilation, groups, dilation, bias: false });
const conv1x1 = (inp: number, out: number, stride = 1) => new Conv2d(inp, out, 1, { stride, bias: false });

export class BasicBlock extends Module {
  static readonly expansion = 1;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly relu: Module;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm2d;
  private readonly downsample: Sequential | null;

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null, dilation: number) {
    super();
    if (dilation > 1) throw new ModelError('Dilation > 1 not supported in BasicBlock'); // as torchvision
    this.conv1 = this.add('conv1', conv3x3(inplanes, planes, stride));
    this.bn1 = this.add('bn1', new BatchNorm2d(planes));
    this.relu = this.add('relu', ReLU());
    this.conv2 = this.add('conv2', conv3x3(planes, planes));
    this.bn2 = this.add('bn2', new BatchNorm2d(planes));
    this.downsample = downsample ? this.add('downsample', downsample) : null;
  }

  forward(x: Tensor): Tensor {
    let out = this.relu.call(this.bn1.call(this.conv1.call(x)));
    out = this.bn2.call(this.conv2.call(out));
    const identity = this.downsample ? this.downsample.call(x) : x;
    return this.relu.call(E.add(out, identity));
  }
}

export class Bottleneck extends Module {
  static readonly expansion = 4;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm2d;
  private readonly conv3: Conv2d;
  private readonly bn3: BatchNorm2d;
  private readonly relu: Module;
  private readonly downsample: Sequential | null;

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null, groups: number, baseWidth: number, dilation: number) {
    super();
    const width = Math.trunc(planes * (baseWidth / 64)) * groups;
    this.conv1 = this.add('conv1', conv1x1(inplanes, width));
    this.bn1 = this.add('bn1', new BatchNorm2d(width));
    this.conv2 = this.add('conv2', conv3x3(width, width, stride, groups, dilation));
    this.bn2 = this.add('bn2', new BatchNorm2d(width));
    this.conv3 = this.add('conv3', conv1x1(width, planes * Bottleneck.expansion));
    this.bn3 = this.add('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.relu = this.add('relu', ReLU());
    this.downsample = downsample ? this.add('downsample', downsample) : null;
  }

  forward(x: Tensor): Tensor {
    let out = this.relu.call(this.bn1.call(this.conv1.call(x)));
    out = this.relu.call(this.bn2.call(this.conv2.call(out)));
    out = this.bn3.call(this.conv3.call(out));
    const identity = this.downsample ? this.downsample.call(x) : x;
    return this.relu.call(E.add(out, identity));
  }
}

/**
 * The stem and the four stages as torchvision's children, in call order: conv1, bn1, relu, maxpool,
 * layer1…layer4 (what torchvision's IntermediateLayerGetter keeps of a ResNet for segmentation).
 */
export function resnetFeatures(cfg: ResNetConfig): { layers: [string, Module][]; outChannels: number } {
  const groups = cfg.groups ?? 1;
  const baseWidth = cfg.widthPerGroup ?? 64;
  const planes = cfg.planes ?? [64, 128, 256, 512];
  const dilate = cfg.replaceStrideWithDilation ?? [false, false, false];
  if (cfg.layers.length !== 4 || planes.length !== 4) throw new ModelError('ResNet: layers and planes need four stages');
  if (cfg.block === 'basic' && (groups !== 1 || baseWidth !== 64)) {
    throw new ModelError('BasicBlock only supports groups=1 and base_width=64'); // as torchvision
  }
  const expansion = cfg.block === 'basic' ? BasicBlock.expansion : Bottleneck.expansion;
  let inplanes = cfg.stemWidth ?? 64;
  let dilation = 1;
  const layers: [string, Module][] = [
    ['conv1', new Conv2d(cfg.inChannels ?? 3, inplanes, 7, { stride: 2, padding: 3, bias: false })],
    ['bn1', new BatchNorm2d(inplanes)],
    ['relu', ReLU()],
    ['maxpool', MaxPool2d(3, 2, 1)],
  ];
  planes.forEach((p, s) => {
    // torchvision _make_layer: a dilated stage trades its stride for dilation; its first block keeps the
    // previous dilation.
    let stride = s === 0 ? 1 : 2;
    const previousDilation = dilation;
    if (s > 0 && dilate[s - 1]) {
      dilation *= stride;
      stride = 1;
    }
    const blocks: Module[] = [];
    for (let i = 0; i < cfg.layers[s]; i++) {
      const st = i === 0 ? stride : 1;
      const d = i === 0 ? previousDilation : dilation;
      let downsample: Sequential | null = null;
      if (i === 0 && (st !== 1 || inplanes !== p * expansion)) {
        downsample = new Sequential(conv1x1(inplanes, p * expansion, st), new BatchNorm2d(p * expansion));
      }
      blocks.push(cfg.block === 'basic' ? new BasicBlock(inplanes, p, st, downsample, d) : new Bottleneck(inplanes, p, st, downsample, groups, baseWidth, d));
      inplanes = p * expansion;
    }
    layers.push([`layer${s + 1}`, new Sequential(...blocks)]);
  });
  return { layers, outChannels: inplanes };
}

export class ResNet extends Module {
  private readonly features: Module[];
  private readonly avgpool: Module;
  private readonly fc: Linear;
  readonly numClasses: number;
  readonly inChannels: number;

  constructor(cfg: ResNetConfig) {
    super();
    const { layers, outChannels } = resnetFeatures(cfg);
    this.features = layers.map(([name, m]) => this.add(name, m));
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.numClasses = cfg.numClasses ?? 1000;
    this.inChannels = cfg.inChannels ?? 3;
    this.fc = this.add('fc', new Linear(outChannels, this.numClasses));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    for (const m of this.features) x = m.call(x);
    return this.fc.call(E.flatten(this.avgpool.call(x), 1));
  }
}

/**
 * A named configuration with the input channels, stem width, stage planes, ResNeXt group width and classes
 * of a weights file whose names start with `prefix` (e.g. "backbone." for a segmentation backbone).
 */
export function resnetConfig(named: ResNetConfig, weights: WeightShapes | undefined, prefix = ''): ResNetConfig {
  const w = new ShapeReader(weights, prefix);
  const planes = named.planes ?? [64, 128, 256, 512];
  const bottleneck = named.block === 'bottleneck';
  const cfg: ResNetConfig = {
    ...named,
    inChannels: w.dim('conv1.weight', 4, 1, named.inChannels ?? 3),
    stemWidth: w.dim('conv1.weight', 4, 0, named.stemWidth ?? 64),
    // A stage's output is conv3's (Bottleneck, planes·4) or conv1's (BasicBlock, planes) width.
    planes: planes.map((p, s) => (bottleneck ? w.dim(`layer${s + 1}.0.conv3.weight`, 4, 0, 4 * p) / 4 : w.dim(`layer${s + 1}.0.conv1.weight`, 4, 0, p))),
    numClasses: w.dim('fc.weight', 2, 0, named.numClasses ?? 1000),
  };
  const conv2 = w.shape('layer1.0.conv2.weight', 4);
  if (bottleneck && conv2) {
    // width = planes · (width_per_group / 64) · groups; the 3×3 conv's weight is [width, width / groups, 3, 3].
    const groups = conv2[0] / conv2[1];
    const widthPerGroup = (conv2[0] / groups) * (64 / cfg.planes![0]);
    if (Number.isInteger(groups) && Number.isInteger(widthPerGroup)) Object.assign(cfg, { groups, widthPerGroup });
  }
  return cfg;
}

/** The torchvision builders' configurations. */
export const RESNET_CONFIGS: Readonly<Record<string, ResNetConfig>> = Object.freeze({
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  resnet101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  resnet152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
  resnext50_32x4d: { block: 'bottleneck', layers: [3, 4, 6, 3], groups: 32, widthPerGroup: 4 },
});

for (const [name, cfg] of Object.entries(RESNET_CONFIGS)) {
  registerArchitecture({
    name,
    build: (numClasses, weights) => {
      const c = resnetConfig(cfg, weights);
      return new ResNet({ ...c, numClasses: numClasses ?? c.numClasses });
    },
    defaultLayer: 'layer4',
    preprocessing: imagenetPreprocessing(256, 224),
    labels: IMAGENET_CLASSES,
  });
}
