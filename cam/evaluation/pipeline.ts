// The evaluation of CAM methods over labelled images, batch by batch: the ADCC family (AD, IC, ADD, Com,
// Coh, ADCC; see metrics.ts), insertion/deletion curves and, optionally, ROAD (road.ts) and pytorch-grad-cam's
// confidence and ARCC metrics (--metrics), per image and method. Scores are the softmax probability of the
// predicted class.
//
// Every per-image number depends only on the image, the settings and a seed derived from (seed, file,
// method) — not on the batch it was computed in — so a run interrupted and resumed (see
// cam/cli/run-folder.ts) writes exactly the results of an uninterrupted one. Methods whose maps are
// randomised run per image, with that image's seed.
//
// Per batch of images (--batch), one explain call gives every deterministic method's maps and the clean
// images' logits (the forward to the target layers shared by all methods), then one call per method
// recomputes its maps on x ⊙ m for Coherency, and its logits give x ⊙ m's score too. Every other forward
// pass without derivatives (x ⊙ (1 − m), curve steps, ROAD imputations) goes to one ClassScorer
// (scoring.ts) that batches rows across images, methods and image batches; an image's records are handed
// on, in order, once its last score is in.

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
import { ClassScorer, defaultMaxBatch, type Ticket } from './scoring.ts';

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
  /** Every derivative-free forward pass of the run, batched across images and methods. */
  scorer: ClassScorer;
  /** Images whose scores are queued, in order: each is finished once its last ticket is scored. */
  waiting: { last: Ticket; finish: () => ImageRecord[] }[];
  finished: (records: ImageRecord[]) => void;
  /** Score each image's rows before the next image's (see EvaluationOptions.finishEachImage). */
  finishEachImage: boolean;
}

/** Stacks CHW rows into one [B, C, H, W] tensor. */
function stack(rows: Float64Array[], shape: number[]): E.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const flat = new Float64Array(rows.length * n);
  rows.forEach((r, i) => flat.set(r, i * n));
  return E.tensor(flat, [rows.length, ...shape]);
}

interface CamMaps {
  maps: Map<string, Float64Array[]>;
  classes: number[];
  /** Softmax probability of each image's class, from the logits of the pass that captured the activations. */
  probabilities: number[];
}

/**
 * Final maps of `methods` for a batch: one explain call for the deterministic methods (sharing the forward
 * pass to the target layers and the logits), randomised methods per image with their own seed.
 */
async function camMaps(ctx: Context, rows: Float64Array[], shape: number[], files: string[], methods: string[], classes?: number[]): Promise<CamMaps> {
  const { model, settings } = ctx;
  const maps = new Map<string, Float64Array[]>();
  const batched = methods.filter((m) => !getMethod(m).randomised);
  let cls = classes;
  let probabilities: number[] = [];
  const common = { module: model.module, layers: settings.layers, target: settings.target, layout: (layer: string) => activationLayout(model.arch, layer), maxBatch: ctx.scorer.maxBatch };
  if (batched.length || !cls) {
    const x = stack(rows, shape);
    const e = await explain({ ...common, input: x, methods: batched, classes: cls, seed: settings.seed });
    x.dispose();
    cls = e.classes;
    const C = e.logits.length / rows.length;
    probabilities = cls.map((c, b) => softmaxRow(e.logits.subarray(b * C, (b + 1) * C))[c]);
    for (const m of batched) maps.set(m, e.methods.get(m)!.maps);
  }
  for (const m of methods.filter((m) => getMethod(m).randomised)) {
    const list: Float64Array[] = [];
    const fromThis = probabilities.length === 0;
    for (let b = 0; b < rows.length; b++) {
      const x = stack([rows[b]], shape);
      const e = await explain({ ...common, input: x, methods: [m], classes: [cls![b]], seed: imageSeed(settings.seed, files[b], m) });
      x.dispose();
      list.push(e.methods.get(m)!.maps[0]);
      if (fromThis) probabilities.push(softmaxRow(e.logits)[cls![b]]);
    }
    maps.set(m, list);
  }
  return { maps, classes: cls!, probabilities };
}

