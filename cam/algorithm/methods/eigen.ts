// Projection methods: EigenCAM (A), EigenGradCAM (A ⊙ G) and Seg-Eigen-CAM (|G| ⊙ A, with its sign rule),
// each the projection of the centred (positions × channels) matrix on its first principal component, per
// image. The Gram matrix is an engine product (it runs on the GPU); its top eigenpair is solved on the
// host by principal-component.ts. Eigen smoothing projects a method's per-channel terms the same way.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import { largestEigenpair, orient, type SignRule } from '../principal-component.ts';
import { gradientOf } from './gradient.ts';
import type { CamMethod, MethodContext, MethodResult } from './types.ts';

/** [B, K, h, w] → [B, h·w, K], NaN read as 0 (as the reference), each channel centred over the positions. */
export function centredRows(t: Tensor): Tensor {
  const [B, K, h, w] = t.shape;
  const clean = E.where(E.notEqual(t, t), 0, t);
  const rows = E.permute(E.reshape(clean, [B, K, h * w]), [0, 2, 1]);
  return E.sub(rows, E.mean(rows, 1, true));
}

/**
 * [B, K, h, w] → [B, h, w]: per image, the centred rows X (positions × channels) projected on their first
 * right-singular vector, X v₁ = σ₁ u₁ (from whichever Gram matrix, X Xᵀ or Xᵀ X, is smaller), its sign
 * fixed by `rule`.
 */
export async function principalProjection(t: Tensor, rule: SignRule = 'sum'): Promise<Tensor> {
  const [B, K, h, w] = t.shape;
  const n = h * w;
  const X = centredRows(t);
  const out = new Float64Array(B * n);
  if (n <= K) {
    const gram = await E.matmul(X, E.transpose(X)).values();
    for (let b = 0; b < B; b++) {
      const { value, vector } = largestEigenpair(gram.subarray(b * n * n, (b + 1) * n * n), n);
      const sigma = Math.sqrt(Math.max(value, 0));
      out.set(orient(vector.map((v) => v * sigma), rule), b * n);
    }
  } else {
    const gram = await E.matmul(E.transpose(X), X).values();
    const v = new Float64Array(B * K);
    for (let b = 0; b < B; b++) v.set(largestEigenpair(gram.subarray(b * K * K, (b + 1) * K * K), K).vector, b * K);
    const projections = await E.matmul(X, E.tensor(v, [B, K, 1])).values();
    for (let b = 0; b < B; b++) out.set(orient(projections.slice(b * n, (b + 1) * n), rule), b * n);
  }
  return E.tensor(out, [B, h, w]);
}

/** A layer method whose raw map is a projection: eigen smoothing does not apply (it is one already). */
function projectionMethod(name: string, referenceName: string, needsGradient: boolean, compute: (ctx: MethodContext) => Promise<MethodResult>): CamMethod {
  return {
    kind: 'layer',
    name,
    referenceName,
    needsGradient,
    needsHvp: false,
    randomised: false,
    channels: 1,
    smoothing: { aug: true, eigen: false },
    compute,
  };
}

export const eigencam = projectionMethod('eigencam', 'EigenCAM', false, async (ctx) => ({ raw: await principalProjection(ctx.terms.A) }));

export const eigengradcam = projectionMethod('eigengradcam', 'EigenGradCAM', true, async (ctx) => ({
  raw: await principalProjection(E.mul(ctx.terms.A, gradientOf(ctx))),
}));

/**
 * Seg-Eigen-CAM (Chung and Ying, 2025): the projection of |G| ⊙ A, negated when |min| > |max| so that the
 * salient side is positive.
 */
export const segEigencam = projectionMethod('seg-eigencam', 'SegEigenCAM', true, async (ctx) => ({
  raw: await principalProjection(E.elementwiseChain([gradientOf(ctx), ctx.terms.A], (g, a) => g.abs().mul(a)), 'abs-max'),
}));
