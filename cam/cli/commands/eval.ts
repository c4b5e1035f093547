// `eval`: faithfulness metrics of CAM methods over a labelled image folder — the ADCC family (AD, IC,
// ADD, Com, Coh, ADCC; see ../metrics.ts), insertion/deletion AUC, optionally ROAD (../road.ts) — plus the
// model's top-1 accuracy on the folder.
//
// Per image and method one JSON line is appended to OUT/per_image.jsonl as soon as the image is done, so
// `--resume` continues an interrupted run without recomputing or losing finished images (a torn last
// line, or an image with only some of its methods written, is dropped and redone). The settings that
// change the numbers are recorded in OUT/settings.json and must match to resume. Every per-image number
// depends only on the image, the settings and a seed derived from (seed, file, method) — not on the batch
// it was computed in — so an interrupted and resumed run writes exactly the results of an uninterrupted one.

import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as E from '../../../engine/index.ts';
import { explain } from '../../algorithm/explain.ts';
import { METHOD_NAMES } from '../../algorithm/methods/index.ts';
import { TARGETS, softmaxRow, type TargetName } from '../../algorithm/targets.ts';
import { loadExplainedModel } from '../inputs.ts';
import { decodeImage, ImageError, preprocess } from '../../rendering/image.ts';
import { InputError, UsageError, parseIntFlag } from '../errors.ts';
import { ModelError } from '../../../models/module.ts';
import type { LoadedModel } from '../../../models/zoo.ts';
import { selectBackend } from '../backend-flag.ts';
import { rngFor } from '../../algorithm/random.ts';
import { readDataset, type DatasetItem } from '../../evaluation/dataset.ts';
import { adccMetrics, curveInputs, multiplyByMap, relevanceOrder, trapezoidAuc } from '../../evaluation/metrics.ts';
import { roadCombined, roadInputs } from '../../evaluation/road.ts';
import { Progress } from '../progress.ts';
import { resultsCsv, resultsMarkdown, summarise, writePlots, type EvalSettings, type ImageRecord } from '../../evaluation/report.ts';

export const EVAL_USAGE = `usage: cam/cli.ts eval (--model NAME | --arch NAME --weights FILE.safetensors) --data DIR --out DIR
                     [--methods NAME[,NAME…]] [--target rest|logit|softmax|logsoftmax] [--layer PATH]…
                     [--limit N] [--batch N] [--steps N] [--road] [--seed N] [--resume]
                     [--backend cpu|webgpu] [--quiet] [--verbose]
  --data     an ImageFolder tree (a sub-folder per class), or a folder with labels.json (file → class
             index) or index.json ({images: [{file, label}]})
  --methods  CAM methods (default gradcam,shapleycam): ${METHOD_NAMES.join(' ')}
  --target   the utility the CAMs explain (default rest); metrics score the softmax probability of the
             predicted class
  --steps    insertion/deletion curve steps (default 16)
  --road     also compute ROAD (MoRF/LeRF at 20/40/60/80% with the noisy linear imputer)
  --resume   continue the run recorded in --out (the settings must match)
writes OUT/per_image.jsonl, results.json, results.md, results.csv, metrics.png, insertion.png, deletion.png`;

