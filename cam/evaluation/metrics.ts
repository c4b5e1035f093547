// Faithfulness metrics of CAM maps, as pure functions on host arrays (no model calls here).
//
// The ADCC family follows the ShapleyCAM fork's metrics/ADCC.py (caihuaiguang/pytorch-shapley-cam), as
// described in shared/fixtures/README.md "Case 4": scores are softmax probabilities of the predicted class,
// a perturbation multiplies the NORMALISED input by the map m (broadcast over the channels) or by 1 − m.
//   Y = s_c(x), O = s_c(x ⊙ m), D = s_c(x ⊙ (1 − m))
//   AD  = max(0, Y − O)/Y        Average Drop                (lower is better)
//   IC  = [O > Y]                Increase in Confidence      (higher is better)
//   ADD = max(0, Y − D)/Y        Average Drop in Deletion    (higher is better)
//   Com = mean |m|               Complexity                  (lower is better)
//   Coh = (Pearson(m, m') + 1)/2 Coherency, m' = the same method on x ⊙ m with the same class (higher is better);
//                                0 when either map has zero variance or a non-finite value
//   ADCC = 3 / (1/Coh + 1/(1 − Com) + 1/(1 − AD))   (harmonic mean; 0 when any of the three is ≤ 0)
// A dataset's ADCC is computed from the dataset means of Coh, Com and AD (as the paper does), not as the
// mean of the per-image ADCC.
//
// Insertion/deletion curves: pixels ranked by the map (highest first, ties in a seeded random order);
// deletion sets the first k/S of them to the baseline (0 in normalised space, every channel), insertion
// starts from the baseline and puts them back; the area under the class-probability curve is taken with
// the trapezoidal rule over the fraction axis [0, 1].

/** Average Drop: max(0, Y − O)/Y. */
export function averageDrop(Y: number, O: number): number {
  return Math.max(0, Y - O) / Y;
}

/** Increase in Confidence: 1 when the score on x ⊙ m exceeds the score on x, else 0. */
export function increaseInConfidence(Y: number, O: number): number {
  return O > Y ? 1 : 0;
}

/** Average Drop in Deletion: max(0, Y − D)/Y with D the score on x ⊙ (1 − m). */
export function averageDropInDeletion(Y: number, D: number): number {
  return Math.max(0, Y - D) / Y;
}

/** Complexity: the mean absolute value of the map. */
export function complexity(map: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < map.length; i++) s += Math.abs(map[i]);
  return s / map.length;
}

/**
 * Pearson's correlation coefficient, two-pass in float64 (as scipy.stats.pearsonr computes it for float32
 * input). NaN when either array has zero variance or a non-finite value.
 */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new RangeError(`pearson: lengths differ (${n} vs ${b.length})`);
  if (n < 2) return NaN;
  for (let i = 0; i < n; i++) if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return NaN;
  const { ab, aa, bb } = centredProducts(a, b);
  if (aa === 0 || bb === 0) return NaN;
  return Math.max(-1, Math.min(1, ab / Math.sqrt(aa * bb)));
}

/** Σ(a − ā)(b − b̄), Σ(a − ā)² and Σ(b − b̄)², two-pass in float64. */
function centredProducts(a: ArrayLike<number>, b: ArrayLike<number>): { ab: number; aa: number; bb: number } {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    ab += da * db;
    aa += da * da;
    bb += db * db;
  }
  return { ab, aa, bb };
}

/** Coherency: (Pearson(m, m') + 1)/2, or 0 when the correlation is undefined. */
export function coherency(map: ArrayLike<number>, recomputed: ArrayLike<number>): number {
  const r = pearson(map, recomputed);
  return Number.isNaN(r) ? 0 : (r + 1) / 2;
}

/** ADCC = 3/(1/Coh + 1/(1 − Com) + 1/(1 − AD)); 0 when any of Coh, 1 − Com, 1 − AD is ≤ 0. */
export function adcc(coh: number, com: number, ad: number): number {
  const parts = [coh, 1 - com, 1 - ad];
  if (parts.some((p) => !(p > 0))) return 0;
  return 3 / parts.reduce((s, p) => s + 1 / p, 0);
}

