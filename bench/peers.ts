// This engine against its peers, side by side in one run on one machine: ResNet-18 forward at 224×224
// (batch 1 and 8, ms per image), fp32 matmul 1024³ (GFLOP/s) and a CNN-head Hessian-vector product
// (ResNet-18 batch 1, A = layer3's output, head = layer4 → avgpool → fc → ReST utility; G and H·A).
//
//   npx tsx bench/peers.ts [--engines wasm,webgpu,cpu,pytorch,onnxruntime,tfjs-wasm,tfjs-webgpu,jax-js-wasm,jax-js-webgpu] [--runs 7]
//
// This project's backends run in this process. The peers are optional and never product dependencies:
// PyTorch is Debian's python3-torch (/usr/bin/python3, 2 threads); the JavaScript peers come from
// bench/peers/package.json, installed with `npm --prefix bench/peers ci --ignore-scripts`. A peer that is
// not installed is skipped with a note. Each peer runs in its own process (bench/peers/*_peer.*), which
// prints JSON lines; this script prints them too, then a table with every engine's ratio to `wasm`.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import { getArchitecture } from '../models/registry.ts';
import { initializeRandom } from '../models/init.ts';
import { inferenceForward } from '../models/inference-prefix.ts';
import '../models/archs/index.ts';
import { medianMs as median } from './peers/timing.ts';

const { values: opts } = parseArgs({
  options: {
    engines: { type: 'string', default: 'wasm,webgpu,cpu,pytorch,onnxruntime,tfjs-wasm,tfjs-webgpu,jax-js-wasm' },
    runs: { type: 'string', default: '7' },
  },
});
const engines = opts.engines!.split(',');
const RUNS = Number(opts.runs);

interface Result {
  engine: string;
  adapter: string;
  task: string;
  ms?: number;
  ms_per_image?: number;
  gflops?: number;
}
const results: Result[] = [];
const record = (r: Result) => {
  results.push(r);
  console.log(JSON.stringify({ bench: 'peers', date: new Date().toISOString(), ...r }));
};

const input = (batch: number, backend: E.Backend) => E.tensor(Float32Array.from({ length: batch * 3 * 224 * 224 }, (_, i) => Math.sin(i * 0.37)), [batch, 3, 224, 224], backend);

