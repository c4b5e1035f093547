// The convolution pieces that are not a matrix product: folding the unrolled gradient back into the
// input gradient (col2im), and the depthwise convolution (one input channel per group) in all three
// directions, computed directly on the NCHW planes. A task owns whole output planes (or one filter),
// so every element is summed in the same order whatever the number of threads.

import { arg, at, imin, ptr } from './common';

/** First and last output column whose input column ox·sw − pw + kx·dw lies in [0, W). */
@inline function firstCol(pw: i32, off: i32, sw: i32): i32 {
  const lo = pw - off;
  return lo <= 0 ? 0 : (lo + sw - 1) / sw;
}

@inline function lastCol(W: i32, pw: i32, off: i32, sw: i32, OW: i32): i32 {
  const hi = W - 1 + pw - off;
  return hi < 0 ? -1 : imin(OW - 1, hi / sw);
}

/** dst[i·dstStride] += s · src[i·srcStride] for i < n, vectorised when both strides are 1. */
@inline function axpy(dst: usize, dstStride: i32, src: usize, srcStride: i32, s: f32, n: i32): void {
  let i = 0;
  if (dstStride == 1 && srcStride == 1) {
    const sv = f32x4.splat(s);
    for (; i + 4 <= n; i += 4) {
      const o = (<usize>i) << 2;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(sv, v128.load(src + o))));
    }
  }
  for (; i < n; i++) {
    const p = at(dst, i * dstStride);
    store<f32>(p, load<f32>(p) + s * load<f32>(at(src, i * srcStride)));
  }
}

function zero(p: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + ((<usize>i) << 2), z);
  for (; i < n; i++) store<f32>(p + ((<usize>i) << 2), 0);
}

// Shared geometry words of col2im and the depthwise kernels, from index 3:
// H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw
const H_ = 3, W_ = 4, OH_ = 5, OW_ = 6, KH_ = 7, KW_ = 8, SH = 9, SW = 10, PH = 11, PW = 12, DH = 13, DW = 14;

/**
 * Adds taps of one gradient plane back into an input plane: for each (ky, kx) with weight
 * `w[ky·KW + kx]` (or 1 when w is 0), xPlane[oy·sh − ph + ky·dh][ox·sw − pw + kx·dw] += weight ·
 * rows[(ky·KW + kx)·tapStride + oy·OW + ox]. With tapStride 0 every tap reads the same plane (depthwise).
 */
function scatterTaps(args: usize, xPlane: usize, rows: usize, tapStride: i32, w: usize): void {
  const H = arg(args, H_), W = arg(args, W_), OH = arg(args, OH_), OW = arg(args, OW_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  for (let ky = 0; ky < KH; ky++) {
    for (let kx = 0; kx < KW; kx++) {
      const tap = ky * KW + kx;
      const s: f32 = w ? load<f32>(at(w, tap)) : 1;
      const src = at(rows, tap * tapStride);
      const lo = firstCol(pw, kx * dw, sw);
      const hi = lastCol(W, pw, kx * dw, sw, OW);
      if (lo > hi) continue;
      for (let oy = 0; oy < OH; oy++) {
        const iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) continue;
        axpy(at(xPlane, iy * W + lo * sw - pw + kx * dw), sw, at(src, oy * OW + lo), 1, s, hi - lo + 1);
      }
    }
  }
}

// col2im: [cols, dx, planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, planesPerTask]
// cols holds, per input plane (n, c), KH·KW rows of OH·OW values (the unrolled input gradient).

export function col2imTask(args: usize, t: i32): void {
  const cols = ptr(args, 0);
  const dx = ptr(args, 1);
  const HW = arg(args, H_) * arg(args, W_);
  const P = arg(args, OH_) * arg(args, OW_);
  const taps = arg(args, KH_) * arg(args, KW_);
  const per = arg(args, 15);
  const p0 = t * per;
  const p1 = imin(arg(args, 2), p0 + per);
  for (let pl = p0; pl < p1; pl++) {
    const plane = at(dx, pl * HW);
    zero(plane, HW);
    scatterTaps(args, plane, at(cols, pl * taps * P), P, 0);
  }
}

// depthwise (groups = C, one input channel per group, `mult` outputs per channel):
// [x, w, y, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, planesPerTask, N, C, mult]

