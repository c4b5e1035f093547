// Matrix multiplication and convolution. Convolution and its two backward operators are the three
// partial derivatives of one trilinear form B(x, w, dy) = <dy, conv(x, w)>, so each one's JVP and VJP
// rules are written with the other two (JAX's defbilinear, with transposed convolutions).

import type { ConvGeometry } from '../backend.ts';
import { definePrimitive } from '../primitive.ts';
import { broadcastShapes, fmt, ShapeError } from '../shape.ts';
import * as ops from '../ops.ts';

export const matmul = definePrimitive<null>({
  name: 'matmul',
  shape: ([a, b]) => {
    if (a.length < 2 || b.length < 2) throw new ShapeError(`matmul: operands need rank ≥ 2, got ${fmt(a)} and ${fmt(b)}`);
    const k = a[a.length - 1];
    if (b[b.length - 2] !== k) throw new ShapeError(`matmul: inner dimensions differ: ${fmt(a)} @ ${fmt(b)}`);
    const batch = broadcastShapes('matmul', a.slice(0, -2), b.slice(0, -2));
    return [...batch, a[a.length - 2], b[b.length - 1]];
  },
  impl: (backend, inputs, [aShape, bShape], _p, outShape) => backend.run('matmul', inputs, { aShape, bShape, outShape }),
  jvp: ([a, b], [ta, tb], y) => ops.addTangents(ta && ops.matmul(ta, b), tb && ops.matmul(a, tb), y.shape),
  vjp: (ct, [a, b], _y, _p, needs) => [
    needs[0] ? ops.unbroadcast(ops.matmul(ct, ops.transpose(b)), a.shape) : null,
    needs[1] ? ops.unbroadcast(ops.matmul(ops.transpose(a), ct), b.shape) : null,
  ],
});

