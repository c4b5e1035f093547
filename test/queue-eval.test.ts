// `eval --queue` end to end, with real processes: a redis-server of the test's own on a loopback port,
// three `worker` processes, and `eval --queue` followers, all on the CPU backend with the shipped
// ResNet-20 on images of test/fixtures/cifar10-sample. A single-process `eval` of the same settings is the
// reference: per-image results do not depend on the shard or batch an image was computed in, so every
// queued run must give the same per_image.jsonl and tables byte for byte — also when a worker is killed
// -9 mid-shard and when Redis is restarted mid-run. Plus: a corrupt image fails alone, by name; a model
// that will not load fails its shards and a resubmission retries them; --embed-images works without the
// data folder; a run name submitted with other settings is refused with the differences.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import { parseRedisUrl } from '../cam/evaluation/queue/address.ts';
import { connectRedis, QUEUE_NAME } from '../cam/evaluation/queue/connection.ts';
import { RunStore, type ShardJob } from '../cam/evaluation/queue/run-store.ts';
import { FIXTURES } from './helpers/fixtures.ts';
import { ROOT, describeRedis, runCli, startRedis, waitFor, type CliProcess, type RedisServer } from './helpers/redis.ts';

const SAMPLE = join(FIXTURES, 'cifar10-sample');
// Small and quick, but with a seeded method (random) so that per-image seeds are exercised across shards.
const SETTINGS = ['--model', 'resnet20_cifar10', '--methods', 'gradcam,shapleycam,random', '--steps', '2', '--seed', '3'];
const N = 4;
/** Deadlines: a worker lives for the whole file; a follower for one run. */
const WORKER_MS = 900_000;
const RUN_MS = 300_000;
const tmp = (name: string) => mkdtempSync(join(tmpdir(), `queue-eval-${name}-`));
const read = (dir: string, file: string) => readFileSync(join(dir, file), 'utf8');
/** The files a queued run must share byte for byte with the single-process run. */
const SAME_FILES = ['per_image.jsonl', 'results.json', 'results.md', 'results.csv', 'settings.json'];
const childrenOf = (pid: number) => spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().split('\n').filter(Boolean).map(Number);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describeRedis('eval --queue with worker processes', () => {
  let redis: RedisServer;
  let client: Redis;
  let queue: Queue;
  let store: RunStore;
  const workers: CliProcess[] = [];
  let reference: string;

  const startWorker = () => {
    const w = runCli(['worker', '--queue', redis.url, '--backend', 'cpu', '--stall-timeout', '2', '--verbose'], WORKER_MS);
    workers.push(w);
    return w;
  };
  /** Runs `eval --queue` in its own process to the end. */
  const follow = async (args: string[]) => {
    const p = runCli(['eval', '--queue', redis.url, '--quiet', ...args], RUN_MS);
    const code = await p.exited;
    return { code, text: p.output() };
  };
  const submit = (run: string, out: string, extra: string[] = []) => runCli(['eval', '--queue', redis.url, '--run', run, ...SETTINGS, '--data', SAMPLE, '--limit', String(N), '--out', out, '--quiet', ...extra], RUN_MS);
  const expectSameAsReference = (out: string) => {
    for (const f of SAME_FILES) expect(read(out, f), f).toBe(read(reference, f));
  };
  const allLogs = () => workers.map((w) => w.output()).join('\n');

  beforeAll(async () => {
    redis = await startRedis();
    client = await connectRedis(parseRedisUrl(redis.url));
    queue = new Queue(QUEUE_NAME, { connection: client });
    queue.on('error', () => {}); // Redis is restarted on purpose below
    store = new RunStore(client);
    for (let i = 0; i < 3; i++) startWorker();
    reference = tmp('reference');
    const code = await runEvalCommand([...SETTINGS, '--data', SAMPLE, '--limit', String(N), '--backend', 'cpu', '--batch', '4', '--quiet', '--out', reference], () => {});
    expect(code).toBe(0);
    await waitFor('three workers on the queue', async () => (await queue.getWorkersCount()) === 3, 60_000);
  }, 600_000);

  afterAll(async () => {
    const children = workers.flatMap((w) => childrenOf(w.pid));
    await Promise.all(
      workers.map(async (w) => {
        w.kill('SIGTERM');
        await w.exited;
      }),
    );
    await queue?.close();
    client?.disconnect();
    await redis?.dispose();
    // A worker stopped with SIGTERM stops its children.
    await waitFor('the workers\' children to exit', () => children.every((pid) => !alive(pid)), 30_000);
  }, 120_000);

  it('three workers give the per-image records and tables of a single-process eval', async () => {
    const out = tmp('three');
    const p = submit('three', out, ['--shard', '1']);
    expect(await p.exited, p.output()).toBe(0);
    expectSameAsReference(out);
    for (const f of ['metrics.png', 'insertion.png', 'deletion.png']) expect(existsSync(join(out, f)), f).toBe(true);
    expect(p.output()).toMatch(/submitted run three .*4 images .* 3 method\(s\) in 4 shard\(s\) of 1/);
    // The shards were spread over the workers, and each kept its model (one backend line per child).
    const served = workers.filter((w) => /run three shard \d: 1 image\(s\)/.test(w.output()));
    expect(served.length).toBeGreaterThanOrEqual(2);
    // The records in Redis are per image and method, and nothing else.
    expect(await client.hlen('shapleycam:run:three:records')).toBe(N * 3);
    expect(await store.doneCount('three')).toBe(N);
  }, RUN_MS);

  it('--status says where a run stands; --follow writes a finished run again', async () => {
    const status = await follow(['--run', 'three', '--status']);
    expect(status.code, status.text).toBe(0);
    expect(status.text).toMatch(/run three .*resnet20_cifar10, methods gradcam,shapleycam,random/);
    expect(status.text).toMatch(/images: 4 of 4 done, 0 failed, 0 to do \(shards of 1\)/);
    expect(status.text).toMatch(/workers alive: 3/);
    const out = tmp('follow');
    const again = await follow(['--run', 'three', '--follow', '--out', out]);
    expect(again.code, again.text).toBe(0);
    expectSameAsReference(out);
    const unknown = await follow(['--run', 'nope', '--status']);
    expect(unknown.code).toBe(1);
    expect(unknown.text).toMatch(/--run nope: no such run in the queue at redis:\/\/127\.0\.0\.1:\d+/);
  }, RUN_MS);

  it('refuses a run name submitted again with other settings, with the differences (as --resume does)', async () => {
    const out = tmp('mismatch');
    const other = SETTINGS.map((a) => (a === '3' ? '4' : a === 'gradcam,shapleycam,random' ? 'gradcam' : a));
    const p = runCli(['eval', '--queue', redis.url, '--run', 'three', ...other, '--data', SAMPLE, '--limit', String(N), '--out', out], RUN_MS);
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/error: --run three: the settings differ from the run recorded in the queue \(methods: recorded \["gradcam","shapleycam","random"\], now \["gradcam"\]; seed: recorded 3, now 4\)/);
    expect(p.output().trim().split('\n')).toHaveLength(1);
    // Nothing was queued or changed.
    expect(await store.doneCount('three')).toBe(N);
    expect((await queue.getJobCounts('waiting', 'active')).waiting).toBe(0);
  }, RUN_MS);

  it('a worker killed -9 mid-shard: another takes the shard over after the stall timeout; nothing lost or counted twice', async () => {
    const out = tmp('killed');
    const p = submit('killed', out, ['--shard', '2']);
    // Wait for a shard with some but not all of its images recorded, and kill the worker that holds it.
    let victim: { pid: number; job: string } | null = null;
    await waitFor(
      'a shard half done',
      async () => {
        for (const job of (await queue.getActive()) as { id?: string; processedBy?: string; data: ShardJob }[]) {
          if (job.data.spec.name !== 'killed' || !job.processedBy) continue;
          const done = (await store.doneAmong('killed', job.data.items.map((i) => i.file))).filter(Boolean).length;
          if (done >= 1 && done < job.data.items.length) victim = { pid: Number(job.processedBy.split(':').pop()), job: job.id! };
        }
        return victim !== null;
      },
      RUN_MS,
    );
    const { pid, job } = victim!;
    const w = workers.find((x) => x.pid === pid)!;
    expect(w, `worker ${pid}`).toBeDefined();
    const children = childrenOf(pid);
    expect(children.length).toBeGreaterThan(0); // the sandboxed child computing the shard
    w.kill('SIGKILL');
    expect(await w.exited).toBe(137);
    startWorker(); // back to three for the tests that follow
    // The killed worker's child notices that its parent is gone and stops too.
    await waitFor('the killed worker\'s child to exit', () => children.every((c) => !alive(c)), 60_000);
    expect(await p.exited, p.output()).toBe(0);
    expectSameAsReference(out);
    // The shard was put back by the stalled-job check and its recorded images were not evaluated again
    // (the killed worker's child may have recorded the image it was computing before it stopped).
    // When the orphaned child managed to record the whole shard, the follower can finish before the stall check
    // fires; the take-over must still happen, and must then find every image already done.
    const takeOver = new RegExp(`run killed shard ${job.split('#')[1]}: [01] image\\(s\\) in [\\d.]+ s, [12] already done`);
    await waitFor('the stalled shard to be taken over', () => allLogs().includes(`shard ${job} stalled`) && takeOver.test(allLogs()), 60_000);
    expect(await store.doneCount('killed')).toBe(N);
  }, RUN_MS);

  it('Redis restarted mid-run (append-only persistence): the run completes with the same results', async () => {
    const out = tmp('restart');
    const p = submit('restart', out, ['--shard', '1']);
    await waitFor('an image done', async () => (await store.doneCount('restart')) >= 1, RUN_MS);
    expect(await store.doneCount('restart')).toBeLessThan(N);
    await redis.stop();
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    expect(await p.exited, p.output()).toBe(0);
    expect(p.output()).toMatch(/connection lost/);
    expectSameAsReference(out);
  }, RUN_MS);

  it('a corrupt image fails alone, by name; the rest complete and the summary lists the failure', async () => {
    const data = tmp('corrupt-data');
    const files = ['airplane_0000.png', 'airplane_0001.png', 'airplane_0002.png'];
    for (const f of files) cpSync(join(SAMPLE, f), join(data, f));
    writeFileSync(join(data, 'broken.png'), Buffer.from('this is not a picture'));
    writeFileSync(join(data, 'index.json'), JSON.stringify({ images: [...files, 'broken.png'].map((file) => ({ file, label: 0 })) }));
    const out = tmp('corrupt');
    const r = await follow(['--run', 'corrupt', ...SETTINGS, '--data', data, '--shard', '2', '--out', out]);
    expect(r.code, r.text).toBe(1);
    expect(r.text).toMatch(/failed: broken\.png: unsupported image format \(expected PNG or JPEG signature\)/);
    expect(r.text).toMatch(/1 image\(s\) failed, left out of the tables/);
    const results = JSON.parse(read(out, 'results.json'));
    expect(results.n).toBe(3);
    expect(results.failed).toEqual([{ file: 'broken.png', error: 'unsupported image format (expected PNG or JPEG signature)' }]);
    expect(read(out, 'results.md')).toMatch(/## Failed images \(1\)[\s\S]*\| broken\.png \| unsupported image format/);
    // The three good images have the reference's records (airplane_0000..0002 are its first three images).
    const lines = read(out, 'per_image.jsonl');
    expect(lines).toBe(read(reference, 'per_image.jsonl').split('\n').slice(0, 9).join('\n') + '\n');
  }, RUN_MS);

  it('--embed-images: the workers need no data folder', async () => {
    const data = tmp('embed-data');
    const files = ['airplane_0000.png', 'airplane_0001.png'];
    for (const f of files) cpSync(join(SAMPLE, f), join(data, f));
    writeFileSync(join(data, 'index.json'), JSON.stringify({ images: files.map((file) => ({ file, label: 0 })) }));
    const out = tmp('embed');
    await queue.pause(); // no worker takes a shard until the data folder is gone
    const p = runCli(['eval', '--queue', redis.url, '--run', 'embed', ...SETTINGS, '--data', data, '--embed-images', '--out', out, '--quiet'], RUN_MS);
    await waitFor('the shard queued', async () => (await queue.getWaitingCount()) === 1, RUN_MS);
    rmSync(data, { recursive: true });
    await queue.resume();
    expect(await p.exited, p.output()).toBe(0);
    expect(p.output()).toMatch(/images embedded/);
    expect(read(out, 'per_image.jsonl')).toBe(read(reference, 'per_image.jsonl').split('\n').slice(0, 6).join('\n') + '\n');
  }, RUN_MS);

  it('a model that will not load fails its shards with the one-line error; submitting again retries them', async () => {
    const dir = tmp('weights');
    const weights = join(dir, 'resnet20.safetensors');
    cpSync(join(ROOT, 'models/weights/resnet20_cifar10.safetensors'), weights);
    const args = ['--run', 'noweights', '--arch', 'resnet20', '--weights', weights, '--methods', 'gradcam', '--steps', '2', '--data', SAMPLE, '--limit', '2', '--out', tmp('noweights')];
    await queue.pause(); // no worker takes the shard until the weights are gone
    const p = runCli(['eval', '--queue', redis.url, '--quiet', ...args], RUN_MS);
    await waitFor('the shard queued', async () => (await queue.getWaitingCount()) === 1, RUN_MS);
    rmSync(weights); // the submitter checked it; the workers will not find it
    await queue.resume();
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/failed: airplane_0000\.png: cannot load the model resnet20 from .*resnet20\.safetensors \(.*\)/);
    expect(p.output()).toMatch(/all 2 images failed; no results written/);
    cpSync(join(ROOT, 'models/weights/resnet20_cifar10.safetensors'), weights);
    const retry = await follow(args);
    expect(retry.code, retry.text).toBe(0);
    expect(retry.text).toMatch(/continuing run noweights .*1 failed shard\(s\) retried/);
  }, RUN_MS);

  it('--remove deletes a run: its failed jobs, records and images', async () => {
    expect((await queue.getFailed()).some((j) => j.data.spec.name === 'corrupt')).toBe(true);
    for (const run of ['corrupt', 'three']) {
      const r = await follow(['--run', run, '--remove']);
      expect(r.code, r.text).toBe(0);
      expect(r.text).toMatch(new RegExp(`removed run ${run} from redis://127\\.0\\.0\\.1:\\d+`));
      expect(await store.get(run)).toBeNull();
      expect(await client.exists(`shapleycam:run:${run}:records`, `shapleycam:run:${run}:done`, `shapleycam:run:${run}:failed`)).toBe(0);
    }
    expect((await queue.getFailed()).some((j) => j.data.spec.name === 'corrupt')).toBe(false);
    expect(await store.doneCount('killed')).toBe(N); // other runs untouched
    const again = await follow(['--run', 'three', '--remove']);
    expect(again.code).toBe(1);
    expect(again.text).toMatch(/--run three: no such run/);
  }, RUN_MS);
});
