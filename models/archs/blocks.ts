// Building blocks shared by torchvision's EfficientNet and MobileNetV3: squeeze-and-excitation, and
// reading the widths of an inverted-residual block from a weights file.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, Conv2d, Sigmoid, SiLU } from '../layers.ts';
import { Module } from '../module.ts';
import type { ShapeReader } from './shapes.ts';

/**
 * torchvision.ops.misc.SqueezeExcitation: avgpool, fc1 and fc2 (1×1 convs with bias), activation,
 * scale_activation; the output is scale · x. EfficientNet uses SiLU / Sigmoid, MobileNetV3 ReLU / Hardsigmoid.
 */
export class SqueezeExcitation extends Module {
  private readonly avgpool: Module;
  private readonly fc1: Conv2d;
  private readonly fc2: Conv2d;
  private readonly activation: Module;
  private readonly scaleActivation: Module;

  constructor(inputChannels: number, squeezeChannels: number, activation: () => Module = SiLU, scaleActivation: () => Module = Sigmoid) {
    super();
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.fc1 = this.add('fc1', new Conv2d(inputChannels, squeezeChannels, 1));
    this.fc2 = this.add('fc2', new Conv2d(squeezeChannels, inputChannels, 1));
    this.activation = this.add('activation', activation());
    this.scaleActivation = this.add('scale_activation', scaleActivation());
  }

  forward(x: Tensor): Tensor {
    const s = this.scaleActivation.call(this.fc2.call(this.activation.call(this.fc1.call(this.avgpool.call(x)))));
    return E.mul(s, x);
  }
}

export interface InvertedBlockWidths {
  /** Output of the 1×1 expansion, or the input width when there is none (the depthwise conv's channels). */
  expanded: number;
  squeeze: number | null;
  out: number | null;
}

/**
 * The widths in a torchvision inverted-residual `block` Sequential — [expand (1×1)?, depthwise, SE?,
 * project], each conv the first child of a Conv2dNormActivation — found in a weights file (`w` reads
 * under the block's prefix, e.g. "features.3.block."); null when the file lacks the block. A depthwise
 * weight is [C, 1, k, k], which tells it from an expansion.
 */
export function invertedBlockWidths(w: ShapeReader, hasSe: boolean): InvertedBlockWidths | null {
  const first = w.shape('0.0.weight', 4);
  if (!first) return null;
  const dw = first[1] !== 1 ? 1 : 0;
  return {
    expanded: first[0],
    squeeze: hasSe ? (w.shape(`${dw + 1}.fc1.weight`, 4)?.[0] ?? null) : null,
    out: w.shape(`${dw + (hasSe ? 2 : 1)}.0.weight`, 4)?.[0] ?? null,
  };
}