export interface ConvParams {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** Output spatial size of a convolution or pooling window (torch's floor formula). */
export function convOutSize(n: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;
}

export function convGeometry(op: string, xShape: readonly number[], wShape: readonly number[], p: ConvParams): ConvGeometry {
  if (xShape.length !== 4) throw new ShapeError(`${op}: input must be NCHW (rank 4), got ${fmt(xShape)}`);
  if (wShape.length !== 4) throw new ShapeError(`${op}: weight must be OIHW (rank 4), got ${fmt(wShape)}`);
  const [N, C, H, W] = xShape;
  const [O, Cg, KH, KW] = wShape;
  if (!Number.isInteger(p.groups) || p.groups < 1 || C % p.groups !== 0 || O % p.groups !== 0) {
    throw new ShapeError(`${op}: groups ${p.groups} must divide input channels ${C} and output channels ${O}`);
  }
  if (Cg * p.groups !== C) {
    throw new ShapeError(`${op}: weight ${fmt(wShape)} expects ${Cg * p.groups} input channels with groups=${p.groups}, input ${fmt(xShape)} has ${C}`);
  }
  const OH = convOutSize(H, KH, p.stride[0], p.padding[0], p.dilation[0]);
  const OW = convOutSize(W, KW, p.stride[1], p.padding[1], p.dilation[1]);
  if (OH < 1 || OW < 1) throw new ShapeError(`${op}: kernel ${KH}×${KW} (dilation ${p.dilation}) does not fit input ${fmt(xShape)} with padding ${p.padding}`);
  return { xShape, wShape, yShape: [N, O, OH, OW], ...p };
}

export const conv2d = definePrimitive<ConvParams>({
  name: 'conv2d',
  shape: ([x, w], p) => [...convGeometry('conv2d', x, w, p).yShape],
  impl: (backend, inputs, [x, w], p) => backend.run('conv2d', inputs, convGeometry('conv2d', x, w, p)),
  jvp: ([x, w], [tx, tw], y, p) => ops.addTangents(tx && ops.conv2dRaw(tx, w, p), tw && ops.conv2dRaw(x, tw, p), y.shape),
  vjp: (ct, [x, w], _y, p, needs) => [
    needs[0] ? ops.conv2dBackwardInput(ct, w, p, x.shape) : null,
    needs[1] ? ops.conv2dBackwardFilter(x, ct, p, w.shape) : null,
  ],
});

export const conv2dBackwardInput = definePrimitive<ConvParams & { xShape: readonly number[] }>({
  name: 'conv2dBackwardInput',
  shape: ([dy, w], p) => {
    const g = convGeometry('conv2dBackwardInput', p.xShape, w, p);
    if (fmt(g.yShape) !== fmt(dy)) throw new ShapeError(`conv2dBackwardInput: gradient ${fmt(dy)} does not match output ${fmt(g.yShape)}`);
    return [...p.xShape];
  },
  impl: (backend, inputs, [, w], p) => backend.run('conv2dBackwardInput', inputs, convGeometry('conv2dBackwardInput', p.xShape, w, p)),
  jvp: ([dy, w], [tdy, tw], y, p) =>
    ops.addTangents(tdy && ops.conv2dBackwardInput(tdy, w, p, p.xShape), tw && ops.conv2dBackwardInput(dy, tw, p, p.xShape), y.shape),
  vjp: (ct, [dy, w], _y, p, needs) => [
    needs[0] ? ops.conv2dRaw(ct, w, p) : null,
    needs[1] ? ops.conv2dBackwardFilter(ct, dy, p, w.shape) : null,
  ],
});

export const conv2dBackwardFilter = definePrimitive<ConvParams & { wShape: readonly number[] }>({
  name: 'conv2dBackwardFilter',
  shape: ([x, dy], p) => {
    const g = convGeometry('conv2dBackwardFilter', x, p.wShape, p);
    if (fmt(g.yShape) !== fmt(dy)) throw new ShapeError(`conv2dBackwardFilter: gradient ${fmt(dy)} does not match output ${fmt(g.yShape)}`);
    return [...p.wShape];
  },
  impl: (backend, inputs, [x], p) => backend.run('conv2dBackwardFilter', inputs, convGeometry('conv2dBackwardFilter', x, p.wShape, p)),
  jvp: ([x, dy], [tx, tdy], y, p) =>
    ops.addTangents(tx && ops.conv2dBackwardFilter(tx, dy, p, p.wShape), tdy && ops.conv2dBackwardFilter(x, tdy, p, p.wShape), y.shape),
  vjp: (ct, [x, dy], _y, p, needs) => [
    needs[0] ? ops.conv2dBackwardInput(dy, ct, p, x.shape) : null,
    needs[1] ? ops.conv2dRaw(x, ct, p) : null,
  ],
});

export interface PoolParams {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}

export function poolOutShape(op: string, x: readonly number[], p: PoolParams): number[] {
  if (x.length !== 4) throw new ShapeError(`${op}: input must be NCHW (rank 4), got ${fmt(x)}`);
  if (p.padding[0] * 2 > p.kernel[0] || p.padding[1] * 2 > p.kernel[1]) {
    throw new ShapeError(`${op}: padding ${p.padding} must be at most half the kernel ${p.kernel}`);
  }
  const oh = convOutSize(x[2], p.kernel[0], p.stride[0], p.padding[0], p.dilation[0]);
  const ow = convOutSize(x[3], p.kernel[1], p.stride[1], p.padding[1], p.dilation[1]);
  if (oh < 1 || ow < 1) throw new ShapeError(`${op}: window ${p.kernel} does not fit input ${fmt(x)}`);
  return [x[0], x[1], oh, ow];
}

/** Index of the maximum of each pooling window within its (n, c) plane; max-pool gathers by it. */
export const maxPoolArgmax = definePrimitive<PoolParams>({
  name: 'maxPoolArgmax',
  nondiff: true,
  shape: ([x], p) => poolOutShape('maxPool2d', x, p),
  impl: (backend, [x], [xShape], p, outShape) => backend.run('maxPoolArgmax', [x], { xShape, ...p, outShape }),
});
