// The WebGPU forward against jax-js's, interleaved: ResNet forward at batch 8 (224×224, random weights), ms per
// image, with this engine's convolutions as implicit GEMMs (`ours-gemm`), as direct kernels
// (`ours-direct`, kernels/conv2d-direct.ts: an autotuner candidate, forced here), and jax-js 0.1.25 on its
// WebGPU backend (bench/peers/jax_peer.ts, its own process). On a shared machine only a side-by-side run
// ranks them, so each round times one pass of each, in turn, after warm-up passes (pipeline compilation).
//
//   npx tsx bench/peers-direct.ts [--models resnet18,resnet50] [--batch 8] [--rounds 2] [--no-jax]
//
// Ours is the compiled inference forward (BatchNorm folded, epilogues fused), as bench/peers.ts times it.
// Prints a JSON line per measurement, then per model the medians and ratios.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import { directConv } from '../kernels/conv2d-direct.ts';
import { getArchitecture } from '../models/registry.ts';
import { initializeRandom } from '../models/init.ts';
import { inferenceForward } from '../models/inference-prefix.ts';
import '../models/archs/index.ts';

const { values: opts } = parseArgs({
  options: {
    models: { type: 'string', default: 'resnet18' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'no-jax': { type: 'boolean', default: false },
  },
});
const batch = Number(opts.batch);
const rounds = Number(opts.rounds);
const PEERS_DIR = new URL('./peers/', import.meta.url).pathname;
const withJax = !opts['no-jax'] && existsSync(join(PEERS_DIR, 'node_modules'));
if (!opts['no-jax'] && !withJax) console.error('skipping jax-js: run npm --prefix bench/peers ci --ignore-scripts');
if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = join(tmpdir(), 'xdg-runtime-bench');
spawnSync('mkdir', ['-p', '-m', '700', process.env.XDG_RUNTIME_DIR]);

const backend = await E.useBackend('webgpu');
const adapter = backend.describe();
console.log(`# ${adapter}; batch ${batch}, ${rounds} rounds`);
const load = () => loadavg()[0].toFixed(1);

/** One pass of jax-js in its own process (a warm-up pass, then one timed): ms per image. */
function jaxPass(model: string): number | undefined {
  const r = spawnSync('npx', ['--no-install', 'tsx', join(PEERS_DIR, 'jax_peer.ts'), 'webgpu', '--models', model, '--batches', String(batch), '--no-matmul', '--warmup', '1'], {
    encoding: 'utf8',
    env: { ...process.env, PEERS_RUNS: '1' },
    maxBuffer: 1 << 24,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) {
    console.error(`jax-js failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    return undefined;
  }
  return (JSON.parse(line) as { ms_per_image: number }).ms_per_image;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

for (const model of opts.models!.split(',')) {
  const module = getArchitecture(model).build();
  initializeRandom(module, 1);
  const x = E.tensor(Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [batch, 3, 224, 224], backend);
  const pass = async (mode: 'on' | 'off'): Promise<number> => {
    directConv.mode = mode;
    const t = performance.now();
    const y = E.tidy(() => inferenceForward(module, x));
    await y.data();
    y.dispose();
    directConv.mode = 'auto';
    return (performance.now() - t) / batch;
  };
  // Warm-up: pipelines of both variants compiled, folded weights cached.
  for (const mode of ['off', 'on'] as const) await pass(mode);
  const times: Record<string, number[]> = { 'ours-gemm': [], 'ours-direct': [], 'jax-js-webgpu': [] };
  const record = (engine: string, ms: number | undefined, round: number) => {
    if (ms === undefined) return;
    times[engine].push(ms);
    console.log(JSON.stringify({ bench: 'peers-direct', model, batch, round, engine, ms_per_image: +ms.toFixed(1), load1: +load(), adapter, date: new Date().toISOString() }));
  };
  for (let round = 0; round < rounds; round++) {
    record('ours-gemm', await pass('off'), round);
    record('ours-direct', await pass('on'), round);
    if (withJax) record('jax-js-webgpu', jaxPass(model), round);
  }
  x.dispose();
  module.disposeParameters();
  const gemm = median(times['ours-gemm']);
  const direct = median(times['ours-direct']);
  const jax = times['jax-js-webgpu'].length ? median(times['jax-js-webgpu']) : undefined;
  console.log(`\n# ${model} batch ${batch}, median ms/image over ${rounds} rounds (load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')})`);
  console.log(`ours-gemm      ${gemm.toFixed(1)}`);
  console.log(`ours-direct    ${direct.toFixed(1)}   gemm / direct ${(gemm / direct).toFixed(2)}×`);
  if (jax !== undefined) console.log(`jax-js-webgpu  ${jax.toFixed(1)}   jax / direct ${(jax / direct).toFixed(2)}×, jax / gemm ${(jax / gemm).toFixed(2)}×`);
}

process.exit(0);
