// jax-js peer of bench/peers.ts on its wasm or WebGPU backend: ResNet-18 (and ResNet-50) forward (NCHW,
// random weights) and matmul 1024³. jax-js parallelises its wasm kernels over Web Workers; Node 20 has no
// global Worker, so a small shim runs its (blob-URL, self.onmessage) worker source on worker_threads. On
// WebGPU, navigator.gpu comes from Dawn's `webgpu` package (as in tfjs_peer.ts).
// The CNN-head HVP is left out (it would need the network written again in jax-js's ownership style).
//   npx tsx bench/peers/jax_peer.ts [wasm|webgpu] [--models resnet18,resnet50] [--batches 1,8] [--no-matmul] [--warmup 1]

import { Worker as NodeWorker } from 'node:worker_threads';
import { resolveObjectURL } from 'node:buffer';
import { parseArgs } from 'node:util';
import { RUNS, emit, medianMs, values } from './timing.ts';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    models: { type: 'string', default: 'resnet18' },
    batches: { type: 'string', default: '1,8' },
    'no-matmul': { type: 'boolean', default: false },
    warmup: { type: 'string', default: '1' },
  },
});
const device = (positionals[0] ?? 'wasm') as 'wasm' | 'webgpu';
if (device !== 'wasm' && device !== 'webgpu') throw new Error(`jax_peer: unknown device ${device} (wasm, webgpu)`);

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
const navigator: Record<string, unknown> = { hardwareConcurrency: threads, userAgent: 'Node.js' }; // jax-js's WebGPU backend reads userAgent
if (device === 'webgpu') {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  navigator.gpu = create([]);
  (globalThis as unknown as { __gpu: unknown }).__gpu = navigator.gpu; // keep Dawn's instance alive
}
Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true });

const jax = await import('@jax-js/jax');
const { numpy: np, lax, nn } = jax;
type JArray = InstanceType<typeof jax.Array>;
await jax.init(device);
jax.defaultDevice(device);
const adapter = device === 'wasm' ? `jax-js 0.1.25 wasm, ${threads} workers` : 'jax-js 0.1.25 webgpu (Dawn)';
const engine = `jax-js-${device}`;

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

function bottleneck(cin: number, width: number, stride: number) {
  const c1 = convBn(cin, width, 1, 1);
  const c2 = convBn(width, width, 3, stride);
  const c3 = convBn(width, width * 4, 1, 1);
  const down = stride !== 1 || cin !== width * 4 ? convBn(cin, width * 4, 1, stride) : null;
  return (x: JArray): JArray => {
    const skip = down ? down(x.ref, false) : x.ref;
    return nn.relu(c3(c2(c1(x, true), true), false).add(skip));
  };
}

/** torchvision's ResNet-18 (basic blocks) or ResNet-50 (bottlenecks). */
function resnet(model: string): (x: JArray) => JArray {
  const stem = convBn(3, 64, 7, 2);
  const blocks: ((x: JArray) => JArray)[] = [];
  if (model === 'resnet18') {
    for (const [i, o, s] of [[64, 64, 1], [64, 64, 1], [64, 128, 2], [128, 128, 1], [128, 256, 2], [256, 256, 1], [256, 512, 2], [512, 512, 1]]) blocks.push(basicBlock(i, o, s));
  } else if (model === 'resnet50') {
    let cin = 64;
    for (const [width, count, stride] of [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]]) {
      for (let b = 0; b < count; b++) {
        blocks.push(bottleneck(cin, width, b === 0 ? stride : 1));
        cin = width * 4;
      }
    }
  } else {
    throw new Error(`jax_peer: unknown model ${model} (resnet18, resnet50)`);
  }
  const fcW = param([model === 'resnet18' ? 512 : 2048, 1000], 0.05);
  return (x: JArray): JArray => {
    // Zero padding equals −∞ padding here: the pooled values come out of a ReLU.
    const padded = np.pad(stem(x, true), [[0, 0], [0, 0], [1, 1], [1, 1]]);
    let h = lax.reduceWindow(padded, (w: JArray) => np.max(w), [1, 1, 3, 3], [1, 1, 2, 2]);
    for (const b of blocks) h = b(h);
    return np.matmul(np.mean(h, [2, 3]), fcW.ref);
  };
}

const warmup = Number(opts.warmup);
for (const model of opts.models!.split(',')) {
  const net = resnet(model);
  for (const batch of opts.batches!.split(',').map(Number)) {
    const x = np.array(values(batch * 3 * 224 * 224, 1)).reshape([batch, 3, 224, 224]);
    const ms = await medianMs(async () => {
      const y = net(x.ref);
      await y.data();
    }, RUNS, warmup);
    emit(engine, adapter, `${model}-b${batch}`, { ms, ms_per_image: ms / batch });
    x.dispose();
  }
}
if (!opts['no-matmul']) {
  const a = np.array(values(1024 * 1024, 2)).reshape([1024, 1024]);
  const b = np.array(values(1024 * 1024, 3)).reshape([1024, 1024]);
  const ms = await medianMs(async () => {
    await np.matmul(a.ref, b.ref).data();
  }, RUNS);
  emit(engine, adapter, 'matmul1024', { ms, gflops: (2 * 1024 ** 3) / ms / 1e6 });
}
process.exit(0);
