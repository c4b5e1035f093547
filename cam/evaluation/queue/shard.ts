// One shard of a queued run, as a worker evaluates it: skip the images already recorded (a shard taken
// over from a dead worker restarts where that one stopped), decode each remaining image on its own (a
// corrupt image fails alone, by name), evaluate the rest through the same pipeline as a local `eval`
// (cam/evaluation/pipeline.ts: "evaluate these images → per-image records"), and record each image as
// soon as it is done.

import * as E from '../../../engine/index.ts';
import { loadModel, loadZooModel, type LoadedModel } from '../../../models/zoo.ts';
import { decodeImage, decodeImageBytes } from '../../rendering/codec.ts';
import type { RgbImage } from '../../rendering/image.ts';
import type { DatasetItem } from '../dataset.ts';
import { evaluateImages } from '../pipeline.ts';
import type { ModelSpec, RunStore, ShardJob } from './run-store.ts';

/** One line, whatever was thrown. */
export function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

/**
 * The model of the run being served, loaded once and kept while shards of runs with the same model come;
 * a run with another model replaces it (its weights are freed first).
 */
export class ModelCache {
  private current: { key: string; model: LoadedModel } | null = null;

  async get(spec: ModelSpec): Promise<LoadedModel> {
    const key = JSON.stringify([spec.model ?? null, spec.arch ?? null, spec.weights ?? null]);
    if (this.current?.key === key) return this.current.model;
    this.release();
    let model: LoadedModel;
    try {
      model = spec.arch ? await loadModel(spec.arch, spec.weights!) : await loadZooModel(spec.model!);
    } catch (e) {
      throw new Error(`cannot load the model ${spec.arch ? `${spec.arch} from ${spec.weights}` : spec.model} (${oneLine(e)})`);
    }
    this.current = { key, model };
    return model;
  }

  /** Frees the kept model's weights. */
  release(): void {
    this.current?.model.module.disposeParameters();
    this.current = null;
  }
}

export interface ShardContext {
  store: RunStore;
  models: ModelCache;
}

export interface ShardResult {
  /** Images evaluated now, and images found already recorded. */
  evaluated: number;
  skipped: number;
  seconds: number;
  /** The backend's live tensors after the shard (for watching a long-running worker's memory). */
  memory: E.MemoryStats;
}

/** Thrown when some images of a shard could not be evaluated; the others were recorded. */
export class ShardImagesError extends Error {
  override name = 'ShardImagesError';
}

/** Evaluates the images of `job` not yet recorded and records them; image failures are recorded by name. */
export async function evaluateShard(job: ShardJob, ctx: ShardContext): Promise<ShardResult> {
  const t0 = performance.now();
  const { spec } = job;
  const run = spec.name;
  const done = await ctx.store.doneAmong(run, job.items.map((i) => i.file));
  const todo = job.items.filter((_, i) => !done[i]);
  const result = (evaluated: number): ShardResult => ({
    evaluated,
    skipped: job.items.length - todo.length,
    seconds: (performance.now() - t0) / 1000,
    memory: E.getBackend().memory(),
  });
  if (todo.length === 0) return result(0);

  const model = await ctx.models.get(spec.model);
  // The submitter checked the layers on its copy of the model; a worker's weights may differ.
  for (const layer of spec.settings.layers) model.module.get(layer);

  const { pictures, failures } = await decodeAll(todo, job, ctx.store);
  for (const [file, message] of failures) await ctx.store.putFailure(run, file, message);
  const good = todo.filter((i) => pictures.has(i.file));
  let writes = Promise.resolve();
  await evaluateImages(good, {
    model,
    settings: spec.settings,
    batchSize: spec.options.batchSize,
    maxPixels: spec.options.maxPixels,
    readImage: async (item) => pictures.get(item.file)!,
    finishEachImage: true,
    finished: (records) => {
      pictures.delete(records[0].file);
      writes = writes.then(() => ctx.store.putImage(run, records[0].file, records));
    },
  });
  await writes;
  if (failures.size) {
    const [[file, reason]] = failures;
    throw new ShardImagesError(`${failures.size === 1 ? '' : `${failures.size} images failed, the first `}${file}: ${reason}`);
  }
  return result(good.length);
}

/** Decodes each image on its own (from its file, or from the bytes stored with the run). */
async function decodeAll(items: DatasetItem[], job: ShardJob, store: RunStore): Promise<{ pictures: Map<string, RgbImage>; failures: Map<string, string> }> {
  const { maxPixels, embedImages } = job.spec.options;
  const bytes = embedImages ? await store.getImages(job.spec.name, items.map((i) => i.file)) : [];
  const pictures = new Map<string, RgbImage>();
  const failures = new Map<string, string>();
  for (const [i, item] of items.entries()) {
    try {
      if (!embedImages) pictures.set(item.file, await decodeImage(item.path, { maxPixels }));
      else if (bytes[i]) pictures.set(item.file, decodeImageBytes(bytes[i]!, item.file, { maxPixels }));
      else failures.set(item.file, 'no image bytes stored with the run');
    } catch (e) {
      // The reason, without the file name the message starts with (failures are listed by file).
      const message = oneLine(e);
      const prefix = `${embedImages ? item.file : item.path}: `;
      failures.set(item.file, message.startsWith(prefix) ? message.slice(prefix.length) : message);
    }
  }
  return { pictures, failures };
}
