// Plans for the packed GEMM (assembly/gemm.ts): the task split and the argument words, and batched
// matmul with numpy batch broadcasting on top of it.

import type { KernelParams } from '../../engine/backend.ts';
import { broadcastStrides, sizeOf } from '../../engine/shape.ts';
import { A_PACKED, A_STRIDED, B_STRIDED, GEMM_KC, GEMM_MR, GEMM_NR, K_GEMM, K_GEMM_PACK_A, K_GEMM_PACK_B, K_GEMV, MAX_TASKS } from './assembly/ids.ts';
import { EXTRA_ADDRESS, EXTRA_CAPACITY, type WasmContext } from './context.ts';
import { fillAt } from './elementwise.ts';

/** One product C = A·B (byte addresses) of a batch. */
export interface GemmEntry {
  a: number;
  b: number;
  c: number;
}

/** Convolution geometry for B read through im2col addressing (B_IM2COL, B_IM2COL_T). */
export interface Im2col {
  C: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  OW: number;
}

export interface Gemm {
  M: number;
  N: number;
  K: number;
  entries: GemmEntry[];
  /** A is summed over kBatches slices (offsets kbsA/kbsB elements apart); default 1. */
  kBatches?: number;
  /** A[i][k] at a + (i·rsA + k·csA) floats. */
  rsA: number;
  csA: number;
  kbsA?: number;
  bMode?: number;
  rsB?: number;
  csB?: number;
  kbsB?: number;
  im2col?: Im2col;
  ldc: number;
  /** C += A·B instead of C = A·B. */
  accumulate?: boolean;
  /** Every entry's `a` is A packed by `packA` (then rsA and csA are unused and kBatches is 1). */
  aPacked?: boolean;
}

/** Columns of C per task: the packed B block (KC × NT floats) stays in L2. */
const NT = 256;
/** Aim for at least this many tasks so threads share the work evenly (a late one has little left). */
const MIN_TASKS = 16;
/** Below this many flops a task is not worth splitting further. */
const TASK_FLOPS = 1 << 22;

const roundUp = (v: number, m: number) => Math.ceil(v / m) * m;

