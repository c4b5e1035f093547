/// <reference types="@webgpu/types" />
// Every WebGPU kernel against the float64 CPU reference, plus the engine API on the GPU, races in
// workgroup memory, error reporting and memory stability.
//
// Method. Inputs are random float32 values (rounded with Math.fround), so both backends see identical
// numbers and the only difference is the arithmetic. Every GPU output and scratch buffer is poisoned with
// NaN before the kernel runs, so an element a kernel fails to write is caught. Tolerances are derived,
// per kernel, from float32 rounding and the accuracy WGSL grants its built-ins (never fitted to the
// results), with u = 2^-24 (unit roundoff) and U = 2^-23 (epsilon, ≥ one ulp of |c|·1):
// - copies, selections, comparisons, max, argmax, gather: exact (tolerance 0);
// - + − ×: correctly rounded (U·|c|); ÷ and sqrt: WGSL's 2.5 ulp (3U·|c|);
// - transcendental ops: WGSL's stated bounds (exp: 3 + 2|x| ulp; log: 3 ulp, or 2^-21 absolute on
//   [0.5, 2]) carried through our formulas; sin/cos: 2 ulp + 2^-21 absolute (the precision of common GPU
//   hardware; WGSL itself only promises 2^-11) — see `UNARY` below;
// - sums of L terms (reductions, scatter collisions, dot products): the recursive-summation bound
//   D·u·Σ|terms| where D is the longest chain of roundings in the kernel (reduce: D ≤ 80; dot products:
//   D = L + 1 for the products' own rounding).

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Backend, BinaryOp, ConvGeometry, KernelName, KernelParams, UnaryOp } from '../engine/backend.ts';
import * as E from '../engine/index.ts';
import { cpuBackend, getBackend, setBackend } from '../engine/runtime.ts';
import { broadcastShapes, sizeOf, stridesOf, type Shape } from '../engine/shape.ts';
import { DeviceLimitError, GpuError } from '../engine/webgpu/errors.ts';
import { WebGpuBackend, type DispatchRecord } from '../engine/webgpu/backend.ts';
import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { reflectShader } from '../engine/webgpu/pipelines.ts';
import { BufferPool } from '../engine/webgpu/buffers.ts';
import { TREE_PT, TREE_WG } from '../kernels/reduce.ts';
import { naiveKernels } from '../kernels/naive.ts';
import { WGSL_KERNELS } from '../kernels/index.ts';
import type { RaceDetectionResult } from 'wgsl_reflect';
// The ESM build has no .d.ts of its own (see engine/webgpu/pipelines.ts).
// @ts-expect-error TS7016
import * as wgslReflect from 'wgsl_reflect/wgsl_reflect.module.js';
import { rng } from './helpers/random.ts';
import { U, absAll, assertClose, broadcastIndex, convGeometry, describeParams, exact, outShapeOfPad, pick, rand, subsets, u, type Tol } from './helpers/float32.ts';
import { smallCnn } from './helpers/small-cnn.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const detectRaces = (wgslReflect as {
  detectRaces: (code: string, kernel: string, grid: number[], groups: Record<string, Record<string, unknown>>, config?: Record<string, unknown>) => RaceDetectionResult;
}).detectRaces;

const cpu = cpuBackend();
let gpu: WebGpuBackend;

/** Dispatches seen while the tests ran, for the race check (keyed by source and entry point). */
const dispatches = new Map<string, DispatchRecord>();

// ---------------------------------------------------------------------------------------------------
// Helpers







/** Runs `kernel` on both backends with the same inputs and compares. Returns the CPU result. */
async function check<K extends KernelName>(kernel: K, inputs: readonly ArrayLike<number>[], params: KernelParams[K], tol: Tol = exact, on: WebGpuBackend = gpu): Promise<Float64Array> {
  const gIn = inputs.map((v) => on.upload(v));
  const cIn = inputs.map((v) => cpu.upload(v));
  try {
    const g = on.run(kernel, gIn, params);
    const c = cpu.run(kernel, cIn, params);
    const got = await on.read(g);
    const want = cpu.readSync!(c);
    on.free(g);
    cpu.free(c);
    assertClose(`${kernel} ${describeParams(params)}`, got, want, tol);
    return want;
  } finally {
    gIn.forEach((s) => on.free(s));
    cIn.forEach((s) => cpu.free(s));
  }
}

/** The CPU kernel on given inputs (tolerance helpers: Σ|x| per output and the like). */
function cpuRun<K extends KernelName>(kernel: K, inputs: readonly ArrayLike<number>[], params: KernelParams[K]): Float64Array {
  const ins = inputs.map((v) => cpu.upload(v));
  const out = cpu.run(kernel, ins, params);
  const values = cpu.readSync!(out);
  [...ins, out].forEach((s) => cpu.free(s));
  return values;
}




const SIZES = [1, 3, 17, 63, 65, 129, 1000];

// ---------------------------------------------------------------------------------------------------

