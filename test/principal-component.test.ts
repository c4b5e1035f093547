// The host eigen-solver behind the projection methods (largestEigenpair: restarted Lanczos) against a full
// Jacobi decomposition, including the cases that trip power iteration (a dominant negative eigenvalue),
// Lanczos breakdown (low rank) and sizes beyond one Krylov cycle; the sign rules; KPCA-CAM's kernels against
// scikit-learn's formulas written out on the host; and KPCA with the linear kernel equal to PCA (EigenCAM).

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { largestEigenpair, orient, symmetricEigen } from '../cam/algorithm/principal-component.ts';
import { KERNELS, kernelMatrix, kpcacam } from '../cam/algorithm/methods/kernel-pca.ts';
import { centredRows, eigencam } from '../cam/algorithm/methods/eigen.ts';
import type { MethodContext } from '../cam/algorithm/methods/types.ts';
import { absErr, relErr } from './helpers/fixtures.ts';
import { uniform } from './helpers/random.ts';

const cpu = E.cpuBackend();

/** A symmetric matrix Q diag(values) Qᵀ with a seeded orthogonal Q (Gram–Schmidt of random columns). */
function withSpectrum(values: number[], seed: number): Float64Array {
  const n = values.length;
  const q: Float64Array[] = [];
  const r = uniform(n * n, seed);
  for (let j = 0; j < n; j++) {
    const v = r.slice(j * n, (j + 1) * n);
    for (const u of q) {
      const d = u.reduce((s, x, i) => s + x * v[i], 0);
      for (let i = 0; i < n; i++) v[i] -= d * u[i];
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = values.reduce((s, l, k) => s + l * q[k][i] * q[k][j], 0);
  return m;
}

function residual(m: Float64Array, n: number, value: number, vector: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += m[i * n + j] * vector[j];
    worst = Math.max(worst, Math.abs(s - value * vector[i]));
  }
  return worst;
}

describe('largestEigenpair', () => {
  const cases: [string, number[]][] = [
    ['1×1', [-3]],
    ['2×2', [1, 2]],
    ['a dominant negative eigenvalue (largest algebraic, not largest magnitude)', [-50, -10, 0.5, 2, 3]],
    ['size 150, beyond one Krylov cycle, close top eigenvalues', Array.from({ length: 150 }, (_, i) => Math.sin(i) * 10 + (i === 7 ? 12 : 0))],
    ['rank 2 of size 80 (breakdown)', Array.from({ length: 80 }, (_, i) => (i === 0 ? 5 : i === 1 ? -2 : 0))],
    ['all negative', [-1, -2, -3, -4]],
  ];
  for (const [name, spectrum] of cases) {
    it(name, () => {
      const n = spectrum.length;
      const m = withSpectrum(spectrum, n + 1);
      const { value, vector } = largestEigenpair(m, n);
      const want = Math.max(...spectrum);
      expect(Math.abs(value - want)).toBeLessThan(1e-9 * Math.max(1, Math.abs(want)));
      expect(Math.abs(Math.hypot(...vector) - 1)).toBeLessThan(1e-12);
      expect(residual(m, n, value, vector)).toBeLessThan(1e-8);
      // Against Jacobi on the same matrix.
      if (n <= 80) {
        const full = symmetricEigen(m, n);
        expect(Math.abs(value - Math.max(...full.values))).toBeLessThan(1e-9 * Math.max(1, Math.abs(want)));
      }
    });
  }

  it('the zero matrix and a bad size', () => {
    expect(largestEigenpair(new Float64Array(9), 3).value).toBe(0);
    expect(() => largestEigenpair(new Float64Array(8), 3)).toThrow(/8 values for a 3×3 matrix/);
  });
});

describe('sign rules', () => {
  it('sum, abs-max and largest-entry', () => {
    expect(Array.from(orient(Float64Array.of(1, -3, 1), 'sum'))).toEqual([-1, 3, -1]);
    expect(Array.from(orient(Float64Array.of(2, -3, 0), 'abs-max'))).toEqual([-2, 3, -0]);
    expect(Array.from(orient(Float64Array.of(3, -1, -1), 'abs-max'))).toEqual([3, -1, -1]);
    // largest-entry looks at the eigenvector, not the projection.
    expect(Array.from(orient(Float64Array.of(2, 4), 'largest-entry', Float64Array.of(0.1, -0.9)))).toEqual([-2, -4]);
  });
});

describe('KPCA-CAM kernels (engine) against scikit-learn’s formulas on the host', () => {
  const [B, n, K] = [2, 7, 5];
  const data = uniform(B * n * K, 3, -1, 1);
  data.fill(0, 3 * K, 4 * K); // a zero row: cosine keeps it zero
  const host = (kernel: string, x: number[], y: number[]) => {
    const dot = x.reduce((s, v, i) => s + v * y[i], 0);
    const g = 1 / K;
    switch (kernel) {
      case 'linear': return dot;
      case 'sigmoid': return Math.tanh(g * dot + 1);
      case 'poly': return (g * dot + 1) ** 3;
      case 'rbf': return Math.exp(-g * x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0));
      default: {
        const nx = Math.hypot(...x);
        const ny = Math.hypot(...y);
        return nx === 0 || ny === 0 ? 0 : dot / (nx * ny);
      }
    }
  };
  for (const kernel of KERNELS) {
    it(kernel, async () => {
      const got = await kernelMatrix(E.tensor(data, [B, n, K], cpu), kernel).values();
      const want = new Float64Array(B * n * n);
      for (let b = 0; b < B; b++) {
        const row = (i: number) => Array.from(data.subarray((b * n + i) * K, (b * n + i + 1) * K));
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) want[(b * n + i) * n + j] = host(kernel, row(i), row(j));
      }
      expect(absErr(got, want)).toBeLessThan(1e-12);
    });
  }

  it('KPCA with the linear kernel is PCA: the same projection as EigenCAM, up to sign', async () => {
    const A = E.tensor(uniform(2 * 6 * 4 * 5, 9, 0, 2), [2, 6, 4, 5], cpu);
    const ctx = { terms: { layer: 'x', A, G: null, HA: null, hvpStructurallyZero: false }, options: { kernel: 'linear' } } as unknown as MethodContext;
    const kp = await (await kpcacam.compute(ctx)).raw.values();
    const ei = await (await eigencam.compute(ctx)).raw.values();
    for (let b = 0; b < 2; b++) {
      const a = kp.subarray(b * 20, (b + 1) * 20);
      const e = ei.subarray(b * 20, (b + 1) * 20);
      const s = a.reduce((acc, v, i) => acc + v * e[i], 0) < 0 ? -1 : 1;
      expect(relErr(a.map((v) => s * v), e)).toBeLessThan(1e-9);
    }
    expect(centredRows(A).shape).toEqual([2, 20, 6]);
  });
});
