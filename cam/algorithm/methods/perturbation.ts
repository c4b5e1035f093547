// Methods that score perturbed copies with the model: ScoreCAM (masked inputs) and AblationCAM (ablated
// channels), plus RandomCAM, the baseline with random channel weights.

import * as E from '../../../engine/index.ts';
import { resizeBilinear } from '../postprocess.ts';
import { byWeights } from './gradient.ts';
import type { CamMethod } from './types.ts';
import { rngFor } from '../random.ts';

const SCORECAM_BATCH = 16;
const ABLATION_CHUNK = 32;

/**
 * ScoreCAM: each channel, upsampled to the input (align_corners bilinear) and min-max normalised (eps
 * 1e-8), masks the normalised input; the channel weights are the softmax over channels of the target
 * scores of the masked inputs.
 */
export const scorecam: CamMethod = {
  name: 'scorecam',
  referenceName: 'ScoreCAM',
  kind: 'layer',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  channels: 1,
  smoothing: { aug: true, eigen: true },
  compute: async (ctx) => {
    const A = ctx.terms.A;
    const [B, K, h, w] = A.shape;
    const [, C, H, W] = ctx.input.shape;
    const a = await A.values();
    const x = await ctx.input.values();
    const weights = new Float64Array(B * K);
    for (let b = 0; b < B; b++) {
      const scores = new Float64Array(K);
      for (let k0 = 0; k0 < K; k0 += SCORECAM_BATCH) {
        const m = Math.min(SCORECAM_BATCH, K - k0);
        const batch = new Float64Array(m * C * H * W);
        for (let j = 0; j < m; j++) {
          const k = k0 + j;
          const up = resizeBilinear(a.subarray((b * K + k) * h * w, (b * K + k + 1) * h * w), h, w, H, W, true);
          let lo = Infinity;
          let hi = -Infinity;
          for (const v of up) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          }
          for (let c = 0; c < C; c++) {
            for (let i = 0; i < H * W; i++) batch[((j * C + c) * H * W) + i] = x[(b * C + c) * H * W + i] * ((up[i] - lo) / (hi - lo + 1e-8));
          }
        }
        const masked = E.tensor(batch, [m, C, H, W]);
        scores.set(await ctx.scoreInputs(masked, new Array(m).fill(ctx.classes[b]), new Array(m).fill(b)), k0);
        masked.dispose();
      }
      const mx = Math.max(...scores);
      const e = Array.from(scores, (v) => Math.exp(v - mx));
      const total = e.reduce((p, q) => p + q, 0);
      e.forEach((v, k) => (weights[b * K + k] = v / total));
    }
    return byWeights(E.tensor(weights, [B, K]), A);
  },
};

/**
 * AblationCAM: w_k = (y − y_k) / y, where y_k is the target score with channel k of the layer output
 * ablated. As the reference does, channels go in chunks of 32; a channel is set to 0 when min(A_b) is 0,
 * otherwise to the running minimum of the chunk minus 1e7, which the reference recomputes after every
 * ablation, so copy i of a chunk receives min(A_b) − (i + 1)·1e7, in float32 arithmetic.
 */
export const ablationcam: CamMethod = {
  name: 'ablationcam',
  referenceName: 'AblationCAM',
  kind: 'layer',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  channels: 1,
  smoothing: { aug: true, eigen: true },
  compute: async (ctx) => {
    const A = ctx.terms.A;
    const [B, K, h, w] = A.shape;
    const a = await A.values();
    const weights = new Float64Array(B * K);
    for (let b = 0; b < B; b++) {
      const image = a.subarray(b * K * h * w, (b + 1) * K * h * w);
      const original = E.tensor(image, [1, K, h, w]);
      const y = (await ctx.scoreWithActivations(b, original))[0];
      original.dispose();
      let min = Infinity;
      for (const v of image) min = Math.min(min, v);
      for (let k0 = 0; k0 < K; k0 += ABLATION_CHUNK) {
        const m = Math.min(ABLATION_CHUNK, K - k0);
        const batch = new Float64Array(m * K * h * w);
        let fill = Math.fround(min);
        for (let i = 0; i < m; i++) {
          batch.set(image, i * K * h * w);
          if (min !== 0) fill = Math.fround(fill - 1e7);
          batch.fill(min === 0 ? 0 : fill, (i * K + k0 + i) * h * w, (i * K + k0 + i + 1) * h * w);
        }
        const ablated = E.tensor(batch, [m, K, h, w]);
        const scores = await ctx.scoreWithActivations(b, ablated);
        ablated.dispose();
        for (let i = 0; i < m; i++) weights[b * K + k0 + i] = (y - scores[i]) / y;
      }
    }
    return byWeights(E.tensor(weights, [B, K]), A);
  },
};

/** RandomCAM: channel weights uniform in [−1, 1) — the baseline any explanation should beat. */
export const randomcam: CamMethod = {
  name: 'random',
  referenceName: 'RandomCAM',
  kind: 'layer',
  needsGradient: false,
  needsHvp: false,
  randomised: true,
  channels: 1,
  smoothing: { aug: true, eigen: true },
  compute: (ctx) => {
    const [B, K] = ctx.terms.A.shape;
    const r = rngFor(ctx.seed);
    return byWeights(E.tensor(Float64Array.from({ length: B * K }, () => r() * 2 - 1), [B, K]), ctx.terms.A);
  },
};
