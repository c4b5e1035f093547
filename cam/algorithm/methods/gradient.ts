// Gradient-based methods, all small formulas over A, G and (ShapleyCAM) H·A. Shapes: A, G, H·A are
// [B, K, h, w]; weights are [B, K]; raw maps are [B, h, w]. The terms are concrete tensors here (their
// derivatives are taken), so the elementwise parts run as one elementwise chain each (one kernel instead
// of one per operation; E.elementwiseChain), in the same order of operations as the ops they replace.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import type { CamMethod, MethodContext, MethodResult } from './types.ts';

const SPATIAL = [2, 3];

/** w_k A_k for per-channel weights [B, K]: [B, K, h, w]. */
function weightedActivations(weights: Tensor, A: Tensor): Tensor {
  const [B, K] = weights.shape;
  return E.mul(E.reshape(weights, [B, K, 1, 1]), A);
}

/** A result from per-channel terms: the raw map is their sum over channels. */
function fromPerChannel(perChannel: Tensor, weights?: Tensor): MethodResult {
  return { raw: E.sum(perChannel, 1), perChannel, ...(weights ? { weights } : {}) };
}

/** Σ_k w_k A_k, keeping the weights and the per-channel terms. */
export function byWeights(weights: Tensor, A: Tensor): MethodResult {
  return fromPerChannel(weightedActivations(weights, A), weights);
}

/** G, which every method declaring `needsGradient` gets. */
export function gradientOf(ctx: MethodContext): Tensor {
  if (!ctx.terms.G) throw new Error('internal: a gradient method ran without G');
  return ctx.terms.G;
}

/** W = G − ½·H·A: the Shapley weight of the second-order expansion of the "keep these activations" game. */
const shapleyWeightOf = (g: E.ChainExpr, ha: E.ChainExpr) => g.sub(ha.mul(0.5));

function hvpOf(ctx: MethodContext): Tensor {
  if (!ctx.terms.HA) throw new Error('ShapleyCAM needs H·A');
  return ctx.terms.HA;
}

/** The Shapley weight W = G − ½·H·A (one kernel). */
export function shapleyWeight(ctx: MethodContext): Tensor {
  return E.elementwiseChain([gradientOf(ctx), hvpOf(ctx)], shapleyWeightOf);
}

/** `f(W, A)` elementwise for the Shapley weight W, in one kernel with W itself. */
function withShapleyWeight(ctx: MethodContext, f: (w: E.ChainExpr, a: E.ChainExpr) => E.ChainExpr): Tensor {
  return E.elementwiseChain([gradientOf(ctx), hvpOf(ctx), ctx.terms.A], (g, ha, a) => f(shapleyWeightOf(g, ha), a));
}

/** A layer method that needs G (and H·A when asked); both smoothings apply, as in pytorch-grad-cam. */
function gradientMethod(
  name: string,
  referenceName: string,
  compute: (ctx: MethodContext, A: Tensor, G: Tensor) => MethodResult,
  opts: { needsHvp?: boolean } = {},
): CamMethod {
  return {
    kind: 'layer',
    name,
    referenceName,
    needsGradient: true,
    needsHvp: opts.needsHvp ?? false,
    randomised: false,
    channels: 1,
    smoothing: { aug: true, eigen: true },
    compute: (ctx) => compute(ctx, ctx.terms.A, gradientOf(ctx)),
  };
}

export const gradcam = gradientMethod('gradcam', 'GradCAM', (_c, A, G) => byWeights(E.mean(G, SPATIAL), A));

export const hirescam = gradientMethod('hirescam', 'HiResCAM', (_c, A, G) => fromPerChannel(E.mul(G, A)));

export const gradcamElementwise = gradientMethod('gradcam-e', 'GradCAMElementWise', (_c, A, G) =>
  fromPerChannel(E.elementwiseChain([G, A], (g, a) => g.mul(a).relu())),
);

export const gradcamPlusPlus = gradientMethod('gradcam++', 'GradCAMPlusPlus', (_c, A, G) => {
  const sumA = E.sum(A, SPATIAL, true);
  // relu(G) · α with α = G² / (2G² + ΣA·G³ + 1e-6), and α = 0 where G = 0.
  const weighted = E.elementwiseChain([G, sumA], (g, s) => {
    const g2 = g.mul(g);
    const alpha = g2.div(g2.mul(2).add(s.mul(g2.mul(g))).add(1e-6));
    return g.relu().mul(g.notEqual(0).select(alpha, 0));
  });
  return byWeights(E.sum(weighted, SPATIAL), A);
});

export const xgradcam = gradientMethod('xgradcam', 'XGradCAM', (_c, A, G) => {
  const sumA = E.sum(A, SPATIAL, true);
  return byWeights(E.sum(E.elementwiseChain([G, A, sumA], (g, a, s) => g.mul(a).div(s.add(1e-7))), SPATIAL), A);
});

export const layercam = gradientMethod('layercam', 'LayerCAM', (_c, A, G) =>
  fromPerChannel(E.elementwiseChain([G, A], (g, a) => g.relu().mul(a))),
);

export const shapleycam = gradientMethod('shapleycam', 'ShapleyCAM_mean', (c, A) => byWeights(E.mean(shapleyWeight(c), SPATIAL), A), { needsHvp: true });

export const shapleycamHires = gradientMethod('shapleycam-h', 'ShapleyCAM_hires', (c) => fromPerChannel(withShapleyWeight(c, (w, a) => w.mul(a))), {
  needsHvp: true,
});

export const shapleycamElementwise = gradientMethod(
  'shapleycam-e',
  'ShapleyCAM_E',
  (c) => fromPerChannel(withShapleyWeight(c, (w, a) => w.mul(a).relu())),
  { needsHvp: true },
);
