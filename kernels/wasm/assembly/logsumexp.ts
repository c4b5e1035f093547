// Row-wise logsumexp m + log Σ exp(x − m), m the row maximum (engine/fusion/logsumexp.ts), whole rows per
// task: the maximum in four lanes, then the exponentials four at a time (expV), combined in a fixed order.

import { arg, at, imin, load4, ptr } from './common';
import { expV } from './vmath';

// --- [x, out, n, rowsPerTask, rows] -----------------------------------------------------------------

export function logsumexpTask(args: usize, t: i32): void {
  const x = ptr(args, 0);
  const out = ptr(args, 1);
  const n = arg(args, 2);
  const per = arg(args, 3);
  const first = t * per;
  const last = imin(arg(args, 4), first + per);
  for (let row = first; row < last; row++) {
    const xp = at(x, row * n);
    let mv = f32x4.splat(-Infinity);
    for (let i = 0; i < n; i += 4) {
      // Missing lanes of a tail read as −∞ here (never the maximum).
      const left = n - i;
      let v = load4(xp + ((<usize>i) << 2), left);
      if (left < 4) v = v128.bitselect(v, f32x4.splat(-Infinity), laneMask(left));
      mv = f32x4.max(mv, v); // WebAssembly's max propagates NaN, as the CPU reference's maximum
    }
    const m = max<f32>(max<f32>(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max<f32>(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    const m4 = f32x4.splat(m);
    let sv = f32x4.splat(0);
    for (let i = 0; i < n; i += 4) {
      const left = n - i;
      let e = expV(f32x4.sub(load4(xp + ((<usize>i) << 2), left), m4));
      if (left < 4) e = v128.and(e, laneMask(left));
      sv = f32x4.add(sv, e);
    }
    const s = (f32x4.extract_lane(sv, 0) + f32x4.extract_lane(sv, 1)) + (f32x4.extract_lane(sv, 2) + f32x4.extract_lane(sv, 3));
    store<f32>(at(out, row), Mathf.log(s) + m);
  }
}

/** All-ones in the first `left` (< 4) lanes. */
@inline function laneMask(left: i32): v128 {
  return i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(left));
}
