// The per-channel scale-shift y = x · scale[c] + shift[c] (engine/fusion/scale-shift.ts), SIMD, over x
// viewed as planes [outer · channels] of `inner` contiguous elements: one scale and shift per plane.

import { arg, at, imin, load4, ptr, storeTail } from './common';

// --- [x, scale, shift, out, inner, channels, planesPerTask, planes] ---------------------------------

export function scaleShiftTask(args: usize, t: i32): void {
  const x = ptr(args, 0);
  const scale = ptr(args, 1);
  const shift = ptr(args, 2);
  const out = ptr(args, 3);
  const inner = arg(args, 4);
  const channels = arg(args, 5);
  const per = arg(args, 6);
  const first = t * per;
  const last = imin(arg(args, 7), first + per);
  for (let plane = first; plane < last; plane++) {
    const c = plane % channels;
    const s = f32x4.splat(load<f32>(at(scale, c)));
    const b = f32x4.splat(load<f32>(at(shift, c)));
    const xp = at(x, plane * inner);
    const op = at(out, plane * inner);
    for (let i = 0; i < inner; i += 4) {
      const o = (<usize>i) << 2;
      const left = inner - i;
      const v = f32x4.add(f32x4.mul(load4(xp + o, left), s), b);
      if (left >= 4) v128.store(op + o, v);
      else storeTail(op + o, v, left);
    }
  }
}
