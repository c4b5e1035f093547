// Splitting a kernel's work so that every tensor it touches fits one binding.
//
// A storage may be larger than maxStorageBufferBindingSize (engine/webgpu/backend.ts); a shader then sees
// it through a window (kernel-api.ts `windowOf`) and indexes it with the tensor's own element offsets
// minus the window's start. Kernels that run one invocation per element over an index space (elementwise,
// layout, gather/scatter, pooling, reductions) describe each operand by its element strides over that
// space, and `splitBoxes` cuts the space into boxes whose operand ranges fit: the dimension contributing
// most to the widest range is halved until every range fits, so contiguous inner runs stay whole and the
// outer dimensions are cut first. Each box is one dispatch of the same shader with the box's shape and
// per-operand base offsets in its uniforms; the arithmetic per element is unchanged, so split and unsplit
// results are identical. (The GEMMs split rows, columns and K slabs instead: kernels/gemm-split.ts.)

import type { Binding, GpuStorage, KernelContext } from '../engine/webgpu/kernel-api.ts';
import { DeviceLimitError, windowOf } from '../engine/webgpu/kernel-api.ts';

/** How one operand is addressed over the index space. */
export interface Operand {
  /** Element strides per dimension of the index space (0 where broadcast; negative for reversed slices). */
  strides: readonly number[];
  /** Element offset of index 0 (a slice's begin, a concat slab's start). */
  base?: number;
  /**
   * Elements reached past the strided ones from each index (a data-dependent axis: gather reads anywhere
   * along its source axis). Added to the range's upper end.
   */
  reach?: number;
}

/** A sub-box of the index space and what it touches of each operand. */
export interface Box {
  start: number[];
  shape: number[];
  size: number;
  /** Per operand: the element offset of the box's first index. */
  base: number[];
  /** Per operand: the lowest and highest element the box touches. */
  lo: number[];
  hi: number[];
}

/** The elements operand `op` touches from a box of `shape` at `base`: [lo, hi]. */
function rangeOf(op: Operand, shape: readonly number[], base: number): [number, number] {
  let lo = base;
  let hi = base;
  shape.forEach((n, d) => {
    const step = (n - 1) * op.strides[d];
    if (step < 0) lo += step;
    else hi += step;
  });
  return [lo, hi + (op.reach ?? 0)];
}

/** Where a box of the index space lands in one operand: the offset of its first index and its range. */
export function placeIn(op: Operand, start: readonly number[], shape: readonly number[]): { base: number; lo: number; hi: number } {
  const base = start.reduce((acc, s, d) => acc + s * op.strides[d], op.base ?? 0);
  const [lo, hi] = rangeOf(op, shape, base);
  return { base, lo, hi };
}

function boxAt(start: number[], shape: number[], operands: readonly Operand[]): Box {
  const places = operands.map((op) => placeIn(op, start, shape));
  return { start, shape, size: shape.reduce((a, b) => a * b, 1), base: places.map((p) => p.base), lo: places.map((p) => p.lo), hi: places.map((p) => p.hi) };
}

/** The whole index space as one box. */
export function wholeBox(shape: readonly number[], operands: readonly Operand[]): Box {
  return boxAt(shape.map(() => 0), [...shape], operands);
}

/**
 * Cuts `shape` into boxes such that every operand's range, widened by the window's alignment, fits `limit`
 * elements. Throws, naming `what`, when even a single index reaches too far (a gather whose source axis
 * alone exceeds a binding).
 */
export function splitBoxes(shape: readonly number[], operands: readonly Operand[], limit: number, align: number, what: string): Box[] {
  // A window starts up to align − 1 elements before its range and is rounded up to whole vec4s.
  const cap = limit - (align - 1) - 3;
  const block = [...shape];
  const extent = (op: Operand) => {
    const [lo, hi] = rangeOf(op, block, 0);
    return hi - lo + 1;
  };
  for (;;) {
    let worst = -1;
    let worstExtent = cap;
    operands.forEach((op, k) => {
      const e = extent(op);
      if (e > worstExtent) {
        worst = k;
        worstExtent = e;
      }
    });
    if (worst < 0) break;
    const op = operands[worst];
    let dim = -1;
    let widest = 0;
    block.forEach((b, d) => {
      const w = (b - 1) * Math.abs(op.strides[d]);
      if (w > widest) {
        widest = w;
        dim = d;
      }
    });
    if (dim < 0) {
      throw new DeviceLimitError(
        `webgpu: ${what}: operand ${worst} needs ${worstExtent * 4} bytes in one binding from a single index, more than this device's maxStorageBufferBindingSize allows (${cap * 4} usable bytes)`,
      );
    }
    block[dim] = Math.ceil(block[dim] / 2);
  }
  const counts = shape.map((n, d) => Math.ceil(n / block[d]));
  const total = counts.reduce((a, b) => a * b, 1);
  const boxes: Box[] = [];
  for (let b = 0; b < total; b++) {
    let rem = b;
    const start = new Array<number>(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      start[d] = (rem % counts[d]) * block[d];
      rem = Math.floor(rem / counts[d]);
    }
    boxes.push(boxAt(start, start.map((s, d) => Math.min(block[d], shape[d] - s)), operands));
  }
  return boxes;
}

/**
 * The boxes of an index space: the whole space when every storage binds whole, else `splitBoxes`.
 * `storages[k]` is operand k's storage.
 */
export function boxesFor(ctx: KernelContext, shape: readonly number[], operands: readonly Operand[], storages: readonly GpuStorage[], what: string): Box[] {
  if (storages.every((s) => s.size <= ctx.bindingLimit)) return [wholeBox(shape, operands)];
  return splitBoxes(shape, operands, ctx.bindingLimit, ctx.bindingAlign, what);
}

/**
 * What a box binds: each storage whole when it fits (base offsets as they are), else the window of the
 * box's range (base offsets relative to the window's start).
 */
export function bindBox(ctx: KernelContext, box: Box, storages: readonly GpuStorage[], what: string): { bindings: Binding[]; base: number[] } {
  const bindings: Binding[] = [];
  const base: number[] = [];
  storages.forEach((s, k) => {
    if (s.size <= ctx.bindingLimit) {
      bindings.push(s);
      base.push(box.base[k]);
    } else {
      const w = windowOf(ctx, s, box.lo[k], box.hi[k], `${what} operand ${k}`);
      bindings.push(w);
      base.push(box.base[k] - w.offset);
    }
  });
  return { bindings, base };
}

/** Row-major element strides of a shape. */
export function naturalStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/**
 * Contiguous chunks [start, end) of n elements for kernels that read and write element i at the same
 * offset in every operand (fill, unary, same-shape binary): one chunk when n fits a binding, else chunks
 * that start aligned and fit one.
 */
export function contiguousChunks(ctx: KernelContext, n: number): [number, number][] {
  if (n === 0) return [];
  if (n <= ctx.bindingLimit) return [[0, n]];
  const step = Math.max(ctx.bindingAlign, Math.floor(ctx.bindingLimit / ctx.bindingAlign) * ctx.bindingAlign);
  const chunks: [number, number][] = [];
  for (let start = 0; start < n; start += step) chunks.push([start, Math.min(n, start + step)]);
  return chunks;
}
