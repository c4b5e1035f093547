// Gradient-based methods, all small formulas over A, G and (ShapleyCAM) H·A. Shapes: A, G, H·A are
// [B, K, h, w]; weights are [B, K]; raw maps are [B, h, w].

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
export function shapleyWeight(ctx: MethodContext): Tensor {
  const { HA } = ctx.terms;
  if (!HA) throw new Error('ShapleyCAM needs H·A');
  return E.sub(gradientOf(ctx), E.mul(HA, 0.5));
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

export const gradcamElementwise = gradientMethod('gradcam-e', 'GradCAMElementWise', (_c, A, G) => fromPerChannel(E.relu(E.mul(G, A))));

export const gradcamPlusPlus = gradientMethod('gradcam++', 'GradCAMPlusPlus', (_c, A, G) => {
  const g2 = E.mul(G, G);
  const g3 = E.mul(g2, G);
  const sumA = E.sum(A, SPATIAL, true);
  const alpha = E.div(g2, E.add(E.add(E.mul(g2, 2), E.mul(sumA, g3)), 1e-6));
  const alphaSafe = E.where(E.notEqual(G, 0), alpha, 0);
  return byWeights(E.sum(E.mul(E.relu(G), alphaSafe), SPATIAL), A);
});

export const xgradcam = gradientMethod('xgradcam', 'XGradCAM', (_c, A, G) => {
  const sumA = E.sum(A, SPATIAL, true);
  return byWeights(E.sum(E.div(E.mul(G, A), E.add(sumA, 1e-7)), SPATIAL), A);
});

export const layercam = gradientMethod('layercam', 'LayerCAM', (_c, A, G) => fromPerChannel(E.mul(E.relu(G), A)));

export const shapleycam = gradientMethod('shapleycam', 'ShapleyCAM_mean', (c, A) => byWeights(E.mean(shapleyWeight(c), SPATIAL), A), { needsHvp: true });

export const shapleycamHires = gradientMethod('shapleycam-h', 'ShapleyCAM_hires', (c, A) => fromPerChannel(E.mul(shapleyWeight(c), A)), { needsHvp: true });

export const shapleycamElementwise = gradientMethod(
  'shapleycam-e',
  'ShapleyCAM_E',
  (c, A) => fromPerChannel(E.relu(E.mul(shapleyWeight(c), A))),
  { needsHvp: true },
);
