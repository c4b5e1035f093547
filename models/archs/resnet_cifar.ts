// CIFAR-10 ResNet-20/32/44/56 (He et al. 2016, §4.2) with option-A shortcuts, with the parameter names of
// akamaster/pytorch_resnet_cifar10, whose pretrained weights the project ships. Input channels, the base
// width (16: stages of w, 2w, 4w) and the classes can be read from a weights file.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { BatchNorm2d, Conv2d, Linear, Sequential } from '../layers.ts';
import { Module } from '../module.ts';
import { IMAGENET_MEAN, IMAGENET_STD, registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { CIFAR10_CLASSES } from '../labels.ts';

export class BasicBlockA extends Module {
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm2d;
  private readonly downsample: boolean;

  constructor(inPlanes: number, readonly planes: number, stride: number) {
    super();
    this.conv1 = this.add('conv1', new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.add('bn1', new BatchNorm2d(planes));
    this.conv2 = this.add('conv2', new Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    this.bn2 = this.add('bn2', new BatchNorm2d(planes));
    this.downsample = stride !== 1 || inPlanes !== planes;
  }

  /** Option A: subsample by 2 and zero-pad planes/4 channels on each side; no parameters. */
  shortcut(x: Tensor): Tensor {
    if (!this.downsample) return x;
    const sub = E.slice(x, [0, 0, 0, 0], [null, null, null, null], [1, 1, 2, 2]);
    const p = this.planes / 4;
    return E.pad(sub, [[0, 0], [p, p], [0, 0], [0, 0]]);
  }

  forward(x: Tensor): Tensor {
    const out = E.relu(this.bn1.call(this.conv1.call(x)));
    return E.relu(E.add(this.bn2.call(this.conv2.call(out)), this.shortcut(x)));
  }
}

export class CifarResNet extends Module {
  private readonly stem: [Conv2d, BatchNorm2d];
  private readonly stages: Sequential[];
  private readonly linear: Linear;

  constructor(depth: number, readonly numClasses = 10, readonly inChannels = 3, width = 16) {
    super();
    if ((depth - 2) % 6 !== 0) throw new Error(`CIFAR ResNet depth must be 6n + 2, got ${depth}`);
    const n = (depth - 2) / 6;
    this.stem = [this.add('conv1', new Conv2d(inChannels, width, 3, { padding: 1, bias: false })), this.add('bn1', new BatchNorm2d(width))];
    let inPlanes = width;
    this.stages = [width, 2 * width, 4 * width].map((planes, s) => {
      const blocks = Array.from({ length: n }, (_, i) => {
        const block = new BasicBlockA(inPlanes, planes, s > 0 && i === 0 ? 2 : 1);
        inPlanes = planes;
        return block;
      });
      return this.add(`layer${s + 1}`, new Sequential(...blocks));
    });
    this.linear = this.add('linear', new Linear(4 * width, numClasses));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    let out = E.relu(this.stem[1].call(this.stem[0].call(x)));
    for (const stage of this.stages) out = stage.call(out);
    // F.avg_pool2d(out, out.size(3)): a global average over the final 8×8 map.
    const pooled = E.flatten(E.mean(out, [2, 3], true), 1);
    return this.linear.call(pooled);
  }
}

// The repository's test transform normalises CIFAR images with the ImageNet constants; no resize or crop.
for (const depth of [20, 32, 44, 56]) {
  registerArchitecture({
    name: `resnet${depth}`,
    build: (numClasses?: number, weights?: WeightShapes) => {
      const w = new ShapeReader(weights);
      const stem = (axis: number, fallback: number) => w.dim('conv1.weight', 4, axis, fallback);
      return new CifarResNet(depth, numClasses ?? w.dim('linear.weight', 2, 0, 10), stem(1, 3), stem(0, 16));
    },
    defaultLayer: 'layer3',
    preprocessing: { mean: IMAGENET_MEAN, std: IMAGENET_STD, inputSize: [32, 32] },
    labels: CIFAR10_CLASSES,
  });
}
