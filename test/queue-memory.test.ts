// A worker's memory stays flat over many shards: the code a worker's child runs for each shard
// (evaluateShard: skip what is recorded, decode, evaluate through the pipeline, record in Redis, keep the
// run's model) is run here in-process, shard after shard, against a redis-server of the test's own, on
// the CPU backend and on WebGPU (GPU buffers included), with the engine's live-buffer counters read after
// every shard. Tiny 8×8 pictures keep each shard cheap (CIFAR models do not resize). QUEUE_SOAK_SHARDS=N
// runs N shards per backend instead of the default (a longer soak, by hand).

import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { parseRedisUrl } from '../cam/evaluation/queue/address.ts';
import { connectRedis } from '../cam/evaluation/queue/connection.ts';
import { RunStore, type RunSpec, type ShardJob } from '../cam/evaluation/queue/run-store.ts';
import { evaluateShard, ModelCache } from '../cam/evaluation/queue/shard.ts';
import { encodePng } from '../cam/rendering/codec.ts';
import { ROOT, describeRedis, startRedis, type RedisServer } from './helpers/redis.ts';
import { describeWebGpu } from './helpers/webgpu.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const soak = Number(process.env.QUEUE_SOAK_SHARDS ?? 0);

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describeRedis('a worker over many shards', () => {
  let redis: RedisServer;
  let client: Redis;
  let store: RunStore;
  let dir: string;
  const models = new ModelCache();

  beforeAll(async () => {
    redis = await startRedis();
    client = await connectRedis(parseRedisUrl(redis.url));
    store = new RunStore(client);
    dir = mkdtempSync(join(tmpdir(), 'queue-memory-'));
    const data = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
    writeFileSync(join(dir, 'tiny.png'), encodePng({ width: 8, height: 8, data }));
    cpSync(join(ROOT, 'models/weights/resnet20_cifar10.safetensors'), join(dir, 'resnet20.safetensors'));
  });

  afterAll(async () => {
    models.release();
    client?.disconnect();
    await redis?.dispose();
  });

  /** A shard of one tiny image, of a run of its own (so nothing is skipped as already done). */
  let runs = 0;
  const shard = (model: RunSpec['model'] = { model: 'resnet20_cifar10' }): ShardJob => {
    const name = `soak${runs++}`;
    const spec: RunSpec = {
      name,
      settings: { model: model.model ?? `resnet20:${model.weights}`, methods: ['gradcam', 'shapleycam'], target: 'rest', layers: ['layer3'], data: dir, seed: 0, steps: 2, road: false },
      model,
      options: { shardSize: 1, batchSize: 8, maxPixels: 1_000_000, embedImages: false },
      created: new Date().toISOString(),
    };
    return { spec, shard: 0, items: [{ file: 'tiny.png', path: join(dir, 'tiny.png'), label: 3 }] };
  };

  /** Runs `count` shards; after the first, live tensors are the same after every shard. */
  async function flatOver(count: number): Promise<{ heapGrowth: number }> {
    const run = async () => {
      const r = await evaluateShard(shard(), { store, models });
      expect(r.evaluated).toBe(1);
      return r.memory;
    };
    const first = await run();
    const heapBefore = heapAfterGc();
    for (let i = 1; i < count; i++) expect(await run(), `after shard ${i + 1}`).toEqual(first);
    // Everything live is the model's weights and the engine's cached constants.
    expect(first.buffers).toBeLessThan(200);
    return { heapGrowth: heapAfterGc() - heapBefore };
  }

  it('CPU backend: live tensors unchanged after every shard, heap flat', async () => {
    E.setBackend(E.cpuBackend());
    const n = soak || 120;
    const { heapGrowth } = await flatOver(n);
    console.log(`queue-memory: cpu, ${n} shards: heap growth ${(heapGrowth / 2 ** 20).toFixed(2)} MiB`);
    expect(heapGrowth).toBeLessThan(8 * 2 ** 20);
    models.release();
  }, 900_000);

  it('a run with another model replaces the kept one, whose weights are freed', async () => {
    E.setBackend(E.cpuBackend());
    await evaluateShard(shard(), { store, models });
    const zoo = E.getBackend().memory();
    const file = { arch: 'resnet20', weights: join(dir, 'resnet20.safetensors') };
    for (let i = 0; i < 4; i++) {
      await evaluateShard(shard(i % 2 ? undefined : file), { store, models });
      expect(E.getBackend().memory()).toEqual(zoo); // one model's weights live, never two
    }
    models.release();
    expect(E.getBackend().memory().buffers).toBeLessThan(zoo.buffers - 20); // its weights are freed
  }, 300_000);

  describeWebGpu('on WebGPU', () => {
    it('live tensors unchanged after every shard, and no GPU buffer created after the first shards', async () => {
      const gpu = (await E.useBackend('webgpu')) as WebGpuBackend;
      const n = soak || 30;
      await flatOver(3);
      const created = gpu.stats().created;
      const { heapGrowth } = await flatOver(n);
      const stats = gpu.stats();
      console.log(`queue-memory: webgpu, ${n} shards: heap growth ${(heapGrowth / 2 ** 20).toFixed(2)} MiB, GPU buffers ${stats.gpuBuffers} (${stats.gpuBytes} bytes)`);
      // The pool serves every later shard from the buffers it has: none created, none kept beyond them.
      expect(stats.created).toBe(created);
      expect(heapGrowth).toBeLessThan(8 * 2 ** 20);
      models.release();
    }, 900_000);
  });
});