describeWebGpu('WebGPU kernels against the CPU reference', () => {
  beforeAll(async () => {
    gpu = await webgpuBackend(); // poisons every output with NaN
    gpu.debug.onDispatch = (d) => {
      if (reflectShader(d.code).workgroupVars.length === 0) return;
      // One dispatch per (source, entry point): the smallest seen. The emulator is slow (~1 s for a
      // 64-invocation GEMM workgroup), so constant variants of a source share one check.
      const key = `${d.entryPoint}|${d.code}`;
      const bytes = (r: DispatchRecord) => Object.values(r.storage).reduce((a, s) => a + s.size, 0) * r.grid[0] * r.grid[1] * r.grid[2];
      const prev = dispatches.get(key);
      if (!prev || bytes(d) < bytes(prev)) dispatches.set(key, d);
    };
    console.log(gpu.describe());
  });

  afterAll(() => {
    if (gpu) gpu.debug.onDispatch = undefined;
  });

  // --- fill, unary ----------------------------------------------------------------------------------

  it('fill: every size, including 0 and values float32 must round', async () => {
    for (const size of [0, ...SIZES]) {
      for (const value of [0, -2.5, 1 / 3, -Infinity, NaN]) await check('fill', [], { size, value }, (_i, c) => u * Math.abs(c));
    }
  });

  /** Domain and tolerance per unary op (see the file header for the reasoning). */
  const FTZ = 2 ** -126; // WGSL may flush subnormal results to zero
  const UNARY: Record<UnaryOp, { lo: number; hi: number; tol: (x: number, c: number) => number }> = {
    neg: { lo: -10, hi: 10, tol: () => 0 },
    abs: { lo: -10, hi: 10, tol: () => 0 },
    sign: { lo: -2, hi: 2, tol: () => 0 },
    relu: { lo: -2, hi: 2, tol: () => 0 },
    sqrt: { lo: 0, hi: 100, tol: (_x, c) => 3 * U * Math.abs(c) },
    reciprocal: { lo: -100, hi: 100, tol: (_x, c) => 3 * U * Math.abs(c) },
    // 1/sqrt(x): 2.5 ulp for each of sqrt and ÷.
    rsqrt: { lo: 1e-3, hi: 100, tol: (_x, c) => 5 * U * Math.abs(c) },
    // WGSL: exp within 3 + 2|x| ulp.
    exp: { lo: -20, hi: 20, tol: (x, c) => (3 + 2 * Math.abs(x)) * U * Math.abs(c) + FTZ },
    // WGSL: log within 3 ulp outside [0.5, 2], absolute 2^-21 inside.
    log: { lo: 1e-3, hi: 1e3, tol: (x, c) => 3 * U * Math.abs(c) + (x >= 0.5 && x <= 2 ? 2 ** -21 : 0) },
    // Series for 1 + x in (0.7, 1.42): a few roundings; log(1 + x) beyond: log's bound plus the rounding
    // of 1 + x (2^-24 absolute after log).
    log1p: {
      lo: -0.99,
      hi: 10,
      tol: (x, c) => {
        const series = x > -0.3 && x < 0.42;
        return 4 * U * Math.abs(c) + (series ? 0 : u + (x >= -0.5 && x <= 1 ? 2 ** -21 : 0));
      },
    },
    // exp(−2|x|) carries (3 + 4|x|) ulp into expm1, damped by the division; + roundings.
    tanh: { lo: -8, hi: 8, tol: (x, c) => (4 + 4 * Math.abs(x)) * U * Math.abs(c) + FTZ },
    // exp(−|x|) carries (3 + 2|x|) ulp; + two roundings.
    sigmoid: { lo: -15, hi: 15, tol: (x, c) => (5 + 2 * Math.abs(x)) * U * Math.abs(c) + FTZ },
    // Juffa's erff is < 1 ulp with exact exp; exp's error enters damped by e/(1 − e) ≤ 0.72 past 0.93.
    erf: { lo: -4, hi: 4, tol: (_x, c) => 6 * U * Math.abs(c) },
    sin: { lo: -10, hi: 10, tol: (x, c) => 2 * U * Math.abs(c) + 2 ** -21 + Math.abs(x) * U },
    cos: { lo: -10, hi: 10, tol: (x, c) => 2 * U * Math.abs(c) + 2 ** -21 + Math.abs(x) * U },
  };

  for (const op of Object.keys(UNARY) as UnaryOp[]) {
    it(`unary ${op}: random values at awkward sizes`, async () => {
      const { lo, hi, tol } = UNARY[op];
      for (const size of [0, ...SIZES]) {
        const x = rand(size, 100 + size, lo, hi);
        if (op === 'sign' || op === 'relu') x.forEach((_, i) => i % 5 === 0 && (x[i] = 0));
        // Tiny arguments, where expm1/log1p/tanh/erf/sin must keep relative accuracy.
        if (size >= 17 && lo < 0) for (let i = 0; i < 8; i++) x[i] = Math.fround((i - 4) * 1e-6);
        await check('unary', [x], { op, size }, (i, c) => tol(x[i], c));
      }
    });
  }

  it('unary: special values (NaN, ±∞, ±0, huge, tiny) agree with the CPU', async () => {
    const special = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 3e38, -3e38, 88.5, -88.5, 100, -100, 1, -1, 0.5];
    const x = Float64Array.from(special, Math.fround);
    for (const op of Object.keys(UNARY) as UnaryOp[]) {
      const tol = UNARY[op].tol;
      // sin/cos of huge arguments are outside any stated accuracy: compare them only where |x| ≤ 100.
      const keep = op === 'sin' || op === 'cos' ? (i: number) => !(Math.abs(x[i]) > 100) : () => true;
      await check('unary', [x], { op, size: x.length }, (i, c) => (keep(i) ? tol(x[i], c) : Infinity));
    }
  });

  // --- binary, where --------------------------------------------------------------------------------

  const PATTERNS: [Shape, Shape][] = [
    [[17], [17]],
    [[3, 5], [3, 5]],
    [[63], []],
    [[], [65]],
    [[1], [129]],
    [[3, 1], [1, 4]],
    [[2, 3, 4], [4]],
    [[2, 1, 4], [3, 1]],
    [[129, 65], [65]],
    [[65, 1], [65, 3]],
    [[2, 3, 1, 4, 5], [3, 5, 4, 1]],
    [[5, 1, 3, 1, 2], [4, 1, 5, 2]],
    [[0, 3], [3]],
  ];

  const BINARY: Record<BinaryOp, { a: (n: number, s: number) => Float64Array; b: (n: number, s: number) => Float64Array; tol: (a: number, b: number, c: number) => number }> = {
    add: { a: (n, s) => rand(n, s, -2, 2), b: (n, s) => rand(n, s, -2, 2), tol: (_a, _b, c) => U * Math.abs(c) },
    sub: { a: (n, s) => rand(n, s, -2, 2), b: (n, s) => rand(n, s, -2, 2), tol: (_a, _b, c) => U * Math.abs(c) },
    mul: { a: (n, s) => rand(n, s, -2, 2), b: (n, s) => rand(n, s, -2, 2), tol: (_a, _b, c) => U * Math.abs(c) },
    div: { a: (n, s) => rand(n, s, -2, 2), b: (n, s) => rand(n, s, 0.25, 2).map((v, i) => (i % 2 ? -v : v)), tol: (_a, _b, c) => 3 * U * Math.abs(c) },
    // exp2(b·log2 a): exp2's 3 + 2|arg| ulp, log2's 3 ulp (or 2^-21 absolute near 1) scaled by |b|.
    pow: {
      a: (n, s) => rand(n, s, 0.05, 3),
      b: (n, s) => rand(n, s, -3, 3),
      tol: (a, b, c) => (3 + 4 * Math.abs(b * Math.log2(Math.abs(a))) + 3 * Math.abs(b)) * U * Math.abs(c) + 2 ** -126,
    },
    maximum: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1, 2]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    minimum: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1, 2]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    greater: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    greaterEqual: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    less: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    lessEqual: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    equal: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
    notEqual: { a: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), b: (n, s) => pick(n, s, [-1, 0, 0.5, 1]), tol: () => 0 },
  };


  for (const op of Object.keys(BINARY) as BinaryOp[]) {
    it(`binary ${op}: every broadcasting pattern`, async () => {
      const spec = BINARY[op];
      let seed = 1;
      for (const [aShape, bShape] of PATTERNS) {
        const outShape = broadcastShapes(op, aShape, bShape);
        const a = spec.a(sizeOf(aShape), seed++);
        const b = spec.b(sizeOf(bShape), seed++);
        const ia = broadcastIndex(aShape, outShape);
        const ib = broadcastIndex(bShape, outShape);
        await check('binary', [a, b], { op, aShape, bShape, outShape }, (i, c) => spec.tol(a[ia(i)], b[ib(i)], c));
      }
    });
  }

  it('binary: NaN, ±∞, ±0 and pow edge cases agree with the CPU (Math.pow semantics)', async () => {
    const vals = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, -2, 0.5, -8, 3, 1 / 3].map(Math.fround);
    const n = vals.length;
    const a = Float64Array.from({ length: n * n }, (_, i) => vals[Math.floor(i / n)]);
    const b = Float64Array.from({ length: n * n }, (_, i) => vals[i % n]);
    for (const op of Object.keys(BINARY) as BinaryOp[]) {
      const tol = BINARY[op].tol;
      await check('binary', [a, b], { op, aShape: [n * n], bShape: [n * n], outShape: [n * n] }, (i, c) => tol(a[i], b[i], c));
    }
  });

  it('where: broadcasting, NaN and −0 conditions', async () => {
    const cases: [Shape, Shape, Shape][] = [
      [[17], [17], [17]],
      [[], [3, 4], [3, 4]],
      [[3, 1], [1, 4], []],
      [[2, 1, 5], [3, 1], [2, 3, 5]],
      [[65], [2, 65], [1]],
      [[2, 1, 4, 1, 2], [4, 3, 2], [3, 1]],
      [[0], [0], [0]],
    ];
    let seed = 7;
    for (const [condShape, aShape, bShape] of cases) {
      const outShape = broadcastShapes('where', broadcastShapes('where', condShape, aShape), bShape);
      const cond = pick(sizeOf(condShape), seed++, [0, -0, 1, -2, NaN]);
      await check('where', [cond, rand(sizeOf(aShape), seed++), rand(sizeOf(bShape), seed++)], { condShape, aShape, bShape, outShape });
    }
  });

  // --- reduce ---------------------------------------------------------------------------------------


  /** Sum tolerance: D·u·Σ|x| over each output's window with D = 80 (see kernels/reduce.ts). */
  async function checkReduce(shape: Shape, axes: number[], x: Float64Array): Promise<void> {
    const sumAbs = cpuRun('reduce', [absAll(x)], { op: 'sum', shape, axes });
    await check('reduce', [x], { op: 'sum', shape, axes }, (i) => 80 * u * sumAbs[i]);
    await check('reduce', [x], { op: 'max', shape, axes });
  }

  it('reduce: sum and max over every axis subset of a rank-3 and a rank-4 tensor', async () => {
    for (const shape of [[3, 17, 5], [2, 3, 65, 4]]) {
      const x = rand(sizeOf(shape), sizeOf(shape));
      for (const axes of subsets(shape.length)) await checkReduce(shape, axes, x);
    }
  });

  it('reduce: ranks 1, 2 and 5, awkward sizes, both kernels', async () => {
    for (const n of SIZES) await checkReduce([n], [0], rand(n, n));
    await checkReduce([63, 65], [0], rand(63 * 65, 1));
    await checkReduce([63, 65], [1], rand(63 * 65, 2));
    const shape5 = [2, 3, 4, 5, 6];
    const x5 = rand(sizeOf(shape5), 3);
    for (const axes of [[0, 2, 4], [1, 3], [4], [0, 1, 2, 3, 4], [2, 3, 4]]) await checkReduce(shape5, axes, x5);
  });

  it('reduce: long reductions take several passes (10^6 elements; strided; over 65535 workgroups)', async () => {
    await checkReduce([1_000_000], [0], rand(1_000_000, 11));
    await checkReduce([129, 4099], [1], rand(129 * 4099, 12)); // 3 chunks per output, then a loop pass
    await checkReduce([4099, 129], [0], rand(129 * 4099, 13)); // reduced axis strided
    const chunk = TREE_WG * TREE_PT;
    await checkReduce([2, chunk * 70 + 5], [1], rand(2 * (chunk * 70 + 5), 14)); // > 64 partials: tree twice
    await checkReduce([70_000, 100], [1], rand(7_000_000, 15)); // 70,000 workgroups: a 2-D grid
  });

  it('reduce: NaN propagates through max and sum; empty reductions give 0 and −∞', async () => {
    const x = rand(4 * 300, 5);
    x[7] = NaN;
    x[3 * 300 + 299] = NaN;
    await check('reduce', [x], { op: 'max', shape: [4, 300], axes: [1] });
    await check('reduce', [x], { op: 'sum', shape: [4, 300], axes: [1] }, (i) => (i === 1 || i === 2 ? 80 * u * 300 : 0) + 1e-3);
    await check('reduce', [x.slice(0, 40)], { op: 'max', shape: [4, 10], axes: [0] });
    for (const op of ['sum', 'max'] as const) {
      await check('reduce', [new Float64Array(0)], { op, shape: [3, 0], axes: [1] });
      await check('reduce', [new Float64Array(0)], { op, shape: [0, 5], axes: [1] });
      await check('reduce', [new Float64Array(0)], { op, shape: [0], axes: [0] });
    }
  });

  // --- layout ---------------------------------------------------------------------------------------

  it('expand: broadcasting to rank 1–5', async () => {
    const cases: [Shape, Shape][] = [
      [[1], [129]],
      [[], [2, 3]],
      [[3, 1], [3, 4]],
      [[2, 1, 3, 1], [2, 5, 3, 4]],
      [[4, 1], [2, 3, 4, 65]],
      [[1, 3, 1, 1, 2], [2, 3, 4, 5, 2]],
      [[3], [0, 3]],
    ];
    for (const [shape, outShape] of cases) await check('expand', [rand(sizeOf(shape), 3)], { shape, outShape });
  });

  it('transpose: every permutation of rank 3, and ranks 1, 2, 4, 5', async () => {
    const perms3 = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for (const perm of perms3) await check('transpose', [rand(3 * 17 * 5, 1)], { shape: [3, 17, 5], perm });
    await check('transpose', [rand(65, 2)], { shape: [65], perm: [0] });
    await check('transpose', [rand(63 * 129, 3)], { shape: [63, 129], perm: [1, 0] });
    await check('transpose', [rand(2 * 3 * 4 * 5, 4)], { shape: [2, 3, 4, 5], perm: [3, 1, 0, 2] });
    await check('transpose', [rand(2 * 3 * 4 * 5 * 6, 5)], { shape: [2, 3, 4, 5, 6], perm: [4, 2, 0, 3, 1] });
    await check('transpose', [new Float64Array(0)], { shape: [0, 3], perm: [1, 0] });
  });

  it('slice: offsets, steps (including negative), ranks 1–4', async () => {
    const cases: KernelParams['slice'][] = [
      { shape: [17], begin: [3], step: [1], outShape: [10] },
      { shape: [129], begin: [1], step: [4], outShape: [32] },
      { shape: [65, 17], begin: [3, 2], step: [2, 3], outShape: [31, 5] },
      { shape: [2, 63, 5], begin: [1, 0, 4], step: [1, 1, -1], outShape: [1, 63, 5] },
      { shape: [3, 4, 5, 6], begin: [0, 1, 0, 5], step: [1, 2, 2, -2], outShape: [3, 2, 3, 3] },
      { shape: [5], begin: [2], step: [1], outShape: [0] },
    ];
    for (const p of cases) await check('slice', [rand(sizeOf(p.shape), 9)], p);
  });

  it('pad: edges and interior padding, ranks 1–5, empty input', async () => {
    const cases: [Shape, number[], number[], number[]][] = [
      [[17], [2], [3], [0]],
      [[17], [0], [0], [2]],
      [[3, 4], [1, 2], [2, 0], [0, 1]],
      [[2, 3, 4], [1, 1, 1], [1, 1, 1], [1, 1, 1]],
      [[2, 3, 4, 5], [0, 0, 1, 0], [0, 0, 0, 2], [0, 0, 0, 0]],
      [[2, 1, 3, 1, 2], [1, 0, 0, 2, 0], [0, 1, 0, 0, 1], [0, 0, 2, 0, 1]],
      [[63, 65], [0, 0], [0, 0], [0, 0]],
      [[0, 3], [1, 0], [1, 1], [0, 0]],
    ];
    for (const [shape, before, after, interior] of cases) {
      const outShape = outShapeOfPad(shape, before, after, interior);
      await check('pad', [rand(sizeOf(shape), 5)], { shape, before, after, interior, value: 0.75, outShape });
    }
  });

  it('concat: along every axis, with empty pieces and many inputs', async () => {
    const cases: [Shape[], number][] = [
      [[[3], [17], [1]], 0],
      [[[2, 3, 4], [1, 3, 4]], 0],
      [[[2, 3, 4], [2, 5, 4], [2, 0, 4]], 1],
      [[[2, 3, 4], [2, 3, 1], [2, 3, 65]], 2],
      [[[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]], 0],
      [[[0, 3], [0, 3]], 0],
    ];
    for (const [shapes, axis] of cases) {
      const outShape = shapes[0].map((d, i) => (i === axis ? shapes.reduce((a, s) => a + s[axis], 0) : d));
      await check('concat', shapes.map((s, k) => rand(sizeOf(s), 20 + k)), { shapes, axis, outShape });
    }
  });

  // --- gather, scatterAdd ---------------------------------------------------------------------------

  function indices(n: number, seed: number, range: number): Float64Array {
    const r = rng(seed);
    return Float64Array.from({ length: n }, () => Math.floor(r() * range));
  }

  it('gather: along every axis of rank-3 tensors', async () => {
    const cases: [Shape, number, number][] = [
      [[2, 3, 17], 2, 5],
      [[2, 3, 17], 0, 4],
      [[4, 63, 3], 1, 65],
      [[129], 0, 1],
      [[3, 1], 1, 3],
      [[2, 0, 3], 2, 2],
    ];
    for (const [shape, axis, len] of cases) {
      const outShape = shape.map((d, i) => (i === axis ? len : d));
      await check('gather', [rand(sizeOf(shape), 1), indices(sizeOf(outShape), 2, shape[axis])], { shape, axis, outShape });
    }
  });

  it('scatterAdd: colliding indices, both the loop (≤ 64) and the atomic (> 64) strategies', async () => {
    const cases: [Shape, number, number][] = [
      [[2, 3, 5], 2, 4], // loop; axis of 5 updates into 4 slots: collisions
      [[4, 17], 0, 2],
      [[3, 65, 2], 1, 9], // atomic; 65 updates into 9 slots
      [[2, 4, 200], 2, 1000], // atomic, sparse (max-pool backward shape)
      [[1, 129], 1, 3],
      [[2, 0], 1, 3],
    ];
    for (const [updShape, axis, len] of cases) {
      const outShape = updShape.map((d, i) => (i === axis ? len : d));
      const upd = rand(sizeOf(updShape), 3);
      const idx = indices(sizeOf(updShape), 4, len);
      const p = { updShape, axis, outShape };
      const hits = cpuRun('scatterAdd', [upd.map(() => 1), idx], p);
      const sumAbs = cpuRun('scatterAdd', [absAll(upd), idx], p);
      await check('scatterAdd', [upd, idx], p, (i) => hits[i] * u * sumAbs[i]);
    }
  });

  // --- pooling --------------------------------------------------------------------------------------

  it('maxPoolArgmax: geometries, ties (first maximum wins), NaN, all-padding windows', async () => {
    const cases: [Shape, [number, number], [number, number], [number, number], [number, number]][] = [
      [[1, 1, 4, 4], [2, 2], [2, 2], [0, 0], [1, 1]],
      [[2, 3, 17, 13], [3, 3], [2, 2], [1, 1], [1, 1]],
      [[1, 2, 9, 11], [2, 3], [1, 2], [1, 0], [2, 1]],
      [[2, 1, 5, 5], [3, 3], [1, 1], [1, 1], [1, 1]],
      [[1, 1, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1]], // the border windows hold only padding: −1
      [[1, 4, 65, 63], [2, 2], [2, 2], [0, 0], [1, 1]],
    ];
    for (const [xShape, kernel, stride, padding, dilation] of cases) {
      const [N, C, H, W] = xShape;
      const oh = Math.floor((H + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0]) + 1;
      const ow = Math.floor((W + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1]) + 1;
      const p = { xShape, kernel, stride, padding, dilation, outShape: [N, C, oh, ow] };
      await check('maxPoolArgmax', [rand(sizeOf(xShape), 8)], p);
      await check('maxPoolArgmax', [pick(sizeOf(xShape), 9, [0, 1, 2])], p); // many ties
      const withNaN = pick(sizeOf(xShape), 10, [0, 1, 2, NaN, -Infinity]);
      await check('maxPoolArgmax', [withNaN], p);
    }
  });

  // --- matmul and convolutions: the registered (tiled) families and the naive baseline ----------------

  /** The naive matmul and convolutions in place of the registered ones (which `gpu` runs). */
  let naive: WebGpuBackend;
  const backends = (): [string, WebGpuBackend][] => {
    if (!naive) {
      naive = new WebGpuBackend(gpu.ctx, { ...WGSL_KERNELS, ...naiveKernels });
      naive.debug.poisonOutputs = true;
    }
    return [['registered', gpu], ['naive', naive]];
  };

  for (const which of ['registered', 'naive'] as const) it(`matmul (${which}): awkward sizes, batch broadcasting, k = 0`, async () => {
    const on = backends().find(([name]) => name === which)![1];
    const cases: [Shape, Shape][] = [
      [[1, 1], [1, 1]],
      [[3, 17], [17, 5]],
      [[63, 65], [65, 129]],
      [[2, 63, 65], [65, 3]],
      [[2, 1, 4, 5], [3, 5, 6]],
      [[5, 1, 3], [2, 1, 3, 7]],
      [[3, 0], [0, 4]],
      [[0, 4], [4, 2]],
    ];
    let seed = 30;
    for (const [aShape, bShape] of cases) {
      const batch = broadcastShapes('matmul', aShape.slice(0, -2), bShape.slice(0, -2));
      const outShape = [...batch, aShape[aShape.length - 2], bShape[bShape.length - 1]];
      const a = rand(sizeOf(aShape), seed++);
      const b = rand(sizeOf(bShape), seed++);
      const p = { aShape, bShape, outShape };
      const k = aShape[aShape.length - 1];
      const scale = cpuRun('matmul', [absAll(a), absAll(b)], p);
      await check('matmul', [a, b], p, (i) => (k + 1) * u * scale[i], on);
    }
  });

  const CONVS: [string, ConvGeometry][] = [
    ['3×3 pad 1', convGeometry([1, 3, 8, 8], [4, 3, 3, 3], { padding: [1, 1] })],
    ['stride 2, batch 2, odd sizes', convGeometry([2, 3, 17, 13], [5, 3, 3, 3], { stride: [2, 2], padding: [1, 1] })],
    ['dilation 2', convGeometry([1, 2, 9, 11], [3, 2, 3, 3], { dilation: [2, 2], padding: [2, 1] })],
    ['groups 2', convGeometry([2, 4, 7, 7], [6, 2, 3, 3], { groups: 2, padding: [1, 1] })],
    ['depthwise', convGeometry([1, 5, 6, 6], [5, 1, 3, 3], { groups: 5, stride: [2, 1], padding: [1, 1] })],
    ['1×3 kernel, asymmetric stride', convGeometry([1, 2, 5, 9], [3, 2, 1, 3], { stride: [1, 2] })],
    ['1×1', convGeometry([2, 65, 3, 3], [17, 65, 1, 1])],
  ];

  for (const [name, g] of CONVS) for (const which of ['registered', 'naive'] as const) {
    it(`conv2d, conv2dBackwardInput, conv2dBackwardFilter (${which}): ${name}`, async () => {
      const on = backends().find(([n]) => n === which)![1];
      const x = rand(sizeOf(g.xShape), 41);
      const w = rand(sizeOf(g.wShape), 42);
      const dy = rand(sizeOf(g.yShape), 43);
      const [N, , , ] = g.xShape;
      const [O, Cg, KH, KW] = g.wShape;
      const [, , OH, OW] = g.yShape;
      const yScale = cpuRun('conv2d', [absAll(x), absAll(w)], g);
      await check('conv2d', [x, w], g, (i) => (Cg * KH * KW + 1) * u * yScale[i], on);
      const dxScale = cpuRun('conv2dBackwardInput', [absAll(dy), absAll(w)], g);
      await check('conv2dBackwardInput', [dy, w], g, (i) => ((O / g.groups) * KH * KW + 1) * u * dxScale[i], on);
      const dwScale = cpuRun('conv2dBackwardFilter', [absAll(x), absAll(dy)], g);
      await check('conv2dBackwardFilter', [x, dy], g, (i) => (N * OH * OW + 1) * u * dwScale[i], on);
    });
  }

  // --- grids past 65535 workgroups ------------------------------------------------------------------

  it('elementwise kernels over more than 65535 workgroups (2-D grid) write every element', async () => {
    const n = 65536 * 256 + 300; // 65,538 workgroups of 256
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (i % 1000) - 500;
    const g = gpu.run('unary', [gpu.upload(x)], { op: 'neg', size: n });
    const got = await gpu.read(g);
    gpu.free(g);
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if (got[i] !== -x[i]) bad = i;
    expect(bad, `first wrong element ${bad}`).toBe(-1);
  });

  // --- limits and errors ----------------------------------------------------------------------------

  it('refuses a tensor above maxBufferSize with a DeviceLimitError naming the kernel, shape, size and limit', () => {
    // Larger than one binding is fine (the split paths, test/webgpu-split.test.ts); larger than one buffer
    // is not. A forced buffer limit makes the refusal testable without allocating gigabytes.
    gpu.debug.maxBufferBytes = 4096;
    try {
      expect(() => gpu.run('fill', [], { size: 1025, value: 0 })).toThrow(DeviceLimitError);
      expect(() => gpu.run('fill', [], { size: 1025, value: 0 })).toThrow(/fill output \[1025\].* needs 4100 bytes .*maxBufferSize of 4096 bytes/);
      const one = gpu.upload([1]);
      expect(() => gpu.run('expand', [one], { shape: [1], outShape: [2, 513] })).toThrow(/expand output \[2,513\].*maxBufferSize/);
      gpu.free(one);
      expect(() => gpu.upload(new Float32Array(2000))).toThrow(/upload of \[2000\] needs 8000 bytes/);
    } finally {
      gpu.debug.maxBufferBytes = undefined;
    }
    gpu.free(gpu.run('fill', [], { size: 1025, value: 0 }));
  });

  it('a shader the GPU rejects surfaces as a GpuError naming the kernel', async () => {
    const broken = {
      fill(ctx, _inputs, p) {
        const out = ctx.output(p.size, [p.size]);
        ctx.dispatch({
          // Parses (reflection is lenient) but does not type-check: a float assigned to a u32.
          code: `
            struct U { n: u32 }
            @group(0) @binding(0) var<uniform> u: U;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
              let bad: u32 = 1.5;
              if (g.x < u.n) { out[g.x] = f32(bad); }
            }`,
          uniforms: { n: p.size },
          bindings: { out },
          workgroups: 1,
        });
        return out;
      },
    } satisfies KernelFamily;
    const b = new WebGpuBackend(gpu.ctx, { ...WGSL_KERNELS, ...broken });
    const out = b.run('fill', [], { size: 4, value: 1 });
    const err = await b.read(out).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GpuError);
    expect((err as Error).message).toMatch(/fill/);
    b.free(out);
  });

  it('debug.validateDispatches attributes a dispatch-time validation error to its kernel', async () => {
    const family = {
      fill(ctx, _inputs, p) {
        const out = ctx.output(p.size, [p.size]);
        // The shader needs at least 64 bytes bound; a 1-element tensor binds 4.
        ctx.dispatch({
          label: 'needs-64-bytes',
          code: `
            @group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>, 4>;
            @compute @workgroup_size(1) fn main() { out[0] = vec4<f32>(1.0); }`,
          bindings: { out },
          workgroups: 1,
        });
        return out;
      },
    } satisfies KernelFamily;
    const b = new WebGpuBackend(gpu.ctx, { ...WGSL_KERNELS, ...family });
    b.debug.validateDispatches = true;
    const out = b.run('fill', [], { size: 1, value: 0 });
    await expect(b.read(out)).rejects.toThrow(/needs-64-bytes/);
    b.free(out);
  });

  it('binds by name: a wrong binding name or a missing uniform member is refused before the GPU sees it', () => {
    const withFill = (bindings: string, uniforms: Record<string, number>) => new WebGpuBackend(gpu.ctx, { ...WGSL_KERNELS, ...({
      fill(ctx, _inputs, p) {
        const out = ctx.output(p.size, [p.size]);
        ctx.dispatch({
          code: `
            struct U { n: u32, value: f32 }
            @group(0) @binding(0) var<uniform> u: U;
            @group(0) @binding(1) var<storage, read_write> out: array<f32>;
            @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
              if (g.x < u.n) { out[g.x] = u.value; }
            }`,
          uniforms,
          bindings: { [bindings]: out },
          workgroups: 1,
        });
        return out;
      },
    } satisfies KernelFamily) });
    const mem = gpu.memory();
    expect(() => withFill('output', { n: 1, value: 1 }).run('fill', [], { size: 1, value: 1 })).toThrow(/no storage buffer "output"/);
    expect(() => withFill('out', { n: 1 }).run('fill', [], { size: 1, value: 1 })).toThrow(/uniform member "value" not given/);
    expect(() => withFill('out', { n: 1, value: 1, extra: 2 }).run('fill', [], { size: 1, value: 1 })).toThrow(/no member "extra"/);
    expect(gpu.memory()).toEqual(mem);
  });

  // --- races ----------------------------------------------------------------------------------------

  /** Small calls of every kernel family, so the race check has dispatches even when run alone (-t). */
  function representativeWorkload(): void {
    const run = <K extends KernelName>(kernel: K, shapes: Shape[], p: KernelParams[K]) => {
      const ins = shapes.map((s, k) => gpu.upload(rand(sizeOf(s), 60 + k)));
      gpu.free(gpu.run(kernel, ins, p));
      ins.forEach((s) => gpu.free(s));
    };
    for (const op of ['sum', 'max'] as const) run('reduce', [[4, 300]], { op, shape: [4, 300], axes: [1] });
    run('matmul', [[3, 17], [17, 5]], { aShape: [3, 17], bShape: [17, 5], outShape: [3, 5] });
    run('matmul', [[2, 33, 65], [65, 18]], { aShape: [2, 33, 65], bShape: [65, 18], outShape: [2, 33, 18] });
    for (const [, g] of CONVS.slice(0, 4)) {
      run('conv2d', [g.xShape, g.wShape], g);
      run('conv2dBackwardInput', [g.yShape, g.wShape], g);
      run('conv2dBackwardFilter', [g.xShape, g.yShape], g);
    }
  }

  it("wgsl_reflect's race detector finds no race in any kernel that uses workgroup memory", async () => {
    representativeWorkload();
    await gpu.sync();
    const records = [...dispatches.values()];
    const sources = new Set(records.map((r) => r.code));
    // The reduce tree kernels are the ones this file's families own; fast matmul/conv families show up
    // here automatically when registered, because every dispatch of these tests was recorded.
    expect(records.some((r) => r.label.includes('reduce sum tree'))).toBe(true);
    expect(records.some((r) => r.label.includes('reduce max tree'))).toBe(true);
    const findings: string[] = [];
    for (const r of records) {
      let result: RaceDetectionResult;
      try {
        result = raceCheck(r);
      } catch (err) {
        // The emulator throws on an access outside the bound buffers: an out-of-bounds access.
        findings.push(`${r.label}: emulation failed: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const { races, errors } = result;
      for (const race of races.slice(0, 3)) findings.push(`${r.label}: ${race.message}`);
      for (const e of errors) findings.push(`${r.label}: ${e}`);
    }
    console.log(`race-checked ${records.length} entry points (${sources.size} sources) that use workgroup memory`);
    expect(findings).toEqual([]);
    // The emulator takes about a second per GEMM workgroup, and every workgroup-memory kernel this file
    // dispatched is checked (the stride-phase GEMMs and the tiled transpose added several): minutes on a
    // loaded 2-core machine, more than the default test timeout.
  }, 600_000);

  it('the race check itself works: removing a barrier from the reduce tree is reported', async () => {
    representativeWorkload();
    await gpu.sync();
    const r = [...dispatches.values()].find((d) => d.label.includes('reduce sum tree'))!;
    const broken = { ...r, code: r.code.replace('part[lid] = acc;\n  workgroupBarrier();', 'part[lid] = acc;') };
    expect(broken.code).not.toBe(r.code);
    expect(raceCheck(broken).races.length).toBeGreaterThan(0);
  });
});

/**
 * Runs wgsl_reflect's lockstep race detector on the first workgroup of a recorded
 * dispatch, with its real uniforms and zero-filled storage buffers of the bound sizes. The emulator
 * cannot evaluate override expressions in array sizes or workgroup sizes (nor derived overrides), so the
 * source is first specialised: every integer override becomes a `const` with the value the pipeline
 * used (given constants, else its default expression evaluated), and those names are replaced by
 * literals inside array<…> types and @workgroup_size.
 */
function raceCheck(r: DispatchRecord): RaceDetectionResult {
  const code = specialiseOverrides(r.code, r.constants);
  const groups: Record<string, Record<string, unknown>> = {};
  const slot = (g: number) => (groups[String(g)] ??= {});
  if (r.uniform) slot(r.uniform.group)[String(r.uniform.binding)] = { uniform: r.uniform.bytes.slice().buffer };
  for (const s of Object.values(r.storage)) slot(s.group)[String(s.binding)] = new ArrayBuffer(Math.max(16, s.size));
  return detectRaces(code, r.entryPoint, [1, 1, 1], groups, {});
}

/** Integer value of a WGSL constant expression over literals, known names, + - * / % and parentheses. */
function evalIntExpr(expr: string, values: Map<string, bigint>): bigint {
  const js = expr
    .replace(/\b([A-Za-z_]\w*)\b/g, (name) => {
      const v = values.get(name);
      if (v === undefined) throw new Error(`override expression "${expr}": unknown name ${name}`);
      return `(${v}n)`;
    })
    .replace(/\b(\d+)[ui]?\b(?!n)/g, '$1n');
  if (!/^[\dn+\-*/%()\s]*$/.test(js)) throw new Error(`override expression "${expr}" is not integer arithmetic`);
  return Function(`"use strict"; return (${js});`)() as bigint;
}

function specialiseOverrides(code: string, constants: Record<string, number>): string {
  const values = new Map<string, bigint>();
  let out = code.replace(/override\s+(\w+)\s*:\s*(u32|i32)\s*(?:=\s*([^;]+))?;/g, (_m, name: string, type: string, expr?: string) => {
    const v = name in constants ? BigInt(constants[name]) : expr !== undefined ? evalIntExpr(expr, values) : null;
    if (v === null) throw new Error(`override ${name} has no value`);
    values.set(name, v);
    return `const ${name}: ${type} = ${v}${type === 'u32' ? 'u' : 'i'};`;
  });
  for (const [name, v] of values) out = out.replace(new RegExp(`(array<[^;=]*?,\\s*)${name}(\\s*>)`, 'g'), `$1${v}$2`);
  out = out.replace(/@workgroup_size\(([^)]*)\)/g, (_m, args: string) =>
    `@workgroup_size(${args.split(',').map((a) => { const t = a.trim(); return values.has(t) ? String(values.get(t)) : t; }).join(', ')})`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The engine API on WebGPU vs CPU

describeWebGpu('the engine on WebGPU matches the CPU (float32 tolerance)', () => {
  let webgpu: WebGpuBackend;
  let previous: Backend;
  beforeAll(async () => {
    previous = getBackend();
    webgpu = await webgpuBackend();
  });
  afterAll(() => setBackend(previous));

  /** Runs fn on each backend with the same inputs (given as float32 values) and compares the outputs. */
  async function both(inputs: [Float64Array, Shape][], fn: (...xs: E.Tensor[]) => E.Tensor | E.Tensor[], normwise = 2 ** -13): Promise<void> {
    const results: Float64Array[][] = [];
    for (const backend of [cpu, webgpu] as Backend[]) {
      setBackend(backend);
      const outs = E.tidy(() => {
        const xs = inputs.map(([v, s]) => E.tensor(v, s));
        const r = fn(...xs);
        return Array.isArray(r) ? r : [r];
      });
      results.push(await Promise.all(outs.map((t) => t.values())));
      outs.forEach((t) => t.dispose());
    }
    const [want, got] = results;
    want.forEach((w, k) => {
      // Normwise: ‖gpu − cpu‖∞ ≤ 2^-13·‖cpu‖∞ ≈ 1.2e-4. A composite's float32 error is bounded by the sum
      // of its stages' bounds (each ≤ D·u with D ≤ 80 for the sums and dot products here, over ≤ ~12
      // dependent stages in a forward-over-reverse pass): 12·80·2^-24 < 2^-14; doubled for headroom.
      const scale = w.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      assertClose(`output ${k}`, got[k], w, () => normwise * scale);
    });
  }

  const img = (n: number, c: number, h: number, w: number, seed: number): [Float64Array, Shape] => [rand(n * c * h * w, seed), [n, c, h, w]];
  const mat = (shape: Shape, seed: number, scale = 1): [Float64Array, Shape] => [rand(sizeOf(shape), seed, -scale, scale), shape];

  it('E.conv2d with bias, stride, padding, dilation, groups', async () => {
    await both([img(2, 4, 9, 9, 1), mat([6, 2, 3, 3], 2), mat([6], 3)], (x, w, b) => [
      E.conv2d(x, w, b, { padding: 1, groups: 2 }),
      E.conv2d(x, w, null, { stride: 2, dilation: 2, padding: 2, groups: 2 }),
    ]);
  });

  it('E.softmax, E.logSoftmax, E.logsumexp over different axes', async () => {
    await both([mat([4, 10], 4, 5), mat([2, 3, 129], 5, 3)], (a, b) => [E.softmax(a, 1), E.logSoftmax(a, 1), E.softmax(b, -1), E.softmax(b, 1), E.logsumexp(b, [0, 2])]);
  });

  it('E.maxPool2d forward and its gradient (scatter by argmax)', async () => {
    await both([img(2, 3, 11, 10, 6)], (x) => [
      E.maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }),
      E.grad((t: E.Tensor) => E.sum(E.mul(E.maxPool2d(t, { kernel: 2 }), E.maxPool2d(t, { kernel: 2 }))))(x),
    ]);
  });

  const cnnInputs = (): [Float64Array, Shape][] => [img(2, 3, 12, 12, 7), mat([8, 3, 3, 3], 8, 0.5), mat([6, 8, 3, 3], 9, 0.3), mat([5, 6], 10)];

  it('E.grad of a small CNN with respect to its input', async () => {
    await both(cnnInputs(), (x, w1, w2, w3) => {
      const { features, head } = smallCnn(w1, w2, w3);
      return E.grad((t: E.Tensor) => head(features(t)))(x);
    });
  });

  it('E.hvp (forward-over-reverse) of a small CNN at its activations', async () => {
    await both(cnnInputs(), (x, w1, w2, w3) => {
      const { features, head } = smallCnn(w1, w2, w3);
      const a = features(x);
      const r = E.gradAndHvp(head, a, a);
      return [r.value, r.grad, r.hvp, E.hvp((t: E.Tensor) => head(features(t)), x, x)];
    });
  });

  it('1,000 forward + HVP iterations on a small CNN leave live buffers and bytes where they started', async () => {
    setBackend(webgpu);
    const poison = webgpu.debug.poisonOutputs;
    webgpu.debug.poisonOutputs = false; // speed; poisoning does not change allocation
    try {
      const [x, w1, w2, w3] = cnnInputs().map(([v, s]) => E.tensor(v, s));
      const { features, head } = smallCnn(w1, w2, w3);
      const step = () =>
        E.tidy(() => {
          const a = features(x);
          return E.sum(E.gradAndHvp(head, a, a).hvp);
        });
      step().dispose(); // warm the scalar-constant cache and the pipeline cache
      await webgpu.sync();
      const start = webgpu.memory();
      const pool0 = webgpu.stats();
      const t0 = performance.now();
      let last = 0;
      let half = pool0;
      for (let i = 0; i < 1000; i++) {
        const s = step();
        if (i % 100 === 99) last = (await s.data())[0]; // keeps the GPU queue from running far behind
        s.dispose();
        if (i === 499) half = webgpu.stats();
      }
      await webgpu.sync();
      const ms = performance.now() - t0;
      const pool1 = webgpu.stats();
      console.log(
        `1000 forward+HVP: ${ms.toFixed(0)} ms; ${pool1.dispatches - pool0.dispatches} dispatches in ${pool1.submits - pool0.submits} submits; ` +
          `GPU buffers ${pool0.gpuBuffers} → ${half.gpuBuffers} (iteration 500) → ${pool1.gpuBuffers}`,
      );
      expect(Number.isFinite(last)).toBe(true);
      expect(webgpu.memory()).toEqual(start);
      // The pool reaches a steady state: the second 500 iterations create no GPU buffer.
      expect(pool1.created - half.created).toBe(0);
      [x, w1, w2, w3].forEach((t) => t.dispose());
    } finally {
      webgpu.debug.poisonOutputs = poison;
      setBackend(previous);
    }
  });
});

describeWebGpu('engine after a lost device', () => {
  it('fails with a clear error, and useBackend("webgpu") gives a working new backend', async () => {
    const previous = getBackend();
    const gpu = (await E.useBackend('webgpu')) as WebGpuBackend;
    const x = E.tensor([1, 2, 3], [3], gpu);
    gpu.device.destroy();
    await gpu.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(() => E.exp(x)).toThrow(/webgpu unary: the device was released; call useBackend\('webgpu'\)/);
    const fresh = await E.useBackend('webgpu');
    expect(fresh).not.toBe(gpu);
    expect(await E.mul(E.tensor([1, 2, 3], [3], fresh), 2).data()).toEqual([2, 4, 6]);
    setBackend(previous ?? cpuBackend());
  });
});

describeWebGpu('allocation failures', () => {
  it('a buffer creation the device rejects is reported through the pool (error scopes), not ignored', async () => {
    const gpu = await webgpuBackend();
    const failures: string[] = [];
    // MAP_READ may only be combined with COPY_DST: Dawn rejects this buffer asynchronously.
    const pool = new BufferPool(gpu.device, GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE, 'bad', undefined, (label, kind) => failures.push(`${kind} ${label}`));
    pool.acquire(64);
    await Promise.all([...pool.pendingChecks]);
    expect(failures).toEqual(['validation bad[64 bytes]']);
    // A good pool reports nothing.
    const good = new BufferPool(gpu.device, GPUBufferUsage.STORAGE, 'good', undefined, (label) => failures.push(label));
    good.acquire(64);
    await Promise.all([...good.pendingChecks]);
    expect(failures).toHaveLength(1);
  });
});
