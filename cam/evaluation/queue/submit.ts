// Submitting a run: record it (once per name), then queue one job per shard of images that is not done.
// Submitting the same run again queues only what is missing (queued jobs keep their ids, so re-adding
// them changes nothing) and gives the failed shards another try. Removing a run deletes its jobs and
// everything recorded for it.

import type { Job, Queue } from 'bullmq';
import { RunStore, shardJobId, type QueuedRun, type ShardJob } from './run-store.ts';

/** Jobs per addBulk call. */
const BULK = 500;

/**
 * Records `run` under its name unless a run of that name exists, in which case nothing is written and
 * that run is returned (for the caller to compare). The images (--embed-images) are stored first.
 */
export async function recordRun(store: RunStore, run: QueuedRun, images?: () => Promise<Map<string, Uint8Array>>): Promise<QueuedRun | null> {
  const existing = await store.get(run.spec.name);
  if (existing) return existing;
  if (images) await store.putImages(run.spec.name, await images());
  return store.create(run);
}

/** The run's shards: consecutive images in dataset order, `shardSize` at a time. */
export function shardsOf(run: QueuedRun): ShardJob[] {
  const n = run.spec.options.shardSize;
  const out: ShardJob[] = [];
  for (let s = 0; s * n < run.items.length; s++) out.push({ spec: run.spec, shard: s, items: run.items.slice(s * n, (s + 1) * n) });
  return out;
}

/** The failed jobs of `run` (failed jobs are kept; finished ones are removed). */
export async function failedShards(queue: Queue, run: string): Promise<Job<ShardJob>[]> {
  const jobs = (await queue.getFailed()) as Job<ShardJob>[];
  return jobs.filter((j) => j?.data?.spec?.name === run);
}

export interface Enqueued {
  shards: number;
  /** Shards with images still to do (queued now or already in the queue). */
  pending: number;
  /** Failed shards given another try. */
  retried: number;
}

/** Queues the shards of `run` that have images not yet done; failed shards are retried. */
export async function enqueueRun(store: RunStore, queue: Queue, run: QueuedRun): Promise<Enqueued> {
  const name = run.spec.name;
  const shards = shardsOf(run);
  const done = await store.doneAmong(name, run.items.map((i) => i.file));
  const failed = await failedShards(queue, name);
  for (const job of failed) {
    await store.clearFailures(name, job.data.items.map((i) => i.file));
    await job.retry('failed');
  }
  const retriedIds = new Set(failed.map((j) => j.id));
  const size = run.spec.options.shardSize;
  const pending = shards.filter((s) => s.items.some((_, i) => !done[s.shard * size + i]));
  const toAdd = pending.filter((s) => !retriedIds.has(shardJobId(name, s.shard)));
  for (let i = 0; i < toAdd.length; i += BULK) {
    await queue.addBulk(
      toAdd.slice(i, i + BULK).map((s) => ({
        name: `${name}#${s.shard}`,
        data: s,
        opts: { jobId: shardJobId(name, s.shard), attempts: 1, removeOnComplete: true, removeOnFail: false },
      })),
    );
  }
  return { shards: shards.length, pending: pending.length, retried: failed.length };
}

/** Deletes a run's queued and failed jobs and its records; refuses (returns the count) while shards are in progress. */
export async function removeRun(store: RunStore, queue: Queue, run: string): Promise<{ active: number; jobs: number }> {
  const ofRun = (jobs: Job<ShardJob>[]) => jobs.filter((j) => j?.data?.spec?.name === run);
  const active = ofRun((await queue.getActive()) as Job<ShardJob>[]);
  if (active.length) return { active: active.length, jobs: 0 };
  const jobs = ofRun((await queue.getJobs(['waiting', 'delayed', 'prioritized', 'failed', 'completed'])) as Job<ShardJob>[]);
  for (const job of jobs) await job.remove();
  await store.remove(run);
  return { active: 0, jobs: jobs.length };
}
