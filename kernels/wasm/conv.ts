// Plans for the three convolution operators in NCHW (no layout conversion anywhere):
// - forward: per image and group, y = W · im2col(x), with im2col read while packing B;
// - backward-input: cols = Wᵀ · dy per image and group, then col2im folds cols back into dx (1×1
//   stride-1 convolutions write dx directly);
// - backward-filter: dW = Σ_n dy_n · im2col(x_n)ᵀ, the sum over images running inside the GEMM's K loop;
// - depthwise (one input channel per group): direct kernels for all three;
// - forward with one group, rows of 8 or more and few output channels: the direct convolution
//   (conv-direct.ts), which reads the input in place of packing im2col and applies the epilogue at the store.

import type { ConvGeometry, KernelParams } from '../../engine/backend.ts';
import { sizeOf } from '../../engine/shape.ts';
import { B_IM2COL, B_IM2COL_T, B_STRIDED, K_COL2IM, K_DEPTHWISE, K_DEPTHWISE_BACKWARD_FILTER, K_DEPTHWISE_BACKWARD_INPUT } from './assembly/ids.ts';
import type { WasmContext } from './context.ts';
import { convDirect, directConvApplies, directConvChosen } from './conv-direct.ts';
import { epilogueInPlace } from './epilogue.ts';
import { gemm, packA, packedABytes, type GemmEntry, type Im2col, type StridedA } from './gemm.ts';

interface Dims {
  N: number; C: number; H: number; W: number; O: number; Cg: number; Og: number; KH: number; KW: number; OH: number; OW: number;
  groups: number; P: number; HW: number; Kc: number;
}

function dims(g: ConvGeometry): Dims {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  return { N, C, H, W, O, Cg, Og: O / g.groups, KH, KW, OH, OW, groups: g.groups, P: OH * OW, HW: H * W, Kc: Cg * KH * KW };
}

/** One input channel per group: the direct depthwise kernels. */
export function isDepthwise(g: ConvGeometry): boolean {
  return g.groups > 1 && g.wShape[1] === 1;
}

/** A 1×1 stride-1 unpadded convolution whose output has the input's size: a plain matrix product. */
function isPointwise(g: ConvGeometry): boolean {
  const d = dims(g);
  return d.KH === 1 && d.KW === 1 && g.stride[0] === 1 && g.stride[1] === 1 && g.padding[0] === 0 && g.padding[1] === 0 && d.OH === d.H && d.OW === d.W;
}

function im2col(g: ConvGeometry, d: Dims): Im2col {
  return { C: d.Cg, H: d.H, W: d.W, KH: d.KH, KW: d.KW, sh: g.stride[0], sw: g.stride[1], ph: g.padding[0], pw: g.padding[1], dh: g.dilation[0], dw: g.dilation[1], OW: d.OW };
}

/** Geometry words shared by col2im and the depthwise kernels (indices 3–14). */
function geometryWords(g: ConvGeometry, d: Dims): number[] {
  return [d.H, d.W, d.OH, d.OW, d.KH, d.KW, g.stride[0], g.stride[1], g.padding[0], g.padding[1], g.dilation[0], g.dilation[1]];
}

const PLANE_WORK = 1 << 15;

function depthwise(ctx: WasmContext, kernel: number, inputs: [number, number], out: number, g: ConvGeometry, d: Dims, units: number, workPerUnit: number): void {
  const per = Math.max(1, Math.floor(PLANE_WORK / Math.max(1, workPerUnit)));
  const mult = d.O / d.C;
  ctx.run(kernel, [inputs[0], inputs[1], out, ...geometryWords(g, d), per, d.N, d.C, mult], Math.ceil(units / per), units * workPerUnit);
}

/**
 * Paths the benchmarks and tests can steer: `direct` off sends every forward convolution to the GEMM,
 * `always` sends every one the direct convolution applies to there (whatever its channel count).
 */
export const wasmConvPaths = { direct: true, always: false };

export function conv2d(ctx: WasmContext, [x, w, ...extra]: number[], g: KernelParams['conv2d']): unknown {
  if (wasmConvPaths.direct && (wasmConvPaths.always ? directConvApplies(g) : directConvChosen(g))) return convDirect(ctx, x, w, extra, g).storage;
  const out = convolve(ctx, x, w, g);
  if (g.epilogue) epilogueInPlace(ctx, out.ptr, extra, g, g.epilogue);
  return out.storage;
}

function convolve(ctx: WasmContext, x: number, w: number, g: ConvGeometry): { ptr: number; storage: unknown } {
  const d = dims(g);
  const out = ctx.output(sizeOf(g.yShape));
  if (isDepthwise(g)) {
    depthwise(ctx, K_DEPTHWISE, [x, w], out.ptr, g, d, d.N * d.O, 2 * d.P * d.KH * d.KW);
    return out;
  }
  // A = the group's weights (Og × Kc), packed once per weight tensor and kept with it.
  const A = packedWeights(ctx, d, 'forward', (grp) => ({ a: w + 4 * grp * d.Og * d.Kc, M: d.Og, K: d.Kc, rsA: d.Kc, csA: 1 }));
  const entries: GemmEntry[] = [];
  for (let n = 0; n < d.N; n++) {
    for (let grp = 0; grp < d.groups; grp++) {
      entries.push({ a: A[grp], b: x + 4 * (n * d.C + grp * d.Cg) * d.HW, c: out.ptr + 4 * (n * d.O + grp * d.Og) * d.P });
    }
  }
  const pointwise = isPointwise(g);
  gemm(ctx, {
    M: d.Og, N: d.P, K: d.Kc, entries, aPacked: true, rsA: d.Kc, csA: 1, ldc: d.P,
    ...(pointwise ? { bMode: B_STRIDED, rsB: d.HW, csB: 1 } : { bMode: B_IM2COL, im2col: im2col(g, d) }),
  });
  return out;
}

