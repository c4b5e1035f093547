// ROAD (RemOve And Debias, Rong et al. 2022) with the noisy linear imputer of pytorch-grad-cam's
// metrics/road.py (taken there from tleemann/road_evaluation); our own implementation.
//
// Imputation. Every removed pixel is set, per channel, to the weighted mean of its in-bounds 8 neighbours
// (weight 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones), where neighbours that are removed
// too are unknowns: one sparse linear system over all removed pixels of a channel,
//     d_i x_i − Σ_{j removed} w_ij x_j = Σ_{k kept} w_ik v_k,   d_i = Σ_{in-bounds neighbours} w_ij,
// then N(0, noise²) is added to every imputed value (noise 0.01, in normalised input space, seeded).
// The matrix M = D − W_uu is symmetric (the weights are symmetric in the offset) and, when at least one
// pixel is kept, irreducibly diagonally dominant, hence positive definite: we solve it by conjugate
// gradients with a Jacobi preconditioner down to ‖r‖₂ ≤ 1e-10·‖b‖₂ (pytorch-grad-cam uses a sparse LU,
// scipy's spsolve; the two agree to about 1e-10 relative, far below the 0.01 noise). When every pixel is
// removed the system is singular (constants are in its null space; spsolve then yields NaN): we impute
// the baseline 0, plus the noise.
//
// Selection and conventions. pytorch-grad-cam's ROADMostRelevantFirst(percentile=P) imputes the pixels with
// map ≥ numpy.percentile(map, P), i.e. about the (100 − P)% MOST relevant; ROADLeastRelevantFirst(P)
// those with 1 − map ≥ percentile(1 − map, P), about the (100 − P)% LEAST relevant. We name a step by
// the percentage q REMOVED (q = 100 − P) and remove exactly round(q·N/100) pixels by rank (ties in a
// seeded random order) rather than by threshold, as the original ROAD code does (tleemann/road_evaluation
// road/imputed_dataset.py: argsort of the map plus 1e-4 Gaussian jitter against ties): the threshold rule
// removes every pixel tied at the threshold, which for CAM maps with large zero regions can remove the
// whole image (a singular system; spsolve then gives NaN). Over the symmetric set
// {20, 40, 60, 80} the two namings cover the same removal fractions, so the combined number is the one
// ROADCombined(percentiles=[20, 40, 60, 80]) defines:
//     ROAD = mean_q (s_LeRF(q) − s_MoRF(q)) / 2
// with s the class probability after imputation (pytorch-grad-cam averages the differences
// s_after − s_before over the percentiles, then takes (LeRF − MoRF)/2; s_before cancels). Higher is better:
// removing the most relevant pixels should hurt more than removing the least relevant ones.
//
// pytorch-grad-cam's own threshold rule is here too (selection 'percentile'): MoRF at q% removed imputes the
// pixels with m ≥ numpy.percentile(m, 100 − q), LeRF those with 1 − m ≥ percentile(1 − m, 100 − q), ties
// included. It reproduces that library's ROAD (and ARCC) exactly when the noise is 0 (test/eval-metrics.test.ts
// against the family fixture's metric_noise0); with large tied regions it removes more than q% (the whole
// image, in the worst case: then the baseline 0 is imputed, where scipy's spsolve would give NaN).

import { percentile, relevanceOrder } from './metrics.ts';

/** [dy, dx, weight] of the 8 neighbours. */
export const NEIGHBOUR_WEIGHTS: readonly (readonly [number, number, number])[] = [
  [1, 1, 1 / 12], [0, 1, 1 / 6], [-1, 1, 1 / 12], [1, -1, 1 / 12],
  [0, -1, 1 / 6], [-1, -1, 1 / 12], [1, 0, 1 / 6], [-1, 0, 1 / 6],
];

/** The percentages removed, MoRF and LeRF alike. */
export const ROAD_PERCENTAGES: readonly number[] = [20, 40, 60, 80];

/** How the removed pixels are chosen: exactly q% by rank (ties in a seeded order), or pytorch-grad-cam's threshold. */
export const ROAD_SELECTIONS = ['rank', 'percentile'] as const;
export type RoadSelection = (typeof ROAD_SELECTIONS)[number];

export const ROAD_NOISE = 0.01;

