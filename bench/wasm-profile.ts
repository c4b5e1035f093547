// Where the wasm backend's time goes: every kernel call timed (they are synchronous), summed per kernel
// (convolutions and matmuls per direction), for a ResNet forward pass and ShapleyCAM/GradCAM end to end.
//   npx tsx bench/wasm-profile.ts [--model resnet18|resnet20] [--batch 1] [--task forward|shapleycam|gradcam] [--repeat 5]
// Prints a table: kernel, calls, ms per run, share of the kernel time, and the time outside kernels.

import { parseArgs } from 'node:util';
import * as E from '../engine/index.ts';
import type { KernelName, Storage } from '../engine/internal.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { getArchitecture } from '../models/registry.ts';
import { loadZooModel } from '../models/zoo.ts';
import { initializeRandom } from '../models/init.ts';
import type { Module } from '../models/module.ts';
import '../models/archs/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'resnet18' },
    batch: { type: 'string', default: '1' },
    task: { type: 'string', default: 'forward' },
    repeat: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '5' },
    detail: { type: 'boolean', default: false },
    // Process CPU time instead of wall time: on a shared, overloaded machine it measures the work, not the
    // waiting (use with ENGINE_WASM_THREADS=1: with workers it also counts their spinning).
    cpu: { type: 'boolean', default: false },
  },
});

const backend = await E.useBackend('wasm');
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const now = values.cpu ? cpuMs : () => performance.now();
const times = new Map<string, { calls: number; ms: number; flops: number }>();
const run = backend.run.bind(backend);
let recording = false;
backend.run = (<K extends KernelName>(kernel: K, inputs: readonly Storage[], params: any) => {
  if (!recording) return run(kernel, inputs, params);
  const t = now();
  const out = run(kernel, inputs, params);
  const ms = now() - t;
  let key: string = kernel;
  if (kernel === 'unary' || kernel === 'binary' || kernel === 'reduce') key = `${kernel}:${params.op}`;
  let flops = 0;
  if (kernel.startsWith('conv2d')) {
    key = `${kernel}${params.groups > 1 ? ':grouped' : params.wShape[2] === 1 ? ':1x1' : ''}`;
    const [N, O, OH, OW] = params.yShape;
    const [, Cg, KH, KW] = params.wShape;
    flops = 2 * N * O * OH * OW * Cg * KH * KW;
    if (values.detail) key += ` x${params.xShape.join('x')} w${params.wShape.join('x')} s${params.stride[0]}`;
  }
  if (kernel === 'matmul') flops = 2 * params.outShape.reduce((a: number, b: number) => a * b, 1) * params.aShape[params.aShape.length - 1];
  const e = times.get(key) ?? { calls: 0, ms: 0, flops: 0 };
  e.calls++;
  e.ms += ms;
  e.flops += flops;
  times.set(key, e);
  return out;
}) as typeof backend.run;

let module: Module;
let size: number;
let layer: string;
if (values.model === 'resnet20') {
  module = (await loadZooModel('resnet20_cifar10')).module;
  size = 32;
  layer = 'layer3';
} else {
  const arch = getArchitecture(values.model!);
  module = arch.build();
  initializeRandom(module, 1);
  size = 224;
  layer = arch.defaultLayer;
}
const batch = Number(values.batch);
const x = E.tensor(Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i * 0.37)), [batch, 3, size, size]);
const task = async () => {
  if (values.task === 'forward') {
    const y = E.tidy(() => module.call(x));
    await y.data();
    y.dispose();
  } else {
    await explain({ module, input: x, layers: [layer], methods: [values.task!] });
  }
};
const warmup = Number(values.warmup);
for (let i = 0; i < warmup; i++) await task(); // warm-up: V8 tiers the JavaScript and the wasm up
const repeat = Number(values.repeat);
const walls: number[] = [];
recording = true;
for (let i = 0; i < repeat; i++) {
  const t = now();
  await task();
  walls.push(now() - t);
}
const wall = walls.reduce((a, b) => a + b, 0) / repeat;
const total = [...times.values()].reduce((a, e) => a + e.ms, 0) / repeat;
const sorted = [...walls].sort((a, b) => a - b);
console.log(`# ${values.model} b${batch} ${values.task}, ${backend.describe()}, ${values.cpu ? 'CPU time' : 'wall time'}: ${wall.toFixed(1)} ms per run (mean of ${repeat}; median ${sorted[repeat >> 1].toFixed(1)}, min ${sorted[0].toFixed(1)}), ${total.toFixed(1)} ms in kernels, ${(wall - total).toFixed(1)} outside`);
const rows = [...times].sort((a, b) => b[1].ms - a[1].ms);
for (const [k, e] of rows) {
  const rate = e.flops ? `${(e.flops / e.ms / 1e6).toFixed(1).padStart(7)} GFLOP/s` : '';
  console.log(`${k.padEnd(34)} ${String(e.calls / repeat).padStart(6)} ${(e.ms / repeat).toFixed(2).padStart(9)} ms ${((100 * e.ms) / repeat / total).toFixed(1).padStart(5)}% ${rate}`);
}
process.exit(0);
