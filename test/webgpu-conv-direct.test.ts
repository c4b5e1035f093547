/// <reference types="@webgpu/types" />
// The direct convolution (kernels/conv2d-direct.ts) against the float64 CPU backend, with and without each
// piece of the fused epilogue, on geometries chosen to hit its edges: stride 1 and 2, padding, 1×1 and 7×7
// kernels, odd sizes (partial pixel and channel blocks), dilation, groups, batches whose pixel blocks
// straddle images. Outputs are poisoned with NaN, so an element the kernel fails to write fails. Also: the
// routing (it runs where it should, and depthwise or oversized convolutions keep their kernels), the
// autotuner offering it, and the GEMM path still agreeing when the direct one is off.
//
// Tolerance: an output is a sum of Cg·kh·kw products (+ bias + residual: 2 more terms); under any order
// of summation its float32 error is within γ_{L+1}·Σ|terms| of the exact value (test/helpers/float32.ts),
// and the activations that follow are 1-Lipschitz (ReLU, ReLU6) or are compared with their own bound below.

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConvEpilogue, ConvGeometry, EpilogueActivation, KernelParams } from '../engine/backend.ts';
import { sizeOf } from '../engine/shape.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { directConv, DEFAULT_DIRECT_TILE, type DirectTile } from '../kernels/conv2d-direct.ts';
import { absAll, compare, convGeometry, cpuRun, gammaBound, rand } from './helpers/float32.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

let gpu: WebGpuBackend;
/** Labels of the dispatches seen since the last kernel call began, and of that call's own dispatches. */
let labels: string[] = [];
let runLabels: string[] = [];

const GEOMETRIES: [string, ConvGeometry][] = [
  ['3×3 pad 1, stride 1', convGeometry([2, 5, 9, 7], [6, 5, 3, 3], { padding: [1, 1] })],
  ['3×3 pad 1, stride 2, odd sizes', convGeometry([3, 3, 17, 13], [5, 3, 3, 3], { stride: [2, 2], padding: [1, 1] })],
  ['7×7 stride 2 pad 3 (a stem)', convGeometry([2, 3, 23, 19], [9, 3, 7, 7], { stride: [2, 2], padding: [3, 3] })],
  ['1×1 stride 2 (a downsample)', convGeometry([2, 8, 11, 11], [7, 8, 1, 1], { stride: [2, 2] })],
  ['1×1 stride 1 (pointwise)', convGeometry([2, 12, 5, 5], [10, 12, 1, 1])],
  ['asymmetric kernel, stride and padding', convGeometry([1, 4, 10, 15], [3, 4, 2, 5], { stride: [1, 3], padding: [0, 2] })],
  ['dilation 2', convGeometry([1, 2, 12, 11], [5, 2, 3, 3], { dilation: [2, 2], padding: [2, 1] })],
  ['groups 2, 3 channels per group', convGeometry([2, 6, 8, 8], [10, 3, 3, 3], { groups: 2, padding: [1, 1] })],
  ['batch 8 of 7×7 maps (blocks straddle images)', convGeometry([8, 16, 7, 7], [12, 16, 3, 3], { padding: [1, 1] })],
];

const EPILOGUES: ConvEpilogue[] = [
  { bias: true, residual: false, activation: 'none' },
  { bias: false, residual: true, activation: 'none' },
  { bias: false, residual: false, activation: 'relu' },
  { bias: true, residual: true, activation: 'relu' },
  { bias: true, residual: false, activation: 'relu6' },
  { bias: true, residual: true, activation: 'silu' },
  { bias: true, residual: false, activation: 'hardswish' },
  { bias: false, residual: true, activation: 'gelu' },
];

/**
 * Error bound of act(s) where s is within δ of the exact sum: |act'| ≤ 1.1 for every activation here
 * (hardswish' ≤ 1.5 on [−3, 3]), plus the activation's own float32 evaluation (a few ulps of |act|, WGSL's
 * exp/erf accuracy carried through: 2^-20 relative + 2^-21 absolute is generous for silu/gelu/hardswish).
 */
function activationBound(act: EpilogueActivation, delta: number, value: number): number {
  if (act === 'none' || act === 'relu' || act === 'relu6') return delta;
  return 1.5 * delta + 2 ** -20 * Math.abs(value) + 2 ** -21;
}

