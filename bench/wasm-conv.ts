// The wasm backend's forward convolution: the direct kernel (kernels/wasm/conv-direct.ts) against the
// packed GEMM on the same layers, in turns within one process (a pair per round; the fastest of each).
// Layers of ResNet-20 (CIFAR-10, the eval benchmark's network) and of ResNet-18 at 224×224.
//
//   npx tsx bench/wasm-conv.ts [--batch 64] [--batch224 8] [--rounds 15] [--cpu]
//
// --cpu times the process's CPU time instead of wall time: on a shared, overloaded machine it measures
// the work, not the waiting (use with ENGINE_WASM_THREADS=1; with workers it also counts their spinning).
// Prints one JSON line per layer, then a table with GFLOP/s and the GEMM/direct ratio; the `chosen`
// column is the path the backend takes by default.

import * as E from '../engine/index.ts';
import { convGeometry } from '../engine/primitives/linalg.ts';
import { directConvApplies, directConvChosen } from '../kernels/wasm/conv-direct.ts';
import { wasmConvPaths } from '../kernels/wasm/conv.ts';
import { listArg, parseArgs, printTable, type Row } from './common.ts';

const args = parseArgs(process.argv.slice(2));
const [batch] = listArg(args, 'batch', [64]);
const [batch224] = listArg(args, 'batch224', [8]);
const [rounds] = listArg(args, 'rounds', [15]);
const cpuTime = args.flags.has('cpu');

/** name, input channels, size, output channels, kernel, stride, batch. */
const LAYERS: [string, number, number, number, number, number, number][] = [
  ['resnet20 conv1', 3, 32, 16, 3, 1, batch],
  ['resnet20 layer1', 16, 32, 16, 3, 1, batch],
  ['resnet20 layer2.0.conv1', 16, 32, 32, 3, 2, batch],
  ['resnet20 layer2', 32, 16, 32, 3, 1, batch],
  ['resnet20 layer3.0.conv1', 32, 16, 64, 3, 2, batch],
  ['resnet20 layer3', 64, 8, 64, 3, 1, batch],
  ['resnet18 conv1', 3, 224, 64, 7, 2, batch224],
  ['resnet18 layer1', 64, 56, 64, 3, 1, batch224],
  ['resnet18 layer2.0.conv1', 64, 56, 128, 3, 2, batch224],
  ['resnet18 layer2', 128, 28, 128, 3, 1, batch224],
  ['resnet18 layer3', 256, 14, 256, 3, 1, batch224],
];

const backend = await E.useBackend('wasm');
const clock = () => {
  if (!cpuTime) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const date = new Date().toISOString();
console.log(`# wasm forward convolution, direct vs GEMM; ${backend.describe()}, ${cpuTime ? 'process CPU time' : 'wall time'}, fastest of ${rounds} rounds; ${date}`);

const rows: Row[] = [];
for (const [name, C, size, O, k, s, N] of LAYERS) {
  const padding = (k - 1) / 2;
  const g = convGeometry(name, [N, C, size, size], [O, C, k, k], { stride: [s, s], padding: [padding, padding], dilation: [1, 1], groups: 1 });
  if (!directConvApplies(g)) continue;
  const x = E.tensor(Float32Array.from({ length: N * C * size * size }, () => Math.random()), g.xShape);
  const w = E.tensor(Float32Array.from({ length: O * C * k * k }, () => Math.random() - 0.5), g.wShape);
  const best = { direct: Infinity, gemm: Infinity };
  for (let r = 0; r < rounds + 1; r++) {
    for (const path of ['direct', 'gemm'] as const) {
      Object.assign(wasmConvPaths, { direct: path === 'direct', always: true });
      const t0 = clock();
      const y = E.conv2d(x, w, null, { stride: s, padding });
      await y.values();
      const t = clock() - t0;
      y.dispose();
      if (r > 0) best[path] = Math.min(best[path], t); // round 0 warms up (and packs the weights)
    }
  }
  Object.assign(wasmConvPaths, { direct: true, always: false });
  E.dispose([x, w]);
  const gflop = (2 * N * O * g.yShape[2] * g.yShape[3] * C * k * k) / 1e9;
  const row = {
    layer: name, batch: N, chosen: directConvChosen(g) ? 'direct' : 'gemm',
    'direct ms': best.direct, 'gemm ms': best.gemm, 'direct GFLOP/s': (gflop / best.direct) * 1e3, 'gemm GFLOP/s': (gflop / best.gemm) * 1e3,
    'gemm/direct': best.gemm / best.direct,
  };
  console.log(JSON.stringify({ bench: 'wasm-conv', date, threads: backend.describe(), time: cpuTime ? 'cpu' : 'wall', ...row }));
  rows.push(row);
}
printTable(rows, ['layer', 'batch', 'chosen', 'direct ms', 'gemm ms', 'direct GFLOP/s', 'gemm GFLOP/s', 'gemm/direct']);
process.exit(0);
