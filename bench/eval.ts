// Throughput of `eval` (images per second, end to end: loading, CAM, coherency recomputation, the ADCC
// scores, insertion/deletion curves, optionally ROAD) on the shipped CIFAR-10 ResNet-20, per method and
// backend (default auto: WebGPU on a hardware adapter, else wasm; a named backend that cannot start is
// skipped).
//   npx tsx bench/eval.ts [--backend auto|wasm,webgpu,cpu] [--methods gradcam,shapleycam] [--limit 8] [--steps 16] [--road]
//                         [--arch resnet50]   (an ImageNet architecture with random weights, 224×224 inputs)
// Prints a markdown table (for bench/RESULTS.md, section "eval") and one JSON line per configuration:
//   {"bench":"eval","backend":…,"adapter":…,"method":…,"images":…,"seconds":…,"images_per_second":…}
//
// With --queue: the same evaluation sharded through a Redis queue (`eval --queue`, a redis-server of its
// own on a loopback port, `worker` processes on this machine): a local run, then 1 worker with shards of
// 1, 8 and 32 images, then 2 workers (default --limit 32, the first method, the first backend). Each
// queued time runs from submission to the results written; workers are warm (model loaded). The queue's
// cost per shard is the slope between the most and the fewest shards (it includes the smaller batches of
// small shards); its cost per run is what is left over the local run.
//   npx tsx bench/eval.ts --queue [--backend cpu] [--methods gradcam] [--limit 32] [--steps 16] [--shards 1,8,32] [--workers 1,2]
//   {"bench":"eval-queue","backend":…,"workers":…,"shard":…,"shards":…,"images":…,"seconds":…,"images_per_second":…}
//
// With --reference: side by side with the reference implementation's own evaluation (bench/reference_eval.py:
// the ShapleyCAM fork's ADCC loop on PyTorch, all images in one batch per pass, run first with Debian's
// /usr/bin/python3): GradCAM, HiResCAM, GradCAM++ and ShapleyCAM with the ADCC metrics on the 100 sample
// images (the best of PyTorch with 1 and 2 threads, --ref-threads), then our `eval` of the same images and methods at each --steps (default 2,16) on each backend
// (default wasm,cpu,webgpu; --ref-limit N caps the images of the backends after the first, which are slow).
//   npx tsx bench/eval.ts --reference [--backend wasm,cpu,webgpu] [--steps 2,16] [--limit 100] [--ref-limit 20] [--ref-threads 1,2] [--max-batch N]
//   {"bench":"eval-vs-reference","backend":…,"steps":…,"images":…,"seconds":…,"reference_seconds":…,"ratio":…}

import { spawnSync } from 'node:child_process';
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
import { QUEUE_NAME, connectRedis } from '../cam/evaluation/queue/connection.ts';
import { parseRedisUrl } from '../cam/evaluation/queue/address.ts';
import { runCli, startRedis, waitFor, type CliProcess } from '../test/helpers/redis-server.ts';
import { Queue } from 'bullmq';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    methods: { type: 'string', default: 'gradcam,shapleycam' },
    limit: { type: 'string' },
    steps: { type: 'string' },
    road: { type: 'boolean', default: false },
    data: { type: 'string' },
    arch: { type: 'string' },
    queue: { type: 'boolean', default: false },
    shards: { type: 'string', default: '1,8,32' },
    workers: { type: 'string', default: '1,2' },
    reference: { type: 'boolean', default: false },
    'ref-limit': { type: 'string', default: '20' },
    'ref-threads': { type: 'string', default: '1,2' },
    'max-batch': { type: 'string' },
  },
});
const limit = values.limit ?? (values.queue ? '32' : values.reference ? '100' : '8');
const stepsList = (values.steps ?? (values.reference ? '2,16' : '16')).split(',');

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

/** Runs `eval ARGS` (plus the benchmark's model, data and settings) in this process; returns seconds. */
async function timeEval(method: string, n: string, args: string[], steps = stepsList[0]): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), 'bench-eval-'));
  args = [...model, '--data', data, '--methods', method, '--limit', n, '--steps', steps, '--batch', '8', '--out', out, '--quiet', ...args];
  if (values['max-batch']) args.push('--max-batch', values['max-batch']);
  if (values.road) args.push('--road');
  const t = performance.now();
  const code = await runEvalCommand(args, quietLog);
  const s = (performance.now() - t) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (code !== 0) throw new Error(`eval exited ${code}`);
  return s;
}

