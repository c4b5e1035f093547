// fill, unary maths, broadcasting binary arithmetic and comparisons, and select, in float32 with SIMD:
// v128 instructions, and vmath.ts for exp, log, tanh, sigmoid and erf. log1p, sin, cos and pow run lane
// by lane through AssemblyScript's Mathf (ports of musl's float32 routines).

import { MAX_RANK, arg, argf, at, imin, ptr, rowOffset, storeTail } from './common';
import { erfV, expV, logV, sigmoidV, tanhV } from './vmath';
import {
  B_ADD, B_DIV, B_EQUAL, B_GREATER, B_GREATER_EQUAL, B_LESS, B_LESS_EQUAL, B_MAXIMUM, B_MINIMUM, B_MUL, B_NOT_EQUAL, B_POW, B_SUB,
  U_ABS, U_COS, U_ERF, U_EXP, U_LOG, U_LOG1P, U_NEG, U_RECIPROCAL, U_RELU, U_RSQRT, U_SIGMOID, U_SIGN, U_SIN, U_SQRT, U_TANH,
} from './ids';

// --- fill: [out, size, value, chunk] ----------------------------------------------------------------

export function fillTask(args: usize, t: i32): void {
  const out = ptr(args, 0);
  const size = arg(args, 1);
  const chunk = arg(args, 3);
  const start = t * chunk;
  fillRange(at(out, start), imin(size - start, chunk), argf(args, 2));
}

export function fillRange(p: usize, n: i32, value: f32): void {
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + ((<usize>i) << 2), v);
  for (; i < n; i++) store<f32>(p + ((<usize>i) << 2), value);
}

// --- unary: [op, x, out, size, chunk] -------------------------------------------------------------

/** The lane-by-lane operations. */
export function unaryScalar(op: i32, x: f32): f32 {
  switch (op) {
    case U_LOG1P: return Mathf.log1p(x);
    case U_SIN: return Mathf.sin(x);
    case U_COS: return Mathf.cos(x);
    default: return unreachable();
  }
}

@inline export function unaryVector(op: i32, x: v128): v128 {
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  switch (op) {
    case U_NEG: return f32x4.neg(x);
    case U_ABS: return f32x4.abs(x);
    case U_SQRT: return f32x4.sqrt(x);
    case U_RSQRT: return f32x4.div(one, f32x4.sqrt(x));
    case U_RECIPROCAL: return f32x4.div(one, x);
    // relu(NaN) = 0 as the CPU's (x > 0 ? x : 0).
    case U_RELU: return v128.and(x, f32x4.gt(x, zero));
    case U_SIGN: return f32x4.sub(v128.and(f32x4.gt(x, zero), one), v128.and(f32x4.lt(x, zero), one));
    case U_EXP: return expV(x);
    case U_LOG: return logV(x);
    case U_TANH: return tanhV(x);
    case U_SIGMOID: return sigmoidV(x);
    case U_ERF: return erfV(x);
    default: return unreachable();
  }
}

@inline export function isVectorUnary(op: i32): bool {
  return op != U_LOG1P && op != U_SIN && op != U_COS;
}

@inline function unaryLoop(op: i32, x: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, unaryVector(op, v128.load(x + o)));
  }
  if (i < n) {
    const o = (<usize>i) << 2;
    let v = f32x4.splat(0);
    v = f32x4.replace_lane(v, 0, load<f32>(x + o));
    if (i + 1 < n) v = f32x4.replace_lane(v, 1, load<f32>(x + o, 4));
    if (i + 2 < n) v = f32x4.replace_lane(v, 2, load<f32>(x + o, 8));
    storeTail(out + o, unaryVector(op, v), n - i);
  }
}

