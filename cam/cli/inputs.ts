// Loading what the CLI explains: a model (zoo name or architecture + weights) and a batch of inputs
// (image files preprocessed as the model expects, and/or an already normalised tensor file).

import { access } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import * as E from '../../engine/index.ts';
import { readSafetensors, SafetensorsError } from '../../models/safetensors.ts';
import { ModelError } from '../../models/module.ts';
import { getZooEntry, loadModel, loadZooModel, type LoadedModel } from '../../models/zoo.ts';
import { getArchitecture } from '../../models/registry.ts';
import { decodeImage, ImageError, preprocess, resizeImage, centerCrop, type RgbImage } from '../rendering/image.ts';
import { InputError, UsageError } from './errors.ts';

export async function ensureFile(path: string, what: string): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new InputError(`${path}: ${what} not found`);
  }
}

/** A zoo model by name, or an architecture with a weights file; user mistakes become clear errors. */
export async function loadExplainedModel(opts: { model?: string; arch?: string; weights?: string }): Promise<LoadedModel> {
  if (opts.arch || opts.weights) {
    if (!opts.arch || !opts.weights) throw new UsageError('--arch and --weights go together');
    if (opts.model) throw new UsageError('give either --model or --arch with --weights, not both');
    try {
      getArchitecture(opts.arch);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    await ensureFile(opts.weights, 'weights file');
    try {
      return await loadModel(opts.arch, opts.weights);
    } catch (e) {
      if (e instanceof SafetensorsError || e instanceof ModelError) throw new InputError(e.message);
      throw e;
    }
  }
  const name = opts.model ?? 'resnet20_cifar10';
  try {
    getZooEntry(name);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return loadZooModel(name);
}

export interface InputBatch {
  tensor: E.Tensor;
  /** What each row came from (file name, or "<file>[i]"). */
  sources: string[];
  /** The RGB picture of each row at input resolution, for overlays. */
  pictures: RgbImage[];
}

/** Undoes (x − mean)/std to show a normalised tensor as a picture. */
function pictureOf(data: Float64Array | Float32Array, H: number, W: number, mean: number[], std: number[]): RgbImage {
  const out = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < H * W; i++) {
      const v = (data[c * H * W + i] * std[c] + mean[c]) * 255;
      out[i * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return { width: W, height: H, data: out };
}

export async function loadInputs(model: LoadedModel, images: string[], inputFile: string | undefined): Promise<InputBatch> {
  const pre = model.arch.preprocessing;
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
    let img: RgbImage;
    try {
      img = await decodeImage(path);
    } catch (e) {
      if (e instanceof ImageError) throw new InputError(e.message);
      throw new InputError(`${path}: cannot read image (${(e as Error).message})`);
    }
    const p = preprocess(img, { resize: pre.resize, crop: pre.crop, mean: pre.mean, std: pre.std });
    let shown = pre.resize !== undefined ? resizeImage(img, pre.resize) : img;
    if (pre.crop) shown = centerCrop(shown, pre.crop[0], pre.crop[1]);
    addRow(p.data, p.shape, path);
    pictures.push(shown);
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
    if (s.length !== 4 || s[1] !== 3) throw new InputError(`${inputFile}: tensor "input" must be N×3×H×W, got [${s}]`);
    const data = file.float32('input');
    const n = s[1] * s[2] * s[3];
    for (let b = 0; b < s[0]; b++) {
      const row = data.slice(b * n, (b + 1) * n);
      addRow(row, s.slice(1), `${basename(inputFile, extname(inputFile))}[${b}]`);
      pictures.push(pictureOf(row, s[2], s[3], pre.mean, pre.std));
    }
  }
  if (rows.length === 0) throw new UsageError('give at least one --image or an --input file');
  const [C, H, W] = shape!;
  const flat = new Float32Array(rows.length * C * H * W);
  rows.forEach((r, b) => flat.set(r, b * C * H * W));
  return { tensor: E.tensor(flat, [rows.length, C, H, W]), sources, pictures };
}
