// The direct convolution (one group, no dilation): the GEMM's register tile without the im2col packing.
// A task owns a block of output rows of one image. It copies the input rows those outputs read into its
// scratch, zero-padded and split into `sw` column phases (column j of the padded row goes to phase j mod
// sw, index j / sw), so that for every tap (ky, kx) the inputs of 8 neighbouring outputs of a row are 8
// consecutive floats: one pair of v128 loads, whatever the stride. Then, for each strip of 4 output
// channels and each 8-wide segment of each row, the 4 × 8 tile sums over k = (c, ky, kx) in ascending
// order in 8 accumulators (4 rows from one v128 load of the packed weights, lane-broadcast by shuffles),
// and the epilogue (bias, residual add, activation) is applied as the tile is stored.
//
// Every output is summed in the same order whatever the rows per task or the batch: results depend on
// neither the thread count nor the other images. A row narrower than 8 is not handled here (the plan
// sends it to the GEMM); when 8 does not divide the row, its last segment starts at OW − 8 and recomputes
// a few outputs with identical values.

import { arg, at, imin, ptr } from './common';
import { activateV } from './epilogue';
import { A_GELU, A_HARDSWISH, A_NONE, A_RELU, A_RELU6, A_SILU, DIRECT_MR, DIRECT_NR, DIRECT_TAP_WORDS } from './ids';

// Argument words of the convolution.
const X = 0, WP = 1, Y = 2, C_ = 3, H_ = 4, W_ = 5, O_ = 6, OH_ = 7, OW_ = 8, KH_ = 9, KW_ = 10, SH = 11, SW = 12, PH = 13, PW = 14;
const SCRATCH = 15, SCRATCH_STRIDE = 16, ROWS_PER_TASK = 17, BLOCKS = 18, BIAS = 19, RESIDUAL = 20, ACT = 21, WQ = 22;

@inline function madd(c: v128, a: v128, b: v128): v128 {
  return f32x4.add(c, f32x4.mul(a, b));
}

/** Stores one 8-wide row of the tile: y = act(acc + bias + residual). */
@inline function storeRow(act: i32, y: usize, res: usize, bias: v128, acc0: v128, acc1: v128): void {
  let v0 = f32x4.add(acc0, bias);
  let v1 = f32x4.add(acc1, bias);
  if (res) {
    v0 = f32x4.add(v0, v128.load(res));
    v1 = f32x4.add(v1, v128.load(res, 16));
  }
  v128.store(y, activateV(act, v0));
  v128.store(y, activateV(act, v1), 16);
}

/**
 * The 4 × 8 tile at output row `oy`, columns [ox, ox + 8), channels [o0, o0 + 4) (rows past O are not
 * stored). `inp` is the phase-split input at the tile's first tap, `taps` the byte offsets of the KH·KW
 * taps from it, `cstride` the bytes between channels; `wp` the strip's packed weights (K groups of 4).
 * (Unrolling the 3 × 3 taps with computed offsets measured no faster than reading them from the table.)
 */
