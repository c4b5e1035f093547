// A convolution's epilogue, in place over its output planes: y = act(y + bias[o] + residual), SIMD.
// It runs right after the convolution's GEMM on the planes it just wrote (still warm in cache), in one
// pass instead of the bias add, BatchNorm scale and shift, residual add and activation of the unfused graph.

import { arg, at, imin, load4, ptr, storeTail } from './common';
import { erfV, sigmoidV } from './vmath';
import { A_GELU, A_HARDSWISH, A_NONE, A_RELU, A_RELU6, A_SILU } from './ids';

@inline export function activateV(act: i32, v: v128): v128 {
  const zero = f32x4.splat(0);
  switch (act) {
    case A_NONE: return v;
    // relu(NaN) = 0, as the unary kernel and the CPU's (x > 0 ? x : 0).
    case A_RELU: return v128.and(v, f32x4.gt(v, zero));
    case A_RELU6: return f32x4.min(v128.and(v, f32x4.gt(v, zero)), f32x4.splat(6));
    case A_SILU: return f32x4.mul(v, sigmoidV(v));
    case A_HARDSWISH: return f32x4.mul(v, f32x4.div(f32x4.min(f32x4.max(f32x4.add(v, f32x4.splat(3)), zero), f32x4.splat(6)), f32x4.splat(6)));
    case A_GELU: return f32x4.mul(f32x4.mul(v, f32x4.splat(0.5)), f32x4.add(erfV(f32x4.mul(v, f32x4.splat(0.7071067811865476))), f32x4.splat(1)));
    default: return unreachable();
  }
}

@inline function planeLoop(act: i32, y: usize, res: usize, b: f32, n: i32): void {
  const bv = f32x4.splat(b);
  for (let i = 0; i < n; i += 4) {
    const o = (<usize>i) << 2;
    const left = n - i;
    let v = f32x4.add(load4(y + o, left), bv);
    if (res) v = f32x4.add(v, load4(res + o, left));
    v = activateV(act, v);
    if (left >= 4) v128.store(y + o, v);
    else storeTail(y + o, v, left);
  }
}

// --- [y, bias (0: none), residual (0: none), activation, plane size, O, planesPerTask, planes] ----------

export function epilogueTask(args: usize, t: i32): void {
  const y = ptr(args, 0);
  const bias = ptr(args, 1);
  const res = ptr(args, 2);
  const act = arg(args, 3);
  const P = arg(args, 4);
  const O = arg(args, 5);
  const per = arg(args, 6);
  const first = t * per;
  const last = imin(arg(args, 7), first + per);
  for (let plane = first; plane < last; plane++) {
    const b: f32 = bias ? load<f32>(at(bias, plane % O)) : 0;
    const yp = at(y, plane * P);
    const rp: usize = res ? at(res, plane * P) : 0;
    // One specialised loop per activation (the switch folds away after inlining).
    switch (act) {
      case A_NONE: planeLoop(A_NONE, yp, rp, b, P); break;
      case A_RELU: planeLoop(A_RELU, yp, rp, b, P); break;
      case A_RELU6: planeLoop(A_RELU6, yp, rp, b, P); break;
      case A_SILU: planeLoop(A_SILU, yp, rp, b, P); break;
      case A_HARDSWISH: planeLoop(A_HARDSWISH, yp, rp, b, P); break;
      case A_GELU: planeLoop(A_GELU, yp, rp, b, P); break;
      default: unreachable();
    }
  }
}
