// FEM, the Feature Explanation Method (Fuad et al., IPTA 2020): gradient-free channel weights from a
// k-sigma rule. Per channel, the threshold is the spatial mean plus k population standard deviations; the
// weight is the fraction of positions strictly above it; the map is Σ_k w_k A_k (k = 2, as upstream).

import * as E from '../../../engine/index.ts';
import { byWeights } from './gradient.ts';
import type { CamMethod } from './types.ts';

const K_SIGMA = 2;
const SPATIAL = [2, 3];

export const fem: CamMethod = {
  kind: 'layer',
  name: 'fem',
  referenceName: 'FEM',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  channels: 1,
  // Upstream's FEM overrides get_cam_image and ignores eigen_smooth; so does this port.
  smoothing: { aug: true, eigen: false },
  compute: (ctx) => {
    const A = ctx.terms.A;
    const threshold = E.add(E.mean(A, SPATIAL, true), E.mul(E.sqrt(E.variance(A, SPATIAL, true)), K_SIGMA));
    return byWeights(E.mean(E.greater(A, threshold), SPATIAL), A);
  },
};
