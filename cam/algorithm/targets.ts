// Utilities (targets): the scalar of the logits that a CAM explains. Every one is per image, for that
// image's class, and the batch utility is their sum (images are independent in inference mode, so the
// cross-image Hessian blocks are zero). The softmax is never detached: ReST's curvature comes from it.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';

export const TARGETS = ['rest', 'logit', 'softmax', 'logsoftmax'] as const;
export type TargetName = (typeof TARGETS)[number];

/** Per-image utility u(o_b; c_b), shape [B], as differentiable engine ops. */
export function utility(target: TargetName, logits: Tensor, classes: readonly number[]): Tensor {
  const B = logits.shape[0];
  if (classes.length !== B) throw new Error(`utility: ${classes.length} classes for a batch of ${B}`);
  const idx = E.tensor(classes.map((c) => [c]), [B, 1]);
  const pick = (t: Tensor) => E.reshape(E.gather(t, idx, 1), [B]);
  switch (target) {
    case 'logit':
      return pick(logits);
    case 'softmax':
      return pick(E.softmax(logits, 1));
    case 'logsoftmax':
      return pick(E.logSoftmax(logits, 1));
    case 'rest':
      // o_c + log s_c = 2·o_c − logsumexp(o)
      return E.sub(E.mul(pick(logits), 2), E.reshape(E.logsumexp(logits, 1, true), [B]));
  }
}

/** The same utilities in float64 on host values, for reporting. */
export function utilityValue(target: TargetName, logits: ArrayLike<number>, c: number): number {
  const o = Array.from(logits);
  const m = Math.max(...o);
  const lse = m + Math.log(o.reduce((acc, v) => acc + Math.exp(v - m), 0));
  switch (target) {
    case 'logit':
      return o[c];
    case 'softmax':
      return Math.exp(o[c] - lse);
    case 'logsoftmax':
      return o[c] - lse;
    case 'rest':
      return 2 * o[c] - lse;
  }
}

export function softmaxRow(logits: ArrayLike<number>): number[] {
  const o = Array.from(logits);
  const m = Math.max(...o);
  const e = o.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function argmaxRows(values: ArrayLike<number>, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < cols; c++) if (values[r * cols + c] > values[r * cols + best]) best = c;
    return best;
  });
}
