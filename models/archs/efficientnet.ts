// torchvision 0.14 EfficientNet-B0 (torchvision/models/efficientnet.py, MBConv blocks) with its exact
// module names: features.0 = Conv2dNormActivation (3×3/2, BN, SiLU); features.1…7 = stages, each a
// Sequential of MBConv whose `block` holds [expand Conv2dNormActivation (if the expansion changes the
// channels)], depthwise Conv2dNormActivation, SqueezeExcitation (avgpool, fc1, activation SiLU, fc2,
// scale_activation Sigmoid; fc1/fc2 are 1×1 convs with bias), projection Conv2dNormActivation without
// activation; `stochastic_depth` (identity in eval) before the residual add; features.8 = 1×1
// Conv2dNormActivation to 4 × the last stage's channels; avgpool; classifier.0 Dropout, classifier.1 Linear.
// BatchNorm eps is torch's default 1e-5 (torchvision passes no norm_layer for B0).
// width_mult / depth_mult follow `_efficientnet_conf("efficientnet_b…", width_mult, depth_mult)`; the stem,
// stage and last widths, input channels and classes can be read from a weights file (`efficientnetConfig`);
// expanded and squeeze widths then follow torchvision's formulas from those.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, Identity, Linear, Sequential, SiLU } from '../layers.ts';
import { Module, ModelError } from '../module.ts';
import { registerArchitecture, type WeightShapes } from '../registry.ts';
import { invertedBlockWidths, SqueezeExcitation } from './blocks.ts';
import { ShapeReader } from './shapes.ts';
import { IMAGENET_CLASSES, imagenetPreprocessing, makeDivisible } from './imagenet.ts';
import { conv2dNormActivation } from './mobilenet_v2.ts';

/** One row of torchvision's MBConvConfig, after width/depth adjustment. */
export interface MBConvConfig {
  expandRatio: number;
  kernel: number;
  stride: number;
  inputChannels: number;
  outChannels: number;
  numLayers: number;
}

const adjustChannels = (channels: number, widthMult: number) => makeDivisible(channels * widthMult, 8);

export class MBConv extends Module {
  private readonly block: Sequential;
  private readonly stochasticDepth: Module;
  readonly useResConnect: boolean;

  constructor(cnf: MBConvConfig) {
    super();
    if (cnf.stride < 1 || cnf.stride > 2) throw new ModelError('illegal stride value');
    this.useResConnect = cnf.stride === 1 && cnf.inputChannels === cnf.outChannels;
    const expanded = adjustChannels(cnf.inputChannels, cnf.expandRatio);
    const layers: Module[] = [];
    if (expanded !== cnf.inputChannels) layers.push(conv2dNormActivation(cnf.inputChannels, expanded, 1, { activation: SiLU }));
    layers.push(conv2dNormActivation(expanded, expanded, cnf.kernel, { stride: cnf.stride, groups: expanded, activation: SiLU }));
    layers.push(new SqueezeExcitation(expanded, Math.max(1, Math.floor(cnf.inputChannels / 4))));
    layers.push(conv2dNormActivation(expanded, cnf.outChannels, 1, { activation: null }));
    this.block = this.add('block', new Sequential(...layers));
    this.stochasticDepth = this.add('stochastic_depth', Identity('StochasticDepth'));
  }

  forward(x: Tensor): Tensor {
    const result = this.block.call(x);
    return this.useResConnect ? E.add(this.stochasticDepth.call(result), x) : result;
  }
}

export interface EfficientNetConfig {
  numClasses?: number;
  widthMult?: number;
  depthMult?: number;
  inChannels?: number;
  /** Explicit stage settings (with widths read from a weights file); overrides widthMult / depthMult. */
  setting?: readonly MBConvConfig[];
  /** Output width of the last 1×1 conv (torchvision: 4 × the last stage's). */
  lastChannels?: number;
}