export interface AdccScores {
  /** Softmax probability of the class on x, x ⊙ m and x ⊙ (1 − m). */
  Y: number;
  O: number;
  D: number;
}

export interface AdccMetrics {
  AD: number;
  IC: number;
  ADD: number;
  Com: number;
  Coh: number;
  ADCC: number;
}

/** Every ADCC-family metric of one image from its scores, its map and the recomputed map. */
export function adccMetrics(scores: AdccScores, map: ArrayLike<number>, recomputed: ArrayLike<number>): AdccMetrics {
  const AD = averageDrop(scores.Y, scores.O);
  const Com = complexity(map);
  const Coh = coherency(map, recomputed);
  return { AD, IC: increaseInConfidence(scores.Y, scores.O), ADD: averageDropInDeletion(scores.Y, scores.D), Com, Coh, ADCC: adcc(Coh, Com, AD) };
}

/** Dataset values: the mean of each per-image metric, and ADCC from the means of Coh, Com and AD. */
export function datasetAdcc(rows: readonly AdccMetrics[]): AdccMetrics {
  if (rows.length === 0) throw new RangeError('datasetAdcc: no images');
  const mean = (k: keyof AdccMetrics) => rows.reduce((s, r) => s + r[k], 0) / rows.length;
  const AD = mean('AD');
  const Com = mean('Com');
  const Coh = mean('Coh');
  return { AD, IC: mean('IC'), ADD: mean('ADD'), Com, Coh, ADCC: adcc(Coh, Com, AD) };
}

/**
 * x ⊙ m (or x ⊙ (1 − m) with `complement`) for a CHW image x and an H×W map broadcast over the channels.
 */
export function multiplyByMap(x: ArrayLike<number>, map: ArrayLike<number>, complement = false): Float64Array {
  const hw = map.length;
  if (x.length % hw !== 0) throw new RangeError(`multiplyByMap: image of ${x.length} values is not a multiple of the map's ${hw}`);
  const out = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += hw) {
    for (let i = 0; i < hw; i++) out[o + i] = x[o + i] * (complement ? 1 - map[i] : map[i]);
  }
  return out;
}

/** numpy.percentile with its default linear interpolation (q in [0, 100]). */
export function percentile(values: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) throw new RangeError('percentile: no values');
  const pos = (q / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/**
 * Pixel indices ordered by decreasing map value (most relevant first). Equal values are ordered by a
 * random key from `rng` (or by index when no rng is given), so ties favour no region of the image.
 */
export function relevanceOrder(map: ArrayLike<number>, rng?: () => number): Int32Array {
  const n = map.length;
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = rng ? rng() : i;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => map[b] - map[a] || keys[a] - keys[b] || a - b);
  return Int32Array.from(idx);
}

/** Number of pixels handled at step k of S (k/S of n, rounded). */
export function stepCount(n: number, k: number, steps: number): number {
  return Math.round((k * n) / steps);
}

/**
 * Inputs of the insertion or deletion curve at steps k = 1 … S−1 (the end points are the unperturbed
 * image and the all-baseline image, whose scores are known). Deletion: the first count(k) pixels of
 * `order` set to `baseline`; insertion: the baseline with those pixels taken from x. CHW layout.
 */
export function curveInputs(x: ArrayLike<number>, order: Int32Array, steps: number, mode: 'insertion' | 'deletion', baseline = 0): Float64Array[] {
  const hw = order.length;
  const C = x.length / hw;
  const out: Float64Array[] = [];
  for (let k = 1; k < steps; k++) {
    const img = mode === 'deletion' ? Float64Array.from(x) : new Float64Array(x.length).fill(baseline);
    const count = stepCount(hw, k, steps);
    for (let j = 0; j < count; j++) {
      const p = order[j];
      for (let c = 0; c < C; c++) img[c * hw + p] = mode === 'deletion' ? baseline : x[c * hw + p];
    }
    out.push(img);
  }
  return out;
}