/** This project's tasks on one backend. The float64 CPU backend is slow: fewer runs there. */
async function ours(name: E.BackendName): Promise<void> {
  const backend = await E.useBackend(name);
  const slow = name === 'cpu';
  const runs = slow ? 1 : RUNS;
  // Warm-up runs take V8 past its baseline (Liftoff) tier, and the GPU through pipeline creation.
  const warmup = slow ? 0 : 3;
  const module = getArchitecture('resnet18').build();
  initializeRandom(module, 1); // on the current backend (useBackend above)
  for (const batch of [1, 8]) {
    const x = input(batch, backend);
    const ms = await median(async () => {
      // The inference forward a user gets: compiled (BatchNorms folded, epilogues fused) unless ENGINE_FUSION=0.
      const y = E.tidy(() => inferenceForward(module, x));
      await y.data();
      y.dispose();
    }, runs, warmup);
    record({ engine: name, adapter: backend.describe(), task: `resnet18-b${batch}`, ms, ms_per_image: ms / batch });
    x.dispose();
  }
  const n = 1024;
  const a = E.tensor(Float32Array.from({ length: n * n }, (_, i) => Math.sin(i)), [n, n], backend);
  const b = E.tensor(Float32Array.from({ length: n * n }, (_, i) => Math.cos(i)), [n, n], backend);
  const mm = await median(async () => {
    const c = E.matmul(a, b);
    await E.tidy(() => E.slice(c, [0, 0], [1, 1])).data(); // completes the product without reading 4 MB back
    c.dispose();
  }, slow ? 1 : 3 * RUNS, slow ? 0 : 3);
  record({ engine: name, adapter: backend.describe(), task: 'matmul1024', ms: mm, gflops: (2 * n ** 3) / mm / 1e6 });
  E.dispose([a, b]);

  const x = input(1, backend);
  const get = (path: string) => module.get(path);
  const A = E.tidy(() => ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3'].reduce((t, p) => get(p).call(t), x));
  const logits = E.tidy(() => get('fc').call(E.flatten(get('avgpool').call(get('layer4').call(A)), 1)));
  const scores = await logits.values();
  const c = scores.indexOf(Math.max(...scores));
  const head = (act: E.Tensor) => {
    const out = get('fc').call(E.flatten(get('avgpool').call(get('layer4').call(act)), 1));
    return E.sum(E.sub(E.mul(E.slice(out, [0, c], [1, c + 1]), 2), E.logsumexp(out, 1, true)));
  };
  const hvp = await median(async () => {
    const r = E.tidy(() => {
      const t = E.gradAndHvp(head, A, A);
      return [t.grad, t.hvp];
    });
    await r[1].data();
    E.dispose(r);
  }, runs, warmup);
  record({ engine: name, adapter: backend.describe(), task: 'cnn-head-hvp', ms: hvp, ms_per_image: hvp });
  E.dispose([x, A, logits]);
  module.disposeParameters();
}

/** Runs a peer script and records the JSON lines it prints. */
function peer(engine: string, command: string, args: string[], env: Record<string, string> = {}): void {
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, PEERS_RUNS: String(RUNS), PEERS_THREADS: '2', ...env }, maxBuffer: 1 << 24 });
  const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{'));
  if (r.status !== 0 || lines.length === 0) {
    console.error(`peer ${engine} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    return;
  }
  for (const l of lines) {
    const { bench: _b, ...rest } = JSON.parse(l) as Result & { bench: string };
    record(rest);
  }
}

const PEERS_DIR = new URL('./peers/', import.meta.url).pathname;
const jsPeersInstalled = existsSync(join(PEERS_DIR, 'node_modules'));
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = join(tmpdir(), 'xdg-runtime-bench');
spawnSync('mkdir', ['-p', '-m', '700', process.env.XDG_RUNTIME_DIR]);

for (const engine of engines) {
  if (engine === 'wasm' || engine === 'webgpu' || engine === 'cpu') {
    try {
      await ours(engine);
    } catch (e) {
      console.error(`skipping ${engine}: ${(e as Error).message}`);
    }
  } else if (engine === 'pytorch') {
    if (hasTorch) peer(engine, '/usr/bin/python3', [join(PEERS_DIR, 'torch_peer.py'), '--threads', '2', '--runs', String(RUNS)]);
    else console.error('skipping pytorch: /usr/bin/python3 cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)');
  } else if (!jsPeersInstalled) {
    console.error(`skipping ${engine}: run npm --prefix bench/peers ci --ignore-scripts`);
  } else if (engine === 'onnxruntime') {
    if (!hasTorch) {
      console.error('skipping onnxruntime: its ONNX models are exported by PyTorch (torch_peer.py --export)');
      continue;
    }
    const dir = mkdtempSync(join(tmpdir(), 'peers-onnx-'));
    try {
      spawnSync('/usr/bin/python3', [join(PEERS_DIR, 'torch_peer.py'), '--export', dir], { stdio: 'ignore' });
      peer(engine, 'npx', ['--no-install', 'tsx', join(PEERS_DIR, 'onnx_peer.ts'), dir]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (engine === 'tfjs-wasm' || engine === 'tfjs-webgpu') {
    peer(engine, 'npx', ['--no-install', 'tsx', join(PEERS_DIR, 'tfjs_peer.ts'), engine.slice(5)]);
  } else if (engine === 'jax-js-wasm' || engine === 'jax-js-webgpu') {
    peer(engine, 'npx', ['--no-install', 'tsx', join(PEERS_DIR, 'jax_peer.ts'), engine.slice(7)]);
  } else {
    console.error(`unknown engine ${engine}`);
  }
}

// The table: one row per engine, ratios to this project's wasm backend from the same run.
const by = (engine: string, task: string) => results.find((r) => r.engine === engine && r.task === task);
const wasmRow = (task: string) => by('wasm', task);
const fmt = (v: number | undefined, digits = 1) => (v === undefined ? '—' : v.toFixed(digits));
const rel = (v: number | undefined, ref: number | undefined, higherIsBetter = false) =>
  v === undefined || ref === undefined ? '' : ` (${(higherIsBetter ? ref / v : v / ref).toFixed(2)}×)`;
const header = ['engine', 'ResNet-18 b1 ms/img', 'ResNet-18 b8 ms/img', 'matmul 1024³ GFLOP/s', 'CNN-head HVP ms', 'adapter'];
const rows = [...new Set(results.map((r) => r.engine))].map((engine) => {
  const b1 = by(engine, 'resnet18-b1')?.ms_per_image;
  const b8 = by(engine, 'resnet18-b8')?.ms_per_image;
  const mm = by(engine, 'matmul1024')?.gflops;
  const hv = by(engine, 'cnn-head-hvp')?.ms;
  return [
    engine,
    fmt(b1) + rel(b1, wasmRow('resnet18-b1')?.ms_per_image),
    fmt(b8) + rel(b8, wasmRow('resnet18-b8')?.ms_per_image),
    fmt(mm) + rel(mm, wasmRow('matmul1024')?.gflops, true),
    fmt(hv) + rel(hv, wasmRow('cnn-head-hvp')?.ms),
    results.find((r) => r.engine === engine)!.adapter,
  ];
});
console.log(`\n# peers, ${new Date().toISOString()}; (×) = time relative to this project's wasm backend in the same run (lower is faster)`);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
for (const r of [header, widths.map((w) => '-'.repeat(w)), ...rows]) console.log(r.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
process.exit(0);
