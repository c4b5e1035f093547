// The TinyCNN of fixture case 3 (architecture in its sidecar): a curved network (SiLU, GELU) whose
// second-order terms are non-zero even for the logit utility.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, GELU, Linear, SiLU } from '../../models/layers.ts';
import { Module } from '../../models/module.ts';

export class TinyCNN extends Module {
  private readonly layers: Module[];
  constructor() {
    super();
    this.layers = [
      this.add('conv1', new Conv2d(3, 8, 3, { padding: 1 })),
      this.add('bn1', new BatchNorm2d(8)),
      this.add('act1', SiLU()),
      this.add('conv2', new Conv2d(8, 16, 3, { stride: 2, padding: 1 })),
      this.add('act2', GELU()),
      this.add('pool', AdaptiveAvgPool2d(1)),
    ];
    this.add('fc', new Linear(16, 5));
    this.finalize();
  }
  forward(x: Tensor): Tensor {
    for (const m of this.layers) x = m.call(x);
    return this.child('fc')!.call(E.flatten(x, 1));
  }
}