/**
 * Each group's weight matrix (input 1 of the convolution), packed for the GEMM as `slice` describes it and
 * kept with the weight storage (ctx.cached): weights are constant, so every later call with them, each
 * image and each explanation, skips the packing.
 */
function packedWeights(ctx: WasmContext, d: Dims, how: 'forward' | 'transposed', slice: (grp: number) => StridedA): number[] {
  const packed: number[] = [];
  for (let grp = 0; grp < d.groups; grp++) {
    const a = slice(grp);
    packed.push(ctx.cached(1, `conv ${how} ${grp}/${d.groups} ${a.M}×${a.K}`, packedABytes(a.M, a.K), (dst) => packA(ctx, a, dst)));
  }
  return packed;
}

/** Unrolled gradients kept at once (floats): images are processed in chunks that fit. */
const COLS_BUDGET = 1 << 24;

export function conv2dBackwardInput(ctx: WasmContext, [dy, w]: number[], g: ConvGeometry): unknown {
  const d = dims(g);
  const out = ctx.output(sizeOf(g.xShape));
  if (isDepthwise(g)) {
    depthwise(ctx, K_DEPTHWISE_BACKWARD_INPUT, [dy, w], out.ptr, g, d, d.N * d.C, 2 * (d.O / d.C) * d.P * d.KH * d.KW);
    return out.storage;
  }
  // A(i = (c, ky, kx), k = o) = w[g·Og + o][i]: the weights read transposed, packed once and kept.
  const packed = packedWeights(ctx, d, 'transposed', (grp) => ({ a: w + 4 * grp * d.Og * d.Kc, M: d.Kc, K: d.Og, rsA: 1, csA: d.Kc }));
  const A = (grp: number) => packed[grp];
  const B = (n: number, grp: number) => dy + 4 * (n * d.O + grp * d.Og) * d.P;
  if (isPointwise(g)) {
    const entries: GemmEntry[] = [];
    for (let n = 0; n < d.N; n++) for (let grp = 0; grp < d.groups; grp++) entries.push({ a: A(grp), b: B(n, grp), c: out.ptr + 4 * (n * d.C + grp * d.Cg) * d.HW });
    gemm(ctx, { M: d.Cg, N: d.P, K: d.Og, entries, aPacked: true, rsA: 1, csA: d.Kc, rsB: d.P, csB: 1, ldc: d.HW });
    return out.storage;
  }
  const perImage = d.C * d.KH * d.KW * d.P;
  const chunk = Math.max(1, Math.min(d.N, Math.floor(COLS_BUDGET / perImage)));
  const bytes = 4 * chunk * perImage;
  const cols = ctx.temp(bytes);
  try {
    for (let n0 = 0; n0 < d.N; n0 += chunk) {
      const nc = Math.min(chunk, d.N - n0);
      const entries: GemmEntry[] = [];
      for (let n = 0; n < nc; n++) {
        for (let grp = 0; grp < d.groups; grp++) entries.push({ a: A(grp), b: B(n0 + n, grp), c: cols + 4 * (n * d.C + grp * d.Cg) * d.KH * d.KW * d.P });
      }
      gemm(ctx, { M: d.Kc, N: d.P, K: d.Og, entries, aPacked: true, rsA: 1, csA: d.Kc, rsB: d.P, csB: 1, ldc: d.P });
      const planes = nc * d.C;
      const per = Math.max(1, Math.floor(PLANE_WORK / (d.KH * d.KW * d.P)));
      ctx.run(K_COL2IM, [cols, out.ptr + 4 * n0 * d.C * d.HW, planes, ...geometryWords(g, d), per], Math.ceil(planes / per), planes * d.KH * d.KW * d.P);
    }
  } finally {
    ctx.release(cols, bytes);
  }
  return out.storage;
}

export function conv2dBackwardFilter(ctx: WasmContext, [x, dy]: number[], g: ConvGeometry): unknown {
  const d = dims(g);
  const out = ctx.output(sizeOf(g.wShape));
  if (isDepthwise(g)) {
    depthwise(ctx, K_DEPTHWISE_BACKWARD_FILTER, [x, dy], out.ptr, g, d, d.O, 2 * d.N * d.P * d.KH * d.KW);
    return out.storage;
  }
  const entries: GemmEntry[] = [];
  for (let grp = 0; grp < d.groups; grp++) {
    entries.push({ a: dy + 4 * grp * d.Og * d.P, b: x + 4 * grp * d.Cg * d.HW, c: out.ptr + 4 * grp * d.Og * d.Kc });
  }
  gemm(ctx, {
    M: d.Og, N: d.Kc, K: d.P, kBatches: d.N, entries, rsA: d.P, csA: 1, kbsA: d.O * d.P, kbsB: d.C * d.HW, ldc: d.Kc,
    ...(isPointwise(g) ? { bMode: B_STRIDED, rsB: 1, csB: d.HW } : { bMode: B_IM2COL_T, im2col: im2col(g, d) }),
  });
  return out.storage;
}
