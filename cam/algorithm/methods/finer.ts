// Finer-CAM (Zhang et al., 2025): explain what separates a class from the classes the model confuses it
// with. Per image the classes are sorted by |o_j − o_ref| (o_ref the top logit, or the logit of the class
// asked for); the first is the main class, and the classes at the comparison ranks (default 1, 2, 3: the
// three closest) are compared with it through the utility
//   u = Σ_j p_j (o_main − α·o_j) / (Σ_j p_j + 1e-9),  p = softmax(o), not detached,
// whose G (and H·A, for a ShapleyCAM base) drives a layer method at each target layer.

import * as E from '../../../engine/index.ts';
import type { HeadTarget } from '../targets.ts';
import type { ComposedMethod } from './types.ts';

export const DEFAULT_COMPARE = [1, 2, 3] as const;
export const DEFAULT_ALPHA = 1;
export const DEFAULT_FINER_BASE = 'gradcam';

export const finercam: ComposedMethod = {
  kind: 'finer',
  name: 'finer-cam',
  referenceName: 'FinerCAM',
  needsGradient: true,
  needsHvp: false,
  randomised: false,
  channels: 1,
  // Upstream's FinerCAM takes eigen_smooth (passed to its base) but has no aug_smooth; here aug smoothing
  // also works, with the classes chosen once on the un-augmented image.
  smoothing: { aug: true, eigen: true },
  // A segmentation output has no row of class logits to sort (upstream's FinerCAM cannot take one either).
  classifierOnly: true,
};

export interface FinerClasses {
  main: number[];
  /** Per image, the comparison classes in rank order. */
  comparisons: number[][];
}

/**
 * The classes per image: sorted by distance of their logit to the reference logit (ascending; ties by
 * index), main = the first, comparisons = those at the `ranks`.
 */
export function finerClasses(logits: ArrayLike<number>, B: number, C: number, ranks: readonly number[], reference?: readonly number[]): FinerClasses {
  const main: number[] = [];
  const comparisons: number[][] = [];
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: C }, (_, j) => logits[b * C + j]);
    const ref = reference ? row[reference[b]] : Math.max(...row);
    const order = row.map((_, j) => j).sort((i, j) => Math.abs(row[i] - ref) - Math.abs(row[j] - ref) || i - j);
    main.push(order[0]);
    comparisons.push(ranks.map((r) => {
      if (!Number.isInteger(r) || r < 1 || r >= C) throw new RangeError(`finer-cam: comparison rank ${r} is outside 1…${C - 1}`);
      return order[r];
    }));
  }
  return { main, comparisons };
}

/**
 * Finer-CAM's utility as a target of classifier logits: row i compares its class (the main class of image
 * images[i]) with that image's comparison classes, so replayed and perturbed copies of an image keep them.
 */
export function finerTarget(classes: FinerClasses, alpha: number): HeadTarget {
  return {
    classes: classes.main,
    rowUtility: (logits, rowMain, images) => {
      const M = logits.shape[0];
      const R = classes.comparisons[0]?.length ?? 0;
      const mainIdx = E.tensor(rowMain.map((c) => [c]), [M, 1]);
      const compIdx = E.tensor(images.flatMap((b) => classes.comparisons[b]), [M, R]);
      const oMain = E.gather(logits, mainIdx, 1);
      const oComp = E.gather(logits, compIdx, 1);
      const p = E.gather(E.softmax(logits, 1), compIdx, 1);
      const numerator = E.sum(E.mul(p, E.sub(oMain, E.mul(oComp, alpha))), 1);
      return E.div(numerator, E.add(E.sum(p, 1), 1e-9));
    },
  };
}
