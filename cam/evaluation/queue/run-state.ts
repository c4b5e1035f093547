// Where a queued run stands, from Redis alone: images done, images failed (and why), workers alive. A
// failure is either recorded by a worker for an image it could not read, or is a failed job (a model that
// would not load, a crashed child, a shard that stalled too often): its images that are not done count as
// failed with the job's reason. The run is finished when every image is done or failed.

import type { Queue } from 'bullmq';
import type { DatasetItem } from '../dataset.ts';
import type { ImageRecord } from '../report.ts';
import { RunStore, type QueuedRun } from './run-store.ts';
import { failedShards } from './submit.ts';

export interface RunState {
  total: number;
  done: number;
  /** Images that failed, by file in dataset order, with a one-line reason. */
  failures: Map<string, string>;
  /** Workers connected to the queue (serving any run). */
  workers: number;
  finished: boolean;
}

export class RunWatcher {
  /** Failures from failed jobs, rescanned only when the queue's failed count changes. */
  private jobFailures = new Map<string, string>();
  private failedCount = -1;

  constructor(
    private readonly store: RunStore,
    private readonly queue: Queue,
    readonly run: QueuedRun,
  ) {}

  async state(): Promise<RunState> {
    const name = this.run.spec.name;
    const count = await this.queue.getFailedCount();
    if (count !== this.failedCount) {
      this.failedCount = count;
      this.jobFailures = new Map();
      for (const job of await failedShards(this.queue, name)) {
        for (const item of job.data.items) this.jobFailures.set(item.file, job.failedReason.split('\n')[0]);
      }
    }
    const recorded = await this.store.failures(name);
    const candidates = [...this.jobFailures.keys()].filter((f) => !recorded.has(f));
    const doneFlags = await this.store.doneAmong(name, candidates);
    const failed = new Map(recorded);
    candidates.forEach((f, i) => doneFlags[i] || failed.set(f, this.jobFailures.get(f)!));
    const failures = new Map(this.run.items.filter((i) => failed.has(i.file)).map((i) => [i.file, failed.get(i.file)!]));
    const total = this.run.items.length;
    const done = await this.store.doneCount(name);
    const workers = await this.queue.getWorkersCount();
    return { total, done, failures, workers, finished: done + failures.size >= total };
  }

  /** The records of the images done, in dataset order (each image's in method order). */
  async records(): Promise<{ items: DatasetItem[]; records: Map<string, ImageRecord[]> }> {
    const { spec, items } = this.run;
    const records = await this.store.records<ImageRecord>(spec.name, items.map((i) => i.file), spec.settings.methods);
    return { items: items.filter((i) => records.has(i.file)), records };
  }
}
