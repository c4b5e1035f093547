// Small dense linear algebra on the host for the projection methods (EigenCAM, eigen smoothing,
// Seg-Eigen-CAM, KPCA-CAM): the largest eigenpair of a symmetric matrix by Lanczos iteration with full
// reorthogonalisation (explicitly restarted), its small tridiagonal eigenproblem solved by cyclic Jacobi
// rotations, and the sign conventions that make a projection's sign reproducible.

import { rngFor } from './random.ts';

/** Eigen-decomposition of a symmetric n×n matrix (row-major); returns eigenvalues and column eigenvectors. */
export function symmetricEigen(matrix: Float64Array, n: number, sweeps = 100): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < sweeps; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += a[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]), vectors: v };
}

export interface Eigenpair {
  value: number;
  /** Unit norm. */
  vector: Float64Array;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function symmetricMatVec(m: Float64Array, n: number, x: Float64Array, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    let s = 0;
    const row = i * n;
    for (let j = 0; j < n; j++) s += m[row + j] * x[j];
    out[i] = s;
  }
}

/** Krylov steps per Lanczos cycle; a cycle is restarted from its best Ritz vector until it converges. */
const LANCZOS_STEPS = 48;
const LANCZOS_CYCLES = 60;

/**
 * The largest (algebraic, not largest in magnitude) eigenvalue of a symmetric n×n matrix and a unit
 * eigenvector, by Lanczos iteration with full reorthogonalisation, restarted from the Ritz vector until
 * the residual ‖A y − θ y‖ is below 1e-12·‖A‖_F. Deterministic: the start vector is seeded. Only matrix-
 * vector products touch the matrix, so large matrices (a kernel over thousands of positions) cost
 * O(n²) per step instead of a dense eigensolver's O(n³). Breakdown (an invariant Krylov subspace, as for
 * a low-rank matrix) ends a cycle early with the exact eigenpairs of that subspace.
 */
export function largestEigenpair(matrix: Float64Array, n: number): Eigenpair {
  if (matrix.length !== n * n) throw new RangeError(`largestEigenpair: ${matrix.length} values for a ${n}×${n} matrix`);
  if (n === 1) return { value: matrix[0], vector: Float64Array.of(1) };
  const norm = Math.sqrt(dot(matrix, matrix));
  if (norm === 0) return { value: 0, vector: Float64Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0)) };
  const r = rngFor(0x5eed);
  let start = Float64Array.from({ length: n }, () => r() - 0.5);
  const steps = Math.min(n, LANCZOS_STEPS);
  let best: Eigenpair = { value: -Infinity, vector: start };
  for (let cycle = 0; cycle < LANCZOS_CYCLES; cycle++) {
    const basis: Float64Array[] = [];
    const alpha: number[] = [];
    const beta: number[] = [];
    let q = start.map((v) => v / Math.sqrt(dot(start, start)));
    const w = new Float64Array(n);
    for (let j = 0; j < steps; j++) {
      basis.push(q);
      symmetricMatVec(matrix, n, q, w);
      alpha.push(dot(q, w));
      // Full reorthogonalisation, twice ("twice is enough"): keeps the basis orthogonal in floating point.
      for (let pass = 0; pass < 2; pass++) {
        for (const b of basis) {
          const c = dot(b, w);
          for (let i = 0; i < n; i++) w[i] -= c * b[i];
        }
      }
      const bj = Math.sqrt(dot(w, w));
      if (j === steps - 1 || bj <= 1e-13 * norm) {
        beta.push(bj);
        break;
      }
      beta.push(bj);
      q = w.map((v) => v / bj);
    }
    const m = basis.length;
    const t = new Float64Array(m * m);
    for (let i = 0; i < m; i++) {
      t[i * m + i] = alpha[i];
      if (i + 1 < m) t[i * m + i + 1] = t[(i + 1) * m + i] = beta[i];
    }
    const { values, vectors } = symmetricEigen(t, m);
    let top = 0;
    for (let i = 1; i < m; i++) if (values[i] > values[top]) top = i;
    const y = new Float64Array(n);
    for (let k = 0; k < m; k++) {
      const s = vectors[k * m + top];
      const b = basis[k];
      for (let i = 0; i < n; i++) y[i] += s * b[i];
    }
    const ny = Math.sqrt(dot(y, y));
    for (let i = 0; i < n; i++) y[i] /= ny;
    best = { value: values[top], vector: y };
    // Residual of the Ritz pair: β_m · |last component of its eigenvector in T|.
    const residual = Math.abs(beta[m - 1] * vectors[(m - 1) * m + top]);
    if (residual <= 1e-12 * norm || m === n || beta[m - 1] <= 1e-13 * norm) return best;
    start = y;
  }
  return best;
}

/**
 * How the sign of a projection (an eigenvector's, which is arbitrary) is fixed:
 * - `sum`: the projection sums to ≥ 0 (this project's EigenCAM convention; LAPACK's choice upstream is not
 *   reproducible, and the fixtures compare EigenCAM and eigen smoothing up to sign);
 * - `abs-max`: |max| ≥ |min| (Seg-Eigen-CAM, Eq. 13 of its paper, as upstream);
 * - `largest-entry`: the eigenvector's largest-magnitude entry is positive (scikit-learn's `svd_flip`,
 *   which KernelPCA applies).
 */
export type SignRule = 'sum' | 'abs-max' | 'largest-entry';

/** `projection` (from `vector`, same orientation) negated in place where `rule` says so. */
export function orient(projection: Float64Array, rule: SignRule, vector: Float64Array = projection): Float64Array {
  let flip = false;
  if (rule === 'sum') flip = projection.reduce((p, q) => p + q, 0) < 0;
  else if (rule === 'abs-max') {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of projection) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    flip = Math.abs(lo) > Math.abs(hi);
  } else {
    let at = 0;
    for (let i = 1; i < vector.length; i++) if (Math.abs(vector[i]) > Math.abs(vector[at])) at = i;
    flip = vector[at] < 0;
  }
  if (flip) for (let i = 0; i < projection.length; i++) projection[i] = -projection[i];
  return projection;
}
