/// <reference types="@webgpu/types" />
// Tensors larger than one storage binding (issue 17): every kernel with a forced small binding limit, so
// the split paths (kernels/blocks.ts, kernels/range-split.ts, windows in engine/webgpu/backend.ts) run on
// any adapter, against the float64 CPU backend and against the same kernel unsplit.
//
// Method. One backend runs unsplit (the device's limits); a second one on the same device binds at most
// `maxBindingBytes` per binding, with window offsets aligned to 256 bytes (the usual discrete-GPU
// alignment, coarser than lavapipe's 16). Both poison outputs with NaN, so an element no box writes fails.
// For each kernel: the split run must have used several dispatches whose bindings all fit the forced
// limit; its result must equal the unsplit result bit for bit (the per-element arithmetic is unchanged)
// except where the split itself changes the summation (reductions cut along the reduced axes, the
// atomic scatter), and every result must match the CPU within float32 rounding (exact for copies and
// single roundings; γ_L·Σ|terms| for sums of L terms, as in test/webgpu-matmul-conv.test.ts).

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConvGeometry, KernelName, KernelParams, Storage } from '../engine/backend.ts';
import { convGeometry } from '../engine/primitives/linalg.ts';
import { cpuBackend } from '../engine/runtime.ts';
import { broadcastShapes, sizeOf, type Shape } from '../engine/shape.ts';
import { WebGpuBackend, type DispatchRecord } from '../engine/webgpu/backend.ts';
import { DeviceLimitError } from '../engine/webgpu/errors.ts';
import { splitBoxes } from '../kernels/blocks.ts';
import { rng } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const cpu = cpuBackend();
const u = 2 ** -24;
const ALIGN_BYTES = 256;

let whole: WebGpuBackend;
let split: WebGpuBackend;
let records: DispatchRecord[] = [];

/** n random float32 values in [-1, 1). */
function rand(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => Math.fround(2 * r() - 1));
}

/** Integer-valued indices in [lo, hi) as floats. */
function indices(n: number, seed: number, lo: number, hi: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo)));
}

async function runOn<K extends KernelName>(b: WebGpuBackend, kernel: K, inputs: Float64Array[], params: KernelParams[K]): Promise<Float64Array> {
  const ins: Storage[] = inputs.map((v) => b.upload(v));
  const out = b.run(kernel, ins, params);
  const got = await b.read(out);
  for (const s of [...ins, out]) b.free(s);
  return got;
}

interface Expect {
  /** Summed terms per output (0: the kernel computes each output with at most one rounding). */
  terms?: number;
  /** The split result may differ from the unsplit one in rounding (summation order changed). */
  reordered?: boolean;
}

/**
 * Runs `kernel` on the CPU, unsplit and split at `limitBytes` per binding; checks that the split run
 * dispatched more than once with every binding within the limit, and the three results as described above.
 */
async function check<K extends KernelName>(label: string, kernel: K, inputs: Float64Array[], params: KernelParams[K], limitBytes: number, e: Expect = {}): Promise<number> {
  const want = cpu.readSync!(cpu.run(kernel, inputs.map((v) => cpu.upload(v)), params));
  const scale = e.terms ? cpu.readSync!(cpu.run(kernel, inputs.map((v) => cpu.upload(v.map(Math.abs))), params)) : null;
  const unsplit = await runOn(whole, kernel, inputs, params);
  split.debug.maxBindingBytes = limitBytes;
  records = [];
  const got = await runOn(split, kernel, inputs, params);
  const dispatches = records.length;
  const oversize = records.flatMap((r) => Object.entries(r.storage).filter(([, s]) => s.size > limitBytes).map(([n, s]) => `${r.label} ${n}: ${s.size}`));
  expect(oversize, `${label}: bindings above the forced limit`).toEqual([]);
  expect(dispatches, `${label}: the split path ran (dispatches)`).toBeGreaterThan(1);
  expect(got.length, `${label}: length`).toBe(want.length);
  const gamma = e.terms ? ((e.terms + 1) * u) / (1 - (e.terms + 1) * u) : 0;
  let bad = 0;
  let first = '';
  for (let i = 0; i < want.length; i++) {
    const ok = e.terms ? Math.abs(got[i] - want[i]) <= gamma * scale![i] : Object.is(got[i], Math.fround(want[i])) || (Number.isNaN(got[i]) && Number.isNaN(want[i]));
    const same = e.reordered || Object.is(got[i], unsplit[i]);
    if (!ok || !same) {
      if (bad++ === 0) first = `[${i}] split ${got[i]} unsplit ${unsplit[i]} cpu ${want[i]}`;
    }
  }
  expect(bad, `${label}: ${bad} of ${want.length} elements wrong; first ${first}`).toBe(0);
  return dispatches;
}

