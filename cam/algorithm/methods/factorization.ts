// Deep Feature Factorization (Collins et al., ECCV 2018), as pytorch-grad-cam's `dff`: the activations of
// a layer over the whole batch, as a (channels × positions) matrix with each row's minimum subtracted, are
// factorised by non-negative matrix factorisation into W (channels × concepts) and H (concepts ×
// positions). The concepts are W plus the offset; H, laid out per image, gives each concept's heat map.
//
// The NMF is ours: HALS (hierarchical alternating least squares: exact coordinate updates of one column of
// W, then one row of H, at a time, clipped at 0), from a seeded random start scaled as scikit-learn's
// init='random', in float64 on the host like the eigen-solver.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import { Linear } from '../../../models/layers.ts';
import type { Module } from '../../../models/module.ts';
import { minMaxNormalize, resizeBilinear } from '../postprocess.ts';
import { rngFor } from '../random.ts';

export interface NmfOptions {
  seed?: number;
  maxIterations?: number;
  /** Stop when an iteration lowers the relative error by less than this. */
  tolerance?: number;
}

export interface NmfResult {
  /** rows × k, row-major, ≥ 0. */
  W: Float64Array;
  /** k × cols, row-major, ≥ 0. */
  H: Float64Array;
  /** ‖X − W H‖_F / ‖X‖_F. */
  relativeError: number;
  iterations: number;
}

/** Standard normal deviates from the seeded generator (Box–Muller). */
function normals(n: number, seed: number): Float64Array {
  const r = rngFor(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r();
    const v = r();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[i] = rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** A·B for A (m × n) and B (n × p), row-major: m × p. */
function matmul(a: Float64Array, b: Float64Array, m: number, n: number, p: number): Float64Array {
  const out = new Float64Array(m * p);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < n; t++) {
      const v = a[i * n + t];
      if (v === 0) continue;
      for (let j = 0; j < p; j++) out[i * p + j] += v * b[t * p + j];
    }
  }
  return out;
}

function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j];
  return out;
}

/** FᵀF for F (rows × k): k × k. */
const gram = (f: Float64Array, rows: number, k: number) => matmul(transpose(f, rows, k), f, k, rows, k);

/**
 * One HALS sweep over the k columns of F (rows × k) for the other factor G fixed, given XG = X·G and
 * GG = GᵀG (k × k): F_j ← max(0, F_j + (XG_j − F·GG_j) / GG_jj).
 */
function halsSweep(F: Float64Array, XG: Float64Array, GG: Float64Array, rows: number, k: number): void {
  for (let j = 0; j < k; j++) {
    const d = Math.max(GG[j * k + j], 1e-300);
    for (let i = 0; i < rows; i++) {
      let s = XG[i * k + j];
      for (let t = 0; t < k; t++) s -= F[i * k + t] * GG[t * k + j];
      F[i * k + j] = Math.max(0, F[i * k + j] + s / d);
    }
  }
}

/** X ≈ W H with W, H ≥ 0, for a non-negative X (rows × cols, row-major). */
export function nmf(X: Float64Array, rows: number, cols: number, k: number, opts: NmfOptions = {}): NmfResult {
  if (X.length !== rows * cols) throw new RangeError(`nmf: ${X.length} values for a ${rows}×${cols} matrix`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`nmf: ${k} components`);
  if (X.some((v) => !(v >= 0))) throw new RangeError('nmf: the matrix must be non-negative');
  const maxIterations = opts.maxIterations ?? 2000;
  const tolerance = opts.tolerance ?? 1e-9;
  const normX2 = X.reduce((s, v) => s + v * v, 0);
  // scikit-learn's init='random': |N(0, 1)| · sqrt(mean(X) / k).
  const scale = Math.sqrt(X.reduce((s, v) => s + v, 0) / X.length / k);
  const draws = normals(rows * k + k * cols, opts.seed ?? 0);
  const W = Float64Array.from({ length: rows * k }, (_, i) => scale * Math.abs(draws[i]));
  // H is kept transposed (cols × k), so both factors update by the same sweep.
  const Ht = Float64Array.from({ length: cols * k }, (_, i) => scale * Math.abs(draws[rows * k + i]));
  const Xt = transpose(X, rows, cols);
  let previous = Infinity;
  let error = Infinity;
  let iterations = 0;
  while (iterations < maxIterations) {
    iterations++;
    halsSweep(W, matmul(X, Ht, rows, cols, k), gram(Ht, cols, k), rows, k);
    const WtW = gram(W, rows, k);
    const XtW = matmul(Xt, W, cols, rows, k);
    halsSweep(Ht, XtW, WtW, cols, k);
    // ‖X − W H‖² = ‖X‖² − 2⟨Xᵀ W, Hᵀ⟩ + ⟨WᵀW, H Hᵀ⟩.
    let cross = 0;
    for (let i = 0; i < cols * k; i++) cross += XtW[i] * Ht[i];
    const HHt = gram(Ht, cols, k);
    let quad = 0;
    for (let i = 0; i < k * k; i++) quad += WtW[i] * HHt[i];
    error = normX2 === 0 ? 0 : Math.sqrt(Math.max(normX2 - 2 * cross + quad, 0) / normX2);
    if (previous - error < tolerance * Math.max(error, 1e-12)) break;
    previous = error;
  }
  return { W, H: transpose(Ht, cols, k), relativeError: error, iterations };
}

