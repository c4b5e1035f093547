// The matrix product every matmul and convolution runs on, in the Goto/BLIS structure:
//   for each task (a batch entry and a block of C's rows × columns), for each KC-deep slice of K:
//     pack the B block (KC × columns) into panels of NR columns (contiguous, zero-padded),
//     for each MR-row strip of A: pack it (KC × MR, contiguous), then run the micro-kernel over
//     every B panel: an MR × NR tile of C held in ten v128 accumulators for the whole slice.
// The packed B block stays in L2, the A strip and one B panel in L1. Every element of C is summed
// in the same order (k ascending within a slice, slices in order) whatever the task split or the
// number of threads, so results do not depend on the thread count.
//
// B may be a strided matrix or a convolution's unrolled input, read through im2col addressing while
// packing (so the unrolled matrix is never stored). K may be a sum over "K batches" (images, for the
// filter gradient), each with its own A and B offsets.

import { arg, at, imin, ptr } from './common';
import { A_PACKED, B_IM2COL, B_IM2COL_T, GEMM_KC as KC, GEMM_MR as MR, GEMM_NR as NR } from './ids';

// Argument words.
const M_ = 0, N_ = 1, K_ = 2, KBATCHES = 4, AMODE = 5, BMODE = 6, LDC = 7, ACCUMULATE = 8, MT = 9, NT = 10;
const SCRATCH = 11, SCRATCH_STRIDE = 12, TABLE = 13, RSA = 14, CSA = 15, KBSA = 16, RSB = 17, CSB = 18, KBSB = 19;
const CG = 20, H_ = 21, W_ = 22, KH_ = 23, KW_ = 24, SH = 25, SW = 26, PH = 27, PW = 28, DH = 29, DW = 30, OW_ = 31;
const TILES_M = 32, TILES_N = 33;
/** Byte address of B blocks packed beforehand by gemmPackBTask, or 0 to pack in each task. */
const PREPACKED = 34;
/** Where gemmPackATask writes the strips it packs (byte address). */
const PACK_A_DST = 35;
/** Strips of MR rows per task of gemmPackATask. */
const STRIPS_PER_TASK = 36;

@inline function madd(c: v128, a: v128, b: v128): v128 {
  return f32x4.add(c, f32x4.mul(a, b));
}

@inline function update(c: usize, off: usize, acc: v128, add: bool): void {
  v128.store(c + off, add ? f32x4.add(v128.load(c + off), acc) : acc);
}

/**
 * C[0..5][0..8] (row stride ldc floats) = (add ? C : 0) + A·B over kc steps. A: kc groups of 5 floats
 * (row 0..4 of one k); B: kc groups of 8 floats. Rows 0–3 of A come from one v128 load and lane
 * shuffles, row 4 from a splat load; 10 accumulators + 2 B vectors + 1 A vector fit the 16 registers.
 */
function microKernel(pa: usize, pb: usize, kc: i32, c: usize, ldc: i32, add: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    const av = v128.load(pa);
    let a = i32x4.shuffle(av, av, 0, 0, 0, 0);
    c00 = madd(c00, a, b0); c01 = madd(c01, a, b1);
    a = i32x4.shuffle(av, av, 1, 1, 1, 1);
    c10 = madd(c10, a, b0); c11 = madd(c11, a, b1);
    a = i32x4.shuffle(av, av, 2, 2, 2, 2);
    c20 = madd(c20, a, b0); c21 = madd(c21, a, b1);
    a = i32x4.shuffle(av, av, 3, 3, 3, 3);
    c30 = madd(c30, a, b0); c31 = madd(c31, a, b1);
    a = v128.load32_splat(pa, 16);
    c40 = madd(c40, a, b0); c41 = madd(c41, a, b1);
    pa += MR * 4;
    pb += NR * 4;
  }
  const r = (<usize>ldc) << 2;
  update(c, 0, c00, add); update(c, 16, c01, add); c += r;
  update(c, 0, c10, add); update(c, 16, c11, add); c += r;
  update(c, 0, c20, add); update(c, 16, c21, add); c += r;
  update(c, 0, c30, add); update(c, 16, c31, add); c += r;
  update(c, 0, c40, add); update(c, 16, c41, add);
}

