// `eval --queue redis://… --run NAME`: submits a run to the queue (one job per shard of images; see
// cam/evaluation/queue/) and follows it to the end, then writes the same folder as a local run (the
// records, results.json/.md/.csv and the plots), built from the per-image records in Redis alone.
// `--follow` reattaches to a run (interrupting the follower loses nothing: the workers go on), `--status`
// prints where it stands, `--remove` deletes it from Redis. Submitting a run name again with other settings is refused with the
// differences, as `--resume` does.

import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Dataset, DatasetItem } from '../../evaluation/dataset.ts';
import type { RedisAddress } from '../../evaluation/queue/address.ts';
import { connectRedis, QUEUE_NAME } from '../../evaluation/queue/connection.ts';
import { RUN_NAME, RunStore, type QueuedRun, type RunSpec } from '../../evaluation/queue/run-store.ts';
import { RunWatcher, type RunState } from '../../evaluation/queue/run-state.ts';
import { enqueueRun, recordRun, removeRun } from '../../evaluation/queue/submit.ts';
import { summarise, type EvalResults } from '../../evaluation/report.ts';
import { InputError, UsageError, parseIntFlag } from '../errors.ts';
import { queueAddress, sharedSettings } from '../flags.ts';
import { Progress } from '../progress.ts';
import { openRunFolder, settingsDiff, type RunFolder } from '../run-folder.ts';
import { defineRun, type EvalFlags } from './eval.ts';

/** How often the follower looks at the run (ms). */
const POLL_MS = 500;
/** Failures listed on stderr at the end (all of them are in results.json). */
const LISTED_FAILURES = 20;
/** Flags that define a run: --follow, --status and --remove take it from the queue instead. */
const RUN_FLAGS = ['model', 'arch', 'weights', 'data', 'methods', 'method', 'target', 'layer', 'limit', 'batch', 'steps', 'road', 'seed', 'max-pixels', 'shard', 'embed-images'];

