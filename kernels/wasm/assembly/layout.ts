// Data movement: one strided copy serves expand, transpose, slice, pad and concat (the TypeScript side
// describes each as a walk over an N-d index space with a source and a destination stride per axis),
// with a blocked kernel for the transposes of matrices; gather and scatter-add along an axis; the argmax
// of max-pooling windows.

import { MAX_RANK, arg, at, imin, ptr, rowOffset } from './common';

// copy: [src, dst, rank, rowsPerTask, rows, shape[R], src strides[R], dst strides[R]] (R = MAX_RANK)

const SHAPE = 5, SRC = SHAPE + MAX_RANK, DST = SRC + MAX_RANK;

export function copyTask(args: usize, t: i32): void {
  const src = ptr(args, 0);
  const dst = ptr(args, 1);
  const rank = arg(args, 2);
  const per = arg(args, 3);
  const r0 = t * per;
  const r1 = imin(arg(args, 4), r0 + per);
  const n = arg(args, SHAPE + rank - 1);
  const ds = arg(args, SRC + rank - 1);
  const dd = arg(args, DST + rank - 1);
  for (let r = r0; r < r1; r++) {
    const ps = at(src, rowOffset(args, r, rank, SHAPE, SRC));
    const pd = at(dst, rowOffset(args, r, rank, SHAPE, DST));
    let i = 0;
    if (dd == 1 && ds == 1) {
      for (; i + 4 <= n; i += 4) v128.store(pd + ((<usize>i) << 2), v128.load(ps + ((<usize>i) << 2)));
      for (; i < n; i++) store<f32>(pd + ((<usize>i) << 2), load<f32>(ps + ((<usize>i) << 2)));
    } else if (dd == 1 && ds == 0) {
      const v = load<f32>(ps);
      const s = f32x4.splat(v);
      for (; i + 4 <= n; i += 4) v128.store(pd + ((<usize>i) << 2), s);
      for (; i < n; i++) store<f32>(pd + ((<usize>i) << 2), v);
    } else {
      for (; i < n; i++) store<f32>(at(pd, i * dd), load<f32>(at(ps, i * ds)));
    }
  }
}

// transpose: [src, dst, batches, R, C, src batch stride, S, quadsPerTask]
// dst[b][r][c] = src[b·sb + c·S + r] (dst contiguous, R × C per batch entry). A task owns quadsPerTask
// groups of four rows r of one entry; four source columns c give one v128 each (r .. r + 3), a 4 × 4
// transpose by shuffles turns them into four rows of dst, sixteen columns at a time so that each row
// receives a whole cache line.

@inline function transpose4(dst: usize, ldd: usize, src: usize, lds: usize): void {
  const v0 = v128.load(src), v1 = v128.load(src + lds), v2 = v128.load(src + 2 * lds), v3 = v128.load(src + 3 * lds);
  const lo01 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), lo23 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
  const hi01 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), hi23 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
  v128.store(dst + ldd, i32x4.shuffle(lo01, lo23, 2, 3, 6, 7));
  v128.store(dst + 2 * ldd, i32x4.shuffle(hi01, hi23, 0, 1, 4, 5));
  v128.store(dst + 3 * ldd, i32x4.shuffle(hi01, hi23, 2, 3, 6, 7));
}

export function transposeTask(args: usize, t: i32): void {
  const R = arg(args, 3), C = arg(args, 4);
  const sb = arg(args, 5), S = arg(args, 6);
  const per = arg(args, 7);
  const quads = (R + 3) >> 2;
  const tasksPerEntry = (quads + per - 1) / per;
  const b = t / tasksPerEntry;
  const r0 = (t - b * tasksPerEntry) * per * 4;
  const r1 = imin(R, r0 + per * 4);
  const src = at(ptr(args, 0), b * sb);
  const dst = at(ptr(args, 1), b * R * C);
  const lds = (<usize>S) << 2;
  const ldd = (<usize>C) << 2;
  let r = r0;
  for (; r + 4 <= r1; r += 4) {
    const d = at(dst, r * C);
    const s = at(src, r);
    let c = 0;
    for (; c + 16 <= C; c += 16) {
      const o = (<usize>c) << 2;
      transpose4(d + o, ldd, s + <usize>c * lds, lds);
      transpose4(d + o + 16, ldd, s + <usize>(c + 4) * lds, lds);
      transpose4(d + o + 32, ldd, s + <usize>(c + 8) * lds, lds);
      transpose4(d + o + 48, ldd, s + <usize>(c + 12) * lds, lds);
    }
    for (; c + 4 <= C; c += 4) transpose4(d + ((<usize>c) << 2), ldd, s + <usize>c * lds, lds);
    for (; c < C; c++) for (let i = 0; i < 4; i++) store<f32>(at(d, i * C + c), load<f32>(at(s, c * S + i)));
  }
  for (; r < r1; r++) for (let c = 0; c < C; c++) store<f32>(at(dst, r * C + c), load<f32>(at(src, c * S + r)));
}

