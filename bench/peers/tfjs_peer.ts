// TensorFlow.js peer of bench/peers.ts, on tfjs-backend-wasm (XNNPACK; single-threaded in Node) or
// tfjs-backend-webgpu (navigator.gpu from the `webgpu` package): ResNet-18 forward (batch 1 and 8,
// torchvision's layer shapes in NHWC with explicit padding, random weights) and matmul 1024³. tfjs
// has no forward-over-reverse, so no HVP.
//   npx tsx bench/peers/tfjs_peer.ts wasm|webgpu

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { RUNS, emit, medianMs, values } from './timing.ts';

const backend = process.argv[2] ?? 'wasm';
if (backend === 'wasm') {
  const wasmBackend = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  wasmBackend.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'))}/`);
} else {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpu = create([]);
  (globalThis as unknown as { __gpu: unknown }).__gpu = gpu; // keep Dawn's instance alive
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
}
await tf.setBackend(backend);
await tf.ready();
const adapter = `tfjs-backend-${backend} ${tf.version_core}`;

let seed = 10;
const param = (shape: number[], scale: number) => tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed++).map((v) => v * scale), shape);

/** conv + batch norm (+ relu), torchvision padding k // 2. */
function convBn(cin: number, cout: number, k: number, stride: number) {
  const w = param([k, k, cin, cout], Math.sqrt(2 / (k * k * cin)));
  const mean = param([cout], 0.1);
  const variance = tf.add(param([cout], 0.1), 1);
  const scale = tf.add(param([cout], 0.1), 1);
  const offset = param([cout], 0.1);
  const p = Math.floor(k / 2);
  return (x: tf.Tensor4D, relu: boolean) => {
    const y = tf.batchNorm(tf.conv2d(x, w as tf.Tensor4D, stride, p === 0 ? 'valid' : [[0, 0], [p, p], [p, p], [0, 0]]), mean, variance, offset, scale, 1e-5);
    return (relu ? tf.relu(y) : y) as tf.Tensor4D;
  };
}

function basicBlock(cin: number, cout: number, stride: number) {
  const c1 = convBn(cin, cout, 3, stride);
  const c2 = convBn(cout, cout, 3, 1);
  const down = stride !== 1 || cin !== cout ? convBn(cin, cout, 1, stride) : null;
  return (x: tf.Tensor4D) => tf.relu(tf.add(c2(c1(x, true), false), down ? down(x, false) : x)) as tf.Tensor4D;
}

const stem = convBn(3, 64, 7, 2);
const blocks = [[64, 64, 1], [64, 64, 1], [64, 128, 2], [128, 128, 1], [128, 256, 2], [256, 256, 1], [256, 512, 2], [512, 512, 1]].map(([i, o, s]) => basicBlock(i, o, s));
const fcW = param([512, 1000], 0.05);
const fcB = param([1000], 0.05);

function resnet18(x: tf.Tensor4D): tf.Tensor {
  let h = tf.maxPool(stem(x, true), 3, 2, [[0, 0], [1, 1], [1, 1], [0, 0]] as unknown as number) as tf.Tensor4D;
  for (const b of blocks) h = b(h);
  return tf.add(tf.matMul(tf.mean(h, [1, 2]), fcW), fcB);
}

for (const batch of [1, 8]) {
  const x = tf.tensor4d(values(batch * 224 * 224 * 3, 1), [batch, 224, 224, 3]);
  const ms = await medianMs(async () => {
    const y = tf.tidy(() => resnet18(x));
    await y.data();
    y.dispose();
  }, RUNS);
  emit(`tfjs-${backend}`, adapter, `resnet18-b${batch}`, { ms, ms_per_image: ms / batch });
  x.dispose();
}
const a = tf.tensor2d(values(1024 * 1024, 2), [1024, 1024]);
const b = tf.tensor2d(values(1024 * 1024, 3), [1024, 1024]);
const ms = await medianMs(async () => {
  const c = tf.matMul(a, b);
  await c.data();
  c.dispose();
}, RUNS);
emit(`tfjs-${backend}`, adapter, 'matmul1024', { ms, gflops: (2 * 1024 ** 3) / ms / 1e6 });
process.exit(0);