export interface DeepFeatures {
  /** channels × concepts: W + the per-channel offset. */
  concepts: Float64Array;
  /** Per-channel minimum subtracted before the NMF. */
  offset: Float64Array;
  /** [B, concepts, h, w]: H per image. */
  explanations: Float64Array;
  shape: { B: number; K: number; h: number; w: number; concepts: number };
  relativeError: number;
  iterations: number;
}

/** DFF of activations A [B, K, h, w] (NaN as 0) into `concepts` concepts. */
export async function deepFeatureFactorization(A: Tensor, concepts: number, opts: NmfOptions = {}): Promise<DeepFeatures> {
  const [B, K, h, w] = A.shape;
  const n = h * w;
  const a = await E.permute(A, [1, 0, 2, 3]).values(); // channels × (images · positions)
  const cols = B * n;
  const offset = new Float64Array(K);
  const X = new Float64Array(K * cols);
  for (let k = 0; k < K; k++) {
    let lo = Infinity;
    for (let i = 0; i < cols; i++) lo = Math.min(lo, Number.isNaN(a[k * cols + i]) ? 0 : a[k * cols + i]);
    offset[k] = lo;
    for (let i = 0; i < cols; i++) X[k * cols + i] = (Number.isNaN(a[k * cols + i]) ? 0 : a[k * cols + i]) - lo;
  }
  const { W, H, relativeError, iterations } = nmf(X, K, cols, concepts, opts);
  const out = W.map((v, i) => v + offset[Math.floor(i / concepts)]);
  const explanations = new Float64Array(B * concepts * n);
  for (let c = 0; c < concepts; c++) {
    for (let b = 0; b < B; b++) explanations.set(H.subarray(c * cols + b * n, c * cols + (b + 1) * n), (b * concepts + c) * n);
  }
  return { concepts: out, offset, explanations, shape: { B, K, h, w, concepts }, relativeError, iterations };
}

/** Each concept's heat map of each image, min-maxed (eps 1e-7) and resized to H×W, as upstream returns them. */
export function conceptMaps(d: DeepFeatures, H: number, W: number): Float64Array[][] {
  const { B, h, w, concepts } = d.shape;
  const n = h * w;
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: concepts }, (_, c) => {
      const m = minMaxNormalize(d.explanations.subarray((b * concepts + c) * n, (b * concepts + c + 1) * n));
      return h === H && w === W ? m : resizeBilinear(m, h, w, H, W);
    }),
  );
}

/** The classifier head that takes the layer's K channels as features: the last Linear with K inputs. */
export function findHead(module: Module, K: number): { path: string; head: Module } | null {
  let found: { path: string; head: Module } | null = null;
  for (const [path, m] of module.modules()) if (m instanceof Linear && m.inFeatures === K) found = { path, head: m };
  return found;
}

export interface ConceptLabels {
  /** concepts × C: the head applied to each concept vector. */
  outputs: Float64Array;
  /** Their softmax. */
  scores: Float64Array;
  /** Per concept, the top classes by score, best first. */
  top: number[][];
}

/** The head applied to the concepts (as vectors of K features), their softmax and top-k classes. */
export async function labelConcepts(head: Module, d: DeepFeatures, topK: number): Promise<ConceptLabels> {
  const { K, concepts } = d.shape;
  const vectors = new Float64Array(concepts * K);
  for (let k = 0; k < K; k++) for (let c = 0; c < concepts; c++) vectors[c * K + k] = d.concepts[k * concepts + c];
  const outputs = await E.tidy(() => head.call(E.tensor(vectors, [concepts, K]))).values();
  const C = outputs.length / concepts;
  const scores = new Float64Array(outputs.length);
  const top: number[][] = [];
  for (let c = 0; c < concepts; c++) {
    const row = outputs.subarray(c * C, (c + 1) * C);
    const m = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - m));
    const z = e.reduce((s, v) => s + v, 0);
    e.forEach((v, j) => (scores[c * C + j] = v / z));
    top.push([...Array(C).keys()].sort((i, j) => scores[c * C + j] - scores[c * C + i] || i - j).slice(0, topK));
  }
  return { outputs, scores, top };
}
