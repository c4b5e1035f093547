// Plans the direct convolution (assembly/conv-direct.ts): which convolutions take it, the task split,
// the staged-rows scratch, and the weights packed into 4-row strips once per weight tensor.

import type { ConvGeometry, KernelParams } from '../../engine/backend.ts';
import { sizeOf } from '../../engine/shape.ts';
import { DIRECT_MR as MR, DIRECT_NR as SEGMENT, DIRECT_TAP_WORDS as TAP_WORDS, K_CONV_DIRECT, K_CONV_DIRECT_PACK } from './assembly/ids.ts';
import type { WasmContext } from './context.ts';
import { ACTIVATION } from './epilogue.ts';

/** Staged input rows per task stay within this many bytes (they are read once per strip of 4 channels). */
const STAGE_BYTES = 192 * 1024;
/** Aim for at least this many tasks, so that the threads share the work evenly. */
const MIN_TASKS = 16;

/**
 * Most output channels for which the direct convolution is chosen. The GEMM packs the unrolled input once
 * per task and reuses it for every output channel, so its packing pays off with many channels, while the
 * direct convolution's 4 × 8 tile runs a little slower than the GEMM's 5 × 8 one: measured side by side
 * (bench/wasm-conv.ts; bench/RESULTS.md, "Session 3"), direct was 1.1–1.56× faster up to 64 channels
 * (ResNet-20, the ResNet stem) and 0.8–0.85× beyond (ResNet-18's later stages).
 */
const DIRECT_MAX_CHANNELS = 64;

/** Whether the direct convolution can compute this forward convolution (see `directConvChosen`). */
export function directConvApplies(g: ConvGeometry): boolean {
  const [, , KH, KW] = g.wShape;
  const OW = g.yShape[3];
  return g.groups === 1 && g.dilation[0] === 1 && g.dilation[1] === 1 && OW >= SEGMENT && KH * KW <= TAP_WORDS;
}

/**
 * Whether the forward convolution runs directly rather than through the GEMM: it applies and has at most
 * DIRECT_MAX_CHANNELS outputs. Decided from the geometry without the batch size, so an image's result never
 * depends on the batch it came in.
 */
export function directConvChosen(g: ConvGeometry): boolean {
  return directConvApplies(g) && g.wShape[0] <= DIRECT_MAX_CHANNELS;
}

/** y = act(conv(x, w) + bias + residual) into a new output; `extra` holds the epilogue's bias and residual pointers. */
export function convDirect(ctx: WasmContext, x: number, w: number, extra: readonly number[], g: KernelParams['conv2d']): { ptr: number; storage: unknown } {
  const [N, C, H, W] = g.xShape;
  const [O, , KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const out = ctx.output(sizeOf(g.yShape));
  if (N * O * OH * OW === 0) return out;
  const K = C * KH * KW;
  const strips = Math.ceil(O / MR);
  const packed = ctx.cached(1, `conv direct ${O}×${K}`, strips * MR * K * 4, (dst) => ctx.run(K_CONV_DIRECT_PACK, [w, dst, O, K], strips, O * K));
  // Rows per task: as many as the staging budget allows, fewer when the batch gives too few tasks.
  const Wq = Math.ceil(Math.max(W + 2 * pw, (OW - 1) * sw + KW) / sw);
  const rowFloats = sw * Wq;
  const stagedBytes = (rows: number) => 4 * C * ((rows - 1) * sh + KH) * rowFloats;
  let rows = OH;
  while (rows > 1 && stagedBytes(rows) > STAGE_BYTES) rows = Math.ceil(rows / 2);
  while (rows > 1 && N * Math.ceil(OH / rows) < MIN_TASKS) rows = Math.ceil(rows / 2);
  const blocks = Math.ceil(OH / rows);
  const scratch = ctx.scratch(4 * TAP_WORDS + stagedBytes(rows));
  const e = g.epilogue;
  const bias = e?.bias ? extra[0] : 0;
  const residual = e?.residual ? extra[e.bias ? 1 : 0] : 0;
  ctx.run(
    K_CONV_DIRECT,
    [x, packed, out.ptr, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, scratch.ptr, scratch.stride, rows, blocks, bias, residual, ACTIVATION[e?.activation ?? 'none'], Wq],
    N * blocks,
    2 * N * O * OH * OW * K,
  );
  return out;
}
