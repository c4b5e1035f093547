// The evaluation of CAM methods over labelled images, batch by batch: the ADCC family (AD, IC, ADD, Com,
// Coh, ADCC; see metrics.ts), insertion/deletion curves and, optionally, ROAD (road.ts) and pytorch-grad-cam's
// confidence and ARCC metrics (--metrics), per image and method. Scores are the softmax probability of the
// predicted class.
//
// Every per-image number depends only on the image, the settings and a seed derived from (seed, file,
// method) — not on the batch it was computed in — so a run interrupted and resumed (see
// cam/cli/run-folder.ts) writes exactly the results of an uninterrupted one. Methods whose maps are
// randomised run per image, with that image's seed.

import * as E from '../../engine/index.ts';
import type { LoadedModel } from '../../models/zoo.ts';
import { activationLayout } from '../../models/registry.ts';
import { explain } from '../algorithm/explain.ts';
import { getMethod } from '../algorithm/methods/index.ts';
import { rngFor } from '../algorithm/random.ts';
import { softmaxRow } from '../algorithm/targets.ts';
import { decodeImage } from '../rendering/codec.ts';
import { preprocess, type RgbImage } from '../rendering/image.ts';
import { DatasetError, type DatasetItem } from './dataset.ts';
import { adccMetrics, arccMetrics, confidenceMetrics, curveInputs, multiplyByMap, relevanceOrder, trapezoidAuc } from './metrics.ts';
import type { EvalSettings, ImageRecord, RoadRecord } from './report.ts';
import { roadCombined, roadInputs, type RoadInputs } from './road.ts';

/** Largest batch of perturbed inputs per forward pass. */
const SCORE_CHUNK = 32;

/** 32-bit FNV-1a of a string: per-image seeds. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** The seed of one image and method: results do not depend on the batch an image was computed in. */
export function imageSeed(seed: number, file: string, method: string): number {
  return hash32(`${seed}|${file}|${method}`);
}

/** Softmax probability of `classes[i]` for each CHW row, in forward passes of at most SCORE_CHUNK. */
async function classProbabilities(model: LoadedModel, rows: Float64Array[], shape: number[], classes: readonly number[]): Promise<number[]> {
  const out: number[] = [];
  const n = shape.reduce((a, b) => a * b, 1);
  for (let s = 0; s < rows.length; s += SCORE_CHUNK) {
    const part = rows.slice(s, s + SCORE_CHUNK);
    const flat = new Float64Array(part.length * n);
    part.forEach((r, i) => flat.set(r, i * n));
    const x = E.tensor(flat, [part.length, ...shape]);
    const y = E.tidy(() => model.module.call(x));
    const logits = await y.values();
    y.dispose();
    x.dispose();
    const C = logits.length / part.length;
    for (let i = 0; i < part.length; i++) out.push(softmaxRow(logits.subarray(i * C, (i + 1) * C))[classes[s + i]]);
  }
  return out;
}

interface LoadedImages {
  rows: Float64Array[];
  shape: [number, number, number];
}

/** Reads one item's picture (by default its file, refusing images over the pixel limit). */
type ImageReader = (item: DatasetItem) => Promise<RgbImage>;

/** The images preprocessed as the model expects, all of one shape (`expected`, when given). */
async function loadImages(items: DatasetItem[], model: LoadedModel, expected: number[] | null, read: ImageReader): Promise<LoadedImages> {
  const rows: Float64Array[] = [];
  let shape = expected as [number, number, number] | null;
  for (const item of items) {
    const data = preprocess(await read(item), model.arch.preprocessing);
    if (shape && shape.join() !== data.shape.join()) {
      throw new DatasetError(`${item.path}: preprocessed to [${data.shape}], unlike the other images' [${shape}] (the model's preprocessing does not resize)`);
    }
    shape = data.shape;
    rows.push(Float64Array.from(data.data));
  }
  return { rows, shape: shape! };
}

interface Context {
  model: LoadedModel;
  settings: EvalSettings;
  /** Softmax of the all-zero (baseline) input. */
  baseline: number[];
}