@inline function tile(
  act: i32, inp: usize, taps: usize, ntaps: i32, C: i32, cstride: usize, wp: usize,
  y: usize, res: usize, bias: usize, o0: i32, O: i32, plane: i32,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let c = 0; c < C; c++) {
    for (let t = 0; t < ntaps; t++) {
      const p = inp + <usize>load<i32>(taps + ((<usize>t) << 2));
      const b0 = v128.load(p);
      const b1 = v128.load(p, 16);
      const av = v128.load(wp);
      let a = i32x4.shuffle(av, av, 0, 0, 0, 0);
      c00 = madd(c00, a, b0); c01 = madd(c01, a, b1);
      a = i32x4.shuffle(av, av, 1, 1, 1, 1);
      c10 = madd(c10, a, b0); c11 = madd(c11, a, b1);
      a = i32x4.shuffle(av, av, 2, 2, 2, 2);
      c20 = madd(c20, a, b0); c21 = madd(c21, a, b1);
      a = i32x4.shuffle(av, av, 3, 3, 3, 3);
      c30 = madd(c30, a, b0); c31 = madd(c31, a, b1);
      wp += DIRECT_MR * 4;
    }
    inp += cstride;
  }
  const step = (<usize>plane) << 2;
  const zero = f32x4.splat(0);
  storeRow(act, y, res, bias ? v128.load32_splat(at(bias, o0)) : zero, c00, c01);
  if (o0 + 1 >= O) return;
  storeRow(act, y + step, res ? res + step : 0, bias ? v128.load32_splat(at(bias, o0 + 1)) : zero, c10, c11);
  if (o0 + 2 >= O) return;
  storeRow(act, y + 2 * step, res ? res + 2 * step : 0, bias ? v128.load32_splat(at(bias, o0 + 2)) : zero, c20, c21);
  if (o0 + 3 >= O) return;
  storeRow(act, y + 3 * step, res ? res + 3 * step : 0, bias ? v128.load32_splat(at(bias, o0 + 3)) : zero, c30, c31);
}

/**
 * Copies input rows [iy0, iy0 + R) of channels [0, C) of one image into `dst`: pw zero columns, the row,
 * zeros up to sw·Wq columns (rows outside the image are zeros), split into sw phases of Wq floats each.
 */
function stageRows(dst: usize, x: usize, C: i32, H: i32, W: i32, iy0: i32, R: i32, sw: i32, pw: i32, Wq: i32): void {
  const rowFloats = sw * Wq;
  for (let c = 0; c < C; c++) {
    for (let r = 0; r < R; r++) {
      const d = at(dst, (c * R + r) * rowFloats);
      const iy = iy0 + r;
      if (iy < 0 || iy >= H) {
        memory.fill(d, 0, (<usize>rowFloats) << 2);
        continue;
      }
      const src = at(x, (c * H + iy) * W);
      if (sw == 1) {
        memory.fill(d, 0, (<usize>pw) << 2);
        memory.copy(at(d, pw), src, (<usize>W) << 2);
        memory.fill(at(d, pw + W), 0, (<usize>(Wq - pw - W)) << 2);
      } else if (sw == 2) {
        // Even and odd columns by shuffles, 8 at a time: input column ix is padded column ix + pw.
        memory.fill(d, 0, (<usize>rowFloats) << 2);
        const first = at(d, (pw & 1) * Wq + (pw >> 1));
        const second = at(d, ((pw + 1) & 1) * Wq + ((pw + 1) >> 1));
        let ix = 0;
        for (; ix + 8 <= W; ix += 8) {
          const v0 = v128.load(at(src, ix));
          const v1 = v128.load(at(src, ix), 16);
          v128.store(at(first, ix >> 1), i32x4.shuffle(v0, v1, 0, 2, 4, 6));
          v128.store(at(second, ix >> 1), i32x4.shuffle(v0, v1, 1, 3, 5, 7));
        }
        for (; ix < W; ix++) {
          const j = ix + pw;
          store<f32>(at(d, (j & 1) * Wq + (j >> 1)), load<f32>(at(src, ix)));
        }
      } else {
        memory.fill(d, 0, (<usize>rowFloats) << 2);
        for (let ix = 0; ix < W; ix++) {
          const j = ix + pw;
          store<f32>(at(d, (j % sw) * Wq + j / sw), load<f32>(at(src, ix)));
        }
      }
    }
  }
}

// --- [x, packed w, y, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, scratch, scratchStride, rowsPerTask,
//      blocksPerImage, bias (0: none), residual (0: none), activation, Wq] ----------------------------------
// Wq: floats per phase of a staged row, enough for every column the outputs read ((OW − 1)·sw + KW, which
// may pass W + 2·pw when the output is padded past the input).
// Scratch per thread: KH·KW tap offsets (64 words), then the staged rows.