export function gemm(ctx: WasmContext, g: Gemm): void {
  const kBatches = g.kBatches ?? 1;
  if (g.M === 0 || g.N === 0 || g.entries.length === 0) return;
  if (g.K === 0 || kBatches === 0) {
    if (!g.accumulate) for (const e of g.entries) for (let i = 0; i < g.M; i++) fillAt(ctx, e.c + 4 * i * g.ldc, g.N, 0);
    return;
  }
  if (g.aPacked && kBatches !== 1) throw new Error('wasm gemm: internal: packed A with K batches');
  if (g.M === 1 && kBatches === 1 && !g.accumulate && !g.aPacked && (g.bMode ?? B_STRIDED) === B_STRIDED && g.csB === 1) {
    gemv(ctx, g);
    return;
  }
  // At most EXTRA_CAPACITY / 3 entries per dispatch (the entry table lives in the argument area).
  const perDispatch = Math.floor(EXTRA_CAPACITY / 3);
  if (g.entries.length > perDispatch) {
    for (let i = 0; i < g.entries.length; i += perDispatch) gemm(ctx, { ...g, entries: g.entries.slice(i, i + perDispatch) });
    return;
  }
  const batches = g.entries.length;
  const flops = 2 * g.M * g.N * g.K * kBatches * batches;
  // Column blocks of at most NT, all of about the same width (the last one is not a sliver).
  let tilesN = Math.ceil(g.N / NT);
  let tilesM = 1;
  // Few tasks for a large product: split further, along the dimension with more register tiles. Tasks
  // then share packed operands, which are packed once beforehand (below), so splitting costs no repacking.
  const wanted = Math.min(MIN_TASKS, Math.max(1, Math.floor(flops / TASK_FLOPS)));
  if (batches * tilesN < wanted) {
    const more = Math.ceil(wanted / (batches * tilesN));
    if (g.N / GEMM_NR >= g.M / GEMM_MR) tilesN = Math.min(Math.ceil(g.N / (4 * GEMM_NR)), tilesN * more);
    else tilesM = Math.min(Math.ceil(g.M / (4 * GEMM_MR)), more);
  }
  const nt = roundUp(Math.ceil(g.N / Math.max(1, tilesN)), GEMM_NR);
  tilesN = Math.ceil(g.N / nt);
  tilesM = Math.max(1, tilesM);
  const mt = roundUp(Math.ceil(g.M / tilesM), GEMM_MR);
  tilesM = Math.ceil(g.M / mt);
  const tasks = batches * tilesM * tilesN;
  if (tasks > MAX_TASKS) {
    const half = Math.ceil(batches / 2);
    gemm(ctx, { ...g, entries: g.entries.slice(0, half) });
    gemm(ctx, { ...g, entries: g.entries.slice(half) });
    return;
  }
  const scratchBytes = GEMM_KC * roundUp(nt, GEMM_NR) * 4 + GEMM_KC * GEMM_MR * 4 + 64 + GEMM_MR * GEMM_NR * 4 + 64;
  const scratch = ctx.scratch(scratchBytes);
  const slicesPerKb = Math.ceil(g.K / GEMM_KC);
  // Rows split over tasks: several tasks would pack the same B blocks, so pack them once, first.
  const packBTasks = batches * tilesN * slicesPerKb * kBatches;
  const prepackB = tilesM > 1 && packBTasks <= MAX_TASKS;
  const bBytes = prepackB ? packBTasks * GEMM_KC * roundUp(nt, GEMM_NR) * 4 : 0;
  // One A for every entry used by several tasks: pack it once, first (unless it comes packed).
  const shareA = !g.aPacked && kBatches === 1 && batches * tilesN > 1 && g.entries.every((e) => e.a === g.entries[0].a);
  const aBytes = shareA ? packedABytes(g.M, g.K) : 0;
  const packedB = prepackB ? ctx.temp(bBytes) : 0;
  const packedA = shareA ? ctx.temp(aBytes) : 0;
  const c = g.im2col;
  const words = gemmWords({
    M: g.M, N: g.N, K: g.K, batches, kBatches, aMode: g.aPacked || shareA ? A_PACKED : A_STRIDED, bMode: g.bMode ?? B_STRIDED, ldc: g.ldc,
    accumulate: g.accumulate ? 1 : 0, mt, nt, scratch: scratch.ptr, scratchStride: scratch.stride, rsA: g.rsA, csA: g.csA, kbsA: g.kbsA ?? 0,
    rsB: g.rsB ?? 0, csB: g.csB ?? 0, kbsB: g.kbsB ?? 0, tilesM, tilesN, packedB, im2col: c,
  });
  const table = g.entries.flatMap((e) => [shareA ? packedA : e.a, e.b, e.c]);
  try {
    if (shareA) packA(ctx, { a: g.entries[0].a, M: g.M, K: g.K, rsA: g.rsA, csA: g.csA }, packedA);
    if (prepackB) ctx.run(K_GEMM_PACK_B, words, packBTasks, (bBytes / 4) * 8, table);
    ctx.run(K_GEMM, words, tasks, flops, table);
  } finally {
    if (prepackB) ctx.release(packedB, bBytes);
    if (shareA) ctx.release(packedA, aBytes);
  }
}

/** Below this many flops a GEMV task is not worth splitting further. */
const GEMV_TASK_FLOPS = 1 << 19;

/**
 * One row of A times B (row-major rows of B): the packed GEMM would pack all of B for a single row (and
 * compute a 5-row tile of which one row is used); this reads each row of B once, in order.
 */
function gemv(ctx: WasmContext, g: Gemm): void {
  const perDispatch = Math.floor(EXTRA_CAPACITY / 3);
  const entries = g.entries;
  const wanted = Math.min(MIN_TASKS, Math.max(1, Math.floor((2 * g.N * g.K * entries.length) / GEMV_TASK_FLOPS)));
  const tilesPerEntry = Math.max(1, Math.ceil(wanted / entries.length));
  const cols = roundUp(Math.ceil(g.N / tilesPerEntry), 16);
  const tilesN = Math.ceil(g.N / cols);
  const perChunk = Math.max(1, Math.min(perDispatch, Math.floor(MAX_TASKS / tilesN)));
  for (let i = 0; i < entries.length; i += perChunk) {
    const chunk = entries.slice(i, i + perChunk);
    ctx.run(K_GEMV, [g.N, g.K, g.csA, g.rsB ?? 0, cols, EXTRA_ADDRESS], chunk.length * tilesN, 2 * g.N * g.K * chunk.length, chunk.flatMap((e) => [e.a, e.b, e.c]));
  }
}