/** Final maps of `methods` for a batch, with randomised methods run per image with their own seed. */
async function camMaps(ctx: Context, rows: Float64Array[], shape: number[], files: string[], methods: string[], classes?: number[]): Promise<{ maps: Map<string, Float64Array[]>; classes: number[] }> {
  const { model, settings } = ctx;
  const n = shape.reduce((a, b) => a * b, 1);
  const stack = (rs: Float64Array[]) => {
    const flat = new Float64Array(rs.length * n);
    rs.forEach((r, i) => flat.set(r, i * n));
    return E.tensor(flat, [rs.length, ...shape]);
  };
  const maps = new Map<string, Float64Array[]>();
  const batched = methods.filter((m) => !getMethod(m).randomised);
  let cls = classes;
  const common = { module: model.module, layers: settings.layers, target: settings.target, layout: (layer: string) => activationLayout(model.arch, layer) };
  if (batched.length || !cls) {
    const x = stack(rows);
    const e = await explain({ ...common, input: x, methods: batched, classes: cls, seed: settings.seed });
    x.dispose();
    cls = e.classes;
    for (const m of batched) maps.set(m, e.methods.get(m)!.maps);
  }
  for (const m of methods.filter((m) => getMethod(m).randomised)) {
    const list: Float64Array[] = [];
    for (let b = 0; b < rows.length; b++) {
      const x = stack([rows[b]]);
      const e = await explain({ ...common, input: x, methods: [m], classes: [cls![b]], seed: imageSeed(settings.seed, files[b], m) });
      x.dispose();
      list.push(e.methods.get(m)!.maps[0]);
    }
    maps.set(m, list);
  }
  return { maps, classes: cls! };
}

/** GradCAM++ maps of a batch for the softmax probability of `classes` (pytorch-grad-cam's Coherency). */
async function coherencyMaps(ctx: Context, rows: Float64Array[], shape: number[], classes: number[]): Promise<Float64Array[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  const flat = new Float64Array(rows.length * n);
  rows.forEach((r, i) => flat.set(r, i * n));
  const x = E.tensor(flat, [rows.length, ...shape]);
  const { model, settings } = ctx;
  const e = await explain({ module: model.module, input: x, layers: settings.layers, methods: ['gradcam++'], target: 'softmax', classes, layout: (layer: string) => activationLayout(model.arch, layer) });
  x.dispose();
  return e.methods.get('gradcam++')!.maps;
}