/** Runs conv2d on the GPU and the CPU with the same inputs and compares under the float32 bound. */
async function check(label: string, g: KernelParams['conv2d'], inputs: readonly Float64Array[]): Promise<void> {
  const [, Cg, KH, KW] = g.wShape;
  const e = g.epilogue;
  const terms = Cg * KH * KW + (e?.bias ? 1 : 0) + (e?.residual ? 1 : 0);
  // Σ|terms| of the pre-activation sum: the plain convolution of |x|, |w| plus |bias| and |residual|.
  const absConv = cpuRun('conv2d', [absAll(inputs[0]), absAll(inputs[1])], { ...g, epilogue: undefined });
  const [, O, OH, OW] = g.yShape;
  let next = 2;
  const bias = e?.bias ? inputs[next++] : null;
  const res = e?.residual ? inputs[next++] : null;
  const absSum = absConv.map((v, i) => v + (bias ? Math.abs(bias[Math.floor(i / (OH * OW)) % O]) : 0) + (res ? Math.abs(res[i]) : 0));
  const want = cpuRun('conv2d', inputs, g);
  const ins = inputs.map((v) => gpu.upload(v));
  labels = [];
  try {
    const out = gpu.run('conv2d', ins, g);
    runLabels = [...labels]; // before the readback's flush, which may run the autotuner's candidates
    const got = await gpu.read(out);
    gpu.free(out);
    if (e && e.activation !== 'none' && e.activation !== 'relu' && e.activation !== 'relu6') {
      // Compare through the activation's bound (compare() covers the linear part only).
      const gam = gammaBound(terms);
      let bad = 0;
      let first = '';
      for (let i = 0; i < want.length; i++) {
        const tol = activationBound(e.activation, gam * absSum[i], want[i]);
        if (!(Math.abs(got[i] - want[i]) <= tol)) {
          if (bad++ === 0) first = `[${i}] got ${got[i]} cpu ${want[i]} bound ${tol}`;
        }
      }
      expect(bad, `${label}: ${bad} elements out of bound, first ${first}`).toBe(0);
    } else {
      const c = compare(got, want, absSum, terms);
      expect(c.bad, `${label}: ${c.bad} elements out of bound, first ${c.first}`).toBe(0);
    }
  } finally {
    ins.forEach((s) => gpu.free(s));
  }
}

function inputsOf(g: ConvGeometry, e: ConvEpilogue | undefined, seed: number): Float64Array[] {
  const out = [rand(sizeOf(g.xShape), seed), rand(sizeOf(g.wShape), seed + 1)];
  if (e?.bias) out.push(rand(g.wShape[0], seed + 2));
  if (e?.residual) out.push(rand(sizeOf(g.yShape), seed + 3, -2, 2));
  return out;
}

const ranDirect = () => runLabels.some((l) => l.startsWith('conv2d(direct'));

// Each geometry × epilogue is a pipeline to compile (seconds on lavapipe; far more on a loaded 2-core machine).
const SLOW = 600_000;

