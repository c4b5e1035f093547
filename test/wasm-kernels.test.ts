// Every wasm kernel except the matrix products (test/wasm-matmul-conv.test.ts) against the float64 CPU
// reference, at awkward sizes (SIMD tails of 1–3 lanes, task boundaries), with every output poisoned
// with NaN first so an element a kernel fails to write fails the comparison.
//
// Tolerances (u = 2^-24, U = 2^-23 = one ulp of |c| in [1, 2)): copies, selections, comparisons, max,
// argmax and gather are exact; + − × ÷ and sqrt are correctly rounded in WebAssembly (U·|c|); 1/sqrt
// rounds twice (2U). exp, log, tanh and sigmoid are four-lane ports of Cephes' float32 routines
// (kernels/wasm/assembly/vmath.ts, within 1 ulp each: 2U·|c|, plus the rounding steps our formulas add on
// top: sigmoid an add, a divide and a multiply, 4U; tanh the 1 − 2/(e + 1) branch, 3U), plus 2^-149
// where a result may be subnormal; log1p, sin and cos are AssemblyScript's Mathf (ports of musl's, within
// 1 ulp): 2U. erf is the same minimax fit the WGSL kernels use, evaluated without fused multiply-add: its
// bound is the WGSL one, 6U. Sums of L terms: the recursive-summation bound (L + 1)·u·Σ|x| (any order of
// additions).

import { beforeAll, describe, expect, it } from 'vitest';
import type { BinaryOp, KernelParams, UnaryOp } from '../engine/backend.ts';
import { broadcastShapes, sizeOf, type Shape } from '../engine/shape.ts';
import type { WasmBackend } from '../engine/wasm/backend.ts';
import { U, absAll, broadcastIndex, checkKernel, cpuRun, outShapeOfPad, pick, rand, subsets, u, type Tol } from './helpers/float32.ts';
import { rng } from './helpers/random.ts';
import { wasmBackend } from './helpers/wasm.ts';

/** Lengths around the 4-lane SIMD width and the task sizes (2^16 elements per task for streams). */
const SIZES = [1, 2, 3, 4, 5, 7, 17, 63, 65, 129, 1000, 65536 + 5, 200_003];
const TINY = 2 ** -149;

let wasm: WasmBackend;
const check = <K extends Parameters<typeof checkKernel>[1]>(kernel: K, inputs: readonly ArrayLike<number>[], params: KernelParams[K], tol?: Tol) =>
  checkKernel(wasm, kernel, inputs, params, tol);

beforeAll(async () => {
  wasm = await wasmBackend();
});

