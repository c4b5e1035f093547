// Refine-CAM (pytorch-grad-cam, 2026; arXiv 2605.14641): a layer method run at two or more target layers,
// each map fully post-processed on its own (ReLU, min-max, resize, the second min-max pass), then the
// maps multiplied element-wise across layers and the product min-maxed once (no ReLU, no resize).
// Upstream's loop meant to rescale each map before the product rebinds a loop variable and does nothing;
// this port matches what upstream computes.

import { aggregateLayers, minMaxNormalize } from '../postprocess.ts';
import type { ComposedMethod } from './types.ts';

export const DEFAULT_REFINE_BASE = 'gradcam++';

export const refinecam: ComposedMethod = {
  kind: 'refine',
  name: 'refine-cam',
  referenceName: 'RefineCAM',
  needsGradient: false,
  needsHvp: false,
  randomised: false,
  channels: 1,
  // Smoothing goes to the base method at each layer. (Upstream passes eigen_smooth where its base expects
  // aug_smooth, so its "eigen smoothing" is augmentation smoothing; here each flag does what it says.)
  smoothing: { aug: true, eigen: true },
};

/** perLayer[layer][image] (each the base's scaled H×W map at one layer) → one map per image. */
export function refineMaps(perLayer: Float64Array[][]): Float64Array[] {
  if (perLayer.length < 2) throw new RangeError(`refine-cam needs two or more target layers, got ${perLayer.length}`);
  const finals = perLayer.map((maps) => aggregateLayers([maps]));
  return finals[0].map((_, b) => {
    const product = Float64Array.from(finals[0][b]);
    for (let l = 1; l < finals.length; l++) {
      const m = finals[l][b];
      for (let i = 0; i < product.length; i++) product[i] *= m[i];
    }
    return minMaxNormalize(product);
  });
}