/** A strided operand: A[i][k] at a + 4·(i·rsA + k·csA) bytes. */
export interface StridedA {
  a: number;
  M: number;
  K: number;
  rsA: number;
  csA: number;
}

/** Bytes of an M × K matrix packed by `packA`: every K slice's MR-row strips, zero-padded. */
export function packedABytes(M: number, K: number): number {
  return Math.ceil(K / GEMM_KC) * Math.ceil(M / GEMM_MR) * GEMM_KC * GEMM_MR * 4;
}

/** Packs A into `dst` (packedABytes bytes), the layout `gemm` reads when `aPacked` is set. */
export function packA(ctx: WasmContext, a: StridedA, dst: number): void {
  const slices = Math.ceil(a.K / GEMM_KC);
  const strips = Math.ceil(a.M / GEMM_MR);
  // About 4096 floats per task.
  const stripsPerTask = Math.max(1, Math.ceil(4096 / Math.min(a.K, GEMM_KC) / GEMM_MR));
  const tasks = slices * Math.ceil(strips / stripsPerTask);
  const words = gemmWords({ M: a.M, K: a.K, rsA: a.rsA, csA: a.csA, packADst: dst, stripsPerTask });
  ctx.run(K_GEMM_PACK_A, words, tasks, 8 * a.M * a.K, [a.a, 0, 0]);
}

/** The argument words of the GEMM kernels (assembly/gemm.ts reads them by these positions). */
function gemmWords(w: Partial<Record<'M' | 'N' | 'K' | 'batches' | 'kBatches' | 'aMode' | 'bMode' | 'ldc' | 'accumulate' | 'mt' | 'nt' | 'scratch' | 'scratchStride' | 'rsA' | 'csA' | 'kbsA' | 'rsB' | 'csB' | 'kbsB' | 'tilesM' | 'tilesN' | 'packedB' | 'packADst' | 'stripsPerTask', number>> & { im2col?: Im2col }): number[] {
  const c = w.im2col;
  const v = (x: number | undefined) => x ?? 0;
  return [
    v(w.M), v(w.N), v(w.K), v(w.batches), v(w.kBatches), v(w.aMode), v(w.bMode), v(w.ldc), v(w.accumulate), v(w.mt), v(w.nt),
    v(w.scratch), v(w.scratchStride), EXTRA_ADDRESS, v(w.rsA), v(w.csA), v(w.kbsA), v(w.rsB), v(w.csB), v(w.kbsB),
    v(c?.C), v(c?.H), v(c?.W), v(c?.KH), v(c?.KW), v(c?.sh), v(c?.sw), v(c?.ph), v(c?.pw), v(c?.dh), v(c?.dw), v(c?.OW),
    v(w.tilesM), v(w.tilesN), v(w.packedB), v(w.packADst), v(w.stripsPerTask),
  ];
}

export function matmul(ctx: WasmContext, [a, b]: number[], p: KernelParams['matmul']): unknown {
  const r = p.outShape.length;
  const M = p.outShape[r - 2];
  const N = p.outShape[r - 1];
  const K = p.aShape[p.aShape.length - 1];
  const out = ctx.output(sizeOf(p.outShape));
  const batchShape = p.outShape.slice(0, r - 2);
  const aStrides = broadcastStrides(p.aShape.slice(0, -2), batchShape);
  const bStrides = broadcastStrides(p.bShape.slice(0, -2), batchShape);
  const batches = sizeOf(batchShape);
  const entries: GemmEntry[] = [];
  const idx = new Array<number>(batchShape.length).fill(0);
  for (let t = 0; t < batches; t++) {
    let ao = 0;
    let bo = 0;
    idx.forEach((v, d) => {
      ao += v * aStrides[d];
      bo += v * bStrides[d];
    });
    entries.push({ a: a + 4 * ao * M * K, b: b + 4 * bo * K * N, c: out.ptr + 4 * t * M * N });
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < batchShape[d]) break;
      idx[d] = 0;
    }
  }
  gemm(ctx, { M, N, K, entries, rsA: K, csA: 1, rsB: N, csB: 1, ldc: N });
  return out.storage;
}