/** Methods whose map depends on the seed: computed per image with its own seed (batch-independent). */
const RANDOMISED = new Set(['random']);
/** Largest batch of perturbed inputs per forward pass. */
const SCORE_CHUNK = 32;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        model: { type: 'string' },
        arch: { type: 'string' },
        weights: { type: 'string' },
        data: { type: 'string' },
        methods: { type: 'string', multiple: true },
        method: { type: 'string', multiple: true },
        target: { type: 'string', default: 'rest' },
        layer: { type: 'string', multiple: true },
        limit: { type: 'string' },
        batch: { type: 'string', default: '8' },
        steps: { type: 'string', default: '16' },
        out: { type: 'string' },
        resume: { type: 'boolean', default: false },
        backend: { type: 'string' },
        road: { type: 'boolean', default: false },
        seed: { type: 'string', default: '0' },
        quiet: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/** 32-bit FNV-1a of a string: per-image seeds. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

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

function readRecords(path: string, methods: readonly string[], log: (l: string) => void): Map<string, ImageRecord[]> {
  const done = new Map<string, ImageRecord[]>();
  if (!existsSync(path)) return done;
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const torn = lines.pop(); // text after the last newline: '' or a line cut short
  if (torn) log(`resume: ignoring a torn last line of ${basename(path)} (${torn.length} bytes)`);
  const partial = new Map<string, ImageRecord[]>();
  const order: string[] = [];
  let bad = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    let r: ImageRecord;
    try {
      r = JSON.parse(line);
    } catch {
      bad++;
      continue;
    }
    if (typeof r?.file !== 'string' || typeof r.method !== 'string') {
      bad++;
      continue;
    }
    if (!partial.has(r.file)) {
      partial.set(r.file, []);
      order.push(r.file);
    }
    const list = partial.get(r.file)!;
    const i = list.findIndex((x) => x.method === r.method);
    if (i >= 0) list[i] = r;
    else list.push(r);
  }
  if (bad) log(`resume: ignoring ${bad} unreadable line(s) of ${basename(path)}`);
  let incomplete = 0;
  for (const file of order) {
    const list = partial.get(file)!;
    if (methods.every((m) => list.some((r) => r.method === m))) done.set(file, methods.map((m) => list.find((r) => r.method === m)!));
    else incomplete++;
  }
  if (incomplete) log(`resume: redoing ${incomplete} image(s) with only some methods written`);
  // Rewrite the file with the complete images only, so that appends continue a clean file.
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, [...done.values()].flat().map((r) => `${JSON.stringify(r)}\n`).join(''));
  renameSync(tmp, path);
  return done;
}

function settingsDiff(a: EvalSettings, b: EvalSettings): string[] {
  const keys = Object.keys(b) as (keyof EvalSettings)[];
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: recorded ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`);
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

interface LoadedImages {
  rows: Float64Array[];
  shape: [number, number, number];
}

async function loadImages(items: DatasetItem[], model: LoadedModel, expected: number[] | null): Promise<LoadedImages> {
  const pre = model.arch.preprocessing;
  const rows: Float64Array[] = [];
  let shape = expected as [number, number, number] | null;
  for (const item of items) {
    let data;
    try {
      data = preprocess(await decodeImage(item.path), { resize: pre.resize, crop: pre.crop, mean: pre.mean, std: pre.std });
    } catch (e) {
      if (e instanceof ImageError) throw new InputError(e.message);
      throw new InputError(`${item.path}: cannot read image (${(e as Error).message})`);
    }
    if (shape && shape.join() !== data.shape.join()) {
      throw new InputError(`${item.path}: preprocessed to [${data.shape}], unlike the other images' [${shape}] (the model's preprocessing does not resize)`);
    }
    shape = data.shape;
    rows.push(Float64Array.from(data.data));
  }
  return { rows, shape: shape! };
}

interface Context {
  model: LoadedModel;
  settings: EvalSettings;
  target: TargetName;
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
  const batched = methods.filter((m) => !RANDOMISED.has(m));
  let cls = classes;
  const common = { module: model.module, layers: settings.layers, target: ctx.target, layout: model.arch.layout?.bind(model.arch) };
  if (batched.length || !cls) {
    const x = stack(rows);
    const e = await explain({ ...common, input: x, methods: batched, classes: cls, seed: settings.seed });
    x.dispose();
    cls = e.classes;
    for (const m of batched) maps.set(m, e.methods.get(m)!.maps);
  }
  for (const m of methods.filter((m) => RANDOMISED.has(m))) {
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

/** Evaluates one batch of images; calls `finished` with the records of each image as soon as it is done. */
async function evaluateBatch(ctx: Context, items: DatasetItem[], rows: Float64Array[], shape: [number, number, number], finished: (records: ImageRecord[]) => void): Promise<void> {
  const { model, settings } = ctx;
  const [, H, W] = shape;
  const files = items.map((i) => i.file);
  const { maps, classes } = await camMaps(ctx, rows, shape, files, settings.methods);
  const Y = classes.map(() => 0);
  const perMethod = new Map<string, { O: number[]; D: number[]; recomputed: Float64Array[] }>();
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
    perMethod.set(m, { O: scores.slice(0, rows.length), D: scores.slice(rows.length), recomputed: again.maps.get(m)! });
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
      const batch = [...ins, ...del, ...(road ? [...road.morf, ...road.lerf] : [])];
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
      if (road) {
        const q = road.percentages.length;
        const morf = scores.slice(2 * (S - 1), 2 * (S - 1) + q);
        const lerf = scores.slice(2 * (S - 1) + q);
        record.road = { percentages: road.percentages, morf, lerf, combined: roadCombined(morf, lerf), residual: road.residual };
      }
      records.push(record);
    }
    finished(records);
  }
}