export function unaryTask(args: usize, t: i32): void {
  const op = arg(args, 0);
  const chunk = arg(args, 4);
  const start = t * chunk;
  const n = imin(arg(args, 3) - start, chunk);
  const x = at(ptr(args, 1), start);
  const out = at(ptr(args, 2), start);
  if (isVectorUnary(op)) {
    // One specialised loop per op (the switch folds away after inlining).
    switch (op) {
      case U_NEG: unaryLoop(U_NEG, x, out, n); break;
      case U_ABS: unaryLoop(U_ABS, x, out, n); break;
      case U_SQRT: unaryLoop(U_SQRT, x, out, n); break;
      case U_RSQRT: unaryLoop(U_RSQRT, x, out, n); break;
      case U_RECIPROCAL: unaryLoop(U_RECIPROCAL, x, out, n); break;
      case U_RELU: unaryLoop(U_RELU, x, out, n); break;
      case U_SIGN: unaryLoop(U_SIGN, x, out, n); break;
      case U_EXP: unaryLoop(U_EXP, x, out, n); break;
      case U_LOG: unaryLoop(U_LOG, x, out, n); break;
      case U_TANH: unaryLoop(U_TANH, x, out, n); break;
      case U_SIGMOID: unaryLoop(U_SIGMOID, x, out, n); break;
      case U_ERF: unaryLoop(U_ERF, x, out, n); break;
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, unaryScalar(op, load<f32>(x + o)));
  }
}

// --- binary: [op, a, b, out, rank, rowsPerTask, rows, shape[R], sa[R], sb[R]] (R = MAX_RANK) ----------

const SHAPE = 7, S1 = SHAPE + MAX_RANK, S2 = S1 + MAX_RANK, S3 = S2 + MAX_RANK;

/** Math.pow's answers where C's powf differs: x^NaN is NaN, and (±1)^±∞ is NaN. */
function pow(x: f32, y: f32): f32 {
  if (isNaN(y)) return y;
  if (abs<f32>(x) == 1 && !isFinite(y)) return NaN;
  return Mathf.pow(x, y);
}

@inline export function binaryVector(op: i32, a: v128, b: v128): v128 {
  const one = f32x4.splat(1);
  switch (op) {
    case B_ADD: return f32x4.add(a, b);
    case B_SUB: return f32x4.sub(a, b);
    case B_MUL: return f32x4.mul(a, b);
    case B_DIV: return f32x4.div(a, b);
    case B_MAXIMUM: return f32x4.max(a, b);
    case B_MINIMUM: return f32x4.min(a, b);
    case B_GREATER: return v128.and(f32x4.gt(a, b), one);
    case B_GREATER_EQUAL: return v128.and(f32x4.ge(a, b), one);
    case B_LESS: return v128.and(f32x4.lt(a, b), one);
    case B_LESS_EQUAL: return v128.and(f32x4.le(a, b), one);
    case B_EQUAL: return v128.and(f32x4.eq(a, b), one);
    case B_NOT_EQUAL: return v128.and(f32x4.ne(a, b), one);
    default: {
      // pow, lane by lane
      let r = f32x4.splat(0);
      r = f32x4.replace_lane(r, 0, pow(f32x4.extract_lane(a, 0), f32x4.extract_lane(b, 0)));
      r = f32x4.replace_lane(r, 1, pow(f32x4.extract_lane(a, 1), f32x4.extract_lane(b, 1)));
      r = f32x4.replace_lane(r, 2, pow(f32x4.extract_lane(a, 2), f32x4.extract_lane(b, 2)));
      r = f32x4.replace_lane(r, 3, pow(f32x4.extract_lane(a, 3), f32x4.extract_lane(b, 3)));
      return r;
    }
  }
}

/** A row operand: contiguous (stride 1) or one value repeated (stride 0). */
@inline function loadRow(p: usize, i: i32, contiguous: bool, splat: v128): v128 {
  return contiguous ? v128.load(p + ((<usize>i) << 2)) : splat;
}

@inline function loadRowTail(p: usize, i: i32, n: i32, contiguous: bool, splat: v128): v128 {
  if (!contiguous) return splat;
  const q = p + ((<usize>i) << 2);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(q));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(q, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(q, 8));
  return v;
}

@inline function binaryRow(op: i32, pa: usize, ca: bool, pb: usize, cb: bool, po: usize, n: i32): void {
  const sa = f32x4.splat(load<f32>(pa));
  const sb = f32x4.splat(load<f32>(pb));
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    v128.store(po + ((<usize>i) << 2), binaryVector(op, loadRow(pa, i, ca, sa), loadRow(pb, i, cb, sb)));
  }
  if (i < n) storeTail(po + ((<usize>i) << 2), binaryVector(op, loadRowTail(pa, i, n - i, ca, sa), loadRowTail(pb, i, n - i, cb, sb)), n - i);
}