export async function runQueuedEval(v: EvalFlags, given: Set<string>, log: (line: string) => void): Promise<number> {
  if (!v.queue) throw new UsageError('--run, --shard, --embed-images, --follow, --status and --remove go with --queue redis://HOST:PORT[/DB]');
  const address = queueAddress(v.queue);
  if (!v.run) throw new UsageError('--queue needs --run NAME (the name of the run in the queue)');
  if (!RUN_NAME.test(v.run)) throw new UsageError(`--run: "${v.run}" is not a run name (letters, digits, '.', '_', '-'; at most 100)`);
  if (given.has('backend')) throw new UsageError('--backend: with --queue the workers compute; give it to `worker --backend`');
  if (given.has('resume')) throw new UsageError('--resume is for local runs; a queued run continues when submitted again, or use --follow');
  const modes = (['follow', 'status', 'remove'] as const).filter((m) => v[m]);
  if (modes.length > 1) throw new UsageError(`give one of --follow, --status and --remove, not ${modes.map((m) => `--${m}`).join(' and ')}`);
  const mode = modes[0] ?? null;
  if (mode) {
    const extra = RUN_FLAGS.filter((f) => given.has(f));
    if (extra.length) throw new UsageError(`--${mode} takes the run's settings from the queue; drop ${extra.map((f) => `--${f}`).join(' ')}`);
  }
  if (mode !== 'status' && mode !== 'remove' && !v.out) throw new UsageError('--out DIR is required');

  // A run to submit is checked (flags, model, layers, images, the output folder) before anything is queued.
  const wanted = mode ? null : await defineQueuedRun(v, log);
  const redis = await connectRedis(address, { log });
  const queue = new Queue(QUEUE_NAME, { connection: redis });
  queue.on('error', () => {}); // the connection reports its own outages
  try {
    const store = new RunStore(redis);
    if (mode === 'status') {
      const run = await recordedRun(store, v.run, address);
      process.stdout.write(statusText(run, await new RunWatcher(store, queue, run).state()));
      return 0;
    }
    if (mode === 'remove') {
      await recordedRun(store, v.run, address);
      const removed = await removeRun(store, queue, v.run);
      if (removed.active) throw new InputError(`--remove: run ${v.run} has ${removed.active} shard(s) in progress; stop its workers or let them finish, then remove it`);
      log(`eval: removed run ${v.run} from ${address.display} (${removed.jobs} queued or failed job(s), its records and images)`);
      return 0;
    }
    const run = wanted ? await submit(wanted, store, queue, address, log) : await recordedRun(store, v.run, address);
    const folder = wanted?.folder ?? openRunFolder(v.out!, run.spec.settings, true, log);
    return await follow(new RunWatcher(store, queue, run), folder, v.out!, v.quiet, address, log);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

async function recordedRun(store: RunStore, name: string, address: RedisAddress): Promise<QueuedRun> {
  const run = await store.get(name);
  if (!run) throw new InputError(`--run ${name}: no such run in the queue at ${address.display}`);
  return run;
}

/** Stored image bytes a run may hold (--embed-images is for sets that fit comfortably in Redis). */
const MAX_EMBEDDED_BYTES = 1 << 30;

interface WantedRun {
  run: QueuedRun;
  dataset: Dataset;
  /** The output folder, opened (a folder of another run is refused before anything is queued). */
  folder: RunFolder;
}

/** The run the flags define: checked as a local run is (on the CPU: the model is only checked here). */
async function defineQueuedRun(v: EvalFlags, log: (l: string) => void): Promise<WantedRun> {
  const { shared, dataset, items, settings } = await defineRun(v, { ...sharedSettings(v), backend: 'cpu' });
  const shardSize = v.shard === undefined ? 8 : parseIntFlag('shard', v.shard, 1);
  const { model, arch } = shared.model;
  const folder = openRunFolder(shared.out, settings, true, log);
  const spec: RunSpec = {
    name: v.run!,
    settings,
    model: arch ? { arch, weights: settings.model.slice(arch.length + 1) } : { model: model ?? 'resnet20_cifar10' },
    options: { shardSize, batchSize: shared.batch, maxPixels: shared.maxPixels, embedImages: v['embed-images'] },
    created: new Date().toISOString(),
  };
  return { run: { spec, items }, dataset, folder };
}

/** Reads the images to embed, one at a time. */
async function imageBytes(items: readonly DatasetItem[]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  let total = 0;
  for (const item of items) {
    const bytes = await readFile(item.path);
    total += bytes.length;
    if (total > MAX_EMBEDDED_BYTES) throw new InputError(`--embed-images: the images pass ${MAX_EMBEDDED_BYTES >> 20} MiB at ${item.file}; give the workers the data folder instead`);
    out.set(item.file, bytes);
  }
  return out;
}

/** Records the run (or checks it against the one recorded under its name) and queues its shards. */
async function submit(wanted: WantedRun, store: RunStore, queue: Queue, address: RedisAddress, log: (l: string) => void): Promise<QueuedRun> {
  const { spec, items } = wanted.run;
  const recorded = (await recordRun(store, wanted.run, spec.options.embedImages ? () => imageBytes(items) : undefined)) ?? wanted.run;
  if (recorded !== wanted.run) {
    const diff = settingsDiff(recorded.spec.settings, spec.settings);
    const files = (r: QueuedRun) => r.items.map((i) => i.file).join('\n');
    if (files(recorded) !== files(wanted.run)) diff.push(`images: recorded ${recorded.items.length} (${recorded.items[0]?.file} …), now ${items.length} (${items[0]?.file} …)`);
    if (diff.length) throw new InputError(`--run ${spec.name}: the settings differ from the run recorded in the queue (${diff.join('; ')}); repeat the recorded settings or choose another --run`);
  }
  const q = await enqueueRun(store, queue, recorded);
  const { shardSize, embedImages } = recorded.spec.options;
  log(
    `eval: ${recorded === wanted.run ? 'submitted' : 'continuing'} run ${spec.name} at ${address.display}: ${items.length} images (${wanted.dataset.layout}) × ${spec.settings.methods.length} method(s)` +
      ` in ${q.shards} shard(s) of ${shardSize}; ${q.pending} with work left${q.retried ? `, ${q.retried} failed shard(s) retried` : ''}${embedImages ? '; images embedded' : ''}`,
  );
  return recorded;
}

/** Follows the run until every image is done or failed, then writes the results to `out`. */
async function follow(watcher: RunWatcher, folder: RunFolder, out: string, quiet: boolean, address: RedisAddress, log: (l: string) => void): Promise<number> {
  const { spec } = watcher.run;
  let state = await watcher.state();
  const finished = (s: RunState) => s.done + s.failures.size;
  const progress = new Progress(state.total, finished(state), !quiet, true);
  const interrupted = () => {
    progress.stop();
    log(`eval: stopped following; run ${spec.name} goes on in the workers (reattach: eval --queue ${address.display} --run ${spec.name} --follow --out ${out})`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  try {
    progress.update(finished(state), { workers: state.workers, failed: state.failures.size });
    while (!state.finished) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      state = await watcher.state();
      progress.update(finished(state), { workers: state.workers, failed: state.failures.size });
    }
  } finally {
    process.removeListener('SIGINT', interrupted);
    progress.stop();
  }

  const { items, records } = await watcher.records();
  for (const item of items) if (!folder.done.has(item.file)) folder.append(records.get(item.file)!);
  const failures = [...state.failures].map(([file, error]) => ({ file, error }));
  for (const f of failures.slice(0, LISTED_FAILURES)) log(`failed: ${f.file}: ${f.error}`);
  if (failures.length > LISTED_FAILURES) log(`… and ${failures.length - LISTED_FAILURES} more failures (all listed in results.json)`);
  if (items.length === 0) {
    log(`eval: run ${spec.name}: all ${failures.length} images failed; no results written`);
    return 1;
  }
  const results = summarise(spec.settings, items, folder.done);
  const withFailures: EvalResults & { failed?: typeof failures } = failures.length ? { ...results, failed: failures } : results;
  await folder.writeResults(withFailures);
  if (failures.length) appendFileSync(join(out, 'results.md'), failuresMarkdown(failures));
  log(
    `top-1 accuracy ${results.accuracy.toFixed(2)}% (${results.correct}/${results.n})${failures.length ? `; ${failures.length} image(s) failed, left out of the tables` : ''}; ` +
      `wrote results.json, results.md, results.csv and plots to ${out}`,
  );
  return failures.length ? 1 : 0;
}

function failuresMarkdown(failures: { file: string; error: string }[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return `\n## Failed images (${failures.length}), not in the tables\n\n| image | error |\n|---|---|\n${failures.map((f) => `| ${cell(f.file)} | ${cell(f.error)} |`).join('\n')}\n`;
}

function statusText(run: QueuedRun, s: RunState): string {
  const { spec } = run;
  const st = spec.settings;
  const lines = [
    `run ${spec.name} (submitted ${spec.created}): ${st.model}, methods ${st.methods.join(',')}, target ${st.target}, layers ${st.layers.join(',')}, steps ${st.steps}, seed ${st.seed}${st.road ? ', ROAD' : ''}`,
    `images: ${s.done} of ${s.total} done, ${s.failures.size} failed, ${s.total - s.done - s.failures.size} to do (shards of ${spec.options.shardSize}${spec.options.embedImages ? ', images embedded' : ''})`,
    `workers alive: ${s.workers}`,
    s.finished ? 'finished' : 'in progress',
    ...[...s.failures].map(([file, error]) => `failed: ${file}: ${error}`),
  ];
  return `${lines.join('\n')}\n`;
}
