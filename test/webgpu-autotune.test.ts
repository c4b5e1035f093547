// The autotuner (engine/webgpu/autotune.ts) with the matmul and convolution kernels: off by default under
// the tests (vitest.config.ts), it is switched on here with an injected clock, so its decisions are
// deterministic while the candidates still run on the device. Checked: the first use runs the default and
// queues the class; the next flush measures every candidate on scratch buffers; later uses run the
// winner; every variant computes the CPU reference's values (NaN-poisoned outputs); decisions are written
// to the cache file of the adapter and read back by a new backend; the time budget bounds the measuring;
// with tuning off nothing is measured or written.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ConvGeometry, KernelName, KernelParams } from '../engine/backend.ts';
import { convGeometry } from '../engine/primitives/linalg.ts';
import { cpuBackend } from '../engine/runtime.ts';
import { sizeOf } from '../engine/shape.ts';
import { WebGpuBackend, type DispatchRecord } from '../engine/webgpu/backend.ts';
import { rng } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const cpu = cpuBackend();
const u = 2 ** -24;
let cacheDir: string;
let records: DispatchRecord[] = [];

function rand(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => Math.fround(2 * r() - 1));
}

/** A backend on the shared device with its own tuner (on), recording dispatches, poisoning outputs. */
async function tunedBackend(clock: ((key: string, candidate: string) => number) | null, budgetMs = 60_000): Promise<WebGpuBackend> {
  const b = new WebGpuBackend((await webgpuBackend()).ctx);
  b.debug.poisonOutputs = true;
  b.debug.onDispatch = (d) => records.push(d);
  b.tuner.mode = 'on';
  b.tuner.clock = clock;
  b.tuner.budgetMs = budgetMs;
  b.tuner.runs = 1;
  await b.tuner.load();
  return b;
}

/** Runs a kernel; checks it against the CPU within γ_L·Σ|terms|; returns the values and its dispatches. */
async function run<K extends KernelName>(b: WebGpuBackend, kernel: K, inputs: Float64Array[], p: KernelParams[K], terms: number): Promise<{ got: Float64Array; dispatches: DispatchRecord[] }> {
  records = [];
  const ins = inputs.map((v) => b.upload(v));
  const out = b.run(kernel, ins, p);
  const dispatches = records; // before the read's flush, which may run the tuner's measurements
  const got = await b.read(out);
  for (const s of [...ins, out]) b.free(s);
  const want = cpu.readSync!(cpu.run(kernel, inputs.map((v) => cpu.upload(v)), p));
  const scale = cpu.readSync!(cpu.run(kernel, inputs.map((v) => cpu.upload(v.map(Math.abs))), p));
  const gamma = ((terms + 1) * u) / (1 - (terms + 1) * u);
  const bad = want.findIndex((w, i) => !(Math.abs(got[i] - w) <= gamma * scale[i]));
  expect(bad, `${kernel}: first element outside the float32 bound`).toBe(-1);
  return { got, dispatches };
}

/** The tile configuration a GEMM dispatch ran with, as [WG_X, WG_Y, TILE_K, RM, RN]. */
const tiles = (d: DispatchRecord) => [d.constants.WG_X, d.constants.WG_Y, d.constants.TILE_K, d.constants.TILE_M / d.constants.WG_Y, d.constants.TILE_N / d.constants.WG_X];

const MATMUL: KernelParams['matmul'] = { aShape: [100, 72], bShape: [72, 130], outShape: [100, 130] };

