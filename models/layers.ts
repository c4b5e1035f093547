// Leaf modules with torch's names, parameter layouts and eval-mode behaviour.

import * as E from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import { Module, ModelError, onDisposeParameters } from './module.ts';
import { fusionEnabled } from './fusion-switch.ts';
import type { EpilogueActivation } from '../engine/fusion/epilogue.ts';

type Pair = number | [number, number];
const pairOf = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dConfig {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  constructor(readonly inChannels: number, readonly outChannels: number, kernel: Pair, cfg: Conv2dConfig = {}) {
    super();
    const [kh, kw] = pairOf(kernel);
    this.stride = pairOf(cfg.stride ?? 1);
    this.padding = pairOf(cfg.padding ?? 0);
    this.dilation = pairOf(cfg.dilation ?? 1);
    this.groups = cfg.groups ?? 1;
    this.declare('weight', [outChannels, inChannels / this.groups, kh, kw]);
    if (cfg.bias ?? true) this.declare('bias', [outChannels]);
  }
  forward(x: Tensor): Tensor {
    return E.conv2d(x, this.p('weight'), this.has('bias') ? this.p('bias') : null, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

/** A BatchNorm's per-channel scale and shift, with the parameter tensors they were computed from. */
interface CachedAffine {
  sources: Tensor[];
  scale: Tensor;
  shift: Tensor;
}

export class BatchNorm2d extends Module {
  private cachedAffine: CachedAffine | null = null;

  constructor(readonly channels: number, readonly eps = 1e-5) {
    super();
    for (const name of ['weight', 'bias', 'running_mean', 'running_var']) this.declare(name, [channels]);
  }

  /** One scale-shift dispatch when fused (the affine map computed once per loaded parameters). */
  forward(x: Tensor): Tensor {
    if (!fusionEnabled()) {
      // The unfused graph, as before the scale-shift primitive: a broadcast mul and add.
      const { scale, shift } = E.batchNormAffine(this.statistics());
      const perChannel = x.shape.map((d, i) => (i === 1 ? d : 1));
      return E.add(E.mul(x, E.reshape(scale, perChannel)), E.reshape(shift, perChannel));
    }
    const { scale, shift } = this.affine();
    return E.scaleShift(x, scale, shift, 1);
  }

  private statistics(): E.BatchNormParams {
    return { mean: this.p('running_mean'), var: this.p('running_var'), weight: this.p('weight'), bias: this.p('bias'), eps: this.eps };
  }

  /**
   * scale = γ/√(σ²+ε), shift = β − μ·scale. Cached while the parameters are the same concrete tensors (a
   * reload recomputes it); computed afresh when a parameter is a tracer (differentiated parameters).
   */
  private affine(): { scale: Tensor; shift: Tensor } {
    const stats = this.statistics();
    const sources = [stats.mean, stats.var, stats.weight!, stats.bias!];
    if (sources.some((t) => t.level !== 0)) return E.batchNormAffine(stats);
    const cached = this.cachedAffine;
    if (cached && cached.sources.every((t, i) => t === sources[i] && !t.isDisposed)) return cached;
    this.releaseAffine();
    this.cachedAffine = { sources, ...E.keep(E.tidy(() => E.batchNormAffine(stats))) };
    return this.cachedAffine;
  }

  /** Frees the cached scale and shift (with the parameters they came from). */
  releaseAffine(): void {
    this.cachedAffine?.scale.dispose();
    this.cachedAffine?.shift.dispose();
    this.cachedAffine = null;
  }
}

onDisposeParameters((root) => {
  for (const [, m] of root.modules()) if (m instanceof BatchNorm2d) m.releaseAffine();
});

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.declare('weight', [outFeatures, inFeatures]);
    if (bias) this.declare('bias', [outFeatures]);
  }
  forward(x: Tensor): Tensor {
    return E.linear(x, this.p('weight'), this.has('bias') ? this.p('bias') : null);
  }
}

export class LayerNorm extends Module {
  constructor(readonly normalizedShape: number[], readonly eps = 1e-5, affine = true) {
    super();
    if (affine) {
      this.declare('weight', normalizedShape);
      this.declare('bias', normalizedShape);
    }
  }
  forward(x: Tensor): Tensor {
    const affine = this.has('weight');
    return E.layerNorm(x, affine ? this.p('weight') : null, affine ? this.p('bias') : null, this.eps, this.normalizedShape);
  }
}

/** A module wrapping a parameter-free function (activations, flatten, …). */
export class Lambda extends Module {
  /** `activation`: the activation this module is, when a convolution's epilogue can apply it instead. */
  constructor(readonly fn: (x: Tensor) => Tensor, readonly kind: string, readonly activation?: EpilogueActivation) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

export const ReLU = () => new Lambda(E.relu, 'ReLU', 'relu');
export const ReLU6 = () => new Lambda(E.relu6, 'ReLU6', 'relu6');
export const SiLU = () => new Lambda(E.silu, 'SiLU', 'silu');
export const GELU = (approximate: 'none' | 'tanh' = 'none') =>
  new Lambda((x) => E.gelu(x, { approximate }), 'GELU', approximate === 'none' ? 'gelu' : undefined);
export const Sigmoid = () => new Lambda(E.sigmoid, 'Sigmoid');
export const Hardswish = () => new Lambda(E.hardswish, 'Hardswish', 'hardswish');
export const Hardsigmoid = () => new Lambda(E.hardsigmoid, 'Hardsigmoid');
/** Dropout and stochastic depth are the identity in eval mode. */
export const Identity = (kind = 'Identity') => new Lambda((x) => x, kind);
export const Flatten = (startDim = 1) => new Lambda((x) => E.flatten(x, startDim), 'Flatten');
export const MaxPool2d = (kernel: Pair, stride?: Pair, padding: Pair = 0) =>
  new Lambda((x) => E.maxPool2d(x, { kernel, stride: stride ?? kernel, padding }), 'MaxPool2d');
export const AvgPool2d = (kernel: Pair, stride?: Pair, padding: Pair = 0) =>
  new Lambda((x) => E.avgPool2d(x, { kernel, stride: stride ?? kernel, padding }), 'AvgPool2d');
export const AdaptiveAvgPool2d = (size: Pair) => new Lambda((x) => E.adaptiveAvgPool2d(x, size), 'AdaptiveAvgPool2d');

/** Children run in order under the given names, as torch.nn.Sequential(OrderedDict(…)). */
export class NamedSequential extends Module {
  readonly layers: Module[];
  readonly names: string[];
  constructor(entries: readonly (readonly [string, Module])[]) {
    super();
    this.names = entries.map(([name]) => name);
    this.layers = entries.map(([name, m]) => this.add(name, m));
  }
  forward(x: Tensor): Tensor {
    for (const m of this.layers) x = m.call(x);
    return x;
  }
  /**
   * Runs the children in order up to the last of `taps` and returns the outputs of the named children, in
   * the order asked (torchvision's IntermediateLayerGetter).
   */
  taps(x: Tensor, taps: readonly string[]): Tensor[] {
    const wanted = taps.map((t) => this.names.indexOf(t));
    const missing = taps.find((_, i) => wanted[i] < 0);
    if (missing !== undefined) throw new ModelError(`${this.path || '<root>'}: no child "${missing}" to take features from`);
    const outputs = new Map<number, Tensor>();
    const last = Math.max(...wanted);
    for (let i = 0; i <= last; i++) {
      x = this.layers[i].call(x);
      outputs.set(i, x);
    }
    return wanted.map((i) => outputs.get(i)!);
  }
}

/** Children named "0", "1", … run in order, as torch.nn.Sequential. */
export class Sequential extends NamedSequential {
  constructor(...layers: Module[]) {
    super(layers.map((m, i) => [String(i), m] as const));
  }
}

/** Children named "0", "1", … that the parent calls itself, as torch.nn.ModuleList (no forward of its own). */
export class ModuleList extends Module {
  readonly items: Module[];
  constructor(items: readonly Module[]) {
    super();
    this.items = items.map((m, i) => this.add(i, m));
  }
  forward(): Tensor {
    throw new ModelError(`${this.path}: a ModuleList is not called; its parent calls its items`);
  }
}
