// ShapleyCAM against GradCAM, per image, end to end (forward, derivatives, map, post-processing).
//   npx tsx bench/shapleycam.ts [--backend auto|wasm,webgpu,cpu] [--models resnet20,resnet18,resnet50] [--batches 1,8] [--repeat 5]
// (auto, the default: WebGPU on a hardware adapter, else wasm)
// Prints a table and one JSON line per configuration:
//   {"bench":"shapleycam","model":…,"batch":…,"backend":…,"adapter":…,"ms_per_image":…,"gradcam_ms_per_image":…}

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
async function timeMethods(module: Module, input: E.Tensor, layer: string, repeat: number): Promise<{ shapleycam: number; gradcam: number }> {
  const methods = ['shapleycam', 'gradcam'] as const;
  const run = (method: string) => explain({ module, input, layers: [layer], methods: [method] });
  for (const m of methods) await run(m); // warm-up: pipelines, constant caches, packed weights
  const times = { shapleycam: [] as number[], gradcam: [] as number[] };
  for (let i = 0; i < repeat; i++) {
    for (const m of methods) {
      const t = performance.now();
      await run(m);
      times[m].push(performance.now() - t);
    }
  }
  return { shapleycam: median(times.shapleycam) / input.shape[0], gradcam: median(times.gradcam) / input.shape[0] };
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
      const { shapleycam: shapley, gradcam } = await timeMethods(model.module, input, model.layer, repeat);
      input.dispose();
      const record = { bench: 'shapleycam', model: name, batch, backend: backend.name, adapter: backend.describe(), ms_per_image: +shapley.toFixed(2), gradcam_ms_per_image: +gradcam.toFixed(2) };
      console.log(JSON.stringify(record));
      rows.push([name, String(batch), backend.name, shapley.toFixed(1), gradcam.toFixed(1), (shapley / gradcam).toFixed(2)]);
    }
    model.module.disposeParameters();
  }
}

const header = ['model', 'batch', 'backend', 'shapleycam ms/img', 'gradcam ms/img', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
console.log('\n' + [header, ...rows].map((r) => r.map((c, i) => c.padStart(widths[i])).join('  ')).join('\n'));
