// Small dense linear algebra on the host for EigenCAM: the first principal component of a (n × K) matrix
// through the symmetric eigenproblem of the smaller Gram matrix, solved by cyclic Jacobi rotations.

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

/**
 * Projection of the column-centred rows of M (n × K, row-major) onto its first right-singular vector:
 * M v₁ = σ₁ u₁. The sign of a singular vector is arbitrary; this returns the one whose projection sums
 * to a non-negative value (a convention of this project; LAPACK's choice is not reproducible).
 */
export function firstComponentProjection(m: Float64Array, n: number, K: number): Float64Array {
  const c = Float64Array.from(m);
  for (let k = 0; k < K; k++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += c[i * K + k];
    mean /= n;
    for (let i = 0; i < n; i++) c[i * K + k] -= mean;
  }
  let proj = new Float64Array(n);
  if (n <= K) {
    // u₁ from the n×n Gram matrix M Mᵀ; projection = σ₁ u₁ = sqrt(λ₁) u₁.
    const gram = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += c[i * K + k] * c[j * K + k];
        gram[i * n + j] = gram[j * n + i] = s;
      }
    }
    const { values, vectors } = symmetricEigen(gram, n);
    const top = values.indexOf(Math.max(...values));
    const sigma = Math.sqrt(Math.max(values[top], 0));
    for (let i = 0; i < n; i++) proj[i] = sigma * vectors[i * n + top];
  } else {
    // v₁ from the K×K matrix Mᵀ M; projection = M v₁.
    const gram = new Float64Array(K * K);
    for (let a = 0; a < K; a++) {
      for (let b = a; b < K; b++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += c[i * K + a] * c[i * K + b];
        gram[a * K + b] = gram[b * K + a] = s;
      }
    }
    const { values, vectors } = symmetricEigen(gram, K);
    const top = values.indexOf(Math.max(...values));
    proj = Float64Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let k = 0; k < K; k++) s += c[i * K + k] * vectors[k * K + top];
      return s;
    });
  }
  const total = proj.reduce((p, q) => p + q, 0);
  if (total < 0) for (let i = 0; i < n; i++) proj[i] = -proj[i];
  return proj;
}
