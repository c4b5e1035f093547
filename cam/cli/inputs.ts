// What the commands work on: a model (zoo name or architecture + weights) and a batch of inputs (image
// files preprocessed as the model expects, and/or an already normalised tensor file). Both are checked
// before any backend starts — names and files first, weights read later — so a mistake is reported at
// once, as the first line on stderr.
//
// Input channels. An input tensor has as many channels as the model it was made for (1 for a grayscale
// model, as pytorch-grad-cam's tests/test_one_channel.py). Images are decoded as RGB; for a model whose
// first layer takes one channel they become their luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as
// PIL's convert('L')), normalised with the same weights applied to the model's per-channel mean and std.

import { access } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { readSafetensors, SafetensorsError } from '../../models/safetensors.ts';
import { ModelError } from '../../models/module.ts';
import { getZooEntry, loadModel, loadZooModel, type LoadedModel } from '../../models/zoo.ts';
import { getArchitecture, type Architecture, type Preprocessing } from '../../models/registry.ts';
import { decodeImage } from '../rendering/codec.ts';
import { preprocess, type RgbImage } from '../rendering/image.ts';
import { InputError, UsageError } from './errors.ts';

export async function ensureFile(path: string, what: string): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new InputError(`${path}: ${what} not found`);
  }
}

export interface ModelFlags {
  model?: string;
  arch?: string;
  weights?: string;
}

/** A model named and checked (unknown names are usage errors, a missing weights file bad input), not yet loaded. */
export interface ModelSource {
  arch: Architecture;
  /** Reads the weights onto the current backend. */
  load(): Promise<LoadedModel>;
}

/** A zoo model by name, or an architecture with a weights file; user mistakes become clear errors. */
export async function resolveModel(opts: ModelFlags): Promise<ModelSource> {
  const usage = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  if (opts.arch || opts.weights) {
    if (!opts.arch || !opts.weights) throw new UsageError('--arch and --weights go together');
    if (opts.model) throw new UsageError('give either --model or --arch with --weights, not both');
    const { arch: name, weights } = opts;
    const arch = usage(() => getArchitecture(name));
    await ensureFile(weights, 'weights file');
    const load = async () => {
      try {
        return await loadModel(name, weights);
      } catch (e) {
        if (e instanceof SafetensorsError || e instanceof ModelError) throw new InputError(e.message);
        throw e;
      }
    };
    return { arch, load };
  }
  const name = opts.model ?? 'resnet20_cifar10';
  const entry = usage(() => getZooEntry(name));
  return { arch: getArchitecture(entry.arch), load: () => loadZooModel(name) };
}

/** Inputs as host data, [N, C, H, W] float32, ready to become one tensor. */
export interface InputBatch {
  data: Float32Array;
  shape: [number, number, number, number];
  /** Per row: true for a preprocessed image file (RGB, or its luma), false for a row of the input tensor. */
  fromImage: boolean[];
  /** What each row came from (file name, or "<file>[i]"). */
  sources: string[];
  /** The RGB picture of each row at input resolution, for overlays. */
  pictures: RgbImage[];
}

/** ITU-R BT.601 luma weights of R, G, B. */
export const LUMA_WEIGHTS = [0.299, 0.587, 0.114] as const;

/** The mean and std a one-channel (luma) input is normalised with: the luma weights applied to the model's. */
export function lumaNormalisation(pre: Pick<Preprocessing, 'mean' | 'std'>): { mean: number; std: number } {
  const dot = (v: readonly number[]) => LUMA_WEIGHTS.reduce((s, w, c) => s + w * v[c], 0);
  return { mean: dot(pre.mean), std: dot(pre.std) };
}

/** A normalised 3×H×W RGB row → its normalised 1×H×W luma row. */
export function lumaRow(rgb: Float32Array, pre: Pick<Preprocessing, 'mean' | 'std'>): Float32Array {
  const n = rgb.length / 3;
  const g = lumaNormalisation(pre);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let y = 0;
    for (let c = 0; c < 3; c++) y += LUMA_WEIGHTS[c] * (rgb[c * n + i] * pre.std[c] + pre.mean[c]);
    out[i] = (y - g.mean) / g.std;
  }
  return out;
}

