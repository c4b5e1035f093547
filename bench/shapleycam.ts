// ShapleyCAM against GradCAM, per image, end to end (forward, derivatives, map, post-processing), and one
// more method of the family beside them (--extra, default fullgrad: a backward pass through the whole network).
//   npx tsx bench/shapleycam.ts [--backend auto|wasm,webgpu,cpu] [--models resnet20,resnet18,resnet50] [--batches 1,8] [--repeat 5] [--extra fullgrad]
// (auto, the default: WebGPU on a hardware adapter, else wasm)
// Prints a table and one JSON line per configuration:
//   {"bench":"shapleycam","model":…,"batch":…,"backend":…,"adapter":…,"ms_per_image":…,"gradcam_ms_per_image":…,"extra":…,"extra_ms_per_image":…}

import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { getArchitecture, architectureNames } from '../models/registry.ts';
import { loadZooModel } from '../models/zoo.ts';
import { initializeRandom } from '../models/init.ts';
import type { Module } from '../models/module.ts';
import '../models/archs/index.ts';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    models: { type: 'string', default: 'resnet20,resnet18,resnet50' },
    batches: { type: 'string', default: '1,8' },
    repeat: { type: 'string', default: '5' },
    extra: { type: 'string', default: 'fullgrad' },
  },
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function buildModel(name: string): Promise<{ module: Module; size: number; layer: string } | null> {
  if (name === 'resnet20') {
    const m = await loadZooModel('resnet20_cifar10');
    return { module: m.module, size: 32, layer: 'layer3' };
  }
  if (!architectureNames().includes(name)) return null;
  const arch = getArchitecture(name);
  const module = arch.build();
  initializeRandom(module, 1);
  return { module, size: 224, layer: arch.defaultLayer };
}

/**
 * ms per image of ShapleyCAM and of GradCAM, the two measured in turns (one of each per round, after a
 * warm-up of each) so that both see the same load, JIT tier and caches; medians over the rounds.
 */
/**
 * ms per image of each method, measured in turns (one of each per round, after a warm-up of each) so that all
 * see the same load, JIT tier and caches; medians over the rounds.
 */
async function timeMethods(module: Module, input: E.Tensor, layer: string, methods: string[], repeat: number): Promise<number[]> {
  const run = (method: string) => explain({ module, input, layers: [layer], methods: [method] });
  for (const m of methods) await run(m); // warm-up: pipelines, constant caches, packed weights
  const times = methods.map(() => [] as number[]);
  for (let i = 0; i < repeat; i++) {
    for (const [k, m] of methods.entries()) {
      const t = performance.now();
      await run(m);
      times[k].push(performance.now() - t);
    }
  }
  return times.map((ts) => median(ts) / input.shape[0]);
}

const rows: string[][] = [];
for (const choice of values.backend!.split(',') as E.BackendChoice[]) {
  let backend: E.Backend;
  try {
    const chosen = await E.chooseBackend(choice);
    console.error(E.describeChoice(chosen));
    backend = chosen.backend;
  } catch (e) {
    console.error(`skipping backend ${choice}: ${(e as Error).message}`);
    continue;
  }
  for (const name of values.models!.split(',')) {
    const model = await buildModel(name);
    if (!model) {
      console.error(`skipping ${name}: architecture not registered`);
      continue;
    }
    for (const batch of values.batches!.split(',').map(Number)) {
      const input = E.tensor(Float32Array.from({ length: batch * 3 * model.size * model.size }, (_, i) => Math.sin(i * 0.37)), [batch, 3, model.size, model.size]);
      const repeat = Number(values.repeat);
      const times = await timeMethods(model.module, input, model.layer, ['shapleycam', 'gradcam', values.extra!], repeat);
      const [shapley, gradcam, extra] = times;
      input.dispose();
      const record = {
        bench: 'shapleycam', model: name, batch, backend: backend.name, adapter: backend.describe(),
        ms_per_image: +shapley.toFixed(2), gradcam_ms_per_image: +gradcam.toFixed(2), extra: values.extra, extra_ms_per_image: +extra.toFixed(2),
      };
      console.log(JSON.stringify(record));
      rows.push([name, String(batch), backend.name, shapley.toFixed(1), gradcam.toFixed(1), (shapley / gradcam).toFixed(2), extra.toFixed(1), (extra / gradcam).toFixed(2)]);
    }
    model.module.disposeParameters();
  }
}

const header = ['model', 'batch', 'backend', 'shapleycam ms/img', 'gradcam ms/img', 'ratio', `${values.extra} ms/img`, `${values.extra}/gradcam`];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
console.log('\n' + [header, ...rows].map((r) => r.map((c, i) => c.padStart(widths[i])).join('  ')).join('\n'));