/** One specialised body per activation: the switch folds away after inlining. */
export function convDirectTask(args: usize, t: i32, tid: i32): void {
  switch (arg(args, ACT)) {
    case A_NONE: convDirect(A_NONE, args, t, tid); break;
    case A_RELU: convDirect(A_RELU, args, t, tid); break;
    case A_RELU6: convDirect(A_RELU6, args, t, tid); break;
    case A_SILU: convDirect(A_SILU, args, t, tid); break;
    case A_HARDSWISH: convDirect(A_HARDSWISH, args, t, tid); break;
    case A_GELU: convDirect(A_GELU, args, t, tid); break;
    default: unreachable();
  }
}

@inline function convDirect(act: i32, args: usize, t: i32, tid: i32): void {
  const x = ptr(args, X), wp = ptr(args, WP), y = ptr(args, Y);
  const C = arg(args, C_), H = arg(args, H_), W = arg(args, W_), O = arg(args, O_), OH = arg(args, OH_), OW = arg(args, OW_);
  const KH = arg(args, KH_), KW = arg(args, KW_), sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW);
  const rowsPerTask = arg(args, ROWS_PER_TASK), blocks = arg(args, BLOCKS);
  const bias = ptr(args, BIAS), residual = ptr(args, RESIDUAL);
  const n = t / blocks;
  const oy0 = (t - n * blocks) * rowsPerTask;
  const oy1 = imin(OH, oy0 + rowsPerTask);
  // The staged rows: every input row the block's outputs read, phase-split.
  const R = (oy1 - oy0 - 1) * sh + KH;
  const Wq = arg(args, WQ);
  const rowFloats = sw * Wq;
  const scratch = ptr(args, SCRATCH) + <usize>(tid * arg(args, SCRATCH_STRIDE));
  const taps = scratch;
  const staged = scratch + (DIRECT_TAP_WORDS << 2);
  stageRows(staged, at(x, n * C * H * W), C, H, W, oy0 * sh - ph, R, sw, pw, Wq);
  const ntaps = KH * KW;
  for (let ky = 0; ky < KH; ky++) {
    for (let kx = 0; kx < KW; kx++) store<i32>(taps + (<usize>(ky * KW + kx) << 2), (ky * rowFloats + (kx % sw) * Wq + kx / sw) << 2);
  }
  const cstride = (<usize>(R * rowFloats)) << 2;
  const K = C * ntaps;
  const plane = OH * OW;
  const yImage = at(y, n * O * plane);
  const rImage: usize = residual ? at(residual, n * O * plane) : 0;
  for (let o0 = 0; o0 < O; o0 += DIRECT_MR) {
    const wStrip = at(wp, o0 * K);
    for (let oy = oy0; oy < oy1; oy++) {
      const rowIn = at(staged, (oy - oy0) * sh * rowFloats);
      const rowOut = o0 * plane + oy * OW;
      for (let ox = 0; ox < OW; ox += DIRECT_NR) {
        const col = imin(ox, OW - DIRECT_NR);
        tile(act, at(rowIn, col), taps, ntaps, C, cstride, wStrip, at(yImage, rowOut + col), rImage ? at(rImage, rowOut + col) : 0, bias, o0, O, plane);
      }
    }
  }
}

// --- weight packing: [w, dst, O, K] — strip s holds K groups of 4 floats, w[4s + i][k] at (s·K + k)·4 + i,
// rows past O zero. One task per strip.

export function convDirectPackTask(args: usize, t: i32): void {
  const w = ptr(args, 0), dst = ptr(args, 1);
  const O = arg(args, 2), K = arg(args, 3);
  const o0 = t * DIRECT_MR;
  const out = at(dst, o0 * K);
  for (let i = 0; i < DIRECT_MR; i++) {
    const o = o0 + i;
    if (o < O) {
      const src = at(w, o * K);
      for (let k = 0; k < K; k++) store<f32>(at(out, k * DIRECT_MR + i), load<f32>(at(src, k)));
    } else {
      for (let k = 0; k < K; k++) store<f32>(at(out, k * DIRECT_MR + i), 0);
    }
  }
}