describe('wasm kernels against the CPU reference', () => {
  it('fill: every size including 0, values float32 must round, ±∞ and NaN', async () => {
    for (const size of [0, ...SIZES]) for (const value of [0, -2.5, 1 / 3, -Infinity, NaN]) await check('fill', [], { size, value }, (_i, c) => u * Math.abs(c));
  });

  const UNARY: Record<UnaryOp, { lo: number; hi: number; tol: (x: number, c: number) => number }> = {
    neg: { lo: -10, hi: 10, tol: () => 0 },
    abs: { lo: -10, hi: 10, tol: () => 0 },
    sign: { lo: -2, hi: 2, tol: () => 0 },
    relu: { lo: -2, hi: 2, tol: () => 0 },
    sqrt: { lo: 0, hi: 100, tol: (_x, c) => U * Math.abs(c) },
    reciprocal: { lo: -100, hi: 100, tol: (_x, c) => U * Math.abs(c) },
    rsqrt: { lo: 1e-3, hi: 100, tol: (_x, c) => 2 * U * Math.abs(c) },
    exp: { lo: -20, hi: 20, tol: (_x, c) => 2 * U * Math.abs(c) + TINY },
    log: { lo: 1e-3, hi: 1e3, tol: (_x, c) => 2 * U * Math.abs(c) },
    log1p: { lo: -0.99, hi: 10, tol: (_x, c) => 2 * U * Math.abs(c) },
    tanh: { lo: -8, hi: 8, tol: (_x, c) => 3 * U * Math.abs(c) + TINY },
    sigmoid: { lo: -15, hi: 15, tol: (_x, c) => 4 * U * Math.abs(c) + TINY },
    erf: { lo: -4, hi: 4, tol: (_x, c) => 6 * U * Math.abs(c) },
    sin: { lo: -10, hi: 10, tol: (_x, c) => 2 * U * Math.abs(c) + TINY },
    cos: { lo: -10, hi: 10, tol: (_x, c) => 2 * U * Math.abs(c) + TINY },
  };

  for (const op of Object.keys(UNARY) as UnaryOp[]) {
    it(`unary ${op}: random values at awkward sizes, tiny arguments`, async () => {
      const { lo, hi, tol } = UNARY[op];
      for (const size of [0, ...SIZES]) {
        const x = rand(size, 100 + size, lo, hi);
        if (op === 'sign' || op === 'relu') x.forEach((_, i) => i % 5 === 0 && (x[i] = 0));
        if (size >= 17 && lo < 0) for (let i = 0; i < 8; i++) x[i] = Math.fround((i - 4) * 1e-6);
        await check('unary', [x], { op, size }, (i, c) => tol(x[i], c));
      }
    });
  }

  it('unary: special values (NaN, ±∞, ±0, huge, tiny) agree with the CPU', async () => {
    const special = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 3e38, -3e38, 88.5, -88.5, 100, -100, 1, -1, 0.5];
    const x = Float64Array.from(special, Math.fround);
    for (const op of Object.keys(UNARY) as UnaryOp[]) {
      const keep = op === 'sin' || op === 'cos' ? (i: number) => !(Math.abs(x[i]) > 100) : () => true;
      await check('unary', [x], { op, size: x.length }, (i, c) => (keep(i) ? UNARY[op].tol(x[i], c) : Infinity));
    }
  });

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
    [[8, 64, 7, 9], [1, 64, 1, 1]], // a per-channel scale (batch norm)
    [[2, 1, 2, 1, 2, 1, 2, 1, 3], [1, 2, 1, 2, 1, 2, 1, 2, 3]], // nine alternating axes after merging
    [[300, 257], [300, 1]],
    [[0, 3], [3]],
  ];

  const vals = (n: number, s: number) => rand(n, s, -2, 2);
  const ties = (n: number, s: number) => pick(n, s, [-1, 0, 0.5, 1, 2]);
  const BINARY: Record<BinaryOp, { a: (n: number, s: number) => Float64Array; b: (n: number, s: number) => Float64Array; tol: Tol }> = {
    add: { a: vals, b: vals, tol: (_i, c) => U * Math.abs(c) },
    sub: { a: vals, b: vals, tol: (_i, c) => U * Math.abs(c) },
    mul: { a: vals, b: vals, tol: (_i, c) => U * Math.abs(c) },
    div: { a: vals, b: (n, s) => rand(n, s, 0.25, 2).map((v, i) => (i % 2 ? -v : v)), tol: (_i, c) => U * Math.abs(c) },
    pow: { a: (n, s) => rand(n, s, 0.05, 3), b: (n, s) => rand(n, s, -3, 3), tol: (_i, c) => 2 * U * Math.abs(c) + TINY },
    maximum: { a: ties, b: ties, tol: () => 0 },
    minimum: { a: ties, b: ties, tol: () => 0 },
    greater: { a: ties, b: ties, tol: () => 0 },
    greaterEqual: { a: ties, b: ties, tol: () => 0 },
    less: { a: ties, b: ties, tol: () => 0 },
    lessEqual: { a: ties, b: ties, tol: () => 0 },
    equal: { a: ties, b: ties, tol: () => 0 },
    notEqual: { a: ties, b: ties, tol: () => 0 },
  };

  for (const op of Object.keys(BINARY) as BinaryOp[]) {
    it(`binary ${op}: every broadcasting pattern`, async () => {
      let seed = 1;
      for (const [aShape, bShape] of PATTERNS) {
        const outShape = broadcastShapes(op, aShape, bShape);
        await check('binary', [BINARY[op].a(sizeOf(aShape), seed++), BINARY[op].b(sizeOf(bShape), seed++)], { op, aShape, bShape, outShape }, BINARY[op].tol);
      }
    });
  }

  it('binary: NaN, ±∞, ±0 and pow edge cases agree with the CPU (Math.pow semantics)', async () => {
    const v = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, -2, 0.5, -8, 3, 1 / 3].map(Math.fround);
    const n = v.length;
    const a = Float64Array.from({ length: n * n }, (_, i) => v[Math.floor(i / n)]);
    const b = Float64Array.from({ length: n * n }, (_, i) => v[i % n]);
    for (const op of Object.keys(BINARY) as BinaryOp[]) await check('binary', [a, b], { op, aShape: [n * n], bShape: [n * n], outShape: [n * n] }, BINARY[op].tol);
  });

  it('where: broadcasting, NaN and −0 conditions', async () => {
    const cases: [Shape, Shape, Shape][] = [
      [[17], [17], [17]],
      [[], [3, 4], [3, 4]],
      [[3, 1], [1, 4], []],
      [[2, 1, 5], [3, 1], [2, 3, 5]],
      [[65], [2, 65], [1]],
      [[2, 1, 4, 1, 2], [4, 3, 2], [3, 1]],
      [[70000], [70000], []],
      [[0], [0], [0]],
    ];
    let seed = 7;
    for (const [condShape, aShape, bShape] of cases) {
      const outShape = broadcastShapes('where', broadcastShapes('where', condShape, aShape), bShape);
      const cond = pick(sizeOf(condShape), seed++, [0, -0, 1, -2, NaN]);
      await check('where', [cond, rand(sizeOf(aShape), seed++), rand(sizeOf(bShape), seed++)], { condShape, aShape, bShape, outShape });
    }
  });

  async function checkReduce(shape: Shape, axes: number[], x: Float64Array): Promise<void> {
    const sumAbs = cpuRun('reduce', [absAll(x)], { op: 'sum', shape, axes });
    const L = sizeOf(shape) / Math.max(1, sumAbs.length);
    await check('reduce', [x], { op: 'sum', shape, axes }, (i) => (L + 1) * u * sumAbs[i]);
    await check('reduce', [x], { op: 'max', shape, axes });
  }

  it('reduce: sum and max over every axis subset of ranks 3 and 4', async () => {
    for (const shape of [[3, 17, 5], [2, 3, 65, 4]]) {
      const x = rand(sizeOf(shape), sizeOf(shape));
      for (const axes of subsets(shape.length)) await checkReduce(shape, axes, x);
    }
  });

  it('reduce: ranks 1, 2 and 5, size-1 axes, long and strided reductions, many small rows', async () => {
    for (const n of SIZES) await checkReduce([n], [0], rand(n, n));
    await checkReduce([63, 65], [0], rand(63 * 65, 1));
    await checkReduce([63, 65], [1], rand(63 * 65, 2));
    const shape5 = [2, 3, 4, 5, 6];
    const x5 = rand(sizeOf(shape5), 3);
    for (const axes of [[0, 2, 4], [1, 3], [4], [0, 1, 2, 3, 4], [2, 3, 4]]) await checkReduce(shape5, axes, x5);
    await checkReduce([3, 1, 5, 1], [1, 3], rand(15, 4));
    await checkReduce([4099, 129], [0], rand(4099 * 129, 5));
    await checkReduce([129, 4099], [1], rand(4099 * 129, 6));
    await checkReduce([100_000, 3, 2], [1], rand(600_000, 7)); // 100,000 rows of 2 kept values
    await checkReduce([8, 64, 7, 7], [2, 3], rand(8 * 64 * 49, 8)); // global average pooling
  });

  it('reduce: NaN propagates through max and sum; empty reductions give 0 and −∞', async () => {
    const x = rand(4 * 300, 5);
    x[7] = NaN;
    x[3 * 300 + 299] = NaN;
    await check('reduce', [x], { op: 'max', shape: [4, 300], axes: [1] });
    await check('reduce', [x], { op: 'sum', shape: [4, 300], axes: [1] }, () => 301 * u * 300);
    await check('reduce', [x], { op: 'max', shape: [4, 300], axes: [0] });
    for (const op of ['sum', 'max'] as const) {
      await check('reduce', [new Float64Array(0)], { op, shape: [3, 0], axes: [1] });
      await check('reduce', [new Float64Array(0)], { op, shape: [0, 5], axes: [1] });
      await check('reduce', [new Float64Array(0)], { op, shape: [0], axes: [0] });
      await check('reduce', [rand(6, 1)], { op, shape: [2, 3], axes: [] });
    }
  });

  it('expand: broadcasting to rank 1–5', async () => {
    const cases: [Shape, Shape][] = [
      [[1], [129]], [[], [2, 3]], [[3, 1], [3, 4]], [[2, 1, 3, 1], [2, 5, 3, 4]], [[4, 1], [2, 3, 4, 65]], [[1, 3, 1, 1, 2], [2, 3, 4, 5, 2]], [[3], [0, 3]],
    ];
    for (const [shape, outShape] of cases) await check('expand', [rand(sizeOf(shape), 3)], { shape, outShape });
  });

  it('transpose: every permutation of rank 3, and ranks 1, 2, 4, 5', async () => {
    for (const perm of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) await check('transpose', [rand(3 * 17 * 5, 1)], { shape: [3, 17, 5], perm });
    await check('transpose', [rand(65, 2)], { shape: [65], perm: [0] });
    await check('transpose', [rand(63 * 129, 3)], { shape: [63, 129], perm: [1, 0] });
    await check('transpose', [rand(120, 4)], { shape: [2, 3, 4, 5], perm: [3, 1, 0, 2] });
    await check('transpose', [rand(720, 5)], { shape: [2, 3, 4, 5, 6], perm: [4, 2, 0, 3, 1] });
    await check('transpose', [new Float64Array(0)], { shape: [0, 3], perm: [1, 0] });
    // The blocked matrix transpose: 16-column blocks, 4-column and single-column tails, row tails, several
    // tasks per matrix, batches.
    await check('transpose', [rand(515 * 37, 6)], { shape: [515, 37], perm: [1, 0] });
    await check('transpose', [rand(3 * 301 * 299, 7)], { shape: [3, 301, 299], perm: [0, 2, 1] });
    await check('transpose', [rand(5 * 7 * 33, 8)], { shape: [5, 7, 33], perm: [2, 1, 0] });
    await check('transpose', [rand(2 * 6 * 4 * 18, 9)], { shape: [2, 6, 4, 18], perm: [0, 3, 2, 1] });
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
      [[17], [2], [3], [0]], [[17], [0], [0], [2]], [[3, 4], [1, 2], [2, 0], [0, 1]], [[2, 3, 4], [1, 1, 1], [1, 1, 1], [1, 1, 1]],
      [[2, 3, 4, 5], [0, 0, 1, 0], [0, 0, 0, 2], [0, 0, 0, 0]], [[2, 1, 3, 1, 2], [1, 0, 0, 2, 0], [0, 1, 0, 0, 1], [0, 0, 2, 0, 1]],
      [[63, 65], [0, 0], [0, 0], [0, 0]], [[0, 3], [1, 0], [1, 1], [0, 0]],
    ];
    for (const [shape, before, after, interior] of cases) {
      await check('pad', [rand(sizeOf(shape), 5)], { shape, before, after, interior, value: 0.75, outShape: outShapeOfPad(shape, before, after, interior) });
    }
  });

  it('concat: along every axis, with empty pieces and many inputs', async () => {
    const cases: [Shape[], number][] = [
      [[[3], [17], [1]], 0], [[[2, 3, 4], [1, 3, 4]], 0], [[[2, 3, 4], [2, 5, 4], [2, 0, 4]], 1], [[[2, 3, 4], [2, 3, 1], [2, 3, 65]], 2],
      [[[1, 2], [1, 2], [1, 2], [1, 2], [1, 2]], 0], [[[0, 3], [0, 3]], 0],
    ];
    for (const [shapes, axis] of cases) {
      const outShape = shapes[0].map((d, i) => (i === axis ? shapes.reduce((a, s) => a + s[axis], 0) : d));
      await check('concat', shapes.map((s, k) => rand(sizeOf(s), 20 + k)), { shapes, axis, outShape });
    }
  });

  function indices(n: number, seed: number, range: number): Float64Array {
    const r = rng(seed);
    return Float64Array.from({ length: n }, () => Math.floor(r() * range));
  }

  it('gather: along every axis of rank-3 tensors', async () => {
    const cases: [Shape, number, number][] = [[[2, 3, 17], 2, 5], [[2, 3, 17], 0, 4], [[4, 63, 3], 1, 65], [[129], 0, 1], [[3, 1], 1, 3], [[2, 0, 3], 2, 2], [[64, 3000], 1, 700]];
    for (const [shape, axis, len] of cases) {
      const outShape = shape.map((d, i) => (i === axis ? len : d));
      await check('gather', [rand(sizeOf(shape), 1), indices(sizeOf(outShape), 2, shape[axis])], { shape, axis, outShape });
    }
  });

  it('scatterAdd: colliding indices, sparse and dense, more slices than one dispatch holds', async () => {
    const cases: [Shape, number, number][] = [[[2, 3, 5], 2, 4], [[4, 17], 0, 2], [[3, 65, 2], 1, 9], [[2, 4, 200], 2, 1000], [[1, 129], 1, 3], [[2, 0], 1, 3], [[8, 64, 3136], 2, 12544], [[70000, 3, 1], 1, 2]];
    for (const [updShape, axis, len] of cases) {
      const outShape = updShape.map((d, i) => (i === axis ? len : d));
      const upd = rand(sizeOf(updShape), 3);
      const idx = indices(sizeOf(updShape), 4, len);
      const p = { updShape, axis, outShape };
      const hits = cpuRun('scatterAdd', [upd.map(() => 1), idx], p);
      const sumAbs = cpuRun('scatterAdd', [absAll(upd), idx], p);
      await check('scatterAdd', [upd, idx], p, (i) => (hits[i] + 1) * u * sumAbs[i]);
    }
  });

  it('maxPoolArgmax: geometries, ties (first maximum wins), NaN, all-padding windows', async () => {
    const cases: [Shape, [number, number], [number, number], [number, number], [number, number]][] = [
      [[1, 1, 4, 4], [2, 2], [2, 2], [0, 0], [1, 1]], [[2, 3, 17, 13], [3, 3], [2, 2], [1, 1], [1, 1]], [[1, 2, 9, 11], [2, 3], [1, 2], [1, 0], [2, 1]],
      [[2, 1, 5, 5], [3, 3], [1, 1], [1, 1], [1, 1]], [[1, 1, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1]], [[1, 4, 65, 63], [2, 2], [2, 2], [0, 0], [1, 1]],
    ];
    for (const [xShape, kernel, stride, padding, dilation] of cases) {
      const [N, C, H, W] = xShape;
      const oh = Math.floor((H + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0]) + 1;
      const ow = Math.floor((W + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1]) + 1;
      const p = { xShape, kernel, stride, padding, dilation, outShape: [N, C, oh, ow] };
      await check('maxPoolArgmax', [rand(sizeOf(xShape), 8)], p);
      await check('maxPoolArgmax', [pick(sizeOf(xShape), 9, [0, 1, 2])], p);
      await check('maxPoolArgmax', [pick(sizeOf(xShape), 10, [0, 1, 2, NaN, -Infinity])], p);
    }
  });

  it('poisoning is live: a skipped element would be NaN', async () => {
    // The backend's own check: an output allocated with poisoning and never written reads back as NaN.
    const out = (wasm as unknown as { ctx: { output(n: number): { storage: unknown } } }).ctx.output(5).storage;
    const got = await wasm.read(out as Parameters<WasmBackend['read']>[0]);
    wasm.free(out as Parameters<WasmBackend['free']>[0]);
    expect(Array.from(got).every(Number.isNaN)).toBe(true);
  });
});