/** Packs rows [i0, i0 + rows) (rows ≤ MR; missing rows are zeros) × k in [k0, k0 + kc) of a strided A. */
function packA(dst: usize, a: usize, rsA: i32, csA: i32, i0: i32, rows: i32, k0: i32, kc: i32): void {
  if (rows < MR) {
    for (let k = 0; k < kc; k++) for (let i = rows; i < MR; i++) store<f32>(at(dst, k * MR + i), 0);
  }
  if (csA == 1 && rows == MR) {
    // Rows 0–3 four k at a time: a 4×4 transpose by shuffles, one v128 store per k; row 4 lane by lane.
    const r0 = at(a, i0 * rsA + k0);
    const r1 = at(r0, rsA), r2 = at(r1, rsA), r3 = at(r2, rsA), r4 = at(r3, rsA);
    let k = 0;
    for (; k + 4 <= kc; k += 4) {
      const o = (<usize>k) << 2;
      const v0 = v128.load(r0 + o), v1 = v128.load(r1 + o), v2 = v128.load(r2 + o), v3 = v128.load(r3 + o);
      const v4 = v128.load(r4 + o);
      const lo01 = i32x4.shuffle(v0, v1, 0, 4, 1, 5), lo23 = i32x4.shuffle(v2, v3, 0, 4, 1, 5);
      const hi01 = i32x4.shuffle(v0, v1, 2, 6, 3, 7), hi23 = i32x4.shuffle(v2, v3, 2, 6, 3, 7);
      const d = at(dst, k * MR);
      v128.store(d, i32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
      store<f32>(d, f32x4.extract_lane(v4, 0), 16);
      v128.store(d, i32x4.shuffle(lo01, lo23, 2, 3, 6, 7), 20);
      store<f32>(d, f32x4.extract_lane(v4, 1), 36);
      v128.store(d, i32x4.shuffle(hi01, hi23, 0, 1, 4, 5), 40);
      store<f32>(d, f32x4.extract_lane(v4, 2), 56);
      v128.store(d, i32x4.shuffle(hi01, hi23, 2, 3, 6, 7), 60);
      store<f32>(d, f32x4.extract_lane(v4, 3), 76);
    }
    for (; k < kc; k++) {
      const d = at(dst, k * MR);
      store<f32>(d, load<f32>(at(r0, k)));
      store<f32>(d, load<f32>(at(r1, k)), 4);
      store<f32>(d, load<f32>(at(r2, k)), 8);
      store<f32>(d, load<f32>(at(r3, k)), 12);
      store<f32>(d, load<f32>(at(r4, k)), 16);
    }
  } else if (csA == 1) {
    for (let i = 0; i < rows; i++) {
      const src = at(a, (i0 + i) * rsA + k0);
      for (let k = 0; k < kc; k++) store<f32>(at(dst, k * MR + i), load<f32>(at(src, k)));
    }
  } else {
    for (let k = 0; k < kc; k++) {
      const src = at(a, i0 * rsA + (k0 + k) * csA);
      for (let i = 0; i < rows; i++) store<f32>(at(dst, k * MR + i), load<f32>(at(src, i * rsA)));
    }
  }
}

/** Packs k in [k0, k0 + kc) × columns [j0, j0 + cols) of a strided B into NR-column panels (zero-padded). */
function packBStrided(dst: usize, b: usize, rsB: i32, csB: i32, k0: i32, kc: i32, j0: i32, cols: i32): void {
  for (let jp = 0; jp < cols; jp += NR) {
    const n = imin(NR, cols - jp);
    const panel = at(dst, jp * kc);
    if (csB == 1 && n == NR) {
      for (let k = 0; k < kc; k++) {
        const src = at(b, (k0 + k) * rsB + j0 + jp);
        v128.store(at(panel, k * NR), v128.load(src));
        v128.store(at(panel, k * NR), v128.load(src, 16), 16);
      }
    } else {
      for (let k = 0; k < kc; k++) for (let l = n; l < NR; l++) store<f32>(at(panel, k * NR + l), 0);
      for (let l = 0; l < n; l++) {
        const src = at(b, k0 * rsB + (j0 + jp + l) * csB);
        for (let k = 0; k < kc; k++) store<f32>(at(panel, k * NR + l), load<f32>(at(src, k * rsB)));
      }
    }
  }
}

/**
 * Copies `len` lanes of one output row's unrolled input into `out`: lane l reads row[ix + l·sw] (0 outside
 * the row's W elements). Inside the row with stride 1, eight lanes are two v128 copies.
 */
@inline function copyLanes(out: usize, row: usize, ix: i32, len: i32, sw: i32, W: i32): void {
  if (sw == 1 && ix >= 0 && ix + len <= W) {
    const src = at(row, ix);
    if (len == NR) {
      v128.store(out, v128.load(src));
      v128.store(out, v128.load(src, 16), 16);
    } else {
      for (let l = 0; l < len; l++) store<f32>(at(out, l), load<f32>(at(src, l)));
    }
    return;
  }
  let x = ix;
  for (let l = 0; l < len; l++) {
    store<f32>(at(out, l), <u32>x < <u32>W ? load<f32>(at(row, x)) : <f32>0);
    x += sw;
  }
}

/** Zeros `len` lanes (a window row above or below the image). */
@inline function zeroLanes(out: usize, len: i32): void {
  if (len == NR) {
    v128.store(out, f32x4.splat(0));
    v128.store(out, f32x4.splat(0), 16);
  } else {
    for (let l = 0; l < len; l++) store<f32>(at(out, l), 0);
  }
}

/**
 * Packs the unrolled input of a convolution: B[k][j] = x[c][oy·sh − ph + ky·dh][ox·sw − pw + kx·dw]
 * (0 outside the image) with k = (c, ky, kx) and j = (oy, ox). A panel's NR columns are cut into runs
 * within one output row (at most two when OW ≥ NR − 1); each run of each k reads one input row, with
 * bounds checks only where the window leaves it. Narrower outputs take the lane-by-lane path.
 */
function packBIm2col(dst: usize, x: usize, args: usize, k0: i32, kc: i32, j0: i32, cols: i32, N: i32): void {
  const H = arg(args, H_), W = arg(args, W_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  const OW = arg(args, OW_);
  const HW = H * W;
  const taps = KH * KW;
  const c0 = k0 / taps;
  const rem0 = k0 - c0 * taps;
  const ky0 = rem0 / KW;
  const kx0 = rem0 - ky0 * KW;
  for (let jp = 0; jp < cols; jp += NR) {
    const panel = at(dst, jp * kc);
    const jA = j0 + jp;
    const n = imin(NR, N - jA);
    if (n < NR) {
      // Columns past N are zero in every k (the micro-kernel reads whole panels).
      for (let k = 0; k < kc; k++) for (let l = n; l < NR; l++) store<f32>(at(panel, k * NR + l), 0);
    }
    const oy = jA / OW;
    const ox = jA - oy * OW;
    // Run 1: lanes [0, len1) in output row oy from column ox; run 2: lanes [len1, n) in row oy + 1 from 0.
    const len1 = imin(n, OW - ox);
    const len2 = n - len1;
    if (len2 > OW) {
      packBIm2colLanes(panel, x, args, k0, kc, jA, n);
      continue;
    }
    const iy1 = oy * sh - ph, ix1 = ox * sw - pw;
    const iy2 = iy1 + sh, ix2 = -pw;
    let c = c0, ky = ky0, kx = kx0;
    for (let k = 0; k < kc; k++) {
      const out = at(panel, k * NR);
      const plane = at(x, c * HW);
      const dy = ky * dh, dx = kx * dw;
      let iy = iy1 + dy;
      if (<u32>iy < <u32>H) copyLanes(out, at(plane, iy * W), ix1 + dx, len1, sw, W);
      else zeroLanes(out, len1);
      if (len2 > 0) {
        iy = iy2 + dy;
        const out2 = at(out, len1);
        if (<u32>iy < <u32>H) copyLanes(out2, at(plane, iy * W), ix2 + dx, len2, sw, W);
        else zeroLanes(out2, len2);
      }
      if (++kx == KW) { kx = 0; if (++ky == KH) { ky = 0; c++; } }
    }
  }
}

/** The general im2col panel (outputs narrower than NR − 1 columns): every lane on its own. */
function packBIm2colLanes(panel: usize, x: usize, args: usize, k0: i32, kc: i32, jA: i32, n: i32): void {
  const H = arg(args, H_), W = arg(args, W_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  const OW = arg(args, OW_);
  const taps = KH * KW;
  const oy0 = jA / OW;
  const ox0 = jA - oy0 * OW;
  let c = k0 / taps;
  const rem = k0 - c * taps;
  let ky = rem / KW;
  let kx = rem - ky * KW;
  for (let k = 0; k < kc; k++) {
    const out = at(panel, k * NR);
    const plane = at(x, c * H * W);
    let oy = oy0;
    let ox = ox0;
    for (let l = 0; l < n; l++) {
      const iy = oy * sh - ph + ky * dh;
      const ix = ox * sw - pw + kx * dw;
      store<f32>(at(out, l), <u32>iy < <u32>H && <u32>ix < <u32>W ? load<f32>(at(plane, iy * W + ix)) : <f32>0);
      if (++ox == OW) { ox = 0; oy++; }
    }
    if (++kx == KW) { kx = 0; if (++ky == KH) { ky = 0; c++; } }
  }
}

/**
 * The transposed unrolled input (filter gradient): B[k][j] = im2col(x)[j][k], k = (oy, ox) an output
 * position, j = (c, ky, kx) a filter tap.
 */
function packBIm2colT(dst: usize, x: usize, args: usize, k0: i32, kc: i32, j0: i32, cols: i32, N: i32): void {
  const H = arg(args, H_), W = arg(args, W_), KH = arg(args, KH_), KW = arg(args, KW_);
  const sh = arg(args, SH), sw = arg(args, SW), ph = arg(args, PH), pw = arg(args, PW), dh = arg(args, DH), dw = arg(args, DW);
  const OW = arg(args, OW_);
  const HW = H * W;
  const taps = KH * KW;
  const oyStart = k0 / OW;
  const oxStart = k0 - oyStart * OW;
  for (let jp = 0; jp < cols; jp += NR) {
    const panel = at(dst, jp * kc);
    const n = imin(NR, N - (j0 + jp));
    for (let l = 0; l < NR; l++) {
      if (l >= n) {
        for (let k = 0; k < kc; k++) store<f32>(at(panel, k * NR + l), 0);
        continue;
      }
      const j = j0 + jp + l;
      const c = j / taps;
      const rem = j - c * taps;
      const ky = rem / KW;
      const kx = rem - ky * KW;
      const plane = at(x, c * HW);
      let oy = oyStart;
      let ox = oxStart;
      for (let k = 0; k < kc; k++) {
        const iy = oy * sh - ph + ky * dh;
        const ix = ox * sw - pw + kx * dw;
        store<f32>(at(panel, k * NR + l), iy >= 0 && iy < H && ix >= 0 && ix < W ? load<f32>(at(plane, iy * W + ix)) : <f32>0);
        if (++ox == OW) { ox = 0; oy++; }
      }
    }
  }
}

/** Bytes of one packed B block (KC × nt, nt rounded up to NR). */
@inline function blockBytes(nt: i32): usize {
  return <usize>(KC * ((nt + NR - 1) / NR) * NR * 4);
}

/** Packs B rows [k0, k0 + kc) of K batch kb, columns [n0, n0 + cols), into dst. */
function packB(dst: usize, args: usize, bBase: usize, kb: i32, k0: i32, kc: i32, n0: i32, cols: i32): void {
  const N = arg(args, N_);
  const bMode = arg(args, BMODE);
  const b = at(bBase, kb * arg(args, KBSB));
  if (bMode == B_IM2COL) packBIm2col(dst, b, args, k0, kc, n0, cols, N);
  else if (bMode == B_IM2COL_T) packBIm2colT(dst, b, args, k0, kc, n0, cols, N);
  else packBStrided(dst, b, arg(args, RSB), arg(args, CSB), k0, kc, n0, cols);
}

/**
 * Task t of the packing pass: the B block of (batch entry, column block, K slice) = t, written where
 * gemmTask will read it. Used when several tasks share a column block (rows split over tasks).
 */
export function gemmPackBTask(args: usize, t: i32): void {
  const N = arg(args, N_), K = arg(args, K_);
  const nt = arg(args, NT);
  const tilesN = arg(args, TILES_N);
  const slicesPerKb = (K + KC - 1) / KC;
  const slices = slicesPerKb * arg(args, KBATCHES);
  const blockIndex = t / slices;
  const s = t - blockIndex * slices;
  const batch = blockIndex / tilesN;
  const n0 = (blockIndex - batch * tilesN) * nt;
  const kb = s / slicesPerKb;
  const k0 = (s - kb * slicesPerKb) * KC;
  const bBase = <usize>load<u32>(ptr(args, TABLE) + <usize>(batch * 12), 4);
  packB(ptr(args, PREPACKED) + <usize>t * blockBytes(nt), args, bBase, kb, k0, imin(KC, K - k0), n0, imin(N, n0 + nt) - n0);
}

/** Bytes of one packed A strip (KC × MR, as packA writes it). */
const STRIP_BYTES: usize = KC * MR * 4;

/**
 * Task t of the A packing pass: a group of STRIPS_PER_TASK strips of one K slice
 * (t = slice · groups + group). The strip of rows [i0, i0 + MR) of slice s lands at
 * (s · strips + i0 / MR) · STRIP_BYTES, where gemmTask reads it.
 */
export function gemmPackATask(args: usize, t: i32): void {
  const M = arg(args, M_), K = arg(args, K_);
  const per = arg(args, STRIPS_PER_TASK);
  const strips = (M + MR - 1) / MR;
  const groups = (strips + per - 1) / per;
  const s = t / groups;
  const g = t - s * groups;
  const k0 = s * KC;
  const kc = imin(KC, K - k0);
  const a = <usize>load<u32>(ptr(args, TABLE));
  const dst = ptr(args, PACK_A_DST);
  for (let strip = g * per; strip < imin(strips, (g + 1) * per); strip++) {
    const i0 = strip * MR;
    packA(dst + <usize>(s * strips + strip) * STRIP_BYTES, a, arg(args, RSA), arg(args, CSA), i0, imin(MR, M - i0), k0, kc);
  }
}

export function gemmTask(args: usize, t: i32, tid: i32): void {
  const M = arg(args, M_), N = arg(args, N_), K = arg(args, K_);
  const kBatches = arg(args, KBATCHES);
  const ldc = arg(args, LDC);
  const accumulate = arg(args, ACCUMULATE) != 0;
  const mt = arg(args, MT), nt = arg(args, NT);
  const tilesM = arg(args, TILES_M), tilesN = arg(args, TILES_N);
  const rsA = arg(args, RSA), csA = arg(args, CSA), kbsA = arg(args, KBSA);
  const prepacked = ptr(args, PREPACKED);
  const aPacked = arg(args, AMODE) == A_PACKED;
  const strips = (M + MR - 1) / MR;

  const perBatch = tilesM * tilesN;
  const batch = t / perBatch;
  const r = t - batch * perBatch;
  const tm = r / tilesN;
  const tn = r - tm * tilesN;
  const m0 = tm * mt;
  const m1 = imin(M, m0 + mt);
  const n0 = tn * nt;
  const cols = imin(N, n0 + nt) - n0;

  const entry = ptr(args, TABLE) + <usize>(batch * 12);
  const aBase = <usize>load<u32>(entry);
  const bBase = <usize>load<u32>(entry, 4);
  const cBase = <usize>load<u32>(entry, 8);

  const scratch = ptr(args, SCRATCH) + <usize>(tid * arg(args, SCRATCH_STRIDE));
  const packedA = scratch + blockBytes(nt);
  const tile = packedA + <usize>(KC * MR * 4 + 64);
  const slicesPerKb = (K + KC - 1) / KC;
  // The prepacked blocks of this (batch entry, column block), one per K slice in order.
  const ownBlocks = prepacked + <usize>((batch * tilesN + tn) * slicesPerKb * kBatches) * blockBytes(nt);

  for (let kb = 0; kb < kBatches; kb++) {
    const a = at(aBase, kb * kbsA);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = imin(KC, K - k0);
      const add = accumulate || kb > 0 || k0 > 0;
      let packedB = scratch;
      if (prepacked) packedB = ownBlocks + <usize>(kb * slicesPerKb + k0 / KC) * blockBytes(nt);
      else packB(packedB, args, bBase, kb, k0, kc, n0, cols);
      for (let i0 = m0; i0 < m1; i0 += MR) {
        const rows = imin(MR, m1 - i0);
        let pa = packedA;
        if (aPacked) pa = aBase + <usize>((k0 / KC) * strips + i0 / MR) * STRIP_BYTES;
        else packA(pa, a, rsA, csA, i0, rows, k0, kc);
        for (let jp = 0; jp < cols; jp += NR) {
          const n = imin(NR, cols - jp);
          const c = at(cBase, i0 * ldc + n0 + jp);
          const pb = at(packedB, jp * kc);
          if (rows == MR && n == NR) {
            microKernel(pa, pb, kc, c, ldc, add);
          } else {
            // Edge tile: compute the whole tile into scratch, then copy the part that exists.
            microKernel(pa, pb, kc, tile, NR, false);
            for (let i = 0; i < rows; i++) {
              for (let j = 0; j < n; j++) {
                const p = at(c, i * ldc + j);
                const v = load<f32>(at(tile, i * NR + j));
                store<f32>(p, add ? load<f32>(p) + v : v);
              }
            }
          }
        }
      }
    }
  }
}

// gemv: [N, K, csA, rsB, columnsPerTask, table]; for each table entry (a, b, c): c[j] = Σ_k a[k·csA]·b[k·rsB + j].
// A task owns a block of columns of one entry, kept in L1 while the rows of B stream by in order
// (c += a_k · B[k, block] for k ascending: every sum in a fixed order, whatever the split).

export function gemvTask(args: usize, t: i32): void {
  const N = arg(args, 0), K = arg(args, 1), csA = arg(args, 2), rsB = arg(args, 3), cols = arg(args, 4);
  const tilesN = (N + cols - 1) / cols;
  const e = t / tilesN;
  const j0 = (t - e * tilesN) * cols;
  const n = imin(cols, N - j0);
  const entry = ptr(args, 5) + <usize>(e * 12);
  const a = <usize>load<u32>(entry);
  const b = <usize>load<u32>(entry, 4);
  const out = at(<usize>load<u32>(entry, 8), j0);
  const n4 = n & ~3;
  for (let j = 0; j < n4; j += 4) v128.store(at(out, j), f32x4.splat(0));
  for (let j = n4; j < n; j++) store<f32>(at(out, j), 0);
  for (let k = 0; k < K; k++) {
    const ak = load<f32>(at(a, k * csA));
    const av = f32x4.splat(ak);
    const row = at(b, k * rsB + j0);
    let j = 0;
    for (; j < n4; j += 4) {
      const p = at(out, j);
      v128.store(p, f32x4.add(v128.load(p), f32x4.mul(av, v128.load(at(row, j)))));
    }
    for (; j < n; j++) {
      const p = at(out, j);
      store<f32>(p, load<f32>(p) + ak * load<f32>(at(row, j)));
    }
  }
}
