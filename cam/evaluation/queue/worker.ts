// A queue worker: takes shards of any run from the queue and evaluates them in sandboxed child processes
// (./shard-processor.ts), `concurrency` shards at a time. Each child keeps its backend and the model of
// the run it serves, so a run's model is loaded once per child, not once per shard.
//
// Faults: a worker that dies mid-shard stops renewing that job's lock; after the lock runs out (the stall
// timeout) a live worker's stalled-job check puts the shard back, and whoever takes it skips the images
// already recorded. A shard that stalls more than MAX_STALLS times fails (it may be what kills workers).

import { hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BackendChoice } from '../../../engine/index.ts';
import { redisUrl, type RedisAddress } from './address.ts';
import { QUEUE_NAME } from './connection.ts';
import type { ShardJob } from './run-store.ts';
import type { ShardResult } from './shard.ts';

/** Times a shard may be taken over from a dead worker before it is failed. */
const MAX_STALLS = 3;

/** Environment variables a worker sets for its children (read by ./shard-processor.ts). */
export const CHILD_ENV = { url: 'SHAPLEYCAM_QUEUE_URL', backend: 'SHAPLEYCAM_WORKER_BACKEND' } as const;

export interface WorkerOptions {
  address: RedisAddress;
  /** The worker's connection (BullMQ duplicates it for its blocking reads). */
  redis: Redis;
  backend: BackendChoice;
  /** Shards evaluated at once, each in its own child process. */
  concurrency: number;
  /** A shard whose worker has not renewed its lock for this long is given to another worker (ms). */
  stallTimeoutMs: number;
  log(line: string): void;
  verbose: boolean;
}

export interface QueueWorker {
  /** Stops taking shards, waits for the ones in progress, stops the children. */
  close(): Promise<void>;
}

/**
 * The children's module, with this module's own extension: `.ts` when run from the sources (tsx), `.js` in the
 * compiled package, where the build rewrites import specifiers but not file URLs.
 */
const PROCESSOR = new URL(`./shard-processor${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url);

export function startWorker(opts: WorkerOptions): QueueWorker {
  const name = `${hostname()}:${process.pid}`;
  const worker = new Worker<ShardJob, ShardResult>(QUEUE_NAME, PROCESSOR, {
    connection: opts.redis,
    name,
    concurrency: opts.concurrency,
    lockDuration: opts.stallTimeoutMs,
    stalledInterval: opts.stallTimeoutMs,
    maxStalledCount: MAX_STALLS,
    workerForkOptions: {
      env: { ...process.env, [CHILD_ENV.url]: redisUrl(opts.address), [CHILD_ENV.backend]: opts.backend },
    },
  });
  const shard = (job: Job<ShardJob> | undefined) => (job ? `run ${job.data.spec.name} shard ${job.data.shard}` : 'a shard');
  worker.on('completed', (job, r) => {
    const memory = opts.verbose ? `; live tensors ${r.memory.buffers} (${r.memory.bytes} bytes)` : '';
    opts.log(`${shard(job)}: ${r.evaluated} image(s) in ${r.seconds.toFixed(1)} s${r.skipped ? `, ${r.skipped} already done` : ''}${memory}`);
  });
  worker.on('failed', (job, err) => opts.log(`${shard(job)} failed: ${err.message.split('\n')[0]}`));
  worker.on('stalled', (id) => opts.log(`shard ${id} stalled (its worker stopped renewing the lock); back in the queue`));
  worker.on('error', (err) => opts.log(`queue: ${err.message.split('\n')[0]}`));
  return { close: () => worker.close() };
}