/** The imputation system of a mask: M = D − W over the removed pixels, in compressed rows. */
export interface ImputationSystem {
  /** Pixel index (y·W + x) of each unknown. */
  pixels: Int32Array;
  diag: Float64Array;
  /** Off-diagonal entries −w_ij of row i are col/val[rowStart[i] … rowStart[i+1]). */
  rowStart: Int32Array;
  col: Int32Array;
  val: Float64Array;
  /** Per channel, the right-hand side Σ_{kept k} w_ik v_k. */
  rhs: Float64Array[];
}

/** Sets up the system for a CHW image and an H×W mask (1 = removed). */
export function imputationSystem(image: ArrayLike<number>, removed: Uint8Array, H: number, W: number): ImputationSystem {
  const hw = H * W;
  if (removed.length !== hw) throw new RangeError(`imputationSystem: mask of ${removed.length} for ${H}×${W}`);
  const C = image.length / hw;
  const varOf = new Int32Array(hw).fill(-1);
  const pixels: number[] = [];
  for (let p = 0; p < hw; p++) if (removed[p]) {
    varOf[p] = pixels.length;
    pixels.push(p);
  }
  const n = pixels.length;
  const diag = new Float64Array(n);
  const rowStart = new Int32Array(n + 1);
  const col: number[] = [];
  const val: number[] = [];
  const rhs = Array.from({ length: C }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const p = pixels[i];
    const y = Math.floor(p / W);
    const x = p % W;
    rowStart[i] = col.length;
    for (const [dy, dx, w] of NEIGHBOUR_WEIGHTS) {
      const yy = y + dy;
      const xx = x + dx;
      if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
      diag[i] += w;
      const q = yy * W + xx;
      if (removed[q]) {
        col.push(varOf[q]);
        val.push(-w);
      } else {
        for (let c = 0; c < C; c++) rhs[c][i] += w * image[c * hw + q];
      }
    }
  }
  rowStart[n] = col.length;
  return { pixels: Int32Array.from(pixels), diag, rowStart, col: Int32Array.from(col), val: Float64Array.from(val), rhs };
}

/** y = M x. */
function apply(sys: ImputationSystem, x: Float64Array, y: Float64Array): void {
  const { diag, rowStart, col, val } = sys;
  for (let i = 0; i < diag.length; i++) {
    let s = diag[i] * x[i];
    for (let k = rowStart[i]; k < rowStart[i + 1]; k++) s += val[k] * x[col[k]];
    y[i] = s;
  }
}

export interface SolveResult {
  x: Float64Array;
  iterations: number;
  /** Final ‖b − Mx‖₂ / ‖b‖₂ (0 when b = 0). */
  residual: number;
}

/** Jacobi-preconditioned conjugate gradients for M x = b (M symmetric positive definite). */
export function solveImputation(sys: ImputationSystem, b: Float64Array, tol = 1e-10, maxIter?: number): SolveResult {
  const n = b.length;
  const x = new Float64Array(n);
  const bnorm = Math.sqrt(b.reduce((s, v) => s + v * v, 0));
  if (n === 0 || bnorm === 0) return { x, iterations: 0, residual: 0 };
  const limit = maxIter ?? 2 * n + 100;
  const r = Float64Array.from(b);
  const z = new Float64Array(n);
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = r[i] / sys.diag[i];
  p.set(z);
  let rz = 0;
  for (let i = 0; i < n; i++) rz += r[i] * z[i];
  let rnorm = bnorm;
  let it = 0;
  while (it < limit && rnorm > tol * bnorm) {
    apply(sys, p, q);
    let pq = 0;
    for (let i = 0; i < n; i++) pq += p[i] * q[i];
    const alpha = rz / pq;
    let rr = 0;
    for (let i = 0; i < n; i++) {
      x[i] += alpha * p[i];
      r[i] -= alpha * q[i];
      rr += r[i] * r[i];
    }
    rnorm = Math.sqrt(rr);
    it++;
    let rzNew = 0;
    for (let i = 0; i < n; i++) {
      z[i] = r[i] / sys.diag[i];
      rzNew += r[i] * z[i];
    }
    const beta = rzNew / rz;
    rz = rzNew;
    for (let i = 0; i < n; i++) p[i] = z[i] + beta * p[i];
  }
  // The true residual (the recurrence drifts slightly from it).
  apply(sys, x, q);
  let rr = 0;
  for (let i = 0; i < n; i++) rr += (b[i] - q[i]) ** 2;
  return { x, iterations: it, residual: Math.sqrt(rr) / bnorm };
}

