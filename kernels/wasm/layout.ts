// Plans for the data-movement kernels. expand, transpose, slice, pad and concat are one strided copy
// each (pad after a fill with the constant); gather and scatter-add view the tensors as
// [outer, axis, inner]; max-pool's argmax runs per plane.

import type { KernelParams } from '../../engine/backend.ts';
import { broadcastStrides, sizeOf, stridesOf, type Shape } from '../../engine/shape.ts';
import { K_COPY, K_GATHER, K_MAXPOOL_ARGMAX, K_SCATTER_ADD, K_TRANSPOSE, MAX_TASKS } from './assembly/ids.ts';
import { collapse, walkWords, type WasmContext } from './context.ts';
import { fillAt } from './elementwise.ts';

const ROWS_WORK = 1 << 15;

/** dst[dOff + Σ i·dStrides] = src[sOff + Σ i·sStrides] over every index i of `shape` (offsets in elements). */
function copy(ctx: WasmContext, src: number, sOff: number, sStrides: readonly number[], dst: number, dOff: number, dStrides: readonly number[], shape: Shape): void {
  const size = sizeOf(shape);
  if (size === 0) return;
  const walk = collapse(shape, [sStrides, dStrides]);
  const rank = walk.shape.length;
  const n = walk.shape[rank - 1];
  const rows = size / n;
  const per = Math.max(1, Math.floor(ROWS_WORK / n));
  ctx.run(K_COPY, walkWords([src + 4 * sOff, dst + 4 * dOff, rank, per, rows], walk), Math.ceil(rows / per), size);
}

export function expand(ctx: WasmContext, [x]: number[], p: KernelParams['expand']): unknown {
  const out = ctx.output(sizeOf(p.outShape));
  copy(ctx, x, 0, broadcastStrides(p.shape, p.outShape), out.ptr, 0, stridesOf(p.outShape), p.outShape);
  return out.storage;
}

export function transpose(ctx: WasmContext, [x]: number[], p: KernelParams['transpose']): unknown {
  const outShape = p.perm.map((a) => p.shape[a]);
  const inStrides = stridesOf(p.shape);
  const out = ctx.output(sizeOf(outShape));
  const srcStrides = p.perm.map((a) => inStrides[a]);
  if (!matrixTranspose(ctx, x, out.ptr, srcStrides, outShape)) copy(ctx, x, 0, srcStrides, out.ptr, 0, stridesOf(outShape), outShape);
  return out.storage;
}

/** Quads of rows per task of the blocked transpose (about 2^15 floats). */
const TRANSPOSE_WORK = 1 << 15;

/**
 * The blocked transpose, when the walk is a batch of matrix transposes: dst (contiguous) [b][r][c] =
 * src[b·sb + r + c·S]. Too narrow a matrix (fewer than 4 rows or columns) gains nothing: false, copy it.
 */
function matrixTranspose(ctx: WasmContext, src: number, dst: number, srcStrides: readonly number[], outShape: Shape): boolean {
  const walk = collapse(outShape, [srcStrides, stridesOf(outShape)]);
  const rank = walk.shape.length;
  if (rank < 2 || rank > 3) return false;
  const [sStrides, dStrides] = walk.strides;
  const R = walk.shape[rank - 2];
  const C = walk.shape[rank - 1];
  if (sStrides[rank - 2] !== 1 || dStrides[rank - 1] !== 1 || dStrides[rank - 2] !== C || R < 4 || C < 4) return false;
  const batches = rank === 3 ? walk.shape[0] : 1;
  if (rank === 3 && dStrides[0] !== R * C) return false;
  const quads = Math.ceil(R / 4);
  const per = Math.max(1, Math.floor(TRANSPOSE_WORK / (4 * C)));
  const tasks = batches * Math.ceil(quads / per);
  if (tasks > MAX_TASKS) return false;
  ctx.run(K_TRANSPOSE, [src, dst, batches, R, C, rank === 3 ? sStrides[0] : 0, sStrides[rank - 1], per], tasks, batches * R * C);
  return true;
}