export async function runEvalCommand(argv: string[], log: (line: string) => void): Promise<number> {
  const v = parseFlags(argv);
  if (v.help) {
    process.stdout.write(`${EVAL_USAGE}\n`);
    return 0;
  }
  if (!v.data) throw new UsageError('--data DIR is required');
  if (!v.out) throw new UsageError('--out DIR is required');
  const methods = [...new Set([...(v.methods ?? []), ...(v.method ?? [])].flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean))];
  if (methods.length === 0) methods.push('gradcam', 'shapleycam');
  for (const m of methods) if (!METHOD_NAMES.includes(m)) throw new UsageError(`--methods: unknown method "${m}"; choose from ${METHOD_NAMES.join(' ')}`);
  if (!(TARGETS as readonly string[]).includes(v.target!)) throw new UsageError(`--target: expected one of ${TARGETS.join('|')}, got "${v.target}"`);
  const target = v.target as TargetName;
  const batchSize = parseIntFlag('batch', v.batch!, 1);
  const steps = parseIntFlag('steps', v.steps!, 2);
  const seed = parseIntFlag('seed', v.seed!, 0);
  const limit = v.limit === undefined ? Infinity : parseIntFlag('limit', v.limit, 1);

  const backend = await selectBackend({ backend: v.backend, verbose: v.verbose });
  const model = await loadExplainedModel({ model: v.model, arch: v.arch, weights: v.weights });
  const layers = v.layer?.length ? v.layer : [model.arch.defaultLayer];
  for (const layer of layers) {
    try {
      model.module.get(layer);
    } catch (e) {
      if (e instanceof ModelError) throw new InputError(`--layer: ${e.message}`);
      throw e;
    }
  }
  const dataset = await readDataset(v.data, model.labels, model.numClasses);
  const items = dataset.items.slice(0, Math.min(limit, dataset.items.length));
  const settings: EvalSettings = {
    model: v.arch ? `${v.arch}:${resolve(v.weights!)}` : (v.model ?? 'resnet20_cifar10'),
    methods,
    target,
    layers,
    data: dataset.root,
    seed,
    steps,
    road: v.road!,
  };

  const out = v.out;
  mkdirSync(out, { recursive: true });
  const settingsPath = join(out, 'settings.json');
  const jsonl = join(out, 'per_image.jsonl');
  const hasRecords = existsSync(jsonl) && readFileSync(jsonl).length > 0;
  let done = new Map<string, ImageRecord[]>();
  if (v.resume && existsSync(settingsPath)) {
    let recorded: EvalSettings;
    try {
      recorded = JSON.parse(readFileSync(settingsPath, 'utf8'));
    } catch (e) {
      throw new InputError(`${settingsPath}: cannot read the recorded settings (${(e as Error).message})`);
    }
    const diff = settingsDiff(recorded, settings);
    if (diff.length) throw new InputError(`--resume: the settings differ from the run recorded in ${out} (${diff.join('; ')}); repeat the recorded settings or choose another --out`);
    done = readRecords(jsonl, methods, log);
  } else if (v.resume && hasRecords) {
    throw new InputError(`--resume: ${jsonl} has results but ${settingsPath} is missing, so the settings cannot be checked; choose another --out`);
  } else if (hasRecords) {
    throw new UsageError(`${out} already holds results of a run (per_image.jsonl); pass --resume to continue it, or choose another --out`);
  } else {
    writeFileSync(jsonl, '');
  }
  writeJsonAtomic(settingsPath, settings);

  const pending = items.filter((it) => !done.has(it.file));
  const skipped = items.length - pending.length;
  if (v.resume) log(`resume: ${skipped} of ${items.length} images already done`);
  log(`eval: ${items.length} images (${dataset.layout}) × ${methods.length} method(s) on ${backend.describe()}${settings.road ? ', with ROAD' : ''}`);

  if (pending.length) {
    const first = await loadImages(pending.slice(0, 1), model, null);
    const shape = first.shape;
    const zeros = E.tensor(new Float64Array(shape[0] * shape[1] * shape[2]), [1, ...shape]);
    const z = E.tidy(() => model.module.call(zeros));
    const baseline = softmaxRow(await z.values());
    z.dispose();
    zeros.dispose();
    const ctx: Context = { model, settings, target, baseline };
    const progress = new Progress(items.length, skipped, !v.quiet);
    try {
      for (let s = 0; s < pending.length; s += batchSize) {
        const chunk = pending.slice(s, s + batchSize);
        const { rows } = await loadImages(chunk, model, shape);
        await evaluateBatch(ctx, chunk, rows, shape, (records) => {
          appendFileSync(jsonl, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
          done.set(records[0].file, records);
          progress.tick();
        });
      }
    } finally {
      progress.stop();
    }
  }

  const results = summarise(settings, items, done);
  writeJsonAtomic(join(out, 'results.json'), results);
  writeFileSync(join(out, 'results.md'), resultsMarkdown(results));
  writeFileSync(join(out, 'results.csv'), resultsCsv(results));
  await writePlots(out, results);
  log(`top-1 accuracy ${results.accuracy.toFixed(2)}% (${results.correct}/${results.n}); wrote results.json, results.md, results.csv and plots to ${out}`);
  return 0;
}
