// torchvision 0.14 ResNet / ResNeXt (torchvision/models/resnet.py) with its exact module names and order
// of operations, so torchvision state_dicts load unchanged: conv1, bn1, relu, maxpool, layer1…layer4 of
// BasicBlock/Bottleneck (downsample.0 = 1×1 conv, downsample.1 = BN), avgpool, fc. Bottleneck is
// "ResNet v1.5": the stride sits on the 3×3 conv (conv2). Like torchvision, each block owns one ReLU module
// called twice (hooks on "layer1.0.relu" see call 1 and call 2).
//
// `ResNetConfig` exposes what the registered names fix: stage planes and stem width (for reduced test
// models such as the case-2 fixture's "resnet18 at base width 16"), groups and width per group (ResNeXt).

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, ReLU, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture } from '../registry.ts';
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
}

const conv3x3 = (inp: number, out: number, stride = 1, groups = 1) => new Conv2d(inp, out, 3, { stride, padding: 1, groups, bias: false });
const conv1x1 = (inp: number, out: number, stride = 1) => new Conv2d(inp, out, 1, { stride, bias: false });

export class BasicBlock extends Module {
  static readonly expansion = 1;
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly relu: Module;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm2d;
  private readonly downsample: Sequential | null;

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null) {
    super();
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

  constructor(inplanes: number, planes: number, stride: number, downsample: Sequential | null, groups: number, baseWidth: number) {
    super();
    const width = Math.trunc(planes * (baseWidth / 64)) * groups;
    this.conv1 = this.add('conv1', conv1x1(inplanes, width));
    this.bn1 = this.add('bn1', new BatchNorm2d(width));
    this.conv2 = this.add('conv2', conv3x3(width, width, stride, groups));
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

export class ResNet extends Module {
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly relu: Module;
  private readonly maxpool: Module;
  private readonly stages: Sequential[];
  private readonly avgpool: Module;
  private readonly fc: Linear;

  constructor(cfg: ResNetConfig) {
    super();
    const groups = cfg.groups ?? 1;
    const baseWidth = cfg.widthPerGroup ?? 64;
    const planes = cfg.planes ?? [64, 128, 256, 512];
    if (cfg.layers.length !== 4 || planes.length !== 4) throw new ModelError('ResNet: layers and planes need four stages');
    if (cfg.block === 'basic' && (groups !== 1 || baseWidth !== 64)) {
      throw new ModelError('BasicBlock only supports groups=1 and base_width=64'); // as torchvision
    }
    const expansion = cfg.block === 'basic' ? BasicBlock.expansion : Bottleneck.expansion;
    let inplanes = cfg.stemWidth ?? 64;
    this.conv1 = this.add('conv1', new Conv2d(3, inplanes, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.add('bn1', new BatchNorm2d(inplanes));
    this.relu = this.add('relu', ReLU());
    this.maxpool = this.add('maxpool', MaxPool2d(3, 2, 1));
    this.stages = planes.map((p, s) => {
      const stride = s === 0 ? 1 : 2;
      const blocks: Module[] = [];
      for (let i = 0; i < cfg.layers[s]; i++) {
        const st = i === 0 ? stride : 1;
        let downsample: Sequential | null = null;
        if (i === 0 && (st !== 1 || inplanes !== p * expansion)) {
          downsample = new Sequential(conv1x1(inplanes, p * expansion, st), new BatchNorm2d(p * expansion));
        }
        blocks.push(cfg.block === 'basic' ? new BasicBlock(inplanes, p, st, downsample) : new Bottleneck(inplanes, p, st, downsample, groups, baseWidth));
        inplanes = p * expansion;
      }
      return this.add(`layer${s + 1}`, new Sequential(...blocks));
    });
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.fc = this.add('fc', new Linear(inplanes, cfg.numClasses ?? 1000));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    let out = this.maxpool.call(this.relu.call(this.bn1.call(this.conv1.call(x))));
    for (const stage of this.stages) out = stage.call(out);
    return this.fc.call(E.flatten(this.avgpool.call(out), 1));
  }
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
    build: (numClasses = 1000) => new ResNet({ ...cfg, numClasses }),
    defaultLayer: 'layer4',
    preprocessing: imagenetPreprocessing(256, 224),
    labels: IMAGENET_CLASSES,
  });
}
