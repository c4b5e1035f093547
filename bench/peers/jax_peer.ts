// jax-js peer of bench/peers.ts on its wasm backend: ResNet-18 forward (batch 1 and 8, NCHW, random
// weights) and matmul 1024³. jax-js parallelises its wasm kernels over Web Workers; Node 20 has no
// global Worker, so a small shim runs its (blob-URL, self.onmessage) worker source on worker_threads.
// The CNN-head HVP is left out (it would need the network written again in jax-js's ownership style).
//   npx tsx bench/peers/jax_peer.ts

import { Worker as NodeWorker } from 'node:worker_threads';
import { resolveObjectURL } from 'node:buffer';
import { RUNS, emit, medianMs, values } from './timing.ts';

const threads = Number(process.env.PEERS_THREADS ?? 2);

/** A Web Worker over worker_threads for classic-script sources given as blob: URLs. */
class BlobWorker {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  private readonly queue: unknown[] = [];
  private worker: NodeWorker | null = null;
  constructor(url: string) {
    const blob = resolveObjectURL(url);
    if (!blob) throw new Error(`BlobWorker: cannot resolve ${url}`);
    void blob.text().then((source) => {
      const prelude = "const { parentPort } = require('node:worker_threads'); globalThis.self = globalThis; globalThis.postMessage = (m) => parentPort.postMessage(m); parentPort.on('message', (data) => self.onmessage && self.onmessage({ data }));\n";
      const w = new NodeWorker(prelude + source, { eval: true });
      w.unref();
      w.on('message', (data) => this.onmessage?.({ data }));
      w.on('error', (e) => this.onerror?.({ message: String(e) }));
      this.worker = w;
      for (const m of this.queue.splice(0)) w.postMessage(m);
    });
  }
  postMessage(m: unknown): void {
    if (this.worker) this.worker.postMessage(m);
    else this.queue.push(m);
  }
  terminate(): void {
    void this.worker?.terminate();
  }
}
Object.assign(globalThis, { Worker: BlobWorker });
Object.defineProperty(globalThis, 'navigator', { value: { hardwareConcurrency: threads }, configurable: true });

const jax = await import('@jax-js/jax');
const { numpy: np, lax, nn } = jax;
type JArray = InstanceType<typeof jax.Array>;
await jax.init('wasm');
jax.defaultDevice('wasm');
const adapter = `jax-js 0.1.25 wasm, ${threads} workers`;

let seed = 10;
const param = (shape: number[], scale: number): JArray => np.array(values(shape.reduce((a, b) => a * b, 1), seed++).map((v) => v * scale)).reshape(shape);

function convBn(cin: number, cout: number, k: number, stride: number) {
  const w = param([cout, cin, k, k], Math.sqrt(2 / (k * k * cin)));
  const scale = param([1, cout, 1, 1], 0.1).add(1);
  const shift = param([1, cout, 1, 1], 0.1);
  const p = Math.floor(k / 2);
  return (x: JArray, relu: boolean): JArray => {
    const y = lax.convGeneralDilated(x, w.ref, [stride, stride], [[p, p], [p, p]]).mul(scale.ref).add(shift.ref);
    return relu ? nn.relu(y) : y;
  };
}

function basicBlock(cin: number, cout: number, stride: number) {
  const c1 = convBn(cin, cout, 3, stride);
  const c2 = convBn(cout, cout, 3, 1);
  const down = stride !== 1 || cin !== cout ? convBn(cin, cout, 1, stride) : null;
  return (x: JArray): JArray => {
    const skip = down ? down(x.ref, false) : x.ref;
    return nn.relu(c2(c1(x, true), false).add(skip));
  };
}

const stem = convBn(3, 64, 7, 2);
const blocks = [[64, 64, 1], [64, 64, 1], [64, 128, 2], [128, 128, 1], [128, 256, 2], [256, 256, 1], [256, 512, 2], [512, 512, 1]].map(([i, o, s]) => basicBlock(i, o, s));
const fcW = param([512, 1000], 0.05);

function resnet18(x: JArray): JArray {
  // Zero padding equals −∞ padding here: the pooled values come out of a ReLU.
  const padded = np.pad(stem(x, true), [[0, 0], [0, 0], [1, 1], [1, 1]]);
  let h = lax.reduceWindow(padded, (w: JArray) => np.max(w), [1, 1, 3, 3], [1, 1, 2, 2]);
  for (const b of blocks) h = b(h);
  return np.matmul(np.mean(h, [2, 3]), fcW.ref);
}

for (const batch of [1, 8]) {
  const x = np.array(values(batch * 3 * 224 * 224, 1)).reshape([batch, 3, 224, 224]);
  const ms = await medianMs(async () => {
    const y = resnet18(x.ref);
    await y.data();
  }, RUNS, 1);
  emit('jax-js-wasm', adapter, `resnet18-b${batch}`, { ms, ms_per_image: ms / batch });
  x.dispose();
}
const a = np.array(values(1024 * 1024, 2)).reshape([1024, 1024]);
const b = np.array(values(1024 * 1024, 3)).reshape([1024, 1024]);
const ms = await medianMs(async () => {
  await np.matmul(a.ref, b.ref).data();
}, RUNS);
emit('jax-js-wasm', adapter, 'matmul1024', { ms, gflops: (2 * 1024 ** 3) / ms / 1e6 });
process.exit(0);
