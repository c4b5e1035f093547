// Helpers shared by the kernels: reading a kernel's argument words, splitting work into tasks, and
// walking the rows of a strided N-d view. Every kernel reads its parameters from an array of i32 words
// (pointers are byte offsets into the one shared memory) that the TypeScript side wrote.

/** Most dimensions a strided view may have after the caller merged contiguous ones. */
export const MAX_RANK = 12;

@inline export function arg(args: usize, i: i32): i32 {
  return load<i32>(args + ((<usize>i) << 2));
}

@inline export function ptr(args: usize, i: i32): usize {
  return <usize>load<u32>(args + ((<usize>i) << 2));
}

@inline export function argf(args: usize, i: i32): f32 {
  return load<f32>(args + ((<usize>i) << 2));
}

@inline export function imin(a: i32, b: i32): i32 {
  return a < b ? a : b;
}

@inline export function imax(a: i32, b: i32): i32 {
  return a > b ? a : b;
}

/** Byte address of element `i` (a float index, possibly negative relative to base) from `base`. */
@inline export function at(base: usize, i: i32): usize {
  return base + ((<usize>i) << 2);
}

/**
 * Element offset of row `row` of a strided view: the row's multi-index over dims 0..rank-2 (row-major)
 * dotted with `strides` (words at args[stridesAt..]). `shapeAt` points at the rank dims.
 */
export function rowOffset(args: usize, row: i32, rank: i32, shapeAt: i32, stridesAt: i32): i32 {
  let off = 0;
  let r = row;
  for (let d = rank - 2; d >= 0; d--) {
    const n = arg(args, shapeAt + d);
    const q = r / n;
    off += (r - q * n) * arg(args, stridesAt + d);
    r = q;
  }
  return off;
}

/** Loads a whole vector of floats at p, or a tail of n < 4 of them with the other lanes 0. */
@inline export function load4(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** Stores `v` into the lanes of a float row, the whole vector or a partial tail of `n` < 4 lanes. */
@inline export function storeTail(p: usize, v: v128, n: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}
