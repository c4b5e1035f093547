// Connections to the Redis a queued evaluation runs through: they fail fast when Redis is not there at
// start, then ride out a restart (Redis restarted mid-run with persistence on: every command waits for it
// to come back instead of failing).

import { Redis } from 'ioredis';
import { QueueError, type RedisAddress } from './address.ts';

/** The BullMQ queue every run's shards go through; workers serve any run from it. */
export const QUEUE_NAME = 'shapleycam-eval';

export interface ConnectOptions {
  /** Told once when the connection drops and once when it is back (not on every retry). */
  log?: (line: string) => void;
  /** How long to keep trying at start before giving up (ms). */
  startTimeoutMs?: number;
}

/**
 * Connects to Redis. At start it gives up after `startTimeoutMs` with a one-line QueueError; once
 * connected it reconnects for ever (at most a second apart), and commands wait for the connection
 * (BullMQ needs `maxRetriesPerRequest: null` on its connections anyway).
 */
export async function connectRedis(addr: RedisAddress, opts: ConnectOptions = {}): Promise<Redis> {
  let connected = false;
  let lost = false;
  let lastError = '';
  const redis = new Redis({
    host: addr.host,
    port: addr.port,
    db: addr.db,
    username: addr.username,
    password: addr.password,
    tls: addr.tls ? {} : undefined,
    maxRetriesPerRequest: null,
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(100 * times, 1000),
  });
  redis.on('error', (e: Error) => {
    lastError = e.message.split('\n')[0];
    if (connected && !lost) {
      lost = true;
      opts.log?.(`redis ${addr.display}: connection lost (${lastError}); waiting for it to come back`);
    }
  });
  redis.on('ready', () => {
    if (lost) opts.log?.(`redis ${addr.display}: connected again`);
    lost = false;
  });
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<boolean>((resolve) => {
    redis.once('ready', () => resolve(true));
    timer = setTimeout(() => resolve(false), opts.startTimeoutMs ?? 5000);
  });
  const ok = await ready;
  clearTimeout(timer);
  if (!ok) {
    redis.disconnect();
    throw new QueueError(`--queue ${addr.display}: cannot connect to Redis (${lastError || 'no answer'})`);
  }
  connected = true;
  return redis;
}