export function depthwiseTask(args: usize, t: i32): void {
  const x = ptr(args, 0), w = ptr(args, 1), y = ptr(args, 2);
  const H = arg(args, H_), W = arg(args, W_), OH = arg(args, OH_), OW = arg(args, OW_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  const per = arg(args, 15);
  const N = arg(args, 16), C = arg(args, 17), mult = arg(args, 18);
  const O = C * mult;
  const p0 = t * per;
  const p1 = imin(N * O, p0 + per);
  for (let pl = p0; pl < p1; pl++) {
    const n = pl / O;
    const o = pl - n * O;
    const xPlane = at(x, (n * C + o / mult) * H * W);
    const yPlane = at(y, pl * OH * OW);
    const wo = at(w, o * KH * KW);
    zero(yPlane, OH * OW);
    for (let oy = 0; oy < OH; oy++) {
      const yRow = at(yPlane, oy * OW);
      for (let ky = 0; ky < KH; ky++) {
        const iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) continue;
        for (let kx = 0; kx < KW; kx++) {
          const lo = firstCol(pw, kx * dw, sw);
          const hi = lastCol(W, pw, kx * dw, sw, OW);
          if (lo > hi) continue;
          axpy(at(yRow, lo), 1, at(xPlane, iy * W + lo * sw - pw + kx * dw), sw, load<f32>(at(wo, ky * KW + kx)), hi - lo + 1);
        }
      }
    }
  }
}

// depthwise backward-input: [dy, w, dx, ...geometry, planesPerTask, N, C, mult]; a task owns input planes (n, c).

export function depthwiseBackwardInputTask(args: usize, t: i32): void {
  const dy = ptr(args, 0), w = ptr(args, 1), dx = ptr(args, 2);
  const HW = arg(args, H_) * arg(args, W_);
  const P = arg(args, OH_) * arg(args, OW_);
  const taps = arg(args, KH_) * arg(args, KW_);
  const per = arg(args, 15);
  const N = arg(args, 16), C = arg(args, 17), mult = arg(args, 18);
  const p0 = t * per;
  const p1 = imin(N * C, p0 + per);
  for (let pl = p0; pl < p1; pl++) {
    const n = pl / C;
    const c = pl - n * C;
    const plane = at(dx, pl * HW);
    zero(plane, HW);
    for (let m = 0; m < mult; m++) {
      const o = c * mult + m;
      scatterTaps(args, plane, at(dy, (n * C * mult + o) * P), 0, at(w, o * taps));
    }
  }
}

// depthwise backward-filter: [x, dy, dw, ...geometry, filtersPerTask, N, C, mult]; a task owns filters o.

export function depthwiseBackwardFilterTask(args: usize, t: i32): void {
  const x = ptr(args, 0), dy = ptr(args, 1), dwOut = ptr(args, 2);
  const H = arg(args, H_), W = arg(args, W_), OH = arg(args, OH_), OW = arg(args, OW_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  const per = arg(args, 15);
  const N = arg(args, 16), C = arg(args, 17), mult = arg(args, 18);
  const O = C * mult;
  const f0 = t * per;
  const f1 = imin(O, f0 + per);
  for (let o = f0; o < f1; o++) {
    const c = o / mult;
    for (let ky = 0; ky < KH; ky++) {
      for (let kx = 0; kx < KW; kx++) {
        const lo = firstCol(pw, kx * dw, sw);
        const hi = lastCol(W, pw, kx * dw, sw, OW);
        let acc = f32x4.splat(0);
        let tail: f32 = 0;
        for (let n = 0; n < N; n++) {
          const xPlane = at(x, (n * C + c) * H * W);
          const dyPlane = at(dy, (n * O + o) * OH * OW);
          for (let oy = 0; oy < OH; oy++) {
            const iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= H || lo > hi) continue;
            const xs = at(xPlane, iy * W + lo * sw - pw + kx * dw);
            const ds = at(dyPlane, oy * OW + lo);
            const len = hi - lo + 1;
            let i = 0;
            if (sw == 1) {
              for (; i + 4 <= len; i += 4) {
                const off = (<usize>i) << 2;
                acc = f32x4.add(acc, f32x4.mul(v128.load(xs + off), v128.load(ds + off)));
              }
            }
            for (; i < len; i++) tail += load<f32>(at(xs, i * sw)) * load<f32>(at(ds, i));
          }
        }
        const pair = f32x4.add(acc, i32x4.shuffle(acc, acc, 2, 3, 0, 1));
        store<f32>(at(dwOut, (o * KH + ky) * KW + kx), (f32x4.extract_lane(pair, 0) + f32x4.extract_lane(pair, 1)) + tail);
      }
    }
  }
}