@inline function binaryRows(op: i32, args: usize, r0: i32, r1: i32): void {
  const a = ptr(args, 1);
  const b = ptr(args, 2);
  const out = ptr(args, 3);
  const rank = arg(args, 4);
  const n = arg(args, SHAPE + rank - 1);
  const ca = arg(args, S1 + rank - 1) != 0;
  const cb = arg(args, S2 + rank - 1) != 0;
  for (let r = r0; r < r1; r++) {
    const oa = rowOffset(args, r, rank, SHAPE, S1);
    const ob = rowOffset(args, r, rank, SHAPE, S2);
    binaryRow(op, at(a, oa), ca, at(b, ob), cb, at(out, r * n), n);
  }
}

export function binaryTask(args: usize, t: i32): void {
  const op = arg(args, 0);
  const per = arg(args, 5);
  const r0 = t * per;
  const r1 = imin(arg(args, 6), r0 + per);
  switch (op) {
    case B_ADD: binaryRows(B_ADD, args, r0, r1); break;
    case B_SUB: binaryRows(B_SUB, args, r0, r1); break;
    case B_MUL: binaryRows(B_MUL, args, r0, r1); break;
    case B_DIV: binaryRows(B_DIV, args, r0, r1); break;
    case B_MAXIMUM: binaryRows(B_MAXIMUM, args, r0, r1); break;
    case B_MINIMUM: binaryRows(B_MINIMUM, args, r0, r1); break;
    case B_GREATER: binaryRows(B_GREATER, args, r0, r1); break;
    case B_GREATER_EQUAL: binaryRows(B_GREATER_EQUAL, args, r0, r1); break;
    case B_LESS: binaryRows(B_LESS, args, r0, r1); break;
    case B_LESS_EQUAL: binaryRows(B_LESS_EQUAL, args, r0, r1); break;
    case B_EQUAL: binaryRows(B_EQUAL, args, r0, r1); break;
    case B_NOT_EQUAL: binaryRows(B_NOT_EQUAL, args, r0, r1); break;
    default: binaryRows(B_POW, args, r0, r1);
  }
}

// --- where: [cond, a, b, out, rank, rowsPerTask, rows, shape[R], sc[R], sa[R], sb[R]] ----------------

export function whereTask(args: usize, t: i32): void {
  const c = ptr(args, 0);
  const a = ptr(args, 1);
  const b = ptr(args, 2);
  const out = ptr(args, 3);
  const rank = arg(args, 4);
  const per = arg(args, 5);
  const r0 = t * per;
  const r1 = imin(arg(args, 6), r0 + per);
  const n = arg(args, SHAPE + rank - 1);
  const cc = arg(args, S1 + rank - 1) != 0;
  const ca = arg(args, S2 + rank - 1) != 0;
  const cb = arg(args, S3 + rank - 1) != 0;
  const zero = f32x4.splat(0);
  for (let r = r0; r < r1; r++) {
    const pc = at(c, rowOffset(args, r, rank, SHAPE, S1));
    const pa = at(a, rowOffset(args, r, rank, SHAPE, S2));
    const pb = at(b, rowOffset(args, r, rank, SHAPE, S3));
    const po = at(out, r * n);
    const sc = f32x4.splat(load<f32>(pc));
    const sa = f32x4.splat(load<f32>(pa));
    const sb = f32x4.splat(load<f32>(pb));
    let i = 0;
    // cond != 0 (NaN counts as true, −0 as false): the mask picks a.
    for (; i + 4 <= n; i += 4) {
      const mask = f32x4.ne(loadRow(pc, i, cc, sc), zero);
      v128.store(po + ((<usize>i) << 2), v128.bitselect(loadRow(pa, i, ca, sa), loadRow(pb, i, cb, sb), mask));
    }
    if (i < n) {
      const k = n - i;
      const mask = f32x4.ne(loadRowTail(pc, i, k, cc, sc), zero);
      storeTail(po + ((<usize>i) << 2), v128.bitselect(loadRowTail(pa, i, k, ca, sa), loadRowTail(pb, i, k, cb, sb), mask), k);
    }
  }
}
