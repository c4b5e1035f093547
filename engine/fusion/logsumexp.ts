// A fused row reduction for the CAM utilities: logsumexp over the last axis, m + log Σ exp(x − m) with m the
// row's maximum, in one backend call (one dispatch) instead of max, sub, exp, sum, log and add. ReST's
// utility 2·o_c − logsumexp(o) (cam/algorithm/targets.ts) and logSoftmax reach it through ops.logsumexp.
//
// Its rules are engine ops, so they are differentiated again under an outer transform (ReST's curvature,
// the H·A term, comes from here). With p = exp(x − y[…, None]) = softmax(x), y being this primitive's output:
//   JVP  ẏ = Σ p · ẋ
//   VJP  x̄ = ȳ[…, None] · p
// The rules read y rather than recomputing it, so under forward-over-reverse y carries its own tangent
// (this primitive's JVP) and the second-order product is exact.

import { definePrimitive } from '../primitive.ts';
import { fmt, sizeOf, ShapeError, type Shape } from '../shape.ts';
import { bind } from '../trace.ts';
import type { Tensor } from '../tensor.ts';
import * as ops from '../ops.ts';

const withUnitAxis = (y: Tensor) => ops.reshape(y, [...y.shape, 1]);

/** softmax(x) along the last axis, from x and its logsumexp y. */
const softmaxFrom = (x: Tensor, y: Tensor) => ops.exp(ops.sub(x, withUnitAxis(y)));

export const logsumexpLastPrimitive = definePrimitive<null>({
  name: 'logsumexpLast',
  shape: ([x]: readonly Shape[]) => {
    if (x.length === 0 || x[x.length - 1] === 0) throw new ShapeError(`logsumexpLast: needs a non-empty last axis, got ${fmt(x)}`);
    return x.slice(0, -1);
  },
  impl: (backend, [x], [shape]) => {
    const n = shape[shape.length - 1];
    return backend.run('logsumexp', [x], { rows: sizeOf(shape) / n, n });
  },
  jvp: ([x], [tx], y) => ops.sumAxes(ops.mul(tx!, softmaxFrom(x, y)), [x.rank - 1], false),
  vjp: (ct, [x], y) => [ops.mul(withUnitAxis(ct), softmaxFrom(x, y))],
});

/** logsumexp over the last axis of x (shape x.shape without it), one dispatch. */
export function logsumexpLast(x: Tensor): Tensor {
  return bind(logsumexpLastPrimitive, [x], null);
}
