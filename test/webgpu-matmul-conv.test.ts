/// <reference types="@webgpu/types" />
// The tiled matmul and the convolution kernels (kernels/matmul.ts, kernels/conv2d.ts) against the
// float64 CPU reference, through `backend.run` on both backends with identical inputs and parameters.
//
// Method. Inputs are random float32 values (Math.fround), so both backends see the same numbers and only
// the arithmetic differs. The WebGPU backend poisons every output with NaN before a kernel runs
// (`debug.poisonOutputs`, set by webgpuBackend()), so an element a kernel fails to write fails the
// comparison (a self-test below checks that this catches a kernel that skips a column).
//
// Tolerance. Every output is a dot product s = Σ_{i<L} a_i·b_i of L terms (L = K for matmul, C/g·kh·kw,
// O/g·kh·kw and N·oh·ow for the three convolutions; taps that fall outside the input contribute exact
// zeros, so they only make the bound looser). In float32 with unit roundoff u = 2^-24, whatever the
// summation order (tiles, register blocking) and whether products are fused (fma) or not, the computed
// value satisfies |ŝ − s| ≤ γ_L·Σ|a_i||b_i| with γ_L = L·u / (1 − L·u) (Higham, Accuracy and Stability of
// Numerical Algorithms, §3.1: one rounding per product and at most L − 1 per chain of additions). The
// CPU's float64 result adds at most γ_L(2^-53)·Σ|a||b|, which is covered by using L + 1 in place of L.
// Σ|a_i||b_i| is computed per output element by the CPU backend itself, running the same kernel on
// |a| and |b|. This is a worst-case bound: a correct kernel can never exceed it, so it is never "tuned";
// a wrong index (a missing or extra term of size ~|a||b|) exceeds it by orders of magnitude.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConvGeometry, KernelName, KernelParams, Storage } from '../engine/backend.ts';
import { convGeometry } from '../engine/primitives/linalg.ts';
import { cpuBackend } from '../engine/runtime.ts';
import { sizeOf, type Shape } from '../engine/shape.ts';
import { WebGpuBackend, type DispatchRecord } from '../engine/webgpu/backend.ts';
import { runPlan, type KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { WGSL_KERNELS } from '../kernels/index.ts';
import { conv2dRoute, convFlops, convPaths, defaultSplitK, planBackwardInputPhases, planConv2d, planDepthwise, pointwiseAsMatmul, usesStridePhases } from '../kernels/conv2d.ts';
import { GEMM_CONFIGS, chooseGemmConfig, collapseBatch, gemmConfigOk, gemmSharedBytes, planMatmul, setGemmConfig, type GemmConfig } from '../kernels/matmul.ts';
import type { RaceDetectionResult } from 'wgsl_reflect';
// The ESM build has no .d.ts of its own (see engine/webgpu/pipelines.ts).
// @ts-expect-error TS7016
import * as wgslReflect from 'wgsl_reflect/wgsl_reflect.module.js';
import { rng } from './helpers/random.ts';
import { compare, matmulShapes, rand, type Comparison } from './helpers/float32.ts';
import { describeWebGpu, webgpuBackend, webgpuProbe } from './helpers/webgpu.ts';

const detectRaces = (wgslReflect as {
  detectRaces: (code: string, kernel: string, grid: number[], groups: Record<string, Record<string, unknown>>, config?: Record<string, unknown>) => RaceDetectionResult;
}).detectRaces;

const cpu = cpuBackend();





let gpu: WebGpuBackend;
/** Every dispatch of the tiled kernels seen while the tests ran (for the race check and routing checks). */
const dispatches: DispatchRecord[] = [];

/**
 * Runs `kernel` on both backends with the same inputs and params; checks the float32 bound and returns the
 * comparison. `terms` is the length of each output's dot product.
 */
async function check<K extends KernelName>(kernel: K, inputs: Float64Array[], params: KernelParams[K], terms: number, label: string, backend: WebGpuBackend = gpu): Promise<Comparison> {
  const cpuIn = inputs.map((v) => cpu.upload(v));
  const cpuAbs = inputs.map((v) => cpu.upload(v.map(Math.abs)));
  const want = cpu.readSync!(cpu.run(kernel, cpuIn, params));
  const absSum = cpu.readSync!(cpu.run(kernel, cpuAbs, params));
  const gpuIn: Storage[] = inputs.map((v) => backend.upload(v));
  const out = backend.run(kernel, gpuIn, params);
  const got = await backend.read(out);
  for (const s of [...gpuIn, out]) backend.free(s);
  expect(got.length, `${label}: length`).toBe(want.length);
  const c = compare(got, want, absSum, terms);
  expect(c.bad, `${label}: ${c.bad} of ${want.length} elements outside the float32 bound; first ${c.first}`).toBe(0);
  return c;
}


let seed = 1000;
async function checkMatmul(aShape: Shape, bShape: Shape, backend?: WebGpuBackend): Promise<Comparison> {
  const p = matmulShapes(aShape, bShape);
  const K = aShape[aShape.length - 1];
  return check('matmul', [rand(sizeOf(aShape), seed++), rand(sizeOf(bShape), seed++)], p, K, `matmul ${JSON.stringify(aShape)} @ ${JSON.stringify(bShape)}`, backend);
}

/** The three convolution operators on one geometry. */
async function checkConv(g: ConvGeometry, label: string): Promise<void> {
  const [N, , , ] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  const x = rand(sizeOf(g.xShape), seed++);
  const w = rand(sizeOf(g.wShape), seed++);
  const dy = rand(sizeOf(g.yShape), seed++);
  await check('conv2d', [x, w], g, Cg * KH * KW, `${label} conv2d`);
  await check('conv2dBackwardInput', [dy, w], g, (O / g.groups) * KH * KW, `${label} conv2dBackwardInput`);
  await check('conv2dBackwardFilter', [x, dy], g, N * OH * OW, `${label} conv2dBackwardFilter`);
}

function geometry(xShape: Shape, wShape: Shape, opts: Partial<{ stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number }> = {}): ConvGeometry {
  return convGeometry('test', xShape, wShape, {
    stride: opts.stride ?? [1, 1],
    padding: opts.padding ?? [0, 0],
    dilation: opts.dilation ?? [1, 1],
    groups: opts.groups ?? 1,
  });
}

describeWebGpu('tiled matmul and convolution kernels vs the CPU reference (float32 dot-product bound)', () => {
  beforeAll(async () => {
    gpu = await webgpuBackend();
    expect(gpu.debug.poisonOutputs).toBe(true);
    gpu.debug.onDispatch = (d) => {
      if (/^\/\/ (matmul|matvec|conv2d|depthwise)/.test(d.code)) dispatches.push(d);
    };
  });
  afterAll(() => {
    if (gpu) gpu.debug.onDispatch = undefined;
    setGemmConfig(null);
  });

  // --- matmul ---------------------------------------------------------------------------------------

  const SIZES = [1, 3, 17, 63, 65, 129];

  for (const M of SIZES) {
    it(`matmul M=${M} × every N, K in {${SIZES.join(', ')}} (scalar loads: none is a multiple of 4)`, async () => {
      let worst = 0;
      for (const N of SIZES) for (const K of SIZES) worst = Math.max(worst, (await checkMatmul([M, K], [K, N])).worst);
      console.log(`matmul M=${M}: worst |gpu − cpu| / bound = ${worst.toExponential(2)}`);
    });
  }

  it('matmul with vec4 loads (K and/or N multiples of 4), including K not a multiple of the tile depth', async () => {
    for (const [M, K, N] of [
      [4, 4, 4], [64, 64, 64], [65, 128, 64], [17, 20, 132], [129, 36, 3], [3, 3, 128], [100, 68, 4], [1, 260, 8], [130, 4, 65],
    ]) {
      await checkMatmul([M, K], [K, N]);
    }
  });

  it('batched matmul with numpy batch broadcasting', async () => {
    const cases: [Shape, Shape][] = [
      [[2, 17, 65], [2, 65, 63]], // plain batch
      [[2, 1, 17, 8], [3, 8, 12]], // a broadcast over b's batch and vice versa
      [[5, 3, 4], [4, 129]], // rank-2 b broadcast over a's batch
      [[63, 3], [4, 3, 17]], // rank-2 a broadcast over b's batch
      [[1, 17, 3], [4, 3, 1]], // size-1 batch and N = 1
      [[2, 1, 3, 1, 5, 7], [1, 4, 1, 6, 7, 9]], // alternating broadcasts: 4 batch dims after collapsing
      [[3, 1, 2, 65, 64], [3, 4, 1, 64, 64]], // vec4 paths with broadcasting
      [[1, 1, 1, 9], [9, 3]], // batch of 1
    ];
    for (const [a, b] of cases) await checkMatmul(a, b);
  });

  it('batch collapsing merges contiguous dims and refuses more than 4 alternating broadcast dims', () => {
    expect(collapseBatch([2, 3, 4, 5, 6], [2, 3, 4, 6, 7], [2, 3, 4, 5, 7]).dims).toEqual([1, 1, 1, 24]);
    const alt = collapseBatch([2, 1, 3, 1, 5, 7], [1, 4, 1, 6, 7, 9], [2, 4, 3, 6, 5, 9]);
    expect(alt.dims).toEqual([2, 4, 3, 6]);
    expect(alt.aStrides).toEqual([3 * 35, 0, 35, 0]);
    expect(alt.bStrides).toEqual([0, 6 * 63, 0, 63]);
    expect(() => planMatmul(matmulShapes([2, 1, 2, 1, 2, 3, 3], [1, 2, 1, 2, 1, 3, 3]))).toThrow(/5 batch dimensions/);
  });

  // A configuration needing more workgroup memory than this device has cannot run here: it is reported as
  // skipped, with the reason in its name, and every configuration that fits is tested.
  const sharedLimit = webgpuProbe.limits?.maxComputeWorkgroupStorageSize ?? Infinity;
  for (const [name, config] of Object.entries(GEMM_CONFIGS) as [string, GemmConfig][]) {
    const needs = gemmSharedBytes(config);
    const unfit = needs > sharedLimit ? ` (skipped: needs ${needs} bytes of workgroup memory, this device has ${sharedLimit})` : '';
    it.skipIf(unfit !== '')(`every tile configuration computes the same products: ${name} ${JSON.stringify(config)}${unfit}`, async () => {
      const scalarOk = gemmConfigOk(config, false);
      setGemmConfig(config);
      try {
        const cases: [Shape, Shape][] = [[[64, 64], [64, 64]], [[129, 20], [20, 36]], [[2, 65, 96], [96, 132]], [[3, 4], [4, 8]], [[100, 33], [33, 4]]];
        if (scalarOk) cases.push([[1, 1], [1, 1]], [[17, 63], [63, 65]], [[129, 65], [65, 3]], [[3, 129], [129, 129]]);
        for (const [a, b] of cases) {
          const before = dispatches.length;
          await checkMatmul(a, b);
          // The forced configuration was the one used.
          const c = dispatches[before].constants;
          expect([c.WG_X, c.WG_Y, c.TILE_K, c.TILE_M / c.WG_Y, c.TILE_N / c.WG_X]).toEqual([config.wgX, config.wgY, config.tileK, config.rm, config.rn]);
        }
        // The convolutions run on the same tile loop (scalar B loads).
        if (scalarOk) await checkConv(geometry([2, 3, 9, 11], [5, 3, 3, 3], { stride: [2, 1], padding: [1, 1] }), `conv with ${name} tiles`);
      } finally {
        setGemmConfig(null);
      }
    });
  }

  it('configuration choice: deep tiles only for vec4 matmuls on CPU adapters, narrow shapes for narrow problems', () => {
    const cpuTarget = { cpu: true, sharedBytes: 32768 };
    const gpuTarget = { cpu: false, sharedBytes: 32768 };
    expect(chooseGemmConfig(1024, 1024, true, cpuTarget)).toBe(GEMM_CONFIGS.deep);
    expect(chooseGemmConfig(1024, 1024, true, { cpu: true, sharedBytes: 16384 })).toBe(GEMM_CONFIGS.deep16);
    expect(chooseGemmConfig(1024, 1024, false, cpuTarget)).toBe(GEMM_CONFIGS.square);
    expect(chooseGemmConfig(1024, 1024, true, gpuTarget)).toBe(GEMM_CONFIGS.square);
    expect(chooseGemmConfig(8, 1024, true, cpuTarget)).toBe(GEMM_CONFIGS.wide);
    expect(chooseGemmConfig(1024, 3, false, gpuTarget)).toBe(GEMM_CONFIGS.tall);
    for (const c of Object.values(GEMM_CONFIGS)) expect(gemmConfigOk(c, true)).toBe(true);
    expect(gemmConfigOk(GEMM_CONFIGS.deep, false)).toBe(false);
    expect(gemmSharedBytes(GEMM_CONFIGS.square)).toBe(16384);
  });

  // --- convolutions ---------------------------------------------------------------------------------

  const convCases: [string, ConvGeometry, ReturnType<typeof conv2dRoute>][] = [
    ['3×3 stride 1 pad 1, batch 2, odd sizes', geometry([2, 3, 9, 11], [4, 3, 3, 3], { padding: [1, 1] }), 'implicit-gemm'],
    ['3×3 stride 2 pad 1', geometry([2, 5, 13, 10], [6, 5, 3, 3], { stride: [2, 2], padding: [1, 1] }), 'implicit-gemm'],
    ['3×3 stride 3 pad 2', geometry([1, 6, 13, 13], [70, 6, 3, 3], { stride: [3, 3], padding: [2, 2] }), 'implicit-gemm'],
    ['asymmetric stride 2×1, padding 2×0', geometry([2, 4, 11, 9], [5, 4, 3, 3], { stride: [2, 1], padding: [2, 0] }), 'implicit-gemm'],
    ['asymmetric padding 0×1, kernel 2×3', geometry([2, 3, 7, 8], [4, 3, 2, 3], { padding: [0, 1] }), 'implicit-gemm'],
    ['dilation 2', geometry([2, 3, 15, 12], [4, 3, 3, 3], { padding: [2, 2], dilation: [2, 2] }), 'implicit-gemm'],
    ['dilation 2×1 with stride 2', geometry([1, 4, 17, 15], [8, 4, 3, 3], { stride: [2, 2], padding: [1, 1], dilation: [2, 1] }), 'implicit-gemm'],
    ['groups 2, stride 2', geometry([2, 4, 9, 11], [6, 2, 3, 3], { stride: [2, 2], padding: [1, 0], groups: 2 }), 'implicit-gemm'],
    ['depthwise (groups = C), 3×3 pad 1', geometry([2, 5, 10, 9], [5, 1, 3, 3], { padding: [1, 1], groups: 5 }), 'depthwise'],
    ['depthwise, multiplier 2, stride 2, dilation 2', geometry([2, 5, 17, 19], [10, 1, 3, 3], { stride: [2, 2], padding: [2, 2], dilation: [2, 2], groups: 5 }), 'depthwise'],
    ['depthwise 5×5 stride 3, 65×3 plane', geometry([1, 3, 65, 3], [3, 1, 5, 5], { stride: [3, 1], padding: [2, 2], groups: 3 }), 'depthwise'],
    ['depthwise whose patch exceeds workgroup memory (falls back to the grouped GEMM)', geometry([1, 2, 90, 90], [2, 1, 15, 15], { dilation: [6, 6], groups: 2 }), 'implicit-gemm'],
    ['1×1 stride 1 (matmul route)', geometry([2, 8, 7, 7], [16, 8, 1, 1]), 'pointwise-matmul'],
    ['1×1 grouped (matmul route with batch broadcast)', geometry([2, 8, 7, 7], [6, 4, 1, 1], { groups: 2 }), 'pointwise-matmul'],
    ['1×1 stride 2 (ResNet downsample)', geometry([2, 8, 9, 9], [12, 8, 1, 1], { stride: [2, 2] }), 'implicit-gemm'],
    ['1×1 pad 1', geometry([1, 4, 5, 6], [3, 4, 1, 1], { padding: [1, 1] }), 'implicit-gemm'],
    ['7×7 stride 2 pad 3 (ResNet stem), batch 2', geometry([2, 3, 29, 23], [8, 3, 7, 7], { stride: [2, 2], padding: [3, 3] }), 'implicit-gemm'],
    ['several tiles: 70 output channels × 2046 columns, K = 144', geometry([2, 16, 33, 31], [70, 16, 3, 3], { padding: [1, 1] }), 'implicit-gemm'],
    ['vec4 loads in backward-filter (oh·ow % 4 = 0), K over several slabs', geometry([2, 8, 16, 16], [12, 8, 3, 3], { padding: [1, 1] }), 'implicit-gemm'],
    ['single channel, single output', geometry([1, 1, 3, 3], [1, 1, 3, 3]), 'implicit-gemm'],
  ];

  for (const [label, g, route] of convCases) {
    it(`conv ${label}: forward (${route}), backward-input, backward-filter`, async () => {
      expect(conv2dRoute(g, gpu.limits.maxComputeWorkgroupStorageSize)).toBe(route);
      const before = dispatches.length;
      await checkConv(g, label);
      // The forward pass went through the kernel its route names.
      const forward = dispatches[before];
      expect(forward.code).toMatch(route === 'pointwise-matmul' ? /^\/\/ (matmul|matvec)/ : route === 'depthwise' ? /^\/\/ depthwise/ : /^\/\/ conv2d:/);
    });
  }

  it('conv with output padding past the input (torch: bottom/right padding is whatever yShape implies)', async () => {
    // 3×3 stride 2 with top/left padding 1 and one extra output row/column on the bottom/right.
    const base = geometry([2, 3, 8, 8], [4, 3, 3, 3], { stride: [2, 2], padding: [1, 1] });
    const g: ConvGeometry = { ...base, yShape: [2, 4, base.yShape[2] + 1, base.yShape[3] + 1] };
    await checkConv(g, 'extra bottom/right padding');
    const dw: ConvGeometry = { ...geometry([1, 4, 8, 8], [4, 1, 3, 3], { stride: [2, 2], padding: [1, 1], groups: 4 }) };
    await checkConv({ ...dw, yShape: [1, 4, dw.yShape[2] + 1, dw.yShape[3] + 2] }, 'depthwise with extra bottom/right padding');
  });

  // --- stride phases and split-K ------------------------------------------------------------------

  /** Runs `kernel` with the given paths on, and returns the result (poisoned outputs, freed inputs). */
  async function runWith<K extends 'conv2dBackwardInput'>(kernel: K, inputs: Float64Array[], g: ConvGeometry, paths: Partial<typeof convPaths>): Promise<Float64Array> {
    const saved = { ...convPaths };
    Object.assign(convPaths, paths);
    try {
      const ins = inputs.map((v) => gpu.upload(v));
      const out = gpu.run(kernel, ins, g);
      const got = await gpu.read(out);
      for (const s of [...ins, out]) gpu.free(s);
      return got;
    } finally {
      Object.assign(convPaths, saved);
    }
  }

  it('backward-input by stride phases: same values as the plain kernel (bit for bit), every pixel written', async () => {
    const cases: [string, ConvGeometry][] = [
      ['3×3 stride 2 pad 1, odd sizes', geometry([2, 5, 13, 11], [6, 5, 3, 3], { stride: [2, 2], padding: [1, 1] })],
      ['1×1 stride 2 (phases without taps write zeros)', geometry([2, 8, 9, 7], [12, 8, 1, 1], { stride: [2, 2] })],
      ['7×7 stride 2 pad 3 (stem), C = 3', geometry([2, 3, 29, 23], [8, 3, 7, 7], { stride: [2, 2], padding: [3, 3] })],
      ['stride 3×2, kernel 2×3, groups 2, extra bottom padding', { ...geometry([1, 4, 14, 9], [6, 2, 2, 3], { stride: [3, 2], padding: [1, 0], groups: 2 }), yShape: [1, 6, 6, 4] }],
    ];
    for (const [label, g] of cases) {
      expect(usesStridePhases(g), label).toBe(true);
      expect(planBackwardInputPhases(g).length, label).toBe(Math.min(g.stride[0], g.xShape[2]) * Math.min(g.stride[1], g.xShape[3]));
      const dy = rand(sizeOf(g.yShape), seed++);
      const w = rand(sizeOf(g.wShape), seed++);
      const [O, , KH, KW] = g.wShape;
      await check('conv2dBackwardInput', [dy, w], g, (O / g.groups) * KH * KW, `${label} (phases) against the CPU`);
      const phased = await runWith('conv2dBackwardInput', [dy, w], g, { stridePhases: true });
      const plain = await runWith('conv2dBackwardInput', [dy, w], g, { stridePhases: false });
      const differing = phased.findIndex((v, i) => !Object.is(v, plain[i]));
      expect(differing, `${label}: first element where phases and the plain kernel differ`).toBe(-1);
    }
  });

  it('backward-filter with split-K: K in several ranges whose partial sums are added, within the float32 bound', async () => {
    const target = { cpu: gpu.ctx.adapterInfo.software, sharedBytes: gpu.limits.maxComputeWorkgroupStorageSize };
    const cases: [string, ConvGeometry][] = [
      ['3 → 8 channels, K = 4·64·64', geometry([4, 3, 64, 64], [8, 3, 3, 3], { padding: [1, 1] })],
      ['stride 2, K = 3·61·55 (not a multiple of 4)', geometry([3, 5, 121, 110], [7, 5, 3, 3], { stride: [2, 2], padding: [1, 1] })],
    ];
    for (const [label, g] of cases) {
      expect(defaultSplitK(g, GEMM_CONFIGS.square, target), `${label}: split by default`).toBeGreaterThan(1);
      const [N, , OH, OW] = g.yShape;
      const x = rand(sizeOf(g.xShape), seed++);
      const dy = rand(sizeOf(g.yShape), seed++);
      const before = dispatches.length;
      await check('conv2dBackwardFilter', [x, dy], g, N * OH * OW, `${label} (split-K) against the CPU`);
      expect(dispatches.length - before, `${label}: one GEMM dispatch per K range`).toBeGreaterThan(1);
    }
  });

  it('1×1 convolutions map onto matmul shapes exactly', () => {
    expect(pointwiseAsMatmul(geometry([2, 8, 7, 5], [16, 8, 1, 1]))).toEqual({ aShape: [16, 8], bShape: [2, 8, 35], outShape: [2, 16, 35] });
    expect(pointwiseAsMatmul(geometry([2, 8, 7, 5], [6, 4, 1, 1], { groups: 2 }))).toEqual({ aShape: [2, 3, 4], bShape: [2, 2, 4, 35], outShape: [2, 2, 3, 35] });
    const plan = planConv2d(geometry([2, 8, 7, 5], [16, 8, 1, 1]));
    expect(plan.bindings).toEqual({ a: 1, b: 0, out: 'output' });
    expect(plan.outShape).toEqual([2, 16, 7, 5]);
    expect(convFlops(geometry([1, 3, 224, 224], [64, 3, 7, 7], { stride: [2, 2], padding: [3, 3] }))).toBe(2 * 64 * 112 * 112 * 147);
  });

  it('the depthwise kernel declines geometries whose patch does not fit workgroup memory', () => {
    const g = geometry([1, 2, 90, 90], [2, 1, 15, 15], { dilation: [6, 6], groups: 2 });
    expect(planDepthwise(g, 32768)).toBeNull();
    expect(planDepthwise(geometry([1, 2, 9, 9], [2, 1, 3, 3], { groups: 2 }), 16384)).not.toBeNull();
  });

  // --- the harness itself ---------------------------------------------------------------------------

  it('poisoning catches an unwritten element: a matmul that skips the last column fails the comparison', async () => {
    const skipping = {
      matmul(ctx, inputs, p) {
        const plan = planMatmul(p);
        const code = plan.code.replace(/if \(col0 \+ (\d+)u < params\.n1\)/g, 'if (col0 + $1u < params.n1 - 1u)');
        expect(code).not.toBe(plan.code);
        return runPlan(ctx, { ...plan, code }, inputs);
      },
    } satisfies KernelFamily;
    const broken = new WebGpuBackend(gpu.ctx, { ...WGSL_KERNELS, ...skipping });
    broken.debug.poisonOutputs = true;
    const p = matmulShapes([5, 7], [7, 9]);
    const a = rand(35, 1);
    const b = rand(63, 2);
    const sa = broken.upload(a);
    const sb = broken.upload(b);
    const out = broken.run('matmul', [sa, sb], p);
    const got = await broken.read(out);
    for (const s of [sa, sb, out]) broken.free(s);
    const want = cpu.readSync!(cpu.run('matmul', [cpu.upload(a), cpu.upload(b)], p));
    const absSum = cpu.readSync!(cpu.run('matmul', [cpu.upload(a.map(Math.abs)), cpu.upload(b.map(Math.abs))], p));
    const c = compare(got, want, absSum, 7);
    expect(c.bad).toBe(5); // the 5 elements of the last column are NaN
    expect(Number.isNaN(got[8])).toBe(true);
  });

  it('the float-reciprocal division used by backward-filter is exact below 2^23', () => {
    // Emulates the WGSL: q = u32(f32(x) * f32(1/d)), then one correction step (f32 products are
    // correctly rounded in WGSL, as Math.fround models).
    const r = rng(7);
    for (let t = 0; t < 200000; t++) {
      const d = 1 + Math.floor(r() ** 3 * 50000);
      const x = Math.floor(r() * (2 ** 23 - d));
      const inv = Math.fround(1 / d);
      let q = Math.trunc(Math.fround(Math.fround(x) * inv));
      if (q * d > x) q -= 1;
      else if ((q + 1) * d <= x) q += 1;
      if (q !== Math.floor(x / d)) throw new Error(`udiv(${x}, ${d}) = ${q}, want ${Math.floor(x / d)}`);
    }
  });

  // --- races ----------------------------------------------------------------------------------------

  it("wgsl_reflect's race detector finds no race in the tiled kernels (and finds the one a dropped barrier makes)", () => {
    // The emulator runs every invocation of a workgroup in lockstep, which is slow, so one workgroup of
    // one small dispatch (fewest K slabs, fewest invocations) is checked per matmul tile variant (the
    // source's first line names it) and per convolution kernel; the tile loop is the same code in all.
    const kOf = (d: DispatchRecord) => (d.uniform ? new DataView(d.uniform.bytes.buffer, d.uniform.bytes.byteOffset).getUint32(8, true) : 0);
    const cost = (d: DispatchRecord) => (d.code.startsWith('// depthwise') ? d.grid[0] * d.grid[1] : kOf(d) * d.constants.NUM_THREADS);
    const firstLine = (d: DispatchRecord) => d.code.split('\n')[0];
    const seen = new Map<string, DispatchRecord>();
    for (const d of dispatches) {
      const key = d.code.startsWith('// matmul') ? firstLine(d) : firstLine(d).split(':')[0];
      const best = seen.get(key);
      if (!best || cost(d) < cost(best)) seen.set(key, d);
    }
    const kinds = new Set([...seen.values()].map((d) => d.code.split('\n')[0].split(':')[0]));
    expect([...kinds].sort()).toEqual([
      '// conv2d', '// conv2d_backward_filter', '// conv2d_backward_input', '// conv2d_backward_input_phase', '// depthwise conv2d', '// matmul', '// matvec',
    ]);
    const findings: string[] = [];
    let checked = 0;
    for (const d of seen.values()) {
      const { races, errors } = raceCheck(d);
      checked++;
      for (const race of races.slice(0, 2)) findings.push(`${d.label}: ${race.message}`);
      for (const e of errors) findings.push(`${d.label}: ${e}`);
    }
    console.log(`race-checked ${checked} tiled-kernel sources`);
    expect(findings).toEqual([]);
    // The check is live: without the barrier that ends each K slab, the double buffer races.
    const multiSlab = dispatches.find((d) => d.code.startsWith('// matmul') && kOf(d) > d.constants.TILE_K && kOf(d) <= 3 * d.constants.TILE_K);
    expect(multiSlab).toBeDefined();
    const broken = { ...multiSlab!, code: multiSlab!.code.replace('workgroupBarrier();\n    cur = 1u - cur;', 'cur = 1u - cur;') };
    expect(broken.code).not.toBe(multiSlab!.code);
    expect(raceCheck(broken).races.length).toBeGreaterThan(0);
  }, 300_000);
});

/**
 * wgsl_reflect's lockstep race detector on the first workgroup of a recorded dispatch, with its real
 * uniforms and override constants and zero-filled storage buffers of the bound sizes. Override-sized
 * workgroup arrays are specialised to the constant's value first (the emulator cannot size them).
 */
function raceCheck(r: DispatchRecord): RaceDetectionResult {
  let code = r.code;
  for (const [name, value] of Object.entries(r.constants)) {
    code = code.replace(new RegExp(`(array<[^<>]*(?:<[^<>]*>)?\\s*,\\s*)${name}(\\s*>)`, 'g'), `$1${value}$2`);
  }
  const groups: Record<string, Record<string, unknown>> = {};
  const slot = (g: number) => (groups[String(g)] ??= {});
  if (r.uniform) slot(r.uniform.group)[String(r.uniform.binding)] = { uniform: r.uniform.bytes.slice().buffer };
  for (const s of Object.values(r.storage)) slot(s.group)[String(s.binding)] = new ArrayBuffer(Math.max(16, s.size));
  return detectRaces(code, r.entryPoint, [1, 1, 1], groups, { constants: r.constants });
}

describe('matmul/conv planning without a device', () => {
  it('plans name every binding and uniform the WGSL declares', () => {
    const plan = planMatmul({ aShape: [3, 5], bShape: [5, 7], outShape: [3, 7] });
    expect(plan.bindings).toEqual({ a: 0, b: 1, out: 'output' });
    expect(plan.outShape).toEqual([3, 7]);
    expect(plan.workgroups).toEqual([1, 1, 1]);
    for (const name of Object.keys(plan.uniforms!)) expect(plan.code).toMatch(new RegExp(`\\b${name}: (u32|i32|f32)`));
    for (const name of Object.keys(plan.constants!)) expect(plan.code).toMatch(new RegExp(`override ${name}\\b`));
  });
});
