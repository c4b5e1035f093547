// EigenCAM and EigenGradCAM: the projection of (A, or A ⊙ G) on its first principal component, per image.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import { firstComponentProjection } from '../principal-component.ts';
import { gradientOf } from './gradient.ts';
import type { CamMethod } from './types.ts';

/** [B, K, h, w] → [B, h, w] first-principal-component projections (NaN treated as 0, as the reference). */
export async function principalProjection(t: Tensor): Promise<Tensor> {
  const [B, K, h, w] = t.shape;
  const values = await t.values();
  const out = new Float64Array(B * h * w);
  const n = h * w;
  for (let b = 0; b < B; b++) {
    // Rows are spatial positions, columns channels.
    const m = new Float64Array(n * K);
    for (let k = 0; k < K; k++) {
      for (let i = 0; i < n; i++) {
        const v = values[(b * K + k) * n + i];
        m[i * K + k] = Number.isNaN(v) ? 0 : v;
      }
    }
    out.set(firstComponentProjection(m, n, K), b * n);
  }
  return E.tensor(out, [B, h, w]);
}

export const eigencam: CamMethod = {
  name: 'eigencam',
  referenceName: 'EigenCAM',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  compute: async (ctx) => ({ raw: await principalProjection(ctx.terms.A) }),
};

export const eigengradcam: CamMethod = {
  name: 'eigengradcam',
  referenceName: 'EigenGradCAM',
  needsGradient: true,
  needsHvp: false,
  randomised: false,
  compute: async (ctx) => ({ raw: await principalProjection(E.mul(ctx.terms.A, gradientOf(ctx))) }),
};