// gather: [x, idx, out, outer, L, inner, Lx, rowsPerTask]; out[o][l][i] = x[o][idx[o][l][i]][i]

export function gatherTask(args: usize, t: i32): void {
  const x = ptr(args, 0);
  const idx = ptr(args, 1);
  const out = ptr(args, 2);
  const L = arg(args, 4);
  const inner = arg(args, 5);
  const Lx = arg(args, 6);
  const per = arg(args, 7);
  const r0 = t * per;
  const r1 = imin(arg(args, 3) * L, r0 + per);
  for (let r = r0; r < r1; r++) {
    const o = r / L;
    const xRow = o * Lx * inner;
    const base = r * inner;
    for (let i = 0; i < inner; i++) {
      const k = <i32>load<f32>(at(idx, base + i));
      // An index outside the axis reads nothing (NaN), as the float64 reference's out-of-range read does.
      const v = k >= 0 && k < Lx ? load<f32>(at(x, xRow + k * inner + i)) : NaN;
      store<f32>(at(out, base + i), <f32>v);
    }
  }
}

// scatterAdd: [upd, idx, out, outer, Lu, inner, Lo, columnsPerTask]; out = 0; out[o][idx[o][l][i]][i] += upd[o][l][i]
// A task owns the output columns [i0, i1) of one o and adds the updates in order of l.

export function scatterAddTask(args: usize, t: i32): void {
  const upd = ptr(args, 0);
  const idx = ptr(args, 1);
  const out = ptr(args, 2);
  const Lu = arg(args, 4);
  const inner = arg(args, 5);
  const Lo = arg(args, 6);
  const cols = arg(args, 7);
  const chunks = (inner + cols - 1) / cols;
  const o = t / chunks;
  const i0 = (t - o * chunks) * cols;
  const i1 = imin(inner, i0 + cols);
  const outBase = o * Lo * inner;
  for (let l = 0; l < Lo; l++) for (let i = i0; i < i1; i++) store<f32>(at(out, outBase + l * inner + i), 0);
  const updBase = o * Lu * inner;
  for (let l = 0; l < Lu; l++) {
    for (let i = i0; i < i1; i++) {
      const e = updBase + l * inner + i;
      const k = <i32>load<f32>(at(idx, e));
      if (k < 0 || k >= Lo) continue;
      const p = at(out, outBase + k * inner + i);
      store<f32>(p, load<f32>(p) + load<f32>(at(upd, e)));
    }
  }
}

// maxPoolArgmax: [x, out, planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, planesPerTask]
// The flat index (iy·W + ix) of each window's maximum; the first maximum wins, a NaN wins over any
// number (the last NaN, as the reference's scan), and a window of padding only gives −1.

export function maxPoolArgmaxTask(args: usize, t: i32): void {
  const x = ptr(args, 0);
  const out = ptr(args, 1);
  const H = arg(args, 3);
  const W = arg(args, 4);
  const OH = arg(args, 5);
  const OW = arg(args, 6);
  const kh = arg(args, 7);
  const kw = arg(args, 8);
  const sh = arg(args, 9);
  const sw = arg(args, 10);
  const ph = arg(args, 11);
  const pw = arg(args, 12);
  const dh = arg(args, 13);
  const dw = arg(args, 14);
  const per = arg(args, 15);
  const p0 = t * per;
  const p1 = imin(arg(args, 2), p0 + per);
  for (let plane = p0; plane < p1; plane++) {
    const xp = at(x, plane * H * W);
    let o = at(out, plane * OH * OW);
    for (let oy = 0; oy < OH; oy++) {
      const iy0 = oy * sh - ph;
      const rowsInside = iy0 >= 0 && iy0 + (kh - 1) * dh < H;
      for (let ox = 0; ox < OW; ox++) {
        const ix0 = ox * sw - pw;
        if (rowsInside && ix0 >= 0 && ix0 + (kw - 1) * dw < W) {
          // The window lies inside the plane: no bounds checks; the first element starts the scan.
          let bestIdx = iy0 * W + ix0;
          let best = load<f32>(at(xp, bestIdx));
          for (let ky = 0; ky < kh; ky++) {
            const row = (iy0 + ky * dh) * W + ix0;
            for (let kx = ky == 0 ? 1 : 0; kx < kw; kx++) {
              const i = row + kx * dw;
              const v = load<f32>(at(xp, i));
              if (v > best || isNaN(v)) {
                best = v;
                bestIdx = i;
              }
            }
          }
          store<f32>(o, <f32>bestIdx);
          o += 4;
          continue;
        }
        let best: f32 = -Infinity;
        let bestIdx = -1;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - ph + ky * dh;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - pw + kx * dw;
            if (ix < 0 || ix >= W) continue;
            const v = load<f32>(at(xp, iy * W + ix));
            if (v > best || bestIdx < 0 || isNaN(v)) {
              best = v;
              bestIdx = iy * W + ix;
            }
          }
        }
        store<f32>(o, <f32>bestIdx);
        o += 4;
      }
    }
  }
}