describeWebGpu('direct convolution (kernels/conv2d-direct.ts)', () => {
  let mode: typeof directConv.mode;
  let tile: DirectTile;
  beforeAll(async () => {
    gpu = await webgpuBackend(); // every output starts as NaN
    gpu.debug.onDispatch = (d) => labels.push(d.label);
    mode = directConv.mode;
    tile = directConv.tile;
    directConv.mode = 'on';
  });
  afterAll(() => {
    directConv.mode = mode;
    directConv.tile = tile;
    gpu.debug.onDispatch = undefined;
  });

  // Every epilogue on three geometries (each is a pipeline to compile: seconds on lavapipe), the full one on all.
  for (const [index, [name, g]] of GEOMETRIES.entries()) {
    const epilogues = index % 3 === 1 ? EPILOGUES : [EPILOGUES[3]];
    it(`plain and with ${epilogues.length > 1 ? 'each' : 'the full'} epilogue: ${name}`, async () => {
      await check(name, g, inputsOf(g, undefined, 11));
      expect(ranDirect(), `${name}: the direct kernel ran (${runLabels.join('; ')})`).toBe(true);
      for (const [k, e] of epilogues.entries()) {
        await check(`${name} + ${JSON.stringify(e)}`, { ...g, epilogue: e }, inputsOf(g, e, 20 + 4 * k));
        expect(runLabels.length, `${name}: the epilogue rode in the direct kernel's store (one dispatch)`).toBe(1);
      }
    }, SLOW);
  }

  it('other register tiles and workgroup sizes compute the same convolution', async () => {
    const g = GEOMETRIES[1][1];
    const e: ConvEpilogue = { bias: true, residual: true, activation: 'relu' };
    for (const t of [{ co: 1, px: 1, wg: 32 }, { co: 8, px: 2, wg: 64 }, { co: 2, px: 8, wg: 16 }, { co: 3, px: 5, wg: 256 }]) {
      directConv.tile = t;
      try {
        await check(`tile ${JSON.stringify(t)}`, { ...g, epilogue: e }, inputsOf(g, e, 60));
        expect(runLabels.join(), `tile ${JSON.stringify(t)}`).toContain(`direct ${t.co}×${t.px}`);
      } finally {
        directConv.tile = DEFAULT_DIRECT_TILE;
      }
    }
  }, SLOW);

  it('routing: depthwise keeps its kernel; off runs the implicit GEMM, which still agrees', async () => {
    const dw = convGeometry([1, 5, 6, 6], [5, 1, 3, 3], { groups: 5, padding: [1, 1] });
    await check('depthwise', dw, inputsOf(dw, undefined, 70));
    expect(ranDirect(), `depthwise: ${runLabels.join('; ')}`).toBe(false);
    directConv.mode = 'off';
    try {
      for (const [name, g] of GEOMETRIES.slice(0, 3)) {
        const e: ConvEpilogue = { bias: true, residual: true, activation: 'relu' };
        await check(`${name} (GEMM)`, { ...g, epilogue: e }, inputsOf(g, e, 80));
        expect(ranDirect(), `${name} with the direct path off`).toBe(false);
      }
    } finally {
      directConv.mode = 'on';
    }
  });

  it('auto mode: the GEMM unless the autotuner picked direct (with tuning off, never)', async () => {
    const tuning = gpu.tuner.mode;
    directConv.mode = 'auto';
    gpu.tuner.mode = 'off';
    try {
      const g = GEOMETRIES[0][1];
      await check('auto', g, inputsOf(g, undefined, 90));
      expect(ranDirect(), runLabels.join('; ')).toBe(false);
    } finally {
      directConv.mode = 'on';
      gpu.tuner.mode = tuning;
    }
  });

  it('auto mode with tuning on: direct is a candidate, timed against the GEMM, and its pick is followed', async () => {
    // A backend of its own (decisions stay in memory there) writing its cache file to a temporary directory.
    const dir = mkdtempSync(join(tmpdir(), 'direct-tune-'));
    process.env.ENGINE_CACHE_DIR = dir;
    const tuned = new WebGpuBackend(gpu.ctx);
    tuned.debug.poisonOutputs = true;
    tuned.debug.onDispatch = (d) => labels.push(d.label);
    tuned.tuner.mode = 'on';
    // A forced clock makes the direct candidate "fastest" (both candidates still run on scratch buffers).
    tuned.tuner.clock = (key, candidate) => (key.startsWith('conv2d-direct|') && candidate === 'direct' ? 1 : 2);
    directConv.mode = 'auto';
    const saved = gpu;
    gpu = tuned;
    try {
      const g = convGeometry([1, 6, 10, 10], [8, 6, 3, 3], { padding: [1, 1] });
      await check('first use (GEMM, queued for tuning)', g, inputsOf(g, undefined, 95));
      expect(ranDirect()).toBe(false);
      await tuned.flush();
      await check('after tuning (direct)', g, inputsOf(g, undefined, 96));
      expect(ranDirect(), runLabels.join('; ')).toBe(true);
      expect(tuned.tuner.log.some((l) => l.key.startsWith('conv2d-direct|') && l.chosen === 'direct')).toBe(true);
    } finally {
      gpu = saved;
      directConv.mode = 'on';
      delete process.env.ENGINE_CACHE_DIR;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tensors above one binding fall back to the split GEMM path (no windows in the direct kernel)', async () => {
    const g = convGeometry([4, 4, 16, 16], [8, 4, 3, 3], { padding: [1, 1] });
    const e: ConvEpilogue = { bias: true, residual: true, activation: 'relu' };
    gpu.debug.maxBindingBytes = 16384; // 2 images of y: y and the residual (32 KiB) exceed one binding
    try {
      await check('split', { ...g, epilogue: e }, inputsOf(g, e, 100));
      expect(ranDirect()).toBe(false);
      expect(runLabels.length).toBeGreaterThan(1);
    } finally {
      gpu.debug.maxBindingBytes = undefined;
    }
  });
});
