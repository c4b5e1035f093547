// Builds of the wasm kernels side by side: each module given runs the same problems (matmul 1024³,
// ResNet-18 and CIFAR ResNet convolutions at batch 1, transcendental functions over 2^20 floats) in turns,
// in one process, so a change to the kernels is judged by ratios measured under the same load. The
// GFLOP/s column of the unary rows counts one operation per element.
//   npx tsx bench/wasm-builds.ts [--modules kernels/wasm/build/kernels.wasm,/tmp/other.wasm] [--threads 1] [--rounds 5]
// Prints the best time (ms) per shape and module, and each module's ratio to the first.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createWasmBackend, type WasmBackend } from '../engine/wasm/backend.ts';
import type { ConvGeometry, KernelName, KernelParams, Storage } from '../engine/internal.ts';

const { values } = parseArgs({
  options: {
    modules: { type: 'string', default: 'kernels/wasm/build/kernels.wasm' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '5' },
  },
});

interface Shape {
  name: string;
  kernel: KernelName;
  params: KernelParams[KernelName];
  sizes: number[];
  flops: number;
}

const conv = (name: string, c: number, hw: number, o: number, k: number, s: number): Shape => {
  const p = (k - 1) >> 1;
  const ohw = Math.floor((hw + 2 * p - k) / s) + 1;
  const g: ConvGeometry = { xShape: [1, c, hw, hw], wShape: [o, c, k, k], yShape: [1, o, ohw, ohw], stride: [s, s], padding: [p, p], dilation: [1, 1], groups: 1 };
  return { name, kernel: 'conv2d', params: g, sizes: [c * hw * hw, o * c * k * k], flops: 2 * o * ohw * ohw * c * k * k };
};
const SHAPES: Shape[] = [
  { name: 'matmul 1024³', kernel: 'matmul', params: { aShape: [1024, 1024], bShape: [1024, 1024], outShape: [1024, 1024] }, sizes: [1024 * 1024, 1024 * 1024], flops: 2 * 1024 ** 3 },
  conv('conv1 7×7/2', 3, 224, 64, 7, 2),
  conv('layer1 3×3', 64, 56, 64, 3, 1),
  conv('layer2 3×3', 128, 28, 128, 3, 1),
  conv('layer3 3×3', 256, 14, 256, 3, 1),
  conv('layer4 3×3', 512, 7, 512, 3, 1),
  conv('cifar 16@32²', 16, 32, 16, 3, 1),
  conv('cifar 64@8²', 64, 8, 64, 3, 1),
  { name: 'transpose 1000×2048', kernel: 'transpose', params: { shape: [1000, 2048], perm: [1, 0] }, sizes: [1000 * 2048], flops: 1000 * 2048 },
  ...(['relu', 'exp', 'log', 'tanh', 'sigmoid', 'erf'] as const).map((op): Shape => ({ name: `${op} 2^20`, kernel: 'unary', params: { op, size: 1 << 20 }, sizes: [1 << 20], flops: 1 << 20 })),
];

const paths = values.modules!.split(',');
const backends: WasmBackend[] = [];
for (const path of paths) backends.push(await createWasmBackend({ threads: Number(values.threads), module: new Uint8Array(readFileSync(path)) }));
// sin(·) + 1.5 lies in [0.5, 2.5]: valid for every function benchmarked, log included.
const inputs = backends.map((b) => SHAPES.map((s) => s.sizes.map((n, i) => b.upload(Float32Array.from({ length: n }, (_, j) => Math.sin(j * 0.37 + i) + 1.5)))));
const best = SHAPES.map(() => backends.map(() => Infinity));
// With one thread, the process's CPU time: on a machine shared with other work it counts the work done,
// not the time spent waiting for a core. With workers, wall time.
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const clock = Number(values.threads) === 1 ? cpuMs : () => performance.now();
const once = (b: WasmBackend, s: Shape, ins: Storage[]) => {
  const t = clock();
  b.free(b.run(s.kernel, ins, s.params as never));
  return clock() - t;
};
for (let round = 0; round < Number(values.rounds); round++) {
  SHAPES.forEach((s, i) => {
    const reps = Math.max(1, Math.round(2e8 / s.flops));
    backends.forEach((b, j) => {
      for (let r = 0; r < reps; r++) best[i][j] = Math.min(best[i][j], once(b, s, inputs[j][i]));
    });
  });
}
console.log(`# ${new Date().toISOString()}, ${values.threads} thread(s) (${clock === cpuMs ? 'CPU' : 'wall'} time), best of ${values.rounds} rounds; modules: ${paths.map((p, i) => `[${i}] ${p}`).join(', ')}`);
console.log(['shape'.padEnd(14), ...paths.map((_, j) => `[${j}] ms  GFLOP/s${j ? '  ratio' : ''}`)].join('  '));
SHAPES.forEach((s, i) => {
  const cells = best[i].map((ms, j) => `${ms.toFixed(2).padStart(7)} ${(s.flops / ms / 1e6).toFixed(1).padStart(7)}${j ? `  ${(ms / best[i][0]).toFixed(2).padStart(5)}` : ''}`);
  console.log([s.name.padEnd(14), ...cells].join('  '));
});
backends.forEach((b) => b.close());
