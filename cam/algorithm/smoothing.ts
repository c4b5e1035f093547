// Augmentation smoothing (pytorch-grad-cam's aug_smooth): the method runs on augmented copies of the
// normalised input with the targets of the original, each final map is brought back (un-flipped; scaling
// leaves masks alone) and the maps are averaged, with no renormalisation. The augmentations are upstream's
// default test-time augmentation, ttach's Compose([HorizontalFlip(), Multiply([0.9, 1, 1.1])]): the
// product of the parameter lists, in that order.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';

export interface Augmentation {
  /** A name for files and tensor keys, e.g. "flip-x0.9". */
  label: string;
  /** Mirror the width axis. */
  flip: boolean;
  /** Multiply the normalised input by this. */
  factor: number;
}

export const AUGMENTATIONS: readonly Augmentation[] = [false, true].flatMap((flip) =>
  [0.9, 1, 1.1].map((factor) => ({ label: `${flip ? 'flip' : 'noflip'}-x${factor}`, flip, factor })),
);

export function isIdentity(a: Augmentation): boolean {
  return !a.flip && a.factor === 1;
}

/** The [W, W] anti-identity: x·J mirrors the last axis exactly (every output is one input times 1). */
function mirror(W: number): Tensor {
  const j = new Float64Array(W * W);
  for (let i = 0; i < W; i++) j[i * W + (W - 1 - i)] = 1;
  return E.tensor(j, [W, W]);
}

/** The augmented input [B, C, H, W]. */
export function augment(x: Tensor, a: Augmentation): Tensor {
  const flipped = a.flip ? E.matmul(x, mirror(x.shape[x.rank - 1])) : x;
  return a.factor === 1 ? flipped : E.mul(flipped, a.factor);
}

/** A final H×W map (row-major) of an augmented input brought back to the original's frame. */
export function deaugmentMap(map: Float64Array, W: number, a: Augmentation): Float64Array {
  if (!a.flip) return map;
  const out = new Float64Array(map.length);
  for (let r = 0; r < map.length / W; r++) {
    for (let c = 0; c < W; c++) out[r * W + c] = map[r * W + (W - 1 - c)];
  }
  return out;
}

/** The element-wise mean of one map per augmentation. */
export function meanMaps(maps: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(maps[0].length);
  for (const m of maps) for (let i = 0; i < out.length; i++) out[i] += m[i];
  for (let i = 0; i < out.length; i++) out[i] /= maps.length;
  return out;
}