/** GradCAM++ maps of a batch for the softmax probability of `classes` (pytorch-grad-cam's Coherency). */
async function coherencyMaps(ctx: Context, rows: Float64Array[], shape: number[], classes: number[]): Promise<Float64Array[]> {
  const x = stack(rows, shape);
  const { model, settings } = ctx;
  const e = await explain({ module: model.module, input: x, layers: settings.layers, methods: ['gradcam++'], target: 'softmax', classes, layout: (layer: string) => activationLayout(model.arch, layer) });
  x.dispose();
  return e.methods.get('gradcam++')!.maps;
}

/**
 * What one method needs for one batch of images: its maps, the maps recomputed on x ⊙ m, GradCAM++'s for
 * ARCC, and the class probability of x ⊙ m (O), which the recomputing pass's logits give.
 */
interface MethodMaps {
  maps: Float64Array[];
  recomputed: Float64Array[];
  kept: number[];
  gradcamPlusPlus?: Float64Array[];
}

/** Tickets of one image and method's scores, in the order they were queued. */
interface ScoreTickets {
  D: Ticket;
  insertion: Ticket[];
  deletion: Ticket[];
  road?: { inputs: RoadInputs; morf: Ticket[]; lerf: Ticket[] };
  arccRoad?: { inputs: RoadInputs; morf: Ticket[]; lerf: Ticket[] };
}

/** Queues every score of one image and method (the map's perturbations, curve steps and ROAD imputations). */
async function queueScores(ctx: Context, x: Float64Array, map: Float64Array, cls: number, file: string, method: string, H: number, W: number): Promise<ScoreTickets> {
  const { scorer, settings } = ctx;
  const arcc = settings.metrics?.includes('arcc') ?? false;
  // x ⊙ m needs no pass of its own: the Coherency pass recomputing the map on it gave its logits.
  const D = await scorer.add(multiplyByMap(x, map, true), cls);
  const rng = rngFor(imageSeed(settings.seed, file, method));
  const order = relevanceOrder(map, rng);
  const insertion = await scorer.addAll(curveInputs(x, order, settings.steps, 'insertion'), cls);
  const deletion = await scorer.addAll(curveInputs(x, order, settings.steps, 'deletion'), cls);
  const queueRoad = async (inputs: RoadInputs) => ({ inputs, morf: await scorer.addAll(inputs.morf, cls), lerf: await scorer.addAll(inputs.lerf, cls) });
  // The ROAD noise continues the stream that ordered the curve's ties, as before batching.
  const road = settings.road ? await queueRoad(roadInputs(x, map, H, W, rng)) : undefined;
  // ARCC's ROAD: pytorch-grad-cam's percentile selection, noise from a stream of its own.
  const arccRoad = arcc ? await queueRoad(roadInputs(x, map, H, W, rngFor(imageSeed(settings.seed, file, `${method}|arcc`)), { selection: 'percentile' })) : undefined;
  return { D, insertion, deletion, road, arccRoad };
}

/** The record of one image and method, once its scores are in. */
function imageRecord(ctx: Context, item: DatasetItem, pred: number, Y: number, method: string, maps: MethodMaps, b: number, t: ScoreTickets): ImageRecord {
  const { scorer, settings } = ctx;
  const score = (tickets: Ticket[]) => tickets.map((k) => scorer.score(k));
  const O = maps.kept[b];
  const D = scorer.score(t.D);
  const map = maps.maps[b];
  const p0 = ctx.baseline[pred];
  const insertion = [p0, ...score(t.insertion), Y];
  const deletion = [Y, ...score(t.deletion), p0];
  const record: ImageRecord = {
    file: item.file,
    label: item.label,
    pred,
    method,
    Y,
    O,
    D,
    ...adccMetrics({ Y, O, D }, map, maps.recomputed[b]),
    insertion,
    deletion,
    insertion_auc: trapezoidAuc(insertion),
    deletion_auc: trapezoidAuc(deletion),
  };
  const roadRecord = (r: NonNullable<ScoreTickets['road']>): RoadRecord => {
    const morf = score(r.morf);
    const lerf = score(r.lerf);
    return { percentages: r.inputs.percentages, morf, lerf, combined: roadCombined(morf, lerf), residual: r.inputs.residual };
  };
  if (t.road) record.road = roadRecord(t.road);
  if (settings.metrics?.includes('confidence')) Object.assign(record, confidenceMetrics(Y, O));
  if (t.arccRoad) {
    record.arcc_road = roadRecord(t.arccRoad);
    Object.assign(record, arccMetrics(map, maps.gradcamPlusPlus![b], record.arcc_road.combined));
  }
  return record;
}