const SMALL = 1024; // 256 floats per binding: elementwise, layout, gather, pooling, reductions
const GEMM = 16384; // 4096 floats: a 64-row tile of a GEMM operand must fit

describeWebGpu('WebGPU kernels on tensors larger than one binding (forced small binding limit)', () => {
  beforeAll(async () => {
    whole = await webgpuBackend();
    split = new WebGpuBackend(whole.ctx);
    split.debug.poisonOutputs = true;
    split.debug.bindingAlignBytes = ALIGN_BYTES;
    split.debug.onDispatch = (d) => records.push(d);
  });
  afterAll(() => {
    split.debug.onDispatch = undefined;
  });

  it('the box splitter keeps every operand range within the cap and covers the index space once', () => {
    const shape = [7, 13, 9];
    const operands = [{ strides: [117, 9, 1] }, { strides: [1, 7, 91] }, { strides: [0, 9, 1], base: 5, reach: 3 }];
    const boxes = splitBoxes(shape, operands, 64, 4, 'test');
    const seen = new Uint8Array(sizeOf(shape));
    for (const b of boxes) {
      b.lo.forEach((lo, k) => expect(b.hi[k] - lo + 1).toBeLessThanOrEqual(64 - 3 - 3));
      for (let i = 0; i < b.shape[0]; i++) for (let j = 0; j < b.shape[1]; j++) for (let l = 0; l < b.shape[2]; l++) seen[(b.start[0] + i) * 117 + (b.start[1] + j) * 9 + b.start[2] + l]++;
    }
    expect([...seen].every((c) => c === 1)).toBe(true);
    expect(() => splitBoxes([4, 100], [{ strides: [0, 0], reach: 200 }], 64, 4, 'gather x')).toThrow(/gather x: operand 0 needs 804 bytes in one binding from a single index/);
  });

  // --- elementwise ----------------------------------------------------------------------------------

  it('fill and unary over aligned chunks', async () => {
    await check('fill 1001', 'fill', [], { size: 1001, value: 0.3 }, SMALL);
    await check('unary neg 1001', 'unary', [rand(1001, 1)], { op: 'neg', size: 1001 }, SMALL);
    await check('unary relu 777', 'unary', [rand(777, 2)], { op: 'relu', size: 777 }, SMALL);
  });

  it('binary and where: contiguous, scalar and broadcast operands (chunks and boxes)', async () => {
    const cases: [Shape, Shape][] = [
      [[5, 7, 11], [5, 7, 11]], // same shape: chunks
      [[5, 7, 11], [1]], // scalar
      [[5, 7, 11], [7, 1]], // broadcast: boxes
      [[1, 7, 11], [5, 7, 1]], // both broadcast
      [[3, 1, 65], [1, 17, 1]],
    ];
    let seed = 10;
    for (const [a, b] of cases) {
      const out = broadcastShapes('test', a, b);
      for (const op of ['add', 'mul'] as const) {
        await check(`binary ${op} ${a} ${b}`, 'binary', [rand(sizeOf(a), seed++), rand(sizeOf(b), seed++)], { op, aShape: a, bShape: b, outShape: out }, SMALL);
      }
    }
    const cond = rand(5 * 7 * 11, 99).map((v) => (v > 0 ? 1 : 0));
    await check('where', 'where', [cond, rand(7 * 11, 100), rand(5 * 1 * 11, 101)], { condShape: [5, 7, 11], aShape: [7, 11], bShape: [5, 1, 11], outShape: [5, 7, 11] }, SMALL);
  });

  // --- layout ---------------------------------------------------------------------------------------

  it('expand, transpose, slice (negative steps), pad (edges and interior) and concat', async () => {
    await check('expand', 'expand', [rand(7 * 11, 20)], { shape: [1, 7, 11], outShape: [6, 7, 11] }, SMALL);
    await check('transpose 2-D', 'transpose', [rand(33 * 47, 21)], { shape: [33, 47], perm: [1, 0] }, SMALL);
    // Large enough for the tiled transpose's split (32 rows of each side per window), and too small for it.
    await check('transpose 2-D tiled', 'transpose', [rand(70 * 90, 28)], { shape: [70, 90], perm: [1, 0] }, 16384);
    await check('batched transpose tiled', 'transpose', [rand(3 * 40 * 50, 29)], { shape: [3, 40, 50], perm: [0, 2, 1] }, 16384);
    await check('transpose 3-D', 'transpose', [rand(5 * 13 * 17, 22)], { shape: [5, 13, 17], perm: [2, 0, 1] }, SMALL);
    await check('slice', 'slice', [rand(9 * 40 * 7, 23)], { shape: [9, 40, 7], begin: [8, 2, 1], step: [-2, 3, 1], outShape: [5, 13, 6] }, SMALL);
    await check('pad', 'pad', [rand(6 * 9 * 8, 24)], { shape: [6, 9, 8], before: [1, 0, 2], after: [0, 3, 1], interior: [0, 1, 0], value: -2, outShape: [7, 20, 11] }, SMALL);
    await check('concat', 'concat', [rand(4 * 30 * 5, 25), rand(4 * 1 * 5, 26), rand(4 * 17 * 5, 27)], { shapes: [[4, 30, 5], [4, 1, 5], [4, 17, 5]], axis: 1, outShape: [4, 48, 5] }, SMALL);
  });

  // --- gather, scatter, pooling ---------------------------------------------------------------------

  it('gather and scatterAdd (loop and atomic strategies) over boxes', async () => {
    await check('gather axis 1', 'gather', [rand(6 * 20 * 9, 30), indices(6 * 33 * 9, 31, 0, 20)], { shape: [6, 20, 9], axis: 1, outShape: [6, 33, 9] }, SMALL);
    await check('gather axis 2', 'gather', [rand(30 * 12, 32), indices(30 * 5, 33, 0, 12)], { shape: [30, 12], axis: 1, outShape: [30, 5] }, SMALL);
    await check('scatterAdd loop (K ≤ 64)', 'scatterAdd', [rand(6 * 20 * 9, 34), indices(6 * 20 * 9, 35, 0, 11)], { updShape: [6, 20, 9], axis: 1, outShape: [6, 11, 9] }, SMALL, { terms: 20 });
    // K > 64: one invocation per update adds with compare-and-swap; the order of additions is unspecified.
    await check('scatterAdd atomic (K > 64)', 'scatterAdd', [rand(5 * 70 * 3, 36), indices(5 * 70 * 3, 37, 0, 9)], { updShape: [5, 70, 3], axis: 1, outShape: [5, 9, 3] }, SMALL, { terms: 70, reordered: true });
  });

  it('maxPoolArgmax over boxes of planes and pixels', async () => {
    const r = rng(40);
    const x = Float64Array.from({ length: 3 * 4 * 13 * 11 }, (_, i) => Math.fround(i * 0.37 - Math.floor(r() * 5)));
    await check('maxPoolArgmax', 'maxPoolArgmax', [x], { xShape: [3, 4, 13, 11], kernel: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1], outShape: [3, 4, 7, 6] }, SMALL);
  });

  // --- reductions -----------------------------------------------------------------------------------

  it('reductions: kept dims split (exact), reduced dims split (partials folded), long reductions', async () => {
    for (const op of ['sum', 'max'] as const) {
      const sum = op === 'sum';
      await check(`reduce ${op} rows`, 'reduce', [rand(40 * 30, 50)], { op, shape: [40, 30], axes: [1] }, SMALL, sum ? { terms: 30 } : {});
      await check(`reduce ${op} middle axis`, 'reduce', [rand(6 * 50 * 7, 51)], { op, shape: [6, 50, 7], axes: [1] }, SMALL, sum ? { terms: 50, reordered: true } : {});
      await check(`reduce ${op} outer and inner`, 'reduce', [rand(6 * 50 * 7, 52)], { op, shape: [6, 50, 7], axes: [0, 2] }, SMALL, sum ? { terms: 42, reordered: true } : {});
      await check(`reduce ${op} all of 3000 (tree)`, 'reduce', [rand(3000, 53)], { op, shape: [3000], axes: [0] }, SMALL, sum ? { terms: 3000, reordered: true } : {});
    }
  });

  // --- GEMMs ----------------------------------------------------------------------------------------

  it('matmul split into row/column boxes and K ranges equals one dispatch bit for bit', async () => {
    const cases: [Shape, Shape][] = [
      [[130, 20], [20, 150]], // C split into boxes (scalar loads)
      [[132, 24], [24, 148]], // vec4 loads
      [[8, 300], [300, 40]], // B split along K: later ranges accumulate onto C
      [[3, 65, 12], [12, 70]], // batch: rank-2 B broadcast
      [[2, 1, 40, 16], [3, 16, 60]], // batch broadcast both ways
    ];
    let seed = 60;
    for (const [a, b] of cases) {
      const batch = broadcastShapes('test', a.slice(0, -2), b.slice(0, -2));
      const p = { aShape: a, bShape: b, outShape: [...batch, a[a.length - 2], b[b.length - 1]] };
      await check(`matmul ${a} @ ${b}`, 'matmul', [rand(sizeOf(a), seed++), rand(sizeOf(b), seed++)], p, GEMM, { terms: a[a.length - 1] });
    }
  });

  const conv = (x: Shape, w: Shape, o: Partial<{ stride: [number, number]; padding: [number, number]; groups: number }> = {}): ConvGeometry =>
    convGeometry('test', x, w, { stride: o.stride ?? [1, 1], padding: o.padding ?? [0, 0], dilation: [1, 1], groups: o.groups ?? 1 });

  const convCases: [string, ConvGeometry][] = [
    ['3×3 pad 1, batch 5', conv([5, 8, 12, 11], [20, 8, 3, 3], { padding: [1, 1] })],
    ['3×3 stride 2, groups 2', conv([4, 6, 15, 13], [36, 3, 3, 3], { stride: [2, 2], padding: [1, 1], groups: 2 })],
    ['1×1 (matmul route)', conv([5, 8, 12, 11], [20, 8, 1, 1])],
    ['depthwise', conv([3, 6, 25, 23], [6, 1, 3, 3], { padding: [1, 1], groups: 6 })],
  ];
  for (const [label, g] of convCases) {
    it(`conv ${label}: forward, backward-input and backward-filter split equal one dispatch bit for bit`, async () => {
      const [N, , , ] = g.xShape;
      const [O, Cg, KH, KW] = g.wShape;
      const [, , OH, OW] = g.yShape;
      const x = rand(sizeOf(g.xShape), 70);
      const w = rand(sizeOf(g.wShape), 71);
      const dy = rand(sizeOf(g.yShape), 72);
      const counts = [
        await check(`${label} conv2d`, 'conv2d', [x, w], g, GEMM, { terms: Cg * KH * KW }),
        await check(`${label} conv2dBackwardInput`, 'conv2dBackwardInput', [dy, w], g, GEMM, { terms: (O / g.groups) * KH * KW }),
        await check(`${label} conv2dBackwardFilter`, 'conv2dBackwardFilter', [x, dy], g, GEMM, { terms: N * OH * OW }),
      ];
      console.log(`${label}: split into ${counts.join(', ')} dispatches`);
    });
  }

  it('conv with a fused epilogue (bias, residual, ReLU) over windows: the output and the residual above one binding', async () => {
    for (const [label, g] of convCases) {
      const [O, Cg, KH, KW] = g.wShape;
      const fused = { ...g, epilogue: { bias: true, residual: true, activation: 'relu' as const } };
      const inputs = [rand(sizeOf(g.xShape), 80), rand(sizeOf(g.wShape), 81), rand(O, 82), rand(sizeOf(g.yShape), 83)];
      await check(`${label} conv2d + bias + residual + relu`, 'conv2d', inputs, fused, GEMM, { terms: Cg * KH * KW + 2 });
    }
  });

  // --- transfers and limits -------------------------------------------------------------------------

  it('uploads and readbacks move large tensors in chunks', async () => {
    const before = split.transferChunk;
    split.transferChunk = 1000;
    try {
      const v = rand(4321, 80);
      const s = split.upload(v);
      expect(Array.from(await split.read(s))).toEqual(Array.from(v));
      split.free(s);
    } finally {
      split.transferChunk = before;
    }
  });

  it('a tensor above maxBufferSize is one DeviceLimitError naming the tensor, its size and the limit', async () => {
    split.debug.maxBindingBytes = SMALL;
    split.debug.maxBufferBytes = 64 * 1024;
    try {
      const a = split.upload(rand(100 * 100, 90));
      let err: unknown = null;
      try {
        split.run('matmul', [a, a], { aShape: [100, 100, 1], bShape: [100, 1, 100], outShape: [100, 100, 100] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DeviceLimitError);
      expect((err as Error).message).toMatch(/^webgpu: matmul output \[100,100,100\] .*needs 4000000 bytes \(1000000 float32\), more than this device's maxBufferSize of 65536 bytes$/);
      expect((err as Error).message).not.toMatch(/\n/);
      split.free(a);
    } finally {
      split.debug.maxBufferBytes = undefined;
    }
  });
});
