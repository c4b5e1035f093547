// torchvision 0.14 VGG (torchvision/models/vgg.py) with its exact module names: `features.N` from
// make_layers(cfg, batch_norm) (Conv2d 3×3 pad 1 [+ BatchNorm2d] + ReLU per number, MaxPool2d(2, 2) per
// "M"), `avgpool` = AdaptiveAvgPool2d(7×7), `classifier` = Linear, ReLU, Dropout, Linear, ReLU, Dropout,
// Linear (parameters at classifier.0/3/6; dropout is the identity in eval mode).
//
// `VggConfig` takes any cfg list and the classifier's hidden width, so reduced models built with
// torchvision's own `VGG(make_layers(cfg, bn))` (and a smaller classifier of the same structure) load too;
// `vggConfig` reads the conv widths, input channels, hidden width and classes of a weights file.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, Linear, MaxPool2d, ReLU, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing } from './imagenet.ts';

export type VggCfg = readonly (number | 'M')[];

/** torchvision's `cfgs`: A = VGG-11, B = VGG-13, D = VGG-16, E = VGG-19. */
export const VGG_CFGS: Readonly<Record<'A' | 'B' | 'D' | 'E', VggCfg>> = Object.freeze({
  A: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  B: [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
  D: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
  E: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
});

export interface VggConfig {
  cfg: VggCfg;
  batchNorm: boolean;
  numClasses?: number;
  /** Width of the two hidden classifier layers (torchvision: 4096). */
  hidden?: number;
  /** Input channels of the first conv (torchvision: 3). */
  inChannels?: number;
}

/** torchvision.models.vgg.make_layers. */
export function makeLayers(cfg: VggCfg, batchNorm: boolean, inChannels = 3): Sequential {
  const layers: Module[] = [];
  for (const v of cfg) {
    if (v === 'M') {
      layers.push(MaxPool2d(2, 2));
    } else {
      layers.push(new Conv2d(inChannels, v, 3, { padding: 1 }));
      if (batchNorm) layers.push(new BatchNorm2d(v));
      layers.push(ReLU());
      inChannels = v;
    }
  }
  return new Sequential(...layers);
}

/** Index in `features` of the last max-pool (the default CAM layer: features.30 for VGG-16). */
export function lastPoolIndex(cfg: VggCfg, batchNorm: boolean): number {
  let index = -1;
  let last = -1;
  for (const v of cfg) {
    if (v === 'M') last = index += 1;
    else index += batchNorm ? 3 : 2;
  }
  if (last < 0) throw new ModelError('VGG cfg has no max-pool');
  return last;
}

export class VGG extends Module {
  private readonly features: Sequential;
  private readonly avgpool: Module;
  private readonly classifier: Sequential;
  readonly numClasses: number;
  readonly inChannels: number;

  constructor(cfg: VggConfig) {
    super();
    const channels = [...cfg.cfg].reverse().find((v): v is number => v !== 'M');
    if (channels === undefined) throw new ModelError('VGG cfg has no conv layer');
    const hidden = cfg.hidden ?? 4096;
    this.numClasses = cfg.numClasses ?? 1000;
    this.inChannels = cfg.inChannels ?? 3;
    this.features = this.add('features', makeLayers(cfg.cfg, cfg.batchNorm, this.inChannels));
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(7));
    this.classifier = this.add(
      'classifier',
      new Sequential(
        new Linear(channels * 7 * 7, hidden),
        ReLU(),
        Identity('Dropout'),
        new Linear(hidden, hidden),
        ReLU(),
        Identity('Dropout'),
        new Linear(hidden, this.numClasses),
      ),
    );
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return this.classifier.call(E.flatten(this.avgpool.call(this.features.call(x)), 1));
  }
}

/** A named configuration with the widths, input channels, hidden width and classes of a weights file. */
export function vggConfig(named: VggConfig, weights: WeightShapes | undefined): VggConfig {
  const w = new ShapeReader(weights);
  let index = 0;
  const cfg = named.cfg.map((v) => {
    if (v === 'M') {
      index += 1;
      return v;
    }
    const width = w.dim(`features.${index}.weight`, 4, 0, v);
    index += named.batchNorm ? 3 : 2;
    return width;
  });
  return {
    ...named,
    cfg,
    inChannels: w.dim('features.0.weight', 4, 1, named.inChannels ?? 3),
    hidden: w.dim('classifier.0.weight', 2, 0, named.hidden ?? 4096),
    numClasses: w.dim('classifier.6.weight', 2, 0, named.numClasses ?? 1000),
  };
}

const VARIANTS: [string, keyof typeof VGG_CFGS][] = [['vgg11', 'A'], ['vgg13', 'B'], ['vgg16', 'D'], ['vgg19', 'E']];

for (const [base, key] of VARIANTS) {
  for (const batchNorm of [false, true]) {
    const cfg = VGG_CFGS[key];
    registerArchitecture({
      name: batchNorm ? `${base}_bn` : base,
      build: (numClasses, weights) => {
        const c = vggConfig({ cfg, batchNorm }, weights);
        return new VGG({ ...c, numClasses: numClasses ?? c.numClasses });
      },
      defaultLayer: `features.${lastPoolIndex(cfg, batchNorm)}`,
      preprocessing: imagenetPreprocessing(256, 224),
      labels: IMAGENET_CLASSES,
    });
  }
}
