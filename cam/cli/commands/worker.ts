// `worker`: serves the queue — takes shards of any queued eval run, evaluates them and writes their
// per-image records back (cam/evaluation/queue/worker.ts). Run as many as you like, on one machine or
// many; they may come and go at any time. Ctrl-C (or SIGTERM) lets the shards in progress finish; a
// second one stops at once (those shards go to another worker after the stall timeout).

import { parseArgs } from 'node:util';
import * as E from '../../../engine/index.ts';
import { env } from '../../../engine/internal.ts';
import { connectRedis, QUEUE_NAME } from '../../evaluation/queue/connection.ts';
import { startWorker } from '../../evaluation/queue/worker.ts';
import { UsageError, parseIntFlag } from '../errors.ts';
import { QUEUE_OPTIONS, QUEUE_USAGE, parseCommandLine, queueAddress } from '../flags.ts';

export const WORKER_USAGE = `usage: cam/cli.ts worker --queue redis://HOST:PORT[/DB] [--backend auto|wasm|webgpu|cpu] [--concurrency N]
                       [--stall-timeout SECONDS] [--verbose]
${QUEUE_USAGE}
  --backend      where the shards compute (default auto, or ENGINE_BACKEND), as for eval
  --concurrency  shards at once, each in its own child process with its own copy of the model (default 1)
  --stall-timeout  a shard whose worker has been silent this long goes to another worker (default 30)
  --verbose      also print the live tensors after each shard`;

export async function runWorkerCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const { values: v } = parseCommandLine(() =>
    parseArgs({
      args: argv,
      options: {
        ...QUEUE_OPTIONS,
        backend: { type: 'string' },
        concurrency: { type: 'string', default: '1' },
        'stall-timeout': { type: 'string', default: '30' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }),
  );
  if (v.help) {
    process.stdout.write(`${WORKER_USAGE}\n`);
    return 0;
  }
  if (!v.queue) throw new UsageError('--queue redis://HOST:PORT[/DB] is required');
  const address = queueAddress(v.queue);
  const backend = v.backend ?? (env('ENGINE_BACKEND') || 'auto');
  if (!(E.BACKEND_CHOICES as readonly string[]).includes(backend)) throw new UsageError(`--backend: expected ${E.BACKEND_CHOICES.join(', ')}, got "${backend}"`);
  const concurrency = parseIntFlag('concurrency', v.concurrency, 1);
  const stallSeconds = parseIntFlag('stall-timeout', v['stall-timeout'], 1);

  const redis = await connectRedis(address, { log });
  const worker = startWorker({ address, redis, backend: backend as E.BackendChoice, concurrency, stallTimeoutMs: stallSeconds * 1000, log, verbose: v.verbose });
  log(`worker ${process.pid}: serving queue ${QUEUE_NAME} at ${address.display} (backend ${backend}, ${concurrency} shard(s) at a time, stall timeout ${stallSeconds} s); Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`worker ${process.pid}: ${signal}: finishing the shard(s) in progress (again to stop now)`);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await worker.close();
  redis.disconnect();
  log(`worker ${process.pid}: stopped`);
  return 0;
}