/** Hands on, in order, the records of every image whose scores are all in. */
function finishScored(ctx: Context): void {
  while (ctx.waiting.length && ctx.scorer.scored(ctx.waiting[0].last)) ctx.finished(ctx.waiting.shift()!.finish());
}

/**
 * Explains one batch of images (maps, recomputed maps for Coherency) and queues all of its scores; images
 * are finished as the scorer's batches complete, possibly during a later batch.
 */
async function evaluateBatch(ctx: Context, items: DatasetItem[], rows: Float64Array[], shape: [number, number, number]): Promise<void> {
  const { settings } = ctx;
  const [, H, W] = shape;
  const files = items.map((i) => i.file);
  const { maps, classes, probabilities: Y } = await camMaps(ctx, rows, shape, files, settings.methods);
  const arcc = settings.metrics?.includes('arcc') ?? false;
  const perMethod = new Map<string, MethodMaps>();
  for (const m of settings.methods) {
    const mm = maps.get(m)!;
    const kept = rows.map((x, b) => multiplyByMap(x, mm[b]));
    // Coherency: the same method, same target and classes, on x ⊙ m.
    const again = await camMaps(ctx, kept, shape, files, [m], classes);
    // ARCC's Coherency (pytorch-grad-cam's): GradCAM++ of x ⊙ m for the metric's own (softmax) target.
    const gradcamPlusPlus = arcc ? await coherencyMaps(ctx, kept, shape, classes) : undefined;
    perMethod.set(m, { maps: mm, recomputed: again.maps.get(m)!, kept: again.probabilities, gradcamPlusPlus });
  }
  for (let b = 0; b < rows.length; b++) {
    const tickets = new Map<string, ScoreTickets>();
    for (const m of settings.methods) {
      tickets.set(m, await queueScores(ctx, rows[b], maps.get(m)![b], classes[b], files[b], m, H, W));
      finishScored(ctx);
    }
    const last = Math.max(...[...tickets.values()].flatMap((t) => [t.D, ...t.deletion, ...(t.road?.lerf ?? []), ...(t.arccRoad?.lerf ?? [])]));
    ctx.waiting.push({ last, finish: () => settings.methods.map((m) => imageRecord(ctx, items[b], classes[b], Y[b], m, perMethod.get(m)!, b, tickets.get(m)!)) });
    if (ctx.finishEachImage) await ctx.scorer.flush();
    finishScored(ctx);
  }
  finishScored(ctx);
}

export interface EvaluationOptions {
  model: LoadedModel;
  settings: EvalSettings;
  /** Images per batch (of the explain passes). */
  batchSize: number;
  /** Rows per derivative-free forward pass (default: defaultMaxBatch for the current backend and image size). */
  maxBatch?: number;
  /** Refuse larger images before decoding them. */
  maxPixels: number;
  /**
   * Where the pictures come from, when not from each item's file (the queue's workers hand in images
   * they decoded up front, from a shared folder or from bytes sent with the run).
   */
  readImage?: ImageReader;
  /**
   * Hand on every image's records before starting the next image: score batches then span one image's
   * methods, curve steps and ROAD inputs only. The queue's workers ask for it, so that a shard's images are
   * recorded one by one and a stalled shard's take-over redoes little; local runs batch across images.
   */
  finishEachImage?: boolean;
  /** Receives the records of each image (one per method) as soon as that image is done, in order. */
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
  const maxBatch = opts.maxBatch ?? defaultMaxBatch(E.getBackend().name, shape[1], shape[2]);
  const ctx: Context = { model, settings, baseline, scorer: new ClassScorer(model, shape, maxBatch), waiting: [], finished: opts.finished, finishEachImage: opts.finishEachImage ?? false };
  for (let s = 0; s < items.length; s += opts.batchSize) {
    const chunk = items.slice(s, s + opts.batchSize);
    const { rows } = await loadImages(chunk, model, shape, read);
    await evaluateBatch(ctx, chunk, rows, shape);
  }
  await ctx.scorer.flush();
  finishScored(ctx);
}
