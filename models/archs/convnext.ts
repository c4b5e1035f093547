// torchvision 0.14 ConvNeXt (torchvision/models/convnext.py) with its exact module names:
// features.0 = Conv2dNormActivation(3, C0, k=4, s=4, bias) with LayerNorm2d (eps 1e-6) and no activation;
// then for each stage a Sequential of CNBlocks and, when the stage has out_channels, a downsampling
// Sequential(LayerNorm2d, Conv2d k=2 s=2). CNBlock: `block` = Sequential(depthwise Conv2d 7×7 pad 3 (0),
// Permute NCHW→NHWC (1), LayerNorm eps 1e-6 (2), Linear C→4C (3), GELU (4), Linear 4C→C (5), Permute back (6)),
// the parameter `layer_scale` of shape [C, 1, 1], `stochastic_depth` (identity in eval):
// out = layer_scale · block(x) + x. Head: avgpool, classifier.0 LayerNorm2d, classifier.1 Flatten,
// classifier.2 Linear. LayerNorm2d normalises over channels by permuting to channels-last and back.
// The block settings are configurable (CNBlockConfig list), as torchvision's constructor; stage widths,
// input channels and classes can be read from a weights file (`convnextSetting`).

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, Conv2d, Flatten, GELU, Identity, LayerNorm, Linear, Sequential } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, Permute } from './imagenet.ts';
import { conv2dNormActivation } from './mobilenet_v2.ts';

/** torchvision.models.convnext.LayerNorm2d: a LayerNorm over C of an NCHW tensor. */
export class LayerNorm2d extends LayerNorm {
  constructor(channels: number, eps = 1e-6) {
    super([channels], eps);
  }
  override forward(x: Tensor): Tensor {
    return E.permute(super.forward(E.permute(x, [0, 2, 3, 1])), [0, 3, 1, 2]);
  }
}

export class CNBlock extends Module {
  private readonly block: Sequential;
  private readonly stochasticDepth: Module;

  constructor(dim: number) {
    super();
    this.block = this.add(
      'block',
      new Sequential(
        new Conv2d(dim, dim, 7, { padding: 3, groups: dim, bias: true }),
        Permute([0, 2, 3, 1]),
        new LayerNorm([dim], 1e-6),
        new Linear(dim, 4 * dim),
        GELU(),
        new Linear(4 * dim, dim),
        Permute([0, 3, 1, 2]),
      ),
    );
    this.declare('layer_scale', [dim, 1, 1]);
    this.stochasticDepth = this.add('stochastic_depth', Identity('StochasticDepth'));
  }

  forward(x: Tensor): Tensor {
    const result = this.stochasticDepth.call(E.mul(this.p('layer_scale'), this.block.call(x)));
    return E.add(result, x);
  }
}

export interface CNBlockConfig {
  inputChannels: number;
  outChannels: number | null;
  numLayers: number;
}

export const CONVNEXT_TINY_SETTING: readonly CNBlockConfig[] = [
  { inputChannels: 96, outChannels: 192, numLayers: 3 },
  { inputChannels: 192, outChannels: 384, numLayers: 3 },
  { inputChannels: 384, outChannels: 768, numLayers: 9 },
  { inputChannels: 768, outChannels: null, numLayers: 3 },
];

export class ConvNeXt extends Module {
  private readonly features: Sequential;
  private readonly avgpool: Module;
  private readonly classifier: Sequential;

  constructor(blockSetting: readonly CNBlockConfig[], readonly numClasses = 1000, readonly inChannels = 3) {
    super();
    if (blockSetting.length === 0) throw new ModelError('The block_setting should not be empty');
    const first = blockSetting[0].inputChannels;
    const layers: Module[] = [conv2dNormActivation(inChannels, first, 4, { stride: 4, padding: 0, norm: (c) => new LayerNorm2d(c), activation: null, bias: true })];
    for (const cnf of blockSetting) {
      layers.push(new Sequential(...Array.from({ length: cnf.numLayers }, () => new CNBlock(cnf.inputChannels))));
      if (cnf.outChannels !== null) {
        layers.push(new Sequential(new LayerNorm2d(cnf.inputChannels), new Conv2d(cnf.inputChannels, cnf.outChannels, 2, { stride: 2 })));
      }
    }
    const last = blockSetting[blockSetting.length - 1];
    const lastChannels = last.outChannels ?? last.inputChannels;
    this.features = this.add('features', new Sequential(...layers));
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.classifier = this.add('classifier', new Sequential(new LayerNorm2d(lastChannels), Flatten(1), new Linear(lastChannels, numClasses)));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return this.classifier.call(this.avgpool.call(this.features.call(x)));
  }
}

/** Outputs of `block.1` … `block.5` inside a CNBlock are channels-last; every other 4-D output is NCHW. */
export function convnextLayout(path: string): 'NCHW' | 'NHWC' {
  return /\.block\.[1-5]$/.test(path) ? 'NHWC' : 'NCHW';
}

/** A named block setting with the stage widths of a weights file (stage s's blocks are features.{2s+1}). */
export function convnextSetting(named: readonly CNBlockConfig[], weights: WeightShapes | undefined): CNBlockConfig[] {
  const w = new ShapeReader(weights);
  const widths = named.map((cnf, s) => w.dim(`features.${2 * s + 1}.0.block.0.weight`, 4, 0, cnf.inputChannels));
  return named.map((cnf, s) => ({ ...cnf, inputChannels: widths[s], outChannels: cnf.outChannels === null ? null : widths[s + 1] }));
}

registerArchitecture({
  name: 'convnext_tiny',
  build: (numClasses, weights) => {
    const w = new ShapeReader(weights);
    const setting = convnextSetting(CONVNEXT_TINY_SETTING, weights);
    return new ConvNeXt(setting, numClasses ?? w.dim('classifier.2.weight', 2, 0, 1000), w.dim('features.0.0.weight', 4, 1, 3));
  },
  defaultLayer: 'features.7',
  preprocessing: imagenetPreprocessing(236, 224),
  labels: IMAGENET_CLASSES,
  layout: convnextLayout,
});
