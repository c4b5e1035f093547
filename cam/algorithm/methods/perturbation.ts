// Methods that score perturbed copies with the model: ScoreCAM (masked inputs) and AblationCAM (ablated
// channels), plus RandomCAM, the baseline with random channel weights.

import * as E from '../../../engine/index.ts';
import { resizeBilinear } from '../postprocess.ts';
import { byWeights } from './gradient.ts';
import type { CamMethod } from './types.ts';
import { rngFor } from '../random.ts';

/** AblationCAM's chunk: the running minimum restarts every 32 channels (the reference's batch size). */
const ABLATION_CHUNK = 32;

/** Row r of a B×K grid of per-image, per-channel rows stands for image ⌊r / K⌋. */
const imageOfRows = (B: number, K: number) => Array.from({ length: B * K }, (_, r) => Math.floor(r / K));

/** exp-normalised scores of one image's channels. */
function softmax(scores: Float64Array): Float64Array {
  const mx = Math.max(...scores);
  const e = Float64Array.from(scores, (v) => Math.exp(v - mx));
  const total = e.reduce((p, q) => p + q, 0);
  return e.map((v) => v / total);
}

/**
 * ScoreCAM: each channel, upsampled to the input (align_corners bilinear) and min-max normalised (eps
 * 1e-8), masks the normalised input; the channel weights are the softmax over channels of the target
 * scores of the masked inputs. The B·K masked inputs are scored together, in passes of the run's max batch.
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
    const scores = await ctx.scoreInputs({
      images: imageOfRows(B, K),
      write: (r, out) => {
        const b = Math.floor(r / K);
        const up = resizeBilinear(a.subarray(r * h * w, (r + 1) * h * w), h, w, H, W, true);
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of up) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < H * W; i++) out[c * H * W + i] = x[(b * C + c) * H * W + i] * ((up[i] - lo) / (hi - lo + 1e-8));
        }
      },
    });
    const weights = new Float64Array(B * K);
    for (let b = 0; b < B; b++) weights.set(softmax(scores.subarray(b * K, (b + 1) * K)), b * K);
    return byWeights(E.tensor(weights, [B, K]), A);
  },
};

/**
 * AblationCAM: w_k = (y − y_k) / y, where y_k is the target score with channel k of the layer output
 * ablated. As the reference does, channels go in chunks of 32; a channel is set to 0 when min(A_b) is 0,
 * otherwise to the running minimum of the chunk minus 1e7, which the reference recomputes after every
 * ablation, so copy i of a chunk receives min(A_b) − (i + 1)·1e7, in float32 arithmetic. The chunks only
 * fix these values: each image's unablated copy and its K ablated copies are scored together with the
 * other images', in passes of the run's max batch.
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
    const size = K * h * w;
    // Per image: row 0 is the unablated activation, row 1 + k has channel k ablated.
    const fills = Array.from({ length: B }, (_, b) => {
      let min = Infinity;
      for (const v of a.subarray(b * size, (b + 1) * size)) min = Math.min(min, v);
      const fill = new Float64Array(K);
      let running = Math.fround(min);
      for (let k = 0; k < K; k++) {
        if (k % ABLATION_CHUNK === 0) running = Math.fround(min);
        if (min !== 0) running = Math.fround(running - 1e7);
        fill[k] = min === 0 ? 0 : running;
      }
      return fill;
    });
    const scores = await ctx.scoreActivations({
      images: imageOfRows(B, K + 1),
      write: (r, out) => {
        const b = Math.floor(r / (K + 1));
        const k = (r % (K + 1)) - 1;
        out.set(a.subarray(b * size, (b + 1) * size));
        if (k >= 0) out.fill(fills[b][k], k * h * w, (k + 1) * h * w);
      },
    });
    const weights = new Float64Array(B * K);
    for (let b = 0; b < B; b++) {
      const y = scores[b * (K + 1)];
      for (let k = 0; k < K; k++) weights[b * K + k] = (y - scores[b * (K + 1) + 1 + k]) / y;
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
