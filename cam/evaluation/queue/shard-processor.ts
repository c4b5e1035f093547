// The BullMQ sandboxed processor: a worker runs each shard in a child process that loads this module once
// and keeps it (and so its backend, its Redis connection and the model it holds) for every shard it is
// given. Computing outside the worker's own process keeps that process free to renew the job locks while
// a shard computes for minutes, and a crash here (out of memory, a GPU driver fault) fails the shard, not
// the worker. The worker passes the Redis address and the backend choice in the environment.

import type { SandboxedJob } from 'bullmq';
import * as E from '../../../engine/index.ts';
import { env } from '../../../engine/internal.ts';
import { parseRedisUrl } from './address.ts';
import { connectRedis } from './connection.ts';
import { RunStore, type ShardJob } from './run-store.ts';
import { evaluateShard, ModelCache, type ShardContext, type ShardResult } from './shard.ts';
import { CHILD_ENV } from './worker.ts';

const log = (line: string) => process.stderr.write(`worker ${process.pid}: ${line}\n`);

// A child whose worker is gone (killed -9) stops instead of computing on for nobody.
process.on('disconnect', () => process.exit(0));

let context: Promise<ShardContext> | null = null;

async function start(): Promise<ShardContext> {
  const chosen = await E.chooseBackend((env(CHILD_ENV.backend) || 'auto') as E.BackendChoice);
  log(E.describeChoice(chosen));
  const redis = await connectRedis(parseRedisUrl(env(CHILD_ENV.url)!), { log });
  return { store: new RunStore(redis), models: new ModelCache() };
}

export default async function processShard(job: SandboxedJob<ShardJob>): Promise<ShardResult> {
  context ??= start();
  return evaluateShard(job.data, await context);
}