export function slice(ctx: WasmContext, [x]: number[], p: KernelParams['slice']): unknown {
  const inStrides = stridesOf(p.shape);
  const out = ctx.output(sizeOf(p.outShape));
  const start = p.begin.reduce((acc, b, d) => acc + b * inStrides[d], 0);
  copy(ctx, x, start, inStrides.map((s, d) => s * p.step[d]), out.ptr, 0, stridesOf(p.outShape), p.outShape);
  return out.storage;
}

export function pad(ctx: WasmContext, [x]: number[], p: KernelParams['pad']): unknown {
  const out = ctx.output(sizeOf(p.outShape));
  fillAt(ctx, out.ptr, sizeOf(p.outShape), p.value);
  const outStrides = stridesOf(p.outShape);
  const start = p.before.reduce((acc, b, d) => acc + b * outStrides[d], 0);
  copy(ctx, x, 0, stridesOf(p.shape), out.ptr, start, outStrides.map((s, d) => s * (p.interior[d] + 1)), p.shape);
  return out.storage;
}

export function concat(ctx: WasmContext, inputs: number[], p: KernelParams['concat']): unknown {
  const out = ctx.output(sizeOf(p.outShape));
  const outStrides = stridesOf(p.outShape);
  let along = 0;
  p.shapes.forEach((shape, k) => {
    copy(ctx, inputs[k], 0, stridesOf(shape), out.ptr, along * outStrides[p.axis], outStrides, shape);
    along += shape[p.axis];
  });
  return out.storage;
}

/** [outer, axis length, inner] of a shape around `axis`. */
function around(shape: Shape, axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

export function gather(ctx: WasmContext, [x, idx]: number[], p: KernelParams['gather']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const [outer, L, inner] = around(p.outShape, p.axis);
  const per = Math.max(1, Math.floor(ROWS_WORK / inner));
  ctx.run(K_GATHER, [x, idx, out.ptr, outer, L, inner, p.shape[p.axis], per], Math.ceil((outer * L) / per), size);
  return out.storage;
}

export function scatterAdd(ctx: WasmContext, [upd, idx]: number[], p: KernelParams['scatterAdd']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const [outer, Lo, inner] = around(p.outShape, p.axis);
  const Lu = p.updShape[p.axis];
  // A task owns a block of columns of one `outer` slice; enough tasks to share, none too small. Very many
  // slices go in several dispatches (the task count of one is bounded).
  const cols = Math.min(inner, Math.max(64, Math.ceil(ROWS_WORK / Math.max(1, Lu + Lo))));
  const chunks = Math.ceil(inner / cols);
  const slicesPerDispatch = Math.max(1, Math.floor(MAX_TASKS / chunks));
  for (let o = 0; o < outer; o += slicesPerDispatch) {
    const n = Math.min(slicesPerDispatch, outer - o);
    const words = [upd + 4 * o * Lu * inner, idx + 4 * o * Lu * inner, out.ptr + 4 * o * Lo * inner, n, Lu, inner, Lo, cols];
    ctx.run(K_SCATTER_ADD, words, n * chunks, n * (Lu + Lo) * inner);
  }
  return out.storage;
}

export function maxPoolArgmax(ctx: WasmContext, [x]: number[], p: KernelParams['maxPoolArgmax']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const [N, C, H, W] = p.xShape;
  const [, , OH, OW] = p.outShape;
  const perPlane = OH * OW * p.kernel[0] * p.kernel[1];
  const per = Math.max(1, Math.floor(ROWS_WORK / perPlane));
  ctx.run(K_MAXPOOL_ARGMAX, [x, out.ptr, N * C, H, W, OH, OW, ...p.kernel, ...p.stride, ...p.padding, ...p.dilation, per], Math.ceil((N * C) / per), size * p.kernel[0] * p.kernel[1]);
  return out.storage;
}