/** Undoes (x − mean)/std to show a normalised tensor (3 channels, or 1 shown as gray) as a picture. */
function pictureOf(data: Float64Array | Float32Array, C: number, H: number, W: number, pre: Preprocessing): RgbImage {
  const out = new Uint8Array(H * W * 3);
  const gray = lumaNormalisation(pre);
  for (let c = 0; c < 3; c++) {
    const [src, mean, std] = C === 3 ? [c, pre.mean[c], pre.std[c]] : [0, gray.mean, gray.std];
    for (let i = 0; i < H * W; i++) {
      const v = (data[src * H * W + i] * std + mean) * 255;
      out[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return { width: W, height: H, data: out };
}

/** The images (preprocessed as `pre` says; none over `maxPixels`) and/or the rows of an input file. */
export async function loadInputs(pre: Preprocessing, images: string[], inputFile: string | undefined, maxPixels: number): Promise<InputBatch> {
  const rows: Float32Array[] = [];
  const sources: string[] = [];
  const pictures: RgbImage[] = [];
  let shape: number[] | null = null;
  const addRow = (data: Float32Array, s: number[], source: string) => {
    if (shape && shape.join() !== s.join()) throw new InputError(`${source}: input shape [${s}] differs from the batch's [${shape}]`);
    shape = s;
    rows.push(data);
    sources.push(source);
  };
  for (const path of images) {
    await ensureFile(path, 'image');
    const p = preprocess(await decodeImage(path, { maxPixels }), pre);
    addRow(p.data, p.shape, path);
    pictures.push(p.picture);
  }
  if (inputFile) {
    await ensureFile(inputFile, 'input file');
    let file;
    try {
      file = await readSafetensors(inputFile);
    } catch (e) {
      throw new InputError((e as Error).message);
    }
    if (!file.has('input')) throw new InputError(`${inputFile}: no tensor named "input" (found: ${file.names.slice(0, 8).join(', ')})`);
    const s = file.entry('input').shape;
    if (s.length !== 4 || (s[1] !== 1 && s[1] !== 3)) throw new InputError(`${inputFile}: tensor "input" must be N×3×H×W (or N×1×H×W for a one-channel model), got [${s}]`);
    const data = file.float32('input');
    const n = s[1] * s[2] * s[3];
    // A one-channel tensor makes the batch one-channel: the images given with it become their luma.
    if (s[1] === 1) rows.forEach((r, i) => (rows[i] = lumaRow(r, pre)));
    if (s[1] === 1 && shape) shape = [1, shape[1], shape[2]];
    for (let b = 0; b < s[0]; b++) {
      const row = data.slice(b * n, (b + 1) * n);
      addRow(row, s.slice(1), `${basename(inputFile, extname(inputFile))}[${b}]`);
      pictures.push(pictureOf(row, s[1], s[2], s[3], pre));
    }
  }
  if (rows.length === 0) throw new UsageError('give at least one --image or an --input file');
  const [C, H, W] = shape!;
  const flat = new Float32Array(rows.length * C * H * W);
  rows.forEach((r, b) => flat.set(r, b * C * H * W));
  return { data: flat, shape: [rows.length, C, H, W], fromImage: sources.map((_, i) => i < images.length), sources, pictures };
}

/**
 * The batch for a model taking `inChannels` channels: images become their luma for a one-channel model;
 * an input tensor must have the model's channels already (bad input otherwise, naming the file).
 */
export function inputsForModel(batch: InputBatch, inChannels: number, pre: Preprocessing, inputFile?: string): InputBatch {
  const [N, C, H, W] = batch.shape;
  if (C === inChannels) return batch;
  if (C === 3 && inChannels === 1 && batch.fromImage.every(Boolean)) {
    const n = H * W;
    const data = new Float32Array(N * n);
    for (let b = 0; b < N; b++) data.set(lumaRow(batch.data.subarray(b * 3 * n, (b + 1) * 3 * n), pre), b * n);
    return { ...batch, data, shape: [N, 1, H, W] };
  }
  const what = batch.fromImage.every(Boolean) ? '--image: images have 3 (RGB) channels' : `${inputFile ?? '--input'}: tensor "input" has ${C} channel${C === 1 ? '' : 's'}`;
  throw new InputError(`${what}, but the model's first layer takes ${inChannels}`);
}
