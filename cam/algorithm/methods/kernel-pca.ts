// KPCA-CAM (Karmani et al., 2024): EigenCAM with kernel PCA. Per image, the centred (positions × channels)
// activations X go through scikit-learn's KernelPCA(n_components=1) as pytorch-grad-cam calls it: the
// kernel matrix (an engine computation), double-centred (KernelCenterer), its top eigenpair (v, λ) from
// principal-component.ts, λ clipped at 0, the projection v·√λ, with sklearn's sign rule (svd_flip: the
// largest-magnitude entry of v is positive).

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import { largestEigenpair, orient } from '../principal-component.ts';
import { centredRows } from './eigen.ts';
import type { CamMethod } from './types.ts';

/** scikit-learn's kernel names; γ = 1/K (features) where a kernel has one, coef0 = 1, degree 3. */
export const KERNELS = ['sigmoid', 'rbf', 'poly', 'linear', 'cosine'] as const;
export type KernelName = (typeof KERNELS)[number];
export const DEFAULT_KERNEL: KernelName = 'sigmoid';

/** The kernel matrix [B, n, n] of the rows of X [B, n, K], as sklearn's pairwise_kernels computes it. */
export function kernelMatrix(X: Tensor, kernel: KernelName): Tensor {
  const K = X.shape[2];
  const gamma = 1 / K;
  const dots = () => E.matmul(X, E.transpose(X));
  switch (kernel) {
    case 'linear':
      return dots();
    case 'sigmoid':
      return E.elementwiseChain([dots()], (d) => d.mul(gamma).add(1).tanh());
    case 'poly':
      return E.elementwiseChain([dots()], (d) => d.mul(gamma).add(1).pow(3));
    case 'rbf': {
      // ‖x − y‖² = ‖x‖² + ‖y‖² − 2⟨x, y⟩, clamped at 0 as sklearn's euclidean_distances does.
      const sq = E.sum(E.mul(X, X), 2, true);
      return E.elementwiseChain([sq, E.transpose(sq), dots()], (a, b, d) => a.add(b).sub(d.mul(2)).relu().mul(-gamma).exp());
    }
    case 'cosine': {
      // Rows normalised to unit length; a zero row stays zero (sklearn's normalize).
      const norm = E.sqrt(E.sum(E.mul(X, X), 2, true));
      const unit = E.div(X, E.where(E.equal(norm, 0), 1, norm));
      return E.matmul(unit, E.transpose(unit));
    }
  }
}

/** K − row means − column means + the total mean (sklearn's KernelCenterer), per image. */
function doubleCentred(k: Tensor): Tensor {
  return E.elementwiseChain([k, E.mean(k, 1, true), E.mean(k, 2, true), E.mean(k, [1, 2], true)], (x, rows, cols, all) => x.sub(rows).sub(cols).add(all));
}

export const kpcacam: CamMethod = {
  kind: 'layer',
  name: 'kpca-cam',
  referenceName: 'KPCA_CAM',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  channels: 1,
  smoothing: { aug: true, eigen: false },
  compute: async (ctx) => {
    const kernel = (ctx.options.kernel ?? DEFAULT_KERNEL) as KernelName;
    if (!(KERNELS as readonly string[]).includes(kernel)) throw new Error(`kpca-cam: unknown kernel "${kernel}"; choose from ${KERNELS.join(' ')}`);
    const [B, , h, w] = ctx.terms.A.shape;
    const n = h * w;
    const centred = await doubleCentred(kernelMatrix(centredRows(ctx.terms.A), kernel)).values();
    const out = new Float64Array(B * n);
    for (let b = 0; b < B; b++) {
      const { value, vector } = largestEigenpair(centred.subarray(b * n * n, (b + 1) * n * n), n);
      const scale = Math.sqrt(Math.max(value, 0));
      out.set(orient(vector.map((v) => v * scale), 'largest-entry', vector), b * n);
    }
    return { raw: E.tensor(out, [B, h, w]) };
  },
};