/** Area under a curve sampled at S+1 equally spaced points of [0, 1], by trapezoids. */
export function trapezoidAuc(ys: ArrayLike<number>): number {
  const S = ys.length - 1;
  if (S < 1) throw new RangeError('trapezoidAuc: need at least two points');
  let s = 0;
  for (let k = 0; k < S; k++) s += (ys[k] + ys[k + 1]) / 2;
  return s / S;
}

// pytorch-grad-cam's metrics (pytorch_grad_cam.metrics at 084273b; the family fixture README), as options of
// `eval --metrics`. The score s is again the softmax probability of the predicted class, and a perturbation
// multiplies the normalised input by the map; with Y = s(x), O = s(x ⊙ m):
//   ConfChange = O − Y                  CamMultImageConfidenceChange (higher is better)
//   DropInConf = max(Y − O, 0)          DropInConfidence (lower is better; AD without the division by Y)
//   IncreaseInConf = [O > Y]            IncreaseInConfidence (= IC)
//   Complexity = mean |m|               (= Com; lower is better)
//   Coherency = (ρ(m', m) + 1)/2        ρ = cov/(std·std + 1e-8) with sample (n − 1) statistics, m' = GradCAM++
//                                       of x ⊙ m for the metric's (softmax) target — not the fork's Coh
//   ARCC = 3 / (1/(Coherency + 1e-8) + 1/(1 − Complexity + 1e-8) + 1/(road + 1e-8)),
//          road = clip(2·ROADCombined, 0, 1)      (higher is better)

/** CamMultImageConfidenceChange: s(x ⊙ m) − s(x). */
export function confidenceChange(Y: number, O: number): number {
  return O - Y;
}

/** DropInConfidence: max(s(x) − s(x ⊙ m), 0). */
export function dropInConfidence(Y: number, O: number): number {
  return Math.max(Y - O, 0);
}

/** pytorch-grad-cam's Coherency: (Pearson(m', m) + 1)/2 with sample statistics and 1e-8 added to the denominator. */
export function coherencyUpstream(map: ArrayLike<number>, recomputed: ArrayLike<number>): number {
  const n = map.length;
  if (recomputed.length !== n) throw new RangeError(`coherency: lengths differ (${n} vs ${recomputed.length})`);
  const { ab, aa, bb } = centredProducts(recomputed, map);
  const rho = ab / (n - 1) / (Math.sqrt(aa / (n - 1)) * Math.sqrt(bb / (n - 1)) + 1e-8);
  return (rho + 1) / 2;
}

/** ARCC from its parts; `roadCombined` is ROADCombined over 20/40/60/80%. */
export function arcc(coherency: number, complexity: number, roadCombined: number): number {
  const road = Math.min(1, Math.max(0, 2 * roadCombined));
  return 3 / (1 / (coherency + 1e-8) + 1 / (1 - complexity + 1e-8) + 1 / (road + 1e-8));
}

export interface ConfidenceMetrics {
  ConfChange: number;
  DropInConf: number;
  IncreaseInConf: number;
}

/** The confidence family of one image from Y = s(x) and O = s(x ⊙ m). */
export function confidenceMetrics(Y: number, O: number): ConfidenceMetrics {
  return { ConfChange: confidenceChange(Y, O), DropInConf: dropInConfidence(Y, O), IncreaseInConf: increaseInConfidence(Y, O) };
}

export interface ArccMetrics {
  Complexity: number;
  Coherency: number;
  ARCC: number;
}

/** ARCC and its Complexity and Coherency parts for one image (m' = GradCAM++ of x ⊙ m, softmax target). */
export function arccMetrics(map: ArrayLike<number>, recomputed: ArrayLike<number>, roadCombined: number): ArccMetrics {
  const Complexity = complexity(map);
  const Coherency = coherencyUpstream(map, recomputed);
  return { Complexity, Coherency, ARCC: arcc(Coherency, Complexity, roadCombined) };
}