/** torchvision `_efficientnet_conf("efficientnet_b*", width_mult, depth_mult)`. */
export function efficientnetBConf(widthMult = 1, depthMult = 1): MBConvConfig[] {
  const rows: [number, number, number, number, number, number][] = [
    [1, 3, 1, 32, 16, 1],
    [6, 3, 2, 16, 24, 2],
    [6, 5, 2, 24, 40, 2],
    [6, 3, 2, 40, 80, 3],
    [6, 5, 1, 80, 112, 3],
    [6, 5, 2, 112, 192, 4],
    [6, 3, 1, 192, 320, 1],
  ];
  return rows.map(([expandRatio, kernel, stride, inC, outC, n]) => ({
    expandRatio,
    kernel,
    stride,
    inputChannels: adjustChannels(inC, widthMult),
    outChannels: adjustChannels(outC, widthMult),
    numLayers: Math.ceil(n * depthMult),
  }));
}

export class EfficientNet extends Module {
  private readonly features: Sequential;
  private readonly avgpool: Module;
  private readonly classifier: Sequential;
  readonly numClasses: number;
  readonly inChannels: number;

  constructor(cfg: EfficientNetConfig = {}) {
    super();
    const setting = cfg.setting ?? efficientnetBConf(cfg.widthMult ?? 1, cfg.depthMult ?? 1);
    this.numClasses = cfg.numClasses ?? 1000;
    this.inChannels = cfg.inChannels ?? 3;
    const layers: Module[] = [conv2dNormActivation(this.inChannels, setting[0].inputChannels, 3, { stride: 2, activation: SiLU })];
    for (const cnf of setting) {
      const stage: Module[] = [];
      for (let i = 0; i < cnf.numLayers; i++) {
        stage.push(new MBConv(i === 0 ? cnf : { ...cnf, inputChannels: cnf.outChannels, stride: 1 }));
      }
      layers.push(new Sequential(...stage));
    }
    const lastIn = setting[setting.length - 1].outChannels;
    const lastOut = cfg.lastChannels ?? 4 * lastIn;
    layers.push(conv2dNormActivation(lastIn, lastOut, 1, { activation: SiLU }));
    this.features = this.add('features', new Sequential(...layers));
    this.avgpool = this.add('avgpool', AdaptiveAvgPool2d(1));
    this.classifier = this.add('classifier', new Sequential(Identity('Dropout'), new Linear(lastOut, this.numClasses)));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return this.classifier.call(E.flatten(this.avgpool.call(this.features.call(x)), 1));
  }
}

/** EfficientNet-B0 with the widths, input channels and classes of a weights file. */
export function efficientnetConfig(weights: WeightShapes | undefined): EfficientNetConfig {
  const w = new ShapeReader(weights);
  let input = w.dim('features.0.0.weight', 4, 0, efficientnetBConf()[0].inputChannels);
  const setting = efficientnetBConf().map((cnf, s) => {
    const out = invertedBlockWidths(w.under(`features.${s + 1}.0.block.`), true)?.out ?? cnf.outChannels;
    const row = { ...cnf, inputChannels: input, outChannels: out };
    input = out;
    return row;
  });
  return {
    setting,
    inChannels: w.dim('features.0.0.weight', 4, 1, 3),
    lastChannels: w.dim('features.8.0.weight', 4, 0, 4 * input),
    numClasses: w.dim('classifier.1.weight', 2, 0, 1000),
  };
}

registerArchitecture({
  name: 'efficientnet_b0',
  build: (numClasses, weights) => {
    const cfg = efficientnetConfig(weights);
    return new EfficientNet({ ...cfg, numClasses: numClasses ?? cfg.numClasses });
  },
  defaultLayer: 'features.8',
  // torchvision's EfficientNet_B0_Weights.IMAGENET1K_V1: resize 256 (bicubic), crop 224; see imagenet.ts.
  preprocessing: imagenetPreprocessing(256, 224),
  labels: IMAGENET_CLASSES,
});
