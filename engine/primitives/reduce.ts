// Reductions over sorted axes. The backend drops the reduced axes; keepDims only changes the shape.

import { definePrimitive } from '../primitive.ts';
import { reducedShape } from '../shape.ts';
import type { Tensor } from '../tensor.ts';
import * as ops from '../ops.ts';

export interface ReduceParams {
  axes: readonly number[];
  keepDims: boolean;
}

/** Reshapes a reduced tensor so it broadcasts against the input (reduced axes kept as 1). */
function keepShape(v: Tensor, xShape: readonly number[], axes: readonly number[]): Tensor {
  return ops.reshape(v, reducedShape(xShape, axes, true));
}

export const sum = definePrimitive<ReduceParams>({
  name: 'sum',
  shape: ([s], p) => reducedShape(s, p.axes, p.keepDims),
  impl: (backend, [x], [shape], p) => backend.run('reduce', [x], { op: 'sum', shape, axes: p.axes }),
  jvp: (_x, [t], _y, p) => ops.sumAxes(t!, p.axes, p.keepDims),
  vjp: (ct, [x], _y, p) => [ops.broadcastTo(keepShape(ct, x.shape, p.axes), x.shape)],
});

/** The share of each element in the maximum: 1/count at the (tied) maxima, 0 elsewhere. No derivative. */
function maxShare(x: Tensor, y: Tensor, p: ReduceParams): Tensor {
  const mask = ops.equal(x, keepShape(y, x.shape, p.axes));
  return ops.div(mask, ops.sumAxes(mask, p.axes, true));
}

export const max = definePrimitive<ReduceParams>({
  name: 'max',
  shape: ([s], p) => reducedShape(s, p.axes, p.keepDims),
  impl: (backend, [x], [shape], p) => backend.run('reduce', [x], { op: 'max', shape, axes: p.axes }),
  jvp: ([x], [t], y, p) => ops.sumAxes(ops.mul(t!, maxShare(x, y, p)), p.axes, p.keepDims),
  vjp: (ct, [x], y, p) => [ops.mul(ops.broadcastTo(keepShape(ct, x.shape, p.axes), x.shape), maxShare(x, y, p))],
});
