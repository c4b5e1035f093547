// The compiled inference prefix (models/inference-prefix.ts) against the unfused graph, side by side in
// one run: dispatches per ResNet-18 forward and per ShapleyCAM explain at layer4 and layer3 (WebGPU counts them), and ms per
// image of the ResNet-18/50 forward and of ShapleyCAM (layer4, batch 8 by default), fused and unfused in
// turns (one of each per round after a warm-up of each, medians), on each backend asked for.
//
//   npx tsx bench/fusion.ts [--backends webgpu,wasm] [--models resnet18,resnet50] [--batch 8] [--rounds 3]
//   npx tsx bench/fusion.ts --backends webgpu --models ''     (dispatch counts only)
//
// Also on WebGPU: dispatches with elementwise chains (engine/fusion/elementwise-chain.ts) off and on, both
// with the compiled prefix on, for the ResNet-18 forward, a ShapleyCAM explain of ResNet-18 and explains of the
// CIFAR ResNet-20 by the methods with chains (rows "chains: …": unfused = chains off, fused = chains on); on every backend, the time of
// a metric-mask chain over the batch, one kernel against its unfused ops.
//
// Prints one JSON line per measurement, then a table with the unfused/fused ratios.

import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { getArchitecture } from '../models/registry.ts';
import { initializeRandom } from '../models/init.ts';
import { inferenceForward, setFusion } from '../models/inference-prefix.ts';
import type { Module } from '../models/module.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import '../models/archs/index.ts';

const { values: opts } = parseArgs({
  options: {
    backends: { type: 'string', default: 'webgpu,wasm' },
    models: { type: 'string', default: 'resnet18,resnet50' },
    batch: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const ROUNDS = Number(opts.rounds);
const BATCH = Number(opts.batch);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function build(name: string): { module: Module; layer: string } {
  const arch = getArchitecture(name);
  const module = arch.build();
  initializeRandom(module, 1);
  return { module, layer: arch.defaultLayer };
}

function randomInput(batch: number, size = 224): E.Tensor {
  return E.tensor(Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i * 0.37)), [batch, 3, size, size]);
}

type Task = (fused: boolean) => Promise<void>;

function forwardTask(module: Module, input: E.Tensor): Task {
  return async (fused) => {
    setFusion(fused);
    // Unfused: the module's own forward, as `eval` and the peers bench run it.
    const y = fused ? inferenceForward(module, input) : E.tidy(() => module.call(input));
    await y.values();
    y.dispose();
  };
}

function shapleyTask(module: Module, input: E.Tensor, layer: string, method = 'shapleycam'): Task {
  return async (fused) => {
    setFusion(fused);
    await explain({ module, input, layers: [layer], methods: [method] });
  };
}

/** ms per image, fused and unfused, measured in turns so both see the same load and caches. */
async function timeBoth(task: Task, batch: number): Promise<{ fused: number; unfused: number }> {
  await task(true);
  await task(false);
  const t = { fused: [] as number[], unfused: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const fused of [true, false]) {
      const start = performance.now();
      await task(fused);
      t[fused ? 'fused' : 'unfused'].push(performance.now() - start);
    }
  }
  return { fused: median(t.fused) / batch, unfused: median(t.unfused) / batch };
}

/** The same task with the compiled prefix on and elementwise chains on (`fused`) or off. */
function withChains(task: Task): Task {
  return async (fused) => {
    E.setChainFusion(fused);
    try {
      await task(true);
    } finally {
      E.setChainFusion(null);
    }
  };
}

/** Dispatches of one run of the task (WebGPU only), after a warm-up run that folds and caches weights. */
async function dispatches(gpu: WebGpuBackend, task: Task, fused: boolean): Promise<number> {
  await task(fused);
  const before = gpu.stats().dispatches;
  await task(fused);
  return gpu.stats().dispatches - before;
}

const rows: string[][] = [];
function report(record: Record<string, unknown>, row: string[]): void {
  console.log(JSON.stringify({ bench: 'fusion', ...record }));
  rows.push(row);
}