/** A standard normal sample from a uniform generator (Box–Muller). */
export function gaussian(rng: () => number): number {
  let u = rng();
  while (u <= 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

export interface ImputeResult {
  image: Float64Array;
  /** Worst relative residual over the channels. */
  residual: number;
  iterations: number;
}

/**
 * The noisy linear imputation of a CHW image: removed pixels (mask 1) replaced by the solution of the
 * neighbour-mean system plus `noise`·N(0, 1) from `rng` (noise 0 or no rng: no noise).
 */
export function noisyLinearImpute(image: ArrayLike<number>, removed: Uint8Array, H: number, W: number, rng?: () => number, noise = ROAD_NOISE): ImputeResult {
  const hw = H * W;
  const C = image.length / hw;
  const out = Float64Array.from(image);
  const sys = imputationSystem(image, removed, H, W);
  let residual = 0;
  let iterations = 0;
  const allRemoved = sys.pixels.length === hw;
  for (let c = 0; c < C; c++) {
    // All removed: M is singular and b = 0; the baseline 0 is imputed.
    const sol = allRemoved ? { x: new Float64Array(hw), residual: 0, iterations: 0 } : solveImputation(sys, sys.rhs[c]);
    residual = Math.max(residual, sol.residual);
    iterations = Math.max(iterations, sol.iterations);
    for (let i = 0; i < sys.pixels.length; i++) {
      out[c * hw + sys.pixels[i]] = sol.x[i] + (rng && noise ? noise * gaussian(rng) : 0);
    }
  }
  return { image: out, residual, iterations };
}

/** The mask (1 = removed) of the q% most (MoRF) or least (LeRF) relevant pixels of a relevance order. */
export function roadMask(order: Int32Array, percentage: number, mode: 'morf' | 'lerf'): Uint8Array {
  const n = order.length;
  const count = Math.round((percentage * n) / 100);
  const mask = new Uint8Array(n);
  for (let j = 0; j < count; j++) mask[order[mode === 'morf' ? j : n - 1 - j]] = 1;
  return mask;
}

/**
 * pytorch-grad-cam's mask (1 = removed) at q% removed: MoRF removes m ≥ percentile(m, 100 − q), LeRF
 * 1 − m ≥ percentile(1 − m, 100 − q) (float32 values, as that library compares its float32 maps).
 */
export function roadThresholdMask(map: ArrayLike<number>, percentage: number, mode: 'morf' | 'lerf'): Uint8Array {
  const values = Float32Array.from(map, (v) => (mode === 'morf' ? v : 1 - v));
  const t = percentile(values, 100 - percentage);
  return Uint8Array.from(values, (v) => (v >= t ? 1 : 0));
}

export interface RoadInputs {
  percentages: number[];
  morf: Float64Array[];
  lerf: Float64Array[];
  /** Worst relative residual of the linear solves. */
  residual: number;
}

export interface RoadOptions {
  percentages?: readonly number[];
  /** The standard deviation of the imputation noise (default ROAD_NOISE; 0: deterministic). */
  noise?: number;
  /** Default 'rank'. */
  selection?: RoadSelection;
}

/**
 * The imputed images of ROAD for one CHW image and its H×W map: MoRF then LeRF at each percentage. The
 * rng orders tied map values (rank selection), then draws the noise (in that order, so a seed fixes everything).
 */
export function roadInputs(image: ArrayLike<number>, map: ArrayLike<number>, H: number, W: number, rng: () => number, opts: RoadOptions = {}): RoadInputs {
  const { percentages = ROAD_PERCENTAGES, noise = ROAD_NOISE, selection = 'rank' } = opts;
  const order = selection === 'rank' ? relevanceOrder(map, rng) : null;
  let residual = 0;
  const run = (mode: 'morf' | 'lerf') =>
    percentages.map((q) => {
      const removed = order ? roadMask(order, q, mode) : roadThresholdMask(map, q, mode);
      const r = noisyLinearImpute(image, removed, H, W, rng, noise);
      residual = Math.max(residual, r.residual);
      return r.image;
    });
  const morf = run('morf');
  const lerf = run('lerf');
  return { percentages: [...percentages], morf, lerf, residual };
}

/** ROADCombined from the class probabilities after imputation: mean over q of (LeRF − MoRF)/2. */
export function roadCombined(morf: readonly number[], lerf: readonly number[]): number {
  if (morf.length !== lerf.length || morf.length === 0) throw new RangeError('roadCombined: need equally many MoRF and LeRF scores');
  return morf.reduce((s, m, i) => s + (lerf[i] - m) / 2, 0) / morf.length;
}
