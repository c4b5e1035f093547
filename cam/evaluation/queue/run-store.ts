// What a queued run keeps in Redis besides its jobs: the run (settings, model, options, image list), the
// per-image records, which images are done, which failed and why, and (with --embed-images) the images.
//
// Records are written idempotently, keyed by run, image and method: all methods of an image, its "done"
// mark and the removal of an earlier failure go in one transaction, so an image is either wholly
// recorded or not at all, and a shard done twice (a stalled worker's shard taken up by another) writes
// the same values again and counts once. The records are opaque JSON here: whatever the evaluation
// pipeline puts in them (new metrics included) travels unchanged, and the tables are built from them
// alone.

import type { Redis } from 'ioredis';
import type { DatasetItem } from '../dataset.ts';
import type { EvalSettings } from '../report.ts';

/** How a worker loads the model: a zoo name, or an architecture with an absolute weights path. */
export interface ModelSpec {
  model?: string;
  arch?: string;
  weights?: string;
}

/** Settings that do not change the numbers (so they are not compared when a run is submitted again). */
export interface RunOptions {
  /** Images per shard (per job). */
  shardSize: number;
  /** Images per forward batch inside a shard. */
  batchSize: number;
  maxPixels: number;
  /** The image bytes are in Redis (workers need no shared folder). */
  embedImages: boolean;
}

/** Everything a worker needs to evaluate any shard of a run; sent with each of its jobs. */
export interface RunSpec {
  name: string;
  settings: EvalSettings;
  model: ModelSpec;
  options: RunOptions;
  /** When the run was first submitted (ISO 8601). */
  created: string;
}

/** A run as recorded: its spec and its images, in dataset order. */
export interface QueuedRun {
  spec: RunSpec;
  items: DatasetItem[];
}

/** The data of one job: a shard of a run's images. */
export interface ShardJob {
  spec: RunSpec;
  shard: number;
  items: DatasetItem[];
}

/** What a record needs for its key; the rest of it is opaque here. */
export interface KeyedRecord {
  file: string;
  method: string;
}

/** Run names become Redis keys and job ids: letters, digits, '.', '_' and '-'. */
export const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The job id of a run's shard: re-adding a job that is still queued is a no-op in BullMQ. */
export function shardJobId(run: string, shard: number): string {
  return `${run}#${shard}`;
}

const keys = (run: string) => {
  const base = `shapleycam:run:${run}`;
  return { run: `${base}:spec`, records: `${base}:records`, done: `${base}:done`, failed: `${base}:failed`, images: `${base}:images` };
};
const recordField = (file: string, method: string) => JSON.stringify([file, method]);
/** Files per HMGET/SMISMEMBER round trip when reading a whole run. */
const CHUNK = 500;

export class RunStore {
  constructor(private readonly redis: Redis) {}

  /** Records a new run unless one of that name exists; returns the one recorded before, or null. */
  async create(run: QueuedRun): Promise<QueuedRun | null> {
    const created = await this.redis.set(keys(run.spec.name).run, JSON.stringify(run), 'NX');
    return created ? null : this.get(run.spec.name);
  }

  async get(name: string): Promise<QueuedRun | null> {
    const text = await this.redis.get(keys(name).run);
    return text === null ? null : (JSON.parse(text) as QueuedRun);
  }

  /** Stores image bytes for workers without the data folder (--embed-images). */
  async putImages(run: string, images: Map<string, Uint8Array>): Promise<void> {
    const entries = [...images];
    for (let i = 0; i < entries.length; i += CHUNK) {
      await this.redis.hset(keys(run).images, Object.fromEntries(entries.slice(i, i + CHUNK).map(([f, b]) => [f, Buffer.from(b)])));
    }
  }

  /** The stored bytes of `files` (null where none is stored). */
  async getImages(run: string, files: string[]): Promise<(Buffer | null)[]> {
    return files.length ? this.redis.hmgetBuffer(keys(run).images, ...files) : [];
  }

  /** Records all methods of one image at once, marks it done and clears an earlier failure of it. */
  async putImage(run: string, file: string, records: readonly KeyedRecord[]): Promise<void> {
    const k = keys(run);
    const fields = Object.fromEntries(records.map((r) => [recordField(file, r.method), JSON.stringify(r)]));
    await this.redis.multi().hset(k.records, fields).sadd(k.done, file).hdel(k.failed, file).exec();
  }

  /** Records why an image could not be evaluated (ignored once the image is done). */
  async putFailure(run: string, file: string, message: string): Promise<void> {
    await this.redis.hset(keys(run).failed, file, message);
  }

  async clearFailures(run: string, files: string[]): Promise<void> {
    if (files.length) await this.redis.hdel(keys(run).failed, ...files);
  }

  async doneCount(run: string): Promise<number> {
    return this.redis.scard(keys(run).done);
  }

  /** Which of `files` are done. */
  async doneAmong(run: string, files: string[]): Promise<boolean[]> {
    const out: boolean[] = [];
    for (let i = 0; i < files.length; i += CHUNK) {
      const part = files.slice(i, i + CHUNK);
      out.push(...(await this.redis.smismember(keys(run).done, ...part)).map((v) => v === 1));
    }
    return out;
  }

  /** Failures recorded by workers for images that are not done, by file. */
  async failures(run: string): Promise<Map<string, string>> {
    const all = await this.redis.hgetall(keys(run).failed);
    const files = Object.keys(all);
    const done = await this.doneAmong(run, files);
    return new Map(files.filter((_, i) => !done[i]).map((f) => [f, all[f]]));
  }

  /**
   * The records of `files` that have every one of `methods`, in method order (files in the given order);
   * the rest are left out.
   */
  async records<R extends KeyedRecord>(run: string, files: string[], methods: readonly string[]): Promise<Map<string, R[]>> {
    const out = new Map<string, R[]>();
    for (let i = 0; i < files.length; i += CHUNK) {
      const part = files.slice(i, i + CHUNK);
      const values = await this.redis.hmget(keys(run).records, ...part.flatMap((f) => methods.map((m) => recordField(f, m))));
      part.forEach((file, j) => {
        const row = values.slice(j * methods.length, (j + 1) * methods.length);
        if (row.every((v) => v !== null)) out.set(file, row.map((v) => JSON.parse(v!) as R));
      });
    }
    return out;
  }

  /** Deletes everything recorded for a run (not its jobs). */
  async remove(run: string): Promise<void> {
    await this.redis.del(...Object.values(keys(run)));
  }
}