for (const name of opts.backends!.split(',') as E.BackendName[]) {
  let backend: E.Backend;
  try {
    backend = await E.useBackend(name);
  } catch (e) {
    console.error(`skipping ${name}: ${(e as Error).message}`);
    continue;
  }
  const adapter = backend.describe();
  console.error(`${name}: ${adapter}`);
  if (name === 'webgpu') {
    const gpu = backend as WebGpuBackend;
    const { module, layer } = build('resnet18');
    const input = randomInput(1);
    // layer4 leaves only pooling and the classifier in the head; layer3 leaves layer4 (its BatchNorms
    // run as scale-shifts there, differentiated twice).
    const tasks = [
      [forwardTask(module, input), 'resnet18 forward'],
      [shapleyTask(module, input, layer), `shapleycam explain (resnet18, ${layer})`],
      [shapleyTask(module, input, 'layer3'), 'shapleycam explain (resnet18, layer3)'],
    ] as const;
    for (const [task, label] of tasks) {
      const fused = await dispatches(gpu, task, true);
      const unfused = await dispatches(gpu, task, false);
      report({ task: `dispatches: ${label}`, backend: name, adapter, batch: 1, unfused, fused, ratio: +(unfused / fused).toFixed(2) }, [
        `dispatches: ${label}`, name, '1', String(unfused), String(fused), (unfused / fused).toFixed(2),
      ]);
    }
    const cifar = build('resnet20');
    const cifarInput = randomInput(1, 32);
    const chainTasks = [
      [withChains(forwardTask(module, input)), 'resnet18 forward'],
      [withChains(shapleyTask(module, input, layer)), `shapleycam explain (resnet18, ${layer})`],
      ...['shapleycam', 'gradcam++', 'xgradcam', 'kpca-cam', 'fullgrad'].map(
        (method) => [withChains(shapleyTask(cifar.module, cifarInput, cifar.layer, method)), `${method} explain (resnet20, ${cifar.layer})`] as const,
      ),
    ] as const;
    for (const [task, label] of chainTasks) {
      const fused = await dispatches(gpu, task, true);
      const unfused = await dispatches(gpu, task, false);
      report({ task: `chains: dispatches: ${label}`, backend: name, adapter, batch: 1, unfused, fused, ratio: +(unfused / fused).toFixed(2) }, [
        `chains: dispatches: ${label}`, name, '1', String(unfused), String(fused), (unfused / fused).toFixed(2),
      ]);
    }
    cifarInput.dispose();
    cifar.module.disposeParameters();
    input.dispose();
    module.disposeParameters();
  }
  {
    // A metric-mask chain over a batch of images: the one-kernel chain against its 7 unfused ops.
    const x = randomInput(BATCH);
    const m = E.tensor(Float32Array.from({ length: BATCH * 224 * 224 }, (_, i) => 0.5 + 0.5 * Math.cos(i * 0.11)), [BATCH, 1, 224, 224]);
    const task: Task = async (fused) => {
      E.setChainFusion(fused);
      const y = E.elementwiseChain([x, m], (a, k) => a.mul(k).add(a.mul(k.neg().add(1)).mul(0.25)).relu());
      E.setChainFusion(null);
      await y.values();
      y.dispose();
    };
    const t = await timeBoth(task, BATCH);
    const label = 'chain x⊙m + ¼x⊙(1−m), relu';
    report({ task: label, backend: name, adapter, batch: BATCH, unfused_ms_per_image: +t.unfused.toFixed(2), fused_ms_per_image: +t.fused.toFixed(2), ratio: +(t.unfused / t.fused).toFixed(2) }, [
      `${label} ms/img`, name, String(BATCH), t.unfused.toFixed(2), t.fused.toFixed(2), (t.unfused / t.fused).toFixed(2),
    ]);
    x.dispose();
    m.dispose();
  }
  for (const model of opts.models!.split(',').filter(Boolean)) {
    const { module, layer } = build(model);
    const input = randomInput(BATCH);
    for (const [task, label] of [[forwardTask(module, input), `${model} forward`], [shapleyTask(module, input, layer), `${model} shapleycam`]] as const) {
      const t = await timeBoth(task, BATCH);
      report({ task: label, backend: name, adapter, batch: BATCH, unfused_ms_per_image: +t.unfused.toFixed(1), fused_ms_per_image: +t.fused.toFixed(1), ratio: +(t.unfused / t.fused).toFixed(2) }, [
        `${label} ms/img`, name, String(BATCH), t.unfused.toFixed(1), t.fused.toFixed(1), (t.unfused / t.fused).toFixed(2),
      ]);
    }
    input.dispose();
    module.disposeParameters();
  }
}
setFusion(null);

const header = ['measure', 'backend', 'batch', 'unfused', 'fused', 'unfused/fused'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
console.log('\n' + [header, ...rows].map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n'));
await E.closeBackends();