/** Evaluates one batch of images; calls `finished` with the records of each image as soon as it is done. */
async function evaluateBatch(ctx: Context, items: DatasetItem[], rows: Float64Array[], shape: [number, number, number], finished: (records: ImageRecord[]) => void): Promise<void> {
  const { model, settings } = ctx;
  const [, H, W] = shape;
  const files = items.map((i) => i.file);
  const { maps, classes } = await camMaps(ctx, rows, shape, files, settings.methods);
  const Y = classes.map(() => 0);
  const perMethod = new Map<string, { O: number[]; D: number[]; recomputed: Float64Array[]; gradcamPlusPlus?: Float64Array[] }>();
  const arcc = settings.metrics?.includes('arcc') ?? false;
  // Y from the logits of the clean images (one pass shared by all methods).
  const clean = await classProbabilities(model, rows, shape, classes);
  clean.forEach((p, b) => (Y[b] = p));
  for (const m of settings.methods) {
    const mm = maps.get(m)!;
    const kept = rows.map((x, b) => multiplyByMap(x, mm[b]));
    const removed = rows.map((x, b) => multiplyByMap(x, mm[b], true));
    const scores = await classProbabilities(model, [...kept, ...removed], shape, [...classes, ...classes]);
    // Coherency: the same method, same target and classes, on x ⊙ m.
    const again = await camMaps(ctx, kept, shape, files, [m], classes);
    // ARCC's Coherency (pytorch-grad-cam's): GradCAM++ of x ⊙ m for the metric's own (softmax) target.
    const gradcamPlusPlus = arcc ? await coherencyMaps(ctx, kept, shape, classes) : undefined;
    perMethod.set(m, { O: scores.slice(0, rows.length), D: scores.slice(rows.length), recomputed: again.maps.get(m)!, gradcamPlusPlus });
  }
  const S = settings.steps;
  for (let b = 0; b < rows.length; b++) {
    const records: ImageRecord[] = [];
    const p0 = ctx.baseline[classes[b]];
    for (const m of settings.methods) {
      const map = maps.get(m)![b];
      const pm = perMethod.get(m)!;
      const metrics = adccMetrics({ Y: Y[b], O: pm.O[b], D: pm.D[b] }, map, pm.recomputed[b]);
      const rng = rngFor(imageSeed(settings.seed, files[b], m));
      const order = relevanceOrder(map, rng);
      const ins = curveInputs(rows[b], order, S, 'insertion');
      const del = curveInputs(rows[b], order, S, 'deletion');
      const road = settings.road ? roadInputs(rows[b], map, H, W, rng) : null;
      // ARCC's ROAD: pytorch-grad-cam's percentile selection, noise from a stream of its own.
      const arccRoad = arcc ? roadInputs(rows[b], map, H, W, rngFor(imageSeed(settings.seed, files[b], `${m}|arcc`)), { selection: 'percentile' }) : null;
      const imputed = (r: RoadInputs | null) => (r ? [...r.morf, ...r.lerf] : []);
      const batch = [...ins, ...del, ...imputed(road), ...imputed(arccRoad)];
      const scores = await classProbabilities(model, batch, shape, batch.map(() => classes[b]));
      const insertion = [p0, ...scores.slice(0, S - 1), Y[b]];
      const deletion = [Y[b], ...scores.slice(S - 1, 2 * (S - 1)), p0];
      const record: ImageRecord = {
        file: files[b],
        label: items[b].label,
        pred: classes[b],
        method: m,
        Y: Y[b],
        O: pm.O[b],
        D: pm.D[b],
        ...metrics,
        insertion,
        deletion,
        insertion_auc: trapezoidAuc(insertion),
        deletion_auc: trapezoidAuc(deletion),
      };
      let offset = 2 * (S - 1);
      const roadRecord = (r: RoadInputs): RoadRecord => {
        const q = r.percentages.length;
        const morf = scores.slice(offset, offset + q);
        const lerf = scores.slice(offset + q, offset + 2 * q);
        offset += 2 * q;
        return { percentages: r.percentages, morf, lerf, combined: roadCombined(morf, lerf), residual: r.residual };
      };
      if (road) record.road = roadRecord(road);
      if (settings.metrics?.includes('confidence')) Object.assign(record, confidenceMetrics(Y[b], pm.O[b]));
      if (arccRoad) {
        record.arcc_road = roadRecord(arccRoad);
        Object.assign(record, arccMetrics(map, pm.gradcamPlusPlus![b], record.arcc_road.combined));
      }
      records.push(record);
    }
    finished(records);
  }
}

export interface EvaluationOptions {
  model: LoadedModel;
  settings: EvalSettings;
  /** Images per batch. */
  batchSize: number;
  /** Refuse larger images before decoding them. */
  maxPixels: number;
  /**
   * Where the pictures come from, when not from each item's file (the queue's workers hand in images
   * they decoded up front, from a shared folder or from bytes sent with the run).
   */
  readImage?: ImageReader;
  /** Receives the records of each image (one per method) as soon as that image is done. */
  finished(records: ImageRecord[]): void;
}

/** Evaluates the settings' methods on `items`, batch by batch. */
export async function evaluateImages(items: DatasetItem[], opts: EvaluationOptions): Promise<void> {
  if (items.length === 0) return;
  const { model, settings } = opts;
  const read = opts.readImage ?? ((item: DatasetItem) => decodeImage(item.path, { maxPixels: opts.maxPixels }));
  const first = await loadImages(items.slice(0, 1), model, null, read);
  const shape = first.shape;
  const zeros = E.tensor(new Float64Array(shape[0] * shape[1] * shape[2]), [1, ...shape]);
  const z = E.tidy(() => model.module.call(zeros));
  const baseline = softmaxRow(await z.values());
  z.dispose();
  zeros.dispose();
  const ctx: Context = { model, settings, baseline };
  for (let s = 0; s < items.length; s += opts.batchSize) {
    const chunk = items.slice(s, s + opts.batchSize);
    const { rows } = await loadImages(chunk, model, shape, read);
    await evaluateBatch(ctx, chunk, rows, shape, opts.finished);
  }
}
