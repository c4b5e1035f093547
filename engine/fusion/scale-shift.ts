// A fused elementwise primitive for the differentiated head: y = x · scale[c] + shift[c] along one channel
// axis, in one backend call. It is eval-mode BatchNorm once its statistics are reduced to a per-channel
// scale and shift, and it replaces the broadcast mul and add the unfused graph dispatches for it.
//
// Unlike conv2dFused (inference only), this primitive is differentiated: CAM heads contain BatchNorms
// (a layer3 target leaves all of layer4 in the head). Its rules are written with the engine's own ops, so
// applying them under an outer transform differentiates them again and forward-over-reverse still gives
// exact Hessian-vector products. The map is bilinear in (x, scale), linear in shift:
//   JVP  ẏ = ẋ·s + x·ṡ + ṫ
//   VJP  x̄ = ȳ·s,  s̄ = Σ ȳ·x,  t̄ = Σ ȳ   (Σ over every axis but the channel axis)

import { definePrimitive } from '../primitive.ts';
import { fmt, normalizeAxis, ShapeError, sizeOf, type Shape } from '../shape.ts';
import { bind } from '../trace.ts';
import type { Tensor } from '../tensor.ts';
import * as ops from '../ops.ts';

interface ScaleShiftParams {
  /** The channel axis of x, normalised (0 ≤ axis < rank). */
  axis: number;
}

/** Shape [1, …, C, …, 1] that broadcasts a per-channel vector against x. */
function channelShape(x: Shape, axis: number): number[] {
  return x.map((d, i) => (i === axis ? d : 1));
}

const otherAxes = (rank: number, axis: number) => Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis);

/** A per-channel vector as a tensor that broadcasts against x. */
const perChannel = (v: Tensor, x: Tensor, axis: number) => ops.reshape(v, channelShape(x.shape, axis));

/** Sums a tensor of x's shape down to a per-channel vector [C]. */
const toChannels = (v: Tensor, axis: number) => ops.sumAxes(v, otherAxes(v.rank, axis), false);

export const scaleShiftPrimitive = definePrimitive<ScaleShiftParams>({
  name: 'scaleShift',
  shape: ([x, scale, shift], { axis }) => {
    const C = x[axis];
    for (const [name, s] of [['scale', scale], ['shift', shift]] as const) {
      if (s.length !== 1 || s[0] !== C) throw new ShapeError(`scaleShift: ${name} ${fmt(s)} does not match ${C} channels on axis ${axis} of ${fmt(x)}`);
    }
    return [...x];
  },
  impl: (backend, inputs, [x], { axis }) =>
    backend.run('scaleShift', inputs, { size: sizeOf(x), channels: x[axis], inner: sizeOf(x.slice(axis + 1)) }),
  jvp: ([x, scale], [tx, ts, tt], y, { axis }) =>
    ops.addTangents(
      ops.addTangents(tx && ops.mul(tx, perChannel(scale, x, axis)), ts && ops.mul(x, perChannel(ts, x, axis)), y.shape),
      tt && perChannel(tt, x, axis),
      y.shape,
    ),
  vjp: (ct, [x, scale], _y, { axis }, needs) => [
    needs[0] ? ops.mul(ct, perChannel(scale, x, axis)) : null,
    needs[1] ? toChannels(ops.mul(ct, x), axis) : null,
    needs[2] ? toChannels(ct, axis) : null,
  ],
});

/** x · scale[c] + shift[c] where c indexes `axis` of x (default 1, the channels of NCHW); one dispatch. */
export function scaleShift(x: Tensor, scale: Tensor, shift: Tensor, axis = 1): Tensor {
  return bind(scaleShiftPrimitive, [x, scale, shift], { axis: normalizeAxis('scaleShift', axis, x.rank) });
}
