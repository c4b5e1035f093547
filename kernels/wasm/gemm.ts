// Plans for the packed GEMM (assembly/gemm.ts): the task split and the argument words, and batched
// matmul with numpy batch broadcasting on top of it.

import type { KernelParams } from '../../engine/backend.ts';
import { broadcastStrides, sizeOf } from '../../engine/shape.ts';
import { A_STRIDED, B_STRIDED, GEMM_KC, GEMM_MR, GEMM_NR, K_GEMM, K_GEMM_PACK_A, K_GEMM_PACK_B, MAX_TASKS } from './assembly/ids.ts';
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
  // One A for every entry (convolution weights) used by several tasks: pack its strips once, first.
  const strips = Math.ceil(g.M / GEMM_MR);
  const shareA = kBatches === 1 && batches * tilesN > 1 && g.entries.every((e) => e.a === g.entries[0].a);
  const stripsPerTask = Math.max(1, Math.ceil(4096 / Math.min(g.K, GEMM_KC) / GEMM_MR));
  const packATasks = slicesPerKb * Math.ceil(strips / stripsPerTask);
  const prepackA = shareA && packATasks <= MAX_TASKS;
  const aBytes = prepackA ? slicesPerKb * strips * GEMM_KC * GEMM_MR * 4 : 0;
  const packedB = prepackB ? ctx.temp(bBytes) : 0;
  const packedA = prepackA ? ctx.temp(aBytes) : 0;
  const c = g.im2col;
  const words = [
    g.M, g.N, g.K, batches, kBatches, A_STRIDED, g.bMode ?? B_STRIDED, g.ldc, g.accumulate ? 1 : 0, mt, nt,
    scratch.ptr, scratch.stride, EXTRA_ADDRESS, g.rsA, g.csA, g.kbsA ?? 0, g.rsB ?? 0, g.csB ?? 0, g.kbsB ?? 0,
    c?.C ?? 0, c?.H ?? 0, c?.W ?? 0, c?.KH ?? 0, c?.KW ?? 0, c?.sh ?? 0, c?.sw ?? 0, c?.ph ?? 0, c?.pw ?? 0, c?.dh ?? 0, c?.dw ?? 0, c?.OW ?? 0,
    tilesM, tilesN, packedB, packedA, stripsPerTask,
  ];
  const table = g.entries.flatMap((e) => [e.a, e.b, e.c]);
  try {
    if (prepackB) ctx.run(K_GEMM_PACK_B, words, packBTasks, (bBytes / 4) * 8, table);
    if (prepackA) ctx.run(K_GEMM_PACK_A, words, packATasks, (aBytes / 4) * 8, table);
    ctx.run(K_GEMM, words, tasks, flops, table);
  } finally {
    if (prepackB) ctx.release(packedB, bBytes);
    if (prepackA) ctx.release(packedA, aBytes);
  }
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
