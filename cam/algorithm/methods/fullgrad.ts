// FullGrad (Srinivas and Fleuret, NeurIPS 2019), as pytorch-grad-cam computes it. It reads no target layer:
// every Conv2d with a bias and every BatchNorm2d, in module-registration order, contributes |b_k · G_k|
// (b = the module's effective bias, G = the gradient of the utility at the module's output), and the
// input contributes |∂U/∂x ⊙ x| per input channel. Each (image, channel) map is min-maxed on its own and
// resized to the input; the maps are summed (per layer over channels, then everything) and min-maxed once
// more, with no ReLU. All the gradients come from one backward pass: the forward pass adds a watched zero
// tensor to every bias module's output, and the gradient with respect to it is the gradient there.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import { BatchNorm2d, Conv2d } from '../../../models/layers.ts';
import { withForwardHooks, type Module } from '../../../models/module.ts';
import { imageUtilities, type HeadTarget } from '../targets.ts';
import { principalProjection } from './eigen.ts';
import type { ComposedMethod } from './types.ts';

export const fullgrad: ComposedMethod = {
  kind: 'fullgrad',
  name: 'fullgrad',
  referenceName: 'FullGrad',
  needsGradient: true,
  needsHvp: false,
  randomised: false,
  channels: 1,
  smoothing: { aug: true, eigen: true },
  ignoresLayers: true,
};

export interface BiasLayer {
  path: string;
  /** [K]: the bias, or for a BatchNorm its effective bias b − μ·γ/√(σ² + ε). */
  bias: Tensor;
}

function ownBias(m: Module): Tensor | null {
  for (const [name, spec] of m.tensors()) if (name === (m.path ? `${m.path}.bias` : 'bias')) return spec.value;
  return null;
}

/** The modules FullGrad reads, in registration order: Conv2d layers with a bias, and every BatchNorm2d. */
export function biasLayers(module: Module): BiasLayer[] {
  const out: BiasLayer[] = [];
  for (const [path, m] of module.modules()) {
    if (m instanceof BatchNorm2d) {
      const p = new Map([...m.tensors()].map(([name, spec]) => [name.slice(name.lastIndexOf('.') + 1), spec.value!]));
      const scale = E.div(p.get('weight')!, E.sqrt(E.add(p.get('running_var')!, m.eps)));
      out.push({ path, bias: E.sub(p.get('bias')!, E.mul(p.get('running_mean')!, scale)) });
    } else if (m instanceof Conv2d) {
      const bias = ownBias(m);
      if (bias) out.push({ path, bias });
    }
  }
  return out;
}

/** Per (image, channel) min-max with eps 1e-7 over the last two axes (pytorch-grad-cam's scale_cam_image). */
export function minMaxPerMap(t: Tensor): Tensor {
  // max(t − min) is computed as max(t) − min: rounding is monotonic, so for finite t the two are the same
  // number, and the rest is one elementwise chain (t − min) / (max(t) − min + 1e-7).
  const lo = E.min(t, [-2, -1], true);
  const hi = E.max(t, [-2, -1], true);
  return E.elementwiseChain([t, lo, hi], (x, mn, mx) => x.sub(mn).div(mx.sub(mn).add(1e-7)));
}

/** Resized to [H, W] (half-pixel bilinear, as OpenCV) unless already that size. */
function toSize(t: Tensor, H: number, W: number): Tensor {
  const [h, w] = t.shape.slice(-2);
  return h === H && w === W ? t : E.resizeBilinear(t, [H, W]);
}

export interface FullGradResult {
  /** [B, H, W] final maps in [0, 1]. */
  maps: Tensor;
  /** The bias modules read, in order. */
  layers: string[];
}

/**
 * FullGrad of the batch utility Σ_b u_b of the target. With `eigenSmooth`, as upstream: the 3 + L scaled
 * maps are min-maxed and shrunk to 1/8 of the input size, projected on their first principal component,
 * and that projection is min-maxed and resized back.
 */
export async function fullGrad(module: Module, input: Tensor, target: HeadTarget, eigenSmooth: boolean): Promise<FullGradResult> {
  const [B, , H, W] = input.shape;
  const layers = biasLayers(module);
  const index = new Map(layers.map((l, i) => [l.path, i]));
  // A concrete pass learns each bias module's output shape (the perturbations are made before the trace).
  const shapes: number[][] = [];
  E.tidy(() => withForwardHooks(new Map(layers.map((l, i) => [l.path, (out: Tensor) => void (shapes[i] = [...out.shape])])), () => module.call(input)));
  const zeros = shapes.map((s) => E.zeros(s));
  let perturbations: Tensor[] = [];
  const hooks = new Map(layers.map((l) => [l.path, (out: Tensor) => E.add(out, perturbations[index.get(l.path)!])]));
  const total = (x: Tensor, ...ds: Tensor[]) => {
    perturbations = ds;
    return E.sum(imageUtilities(target, withForwardHooks(hooks, () => module.call(x))));
  };
  const [, pullback] = E.vjp(total, [input, ...zeros]);
  const [gx, ...grads] = pullback(1);
  const absProduct = (a: Tensor, b: Tensor) => E.elementwiseChain([a, b], (x, y) => x.mul(y).abs());
  const inputTerms = minMaxPerMap(absProduct(gx, input));
  const layerTerms = grads.map((g, i) => {
    const [, K] = g.shape;
    const scaled = minMaxPerMap(absProduct(g, E.reshape(layers[i].bias, [1, K, 1, 1])));
    // Resizing is linear: resizing the channel sum equals summing the resized channel maps.
    return toSize(E.sum(scaled, 1, true), H, W);
  });
  const parts = E.concat([inputTerms, ...layerTerms], 1);
  let combined: Tensor;
  if (eigenSmooth) {
    const small = toSize(minMaxPerMap(parts), Math.max(1, Math.floor(H / 8)), Math.max(1, Math.floor(W / 8)));
    const projection = await principalProjection(small);
    combined = toSize(minMaxPerMap(projection), H, W);
  } else {
    combined = E.sum(parts, 1);
  }
  return { maps: E.reshape(minMaxPerMap(combined), [B, H, W]), layers: layers.map((l) => l.path) };
}
