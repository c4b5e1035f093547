// Throughput of `eval` (images per second, end to end: loading, CAM, coherency recomputation, the ADCC
// scores, insertion/deletion curves, optionally ROAD) on the shipped CIFAR-10 ResNet-20, per method and
// backend (default auto: WebGPU on a hardware adapter, else wasm; a named backend that cannot start is
// skipped).
//   npx tsx bench/eval.ts [--backend auto|wasm,webgpu,cpu] [--methods gradcam,shapleycam] [--limit 8] [--steps 16] [--road]
//                         [--arch resnet50]   (an ImageNet architecture with random weights, 224×224 inputs)
// Prints a markdown table (for bench/RESULTS.md, section "eval") and one JSON line per configuration:
//   {"bench":"eval","backend":…,"adapter":…,"method":…,"images":…,"seconds":…,"images_per_second":…}

import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import { getArchitecture } from '../models/registry.ts';
import { randomStateDict } from '../models/init.ts';
import { writeSafetensors } from '../models/safetensors.ts';
import '../models/archs/index.ts';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    methods: { type: 'string', default: 'gradcam,shapleycam' },
    limit: { type: 'string', default: '8' },
    steps: { type: 'string', default: '16' },
    road: { type: 'boolean', default: false },
    data: { type: 'string' },
    arch: { type: 'string' },
  },
});

/** --model for the shipped ResNet-20, or --arch with a random-weights file for an ImageNet network. */
async function modelArgs(): Promise<string[]> {
  if (!values.arch) return ['--model', 'resnet20_cifar10'];
  const module = getArchitecture(values.arch).build();
  const state = randomStateDict(module, 1);
  const tensors = Object.fromEntries(state.names().map((n) => [n, { dtype: 'F32' as const, shape: [...state.shape(n)], data: state.values(n) }]));
  const file = join(mkdtempSync(join(tmpdir(), 'bench-weights-')), `${values.arch}.safetensors`);
  await writeSafetensors(file, tensors);
  return ['--arch', values.arch, '--weights', file];
}
const model = await modelArgs();

const data = values.data ?? fileURLToPath(new URL('../test/fixtures/cifar10-sample/', import.meta.url));
const quietLog = () => {};

async function timeEval(backend: string, method: string, limit: string): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), 'bench-eval-'));
  const args = [...model, '--data', data, '--methods', method, '--limit', limit, '--steps', values.steps!, '--backend', backend, '--batch', '8', '--out', out, '--quiet'];
  if (values.road) args.push('--road');
  const t = performance.now();
  const code = await runEvalCommand(args, quietLog);
  const s = (performance.now() - t) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (code !== 0) throw new Error(`eval exited ${code}`);
  return s;
}

const rows: string[][] = [];
for (const choice of values.backend!.split(',')) {
  let adapter: string;
  let backend: E.BackendName;
  try {
    const chosen = await E.chooseBackend(choice as E.BackendChoice);
    console.error(E.describeChoice(chosen));
    adapter = chosen.backend.describe();
    backend = chosen.backend.name;
  } catch (e) {
    console.error(`skipping backend ${choice}: ${(e as Error).message.split('\n')[0]}`);
    continue;
  }
  try {
    await timeEval(backend, 'gradcam', '1'); // warm-up: model load, JIT, pipelines
  } catch (e) {
    console.error(`skipping backend ${backend}: ${(e as Error).message.split('\n')[0]}`);
    continue;
  }
  for (const method of values.methods!.split(',')) {
    const seconds = await timeEval(backend, method, values.limit!);
    const n = Number(values.limit);
    const ips = n / seconds;
    console.log(JSON.stringify({ bench: 'eval', backend, adapter, method, images: n, steps: Number(values.steps), road: values.road, seconds: +seconds.toFixed(2), images_per_second: +ips.toFixed(3) }));
    rows.push([backend, adapter, method, String(n), seconds.toFixed(1), ips.toFixed(3), (seconds / n).toFixed(2)]);
  }
}

const date = new Date().toISOString().slice(0, 10);
console.log(`\n${date}, ${cpus()[0]?.model ?? 'unknown CPU'} (${availableParallelism()} cores), Node ${process.version}; ${values.arch ? `${values.arch} (random weights, 224×224)` : 'resnet20_cifar10'}, data ${values.data ?? 'test/fixtures/cifar10-sample'}, ${values.steps} insertion/deletion steps${values.road ? ', ROAD' : ', no ROAD'}\n`);
console.log('| backend | adapter | method | images | seconds | images/s | s/image |');
console.log('|---|---|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
