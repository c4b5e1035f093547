// Shape arithmetic shared by primitives and backends: sizes, strides, numpy broadcasting and axis
// normalisation. Every error names the op and the shapes involved.

export type Shape = readonly number[];

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

export function fmt(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** numpy broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalises one axis (negative allowed) against a rank. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Normalises an axis, a list of axes, or undefined (= all axes) into sorted unique axes. */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined | null, rank: number): number[] {
  if (axes === undefined || axes === null) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => normalizeAxis(op, a, rank));
  if (new Set(out).size !== out.length) throw new ShapeError(`${op}: repeated axis in [${list.join(',')}]`);
  return out.sort((x, y) => x - y);
}

/** Shape after reducing `axes`, with the reduced axes kept as 1 or removed. */
export function reducedShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  const set = new Set(axes);
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** For an input broadcast to `outShape`: the output strides to use when reading the input (0 on broadcast axes). */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  const out = new Array<number>(rank).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    const o = rank - inShape.length + i;
    out[o] = inShape[i] === 1 && outShape[o] !== 1 ? 0 : inStrides[i];
  }
  return out;
}

export function assertPositiveInts(op: string, what: string, values: readonly number[]): void {
  for (const v of values) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${op}: ${what} must be positive integers, got [${values.join(',')}]`);
  }
}

export function pair(v: number | readonly number[], op: string, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (v.length !== 2) throw new ShapeError(`${op}: ${what} must be a number or a pair, got [${v.join(',')}]`);
  return [v[0], v[1]];
}

export interface Coalesced {
  shape: number[];
  /** One stride list per operand, aligned with `shape`. */
  strides: number[][];
}

/**
 * Drops size-1 dims and merges dim d into d+1 wherever every operand has stride[d] = stride[d+1]·shape[d+1]
 * (the pair is then one dim of a contiguous-looking run). The flat row-major order over `shape` is kept,
 * so offsets computed from the result are identical to the original ones.
 */
export function coalesce(shape: Shape, strideSets: readonly (readonly number[])[]): Coalesced {
  const dims: number[] = [];
  const strides: number[][] = strideSets.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strideSets.every((s, k) => strides[k][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      strideSets.forEach((s, k) => (strides[k][last] = s[d]));
    } else {
      dims.push(shape[d]);
      strideSets.forEach((s, k) => strides[k].push(s[d]));
    }
  }
  return { shape: dims, strides };
}
