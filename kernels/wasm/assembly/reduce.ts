// Sum and max over any set of axes, in an order that depends only on the shape: one task owns each
// output element, so results do not change with the number of threads.
//
// The TypeScript side splits the input's axes (after merging neighbours of the same kind) into kept
// axes and reduced axes, each with its input strides. Two kernels:
// - inner: the last input axis is reduced (contiguous runs of length L): four lanes accumulate along
//   every run of an output, then combine in a fixed order;
// - outer: the last input axis is kept: rows of L contiguous outputs accumulate whole input rows.

import { MAX_RANK, arg, at, imin, ptr } from './common';

const SUM = 0;

@inline function combine(op: i32, a: v128, b: v128): v128 {
  return op == SUM ? f32x4.add(a, b) : f32x4.max(a, b);
}

@inline function combineScalar(op: i32, a: f32, b: f32): f32 {
  return op == SUM ? a + b : max<f32>(a, b);
}

const KEPT = 9, RED = KEPT + 2 * MAX_RANK, ROWS_PER_TASK = RED + 2 * MAX_RANK;

/** Element offset of index q over `count` dims at args[shapeAt..], strides at args[shapeAt + MAX_RANK..]. */
function offsetOf(args: usize, q: i32, count: i32, shapeAt: i32): i32 {
  let off = 0;
  for (let d = count - 1; d >= 0; d--) {
    const n = arg(args, shapeAt + d);
    const qq = q / n;
    off += (q - qq * n) * arg(args, shapeAt + MAX_RANK + d);
    q = qq;
  }
  return off;
}

// inner: [op, x, out, nOut, outsPerTask, nKept, nRed, runs, L, kept shape[R], kept strides[R], red shape[R], red strides[R]]
// (red dims exclude the last, contiguous one of length L; runs = product of the red dims)

@inline function reduceInnerOp(op: i32, args: usize, o0: i32, o1: i32): void {
  const x = ptr(args, 1);
  const out = ptr(args, 2);
  const nKept = arg(args, 5);
  const nRed = arg(args, 6);
  const runs = arg(args, 7);
  const L = arg(args, 8);
  const init: f32 = op == SUM ? 0 : -Infinity;
  for (let o = o0; o < o1; o++) {
    const base = offsetOf(args, o, nKept, KEPT);
    let acc = f32x4.splat(init);
    let tail = init;
    for (let q = 0; q < runs; q++) {
      const p = at(x, base + offsetOf(args, q, nRed, RED));
      let i = 0;
      for (; i + 4 <= L; i += 4) acc = combine(op, acc, v128.load(p + ((<usize>i) << 2)));
      for (; i < L; i++) tail = combineScalar(op, tail, load<f32>(p + ((<usize>i) << 2)));
    }
    const pair = combine(op, acc, i32x4.shuffle(acc, acc, 2, 3, 0, 1));
    const lanes = combineScalar(op, f32x4.extract_lane(pair, 0), f32x4.extract_lane(pair, 1));
    store<f32>(at(out, o), combineScalar(op, lanes, tail));
  }
}

export function reduceInnerTask(args: usize, t: i32): void {
  const per = arg(args, 4);
  const o0 = t * per;
  const o1 = imin(arg(args, 3), o0 + per);
  if (arg(args, 0) == SUM) reduceInnerOp(SUM, args, o0, o1);
  else reduceInnerOp(1, args, o0, o1);
}

// outer: [op, x, out, rows, L, columnsPerTask, nKept, nRed, runs, kept shape[R] (without L), kept strides[R], red shape[R], red strides[R], rowsPerTask]
// A task covers `rowsPerTask` rows × one block of columns.

@inline function reduceOuterOp(op: i32, args: usize, t: i32): void {
  const x = ptr(args, 1);
  const out = ptr(args, 2);
  const L = arg(args, 4);
  const cols = arg(args, 5);
  const nKept = arg(args, 6);
  const nRed = arg(args, 7);
  const runs = arg(args, 8);
  const chunks = (L + cols - 1) / cols;
  const perTask = arg(args, ROWS_PER_TASK);
  const block = t / chunks;
  const c0 = (t - block * chunks) * cols;
  const n = imin(L - c0, cols);
  const r1 = imin(arg(args, 3), (block + 1) * perTask);
  for (let row = block * perTask; row < r1; row++) {
  const po = at(out, row * L + c0);
  const base = offsetOf(args, row, nKept, KEPT) + c0;
  for (let q = 0; q < runs; q++) {
    const p = at(x, base + offsetOf(args, q, nRed, RED));
    let i = 0;
    if (q == 0) {
      for (; i + 4 <= n; i += 4) v128.store(po + ((<usize>i) << 2), v128.load(p + ((<usize>i) << 2)));
      for (; i < n; i++) store<f32>(po + ((<usize>i) << 2), load<f32>(p + ((<usize>i) << 2)));
    } else {
      for (; i + 4 <= n; i += 4) {
        const o = (<usize>i) << 2;
        v128.store(po + o, combine(op, v128.load(po + o), v128.load(p + o)));
      }
      for (; i < n; i++) {
        const o = (<usize>i) << 2;
        store<f32>(po + o, combineScalar(op, load<f32>(po + o), load<f32>(p + o)));
      }
    }
  }
  }
}

export function reduceOuterTask(args: usize, t: i32): void {
  if (arg(args, 0) == SUM) reduceOuterOp(SUM, args, t);
  else reduceOuterOp(1, args, t);
}