describeWebGpu('the autotuner with the matmul and convolution kernels', () => {
  beforeAll(() => {
    cacheDir = mkdtempSync(join(tmpdir(), 'autotune-'));
    process.env.ENGINE_CACHE_DIR = cacheDir;
  });
  afterAll(() => {
    delete process.env.ENGINE_CACHE_DIR;
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('off (the tests\' default): the default configuration, nothing measured or written', async () => {
    const b = new WebGpuBackend((await webgpuBackend()).ctx);
    expect(b.tuner.mode).toBe('off');
    b.debug.onDispatch = (d) => records.push(d);
    await run(b, 'matmul', [rand(7200, 1), rand(9360, 2)], MATMUL, 72);
    expect(b.tuner.hasPending).toBe(false);
    expect(b.tuner.log).toEqual([]);
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it('matmul: the first use runs the default and queues the class; the flush measures; the next use runs the winner', async () => {
    // The clock makes `tall128` the fastest (and the default the slowest).
    const b = await tunedBackend((_key, c) => (c === 'tall128' ? 1 : 5));
    const a = rand(7200, 3);
    const w = rand(9360, 4);
    const first = await run(b, 'matmul', [a, w], MATMUL, 72);
    const entry = b.tuner.log.at(-1)!;
    expect(entry.key).toMatch(/^matmul\|/);
    expect(Object.keys(entry.times).length).toBeGreaterThan(2); // every candidate was measured
    expect(entry.chosen).toBe('tall128');
    const second = await run(b, 'matmul', [a, w], MATMUL, 72);
    expect(tiles(first.dispatches[0])).not.toEqual(tiles(second.dispatches[0]));
    expect(tiles(second.dispatches[0])).toEqual([8, 8, 16, 16, 8]);
    // Tile configurations do not change any element's sum: equal bit for bit.
    expect(second.got.findIndex((v, i) => !Object.is(v, first.got[i]))).toBe(-1);
    // A shape of the same class reuses the decision without measuring.
    const logged = b.tuner.log.length;
    // (Same class: M, N, K in the same size classes, K a multiple of 4 and N not, as for MATMUL.)
    await run(b, 'matmul', [rand(99 * 76, 5), rand(76 * 129, 6)], { aShape: [99, 76], bShape: [76, 129], outShape: [99, 129] }, 76);
    expect(b.tuner.log.length).toBe(logged);
  });

  it('decisions go to the adapter\'s cache file and a new backend starts from them', async () => {
    const files = readdirSync(cacheDir);
    expect(files).toHaveLength(1);
    const file = JSON.parse(readFileSync(join(cacheDir, files[0]), 'utf8'));
    expect(Object.values(file.decisions)).toContain('tall128');
    const b = await tunedBackend(() => {
      throw new Error('nothing should be measured');
    });
    const again = await run(b, 'matmul', [rand(7200, 7), rand(9360, 8)], MATMUL, 72);
    expect(tiles(again.dispatches[0])).toEqual([8, 8, 16, 16, 8]);
    expect(b.tuner.log).toEqual([]);
  });

  it('the budget bounds the measuring: past it no further candidate is tried', async () => {
    const b = await tunedBackend(() => 1, 0);
    await run(b, 'matmul', [rand(40 * 300, 9), rand(300 * 36, 10)], { aShape: [40, 300], bShape: [300, 36], outShape: [40, 36] }, 300);
    const entry = b.tuner.log.at(-1)!;
    expect(Object.keys(entry.times)).toHaveLength(1);
  });

  const geometry = (x: number[], w: number[], o: Partial<{ stride: [number, number]; padding: [number, number] }> = {}): ConvGeometry =>
    convGeometry('test', x, w, { stride: o.stride ?? [1, 1], padding: o.padding ?? [0, 0], dilation: [1, 1], groups: 1 });

  it('convolutions: forward, backward-input (stride phases) and backward-filter (split-K candidates) tune and stay correct', async () => {
    // K = 4·65·33 = 8580 for backward-filter: large enough for the split-K candidates (K ≥ 8192).
    const b = await tunedBackend((key, c) => (key.startsWith('conv2dBackwardFilter') ? (c === 'square/k2' ? 1 : 5) : c === 'square32' ? 1 : 5));
    const g = geometry([4, 3, 130, 66], [8, 3, 3, 3], { stride: [2, 2], padding: [1, 1] });
    const [N, O, OH, OW] = g.yShape;
    const x = rand(sizeOf(g.xShape), 11);
    const w = rand(sizeOf(g.wShape), 12);
    const dy = rand(sizeOf(g.yShape), 13);
    const gemms = (ds: DispatchRecord[]) => ds.filter((d) => d.code.startsWith('// conv2d_backward_filter')).length;
    for (let pass = 0; pass < 2; pass++) {
      await run(b, 'conv2d', [x, w], g, 3 * 9);
      await run(b, 'conv2dBackwardInput', [dy, w], g, O * 9);
      const filter = await run(b, 'conv2dBackwardFilter', [x, dy], g, N * OH * OW);
      if (pass === 1) expect(gemms(filter.dispatches), 'split-K: 2 K ranges').toBe(2);
    }
    const chosen = Object.fromEntries(b.tuner.log.map((e) => [e.key.split('|')[0], e.chosen]));
    // conv2d-direct: the direct kernel against the GEMM (kernels/conv2d-direct.ts); the clock ties them, so the default.
    expect(chosen).toEqual({ 'conv2d-direct': 'gemm', conv2d: 'square32', conv2dBackwardInput: 'square32', conv2dBackwardFilter: 'square/k2' });
  });

  it('with the real clock: some candidate is chosen, and the matmul still matches the CPU', async () => {
    const b = await tunedBackend(null, 2000);
    const p: KernelParams['matmul'] = { aShape: [2, 70, 64], bShape: [64, 96], outShape: [2, 70, 96] };
    await run(b, 'matmul', [rand(8960, 14), rand(6144, 15)], p, 64);
    const entry = b.tuner.log.at(-1)!;
    expect(Object.keys(entry.times)).toContain(entry.chosen);
    await run(b, 'matmul', [rand(8960, 16), rand(6144, 17)], p, 64);
  });
});