const date = new Date().toISOString().slice(0, 10);
const machine = `${date}, ${cpus()[0]?.model ?? 'unknown CPU'} (${availableParallelism()} cores), Node ${process.version}; ${values.arch ? `${values.arch} (random weights, 224×224)` : 'resnet20_cifar10'}, data ${values.data ?? 'test/fixtures/cifar10-sample'}, ${stepsList.join('/')} insertion/deletion steps${values.road ? ', ROAD' : ', no ROAD'}`;

/** The backend a choice gives here (null, with a message, when it cannot start). */
async function backendFor(choice: string): Promise<{ backend: E.BackendName; adapter: string } | null> {
  try {
    const chosen = await E.chooseBackend(choice as E.BackendChoice);
    console.error(E.describeChoice(chosen));
    return { backend: chosen.backend.name, adapter: chosen.backend.describe() };
  } catch (e) {
    console.error(`skipping backend ${choice}: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

async function localBench(): Promise<void> {
  const rows: string[][] = [];
  for (const choice of values.backend!.split(',')) {
    const b = await backendFor(choice);
    if (!b) continue;
    const { backend, adapter } = b;
    try {
      await timeEval('gradcam', '1', ['--backend', backend]); // warm-up: model load, JIT, pipelines
    } catch (e) {
      console.error(`skipping backend ${backend}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    for (const method of values.methods!.split(',')) {
      const seconds = await timeEval(method, limit, ['--backend', backend]);
      const n = Number(limit);
      const ips = n / seconds;
      console.log(JSON.stringify({ bench: 'eval', backend, adapter, method, images: n, steps: Number(stepsList[0]), road: values.road, seconds: +seconds.toFixed(2), images_per_second: +ips.toFixed(3) }));
      rows.push([backend, adapter, method, String(n), seconds.toFixed(1), ips.toFixed(3), (seconds / n).toFixed(2)]);
    }
  }
  console.log(`\n${machine}\n`);
  console.log('| backend | adapter | method | images | seconds | images/s | s/image |');
  console.log('|---|---|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/** Local run, then the queue with 1 and 2 worker processes on this machine, shards of several sizes. */
async function queueBench(): Promise<void> {
  const b = await backendFor(values.backend!.split(',')[0]);
  if (!b) return;
  const { backend, adapter } = b;
  const method = values.methods!.split(',')[0];
  const n = Number(limit);
  const shardSizes = values.shards!.split(',').map(Number);
  const workerCounts = values.workers!.split(',').map(Number);
  const redis = await startRedis();
  const client = await connectRedis(parseRedisUrl(redis.url));
  const queue = new Queue(QUEUE_NAME, { connection: client });
  const workers: CliProcess[] = [];
  let runs = 0;
  const queued = (shard: number, images = limit) => timeEval(method, images, ['--queue', redis.url, '--run', `bench${runs++}`, '--shard', String(shard)]);
  const rows: string[][] = [];
  /** Seconds by shard size, with one worker. */
  const oneWorker = new Map<number, number>();
  let local = NaN;
  let localSmallBatch = NaN;
  const record = (workers: number, shard: number | null, seconds: number) => {
    const shards = shard ? Math.ceil(n / shard) : 0;
    console.log(JSON.stringify({ bench: 'eval-queue', backend, adapter, method, workers, shard, shards, images: n, seconds: +seconds.toFixed(2), images_per_second: +(n / seconds).toFixed(3) }));
    rows.push([workers ? `${workers} worker(s)` : 'local (no queue)', shard ? String(shard) : '–', shard ? String(shards) : '–', seconds.toFixed(1), (n / seconds).toFixed(3), (local / seconds).toFixed(2)]);
  };
  try {
    await timeEval(method, '1', ['--backend', backend]); // warm-up
    local = await timeEval(method, limit, ['--backend', backend]);
    record(0, null, local);
    // The local run in batches of the smallest shard: what small shards cost without the queue.
    const smallest = Math.min(...shardSizes);
    if (smallest < 8) {
      localSmallBatch = await timeEval(method, limit, ['--backend', backend, '--batch', String(smallest)]);
      console.log(JSON.stringify({ bench: 'eval-queue', backend, adapter, method, workers: 0, batch: smallest, images: n, seconds: +localSmallBatch.toFixed(2), images_per_second: +(n / localSmallBatch).toFixed(3) }));
      rows.push([`local, --batch ${smallest}`, '–', '–', localSmallBatch.toFixed(1), (n / localSmallBatch).toFixed(3), (local / localSmallBatch).toFixed(2)]);
    }
    for (const count of workerCounts) {
      while (workers.length < count) workers.push(runCli(['worker', '--queue', redis.url, '--backend', backend], 3_600_000));
      await waitFor(`${count} worker(s) on the queue`, async () => (await queue.getWorkersCount()) === count, 120_000);
      await queued(1, String(count)); // warm-up: every worker's child loads the model
      for (const shard of count === 1 ? shardSizes : [shardSizes.includes(8) ? 8 : shardSizes[0]]) {
        const seconds = await queued(shard);
        if (count === 1) oneWorker.set(shard, seconds);
        record(count, shard, seconds);
      }
    }
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await queue.close();
    client.disconnect();
    await redis.dispose();
  }
  console.log(`\n${machine}; queue: ${method}, ${n} images, backend ${backend} (${adapter}), Redis on loopback (append-only)\n`);
  console.log('| run | shard | shards | seconds | images/s | vs local |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  const [small, large] = [Math.min(...oneWorker.keys()), Math.max(...oneWorker.keys())];
  const [many, few] = [Math.ceil(n / small), Math.ceil(n / large)];
  if (many > few) {
    const perShard = (oneWorker.get(small)! - oneWorker.get(large)!) / (many - few);
    const perRun = oneWorker.get(large)! - local - few * perShard;
    // Shards of `small` against the local run in batches of `small`: the queue alone, per shard.
    const queueOnly = (oneWorker.get(small)! - localSmallBatch) / many;
    console.log(`\nqueue cost (1 worker): ${(1000 * perShard).toFixed(0)} ms per shard (shards of ${small} vs ${large}, smaller batches included), ` +
      `${Number.isNaN(queueOnly) ? '' : `${(1000 * queueOnly).toFixed(0)} ms per shard against a local run in batches of ${small}, `}${perRun.toFixed(1)} s per run (submission, model check, polling, results)`);
    console.log(JSON.stringify({ bench: 'eval-queue-overhead', backend, method, ms_per_shard: +(1000 * perShard).toFixed(1), queue_only_ms_per_shard: Number.isNaN(queueOnly) ? null : +(1000 * queueOnly).toFixed(1), seconds_per_run: +perRun.toFixed(2) }));
  }
}

/** The reference's evaluation (bench/reference_eval.py), then ours at each step count, on each backend. */
async function referenceBench(): Promise<void> {
  const methods = 'gradcam,hirescam,gradcam++,shapleycam';
  const script = fileURLToPath(new URL('./reference_eval.py', import.meta.url));
  // PyTorch's thread pool suffers most on a shared machine: the reference's best over --ref-threads counts.
  let whole: { seconds: number; images: number; adapter: string } | undefined;
  for (const threads of values['ref-threads']!.split(',')) {
    const py = spawnSync('/usr/bin/python3', [script, '--data', data, '--threads', threads], { encoding: 'utf8' });
    if (py.status !== 0) throw new Error(`reference_eval.py failed: ${py.stderr.trim().split('\n').pop()}`);
    const lines = py.stdout.trim().split('\n').map((l) => JSON.parse(l));
    lines.forEach((l) => console.log(JSON.stringify(l)));
    const all = lines.find((l) => l.method === methods);
    if (!whole || all.seconds < whole.seconds) whole = all;
  }
  if (!whole) throw new Error('--ref-threads: no thread count given');
  const refSeconds = whole.seconds;
  const rows: string[][] = [['pytorch (reference_eval.py)', whole.adapter, '–', String(whole.images), refSeconds.toFixed(2), '1.0']];
  let first = true;
  for (const choice of values.backend!.split(',')) {
    const b = await backendFor(choice);
    if (!b) continue;
    const { backend, adapter } = b;
    const n = first ? limit : String(Math.min(Number(limit), Number(values['ref-limit'])));
    first = false;
    await timeEval('gradcam', '1', ['--backend', backend], '2'); // warm-up: model load, JIT, pipelines
    for (const steps of stepsList) {
      const seconds = await timeEval(methods, n, ['--backend', backend], steps);
      // The reference's time scaled to this run's images (it batches all of them; time grows about linearly).
      const ref = (refSeconds * Number(n)) / whole.images;
      const ratio = seconds / ref;
      console.log(JSON.stringify({ bench: 'eval-vs-reference', backend, adapter, methods, steps: Number(steps), images: Number(n), seconds: +seconds.toFixed(2), reference_seconds: +ref.toFixed(2), ratio: +ratio.toFixed(2) }));
      rows.push([`ours, ${backend}`, adapter, steps, n, seconds.toFixed(2), ratio.toFixed(1)]);
    }
  }
  console.log(`\n${machine}; methods ${methods}\n`);
  console.log('| run | adapter | steps | images | seconds | × reference |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

if (values.queue) await queueBench();
else if (values.reference) await referenceBench();
else await localBench();
