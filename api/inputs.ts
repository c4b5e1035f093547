// What an explainer can be called on, turned into one normalised batch: image files or URLs, encoded
// PNG/JPEG bytes and decoded 8-bit pictures are preprocessed as the model expects (resize, crop,
// mean/std); a tensor is taken as already normalised.

import * as E from '../engine/index.ts';
import { readBytes } from '../engine/internal.ts';
import { displayName } from '../models/safetensors.ts';
import type { Preprocessing } from '../models/registry.ts';
import { decodeImage, decodeImageBytes, ImageError } from '../cam/rendering/codec.ts';
import { checkImage, preprocess, type RgbImage } from '../cam/rendering/image.ts';

/**
 * One image: a file path (a URL in a browser page), a `file:` or `https:` URL, the bytes of a PNG or
 * JPEG file, or a decoded 8-bit RGB picture (`{ width, height, data }`, 3 bytes per pixel).
 */
export type ImageInput = string | URL | Uint8Array | RgbImage;

/** Images (one or a list), or a normalised tensor [B, C, H, W] (or [C, H, W]) on the explainer's backend. */
export type Inputs = ImageInput | readonly ImageInput[] | E.Tensor;

export interface InputBatch {
  input: E.Tensor;
  /** True when the batch was made here (and is disposed after the call), false for the caller's tensor. */
  owned: boolean;
  /** What each row came from: the file name, `bytes[i]`, `picture[i]` or `tensor[i]`. */
  sources: string[];
  /** The model-sized picture each row shows (null for tensor rows). */
  pictures: (RgbImage | null)[];
}

async function decode(image: ImageInput, index: number, maxPixels: number | undefined): Promise<{ picture: RgbImage; source: string }> {
  if (typeof image === 'string') return { picture: await decodeImage(image, { maxPixels }), source: image };
  if (image instanceof URL) {
    const source = displayName(image);
    let bytes: Uint8Array;
    try {
      bytes = await readBytes(image);
    } catch (e) {
      throw new ImageError(source, `cannot read file: ${(e as Error).message}`);
    }
    return { picture: decodeImageBytes(bytes, source, { maxPixels }), source };
  }
  if (image instanceof Uint8Array) {
    const source = `bytes[${index}]`;
    return { picture: decodeImageBytes(image, source, { maxPixels }), source };
  }
  const source = `picture[${index}]`;
  checkImage(image, source);
  return { picture: image, source };
}

/** Decodes and preprocesses images, or checks a tensor, giving a batch on the current backend. */
export async function toBatch(inputs: Inputs, pre: Preprocessing, inChannels: number, maxPixels?: number): Promise<InputBatch> {
  if (inputs instanceof E.Tensor) {
    const rank = inputs.rank;
    if ((rank !== 3 && rank !== 4) || inputs.shape[rank - 3] !== inChannels) {
      throw new RangeError(`input tensor: expected [B, ${inChannels}, H, W] or [${inChannels}, H, W], got [${inputs.shape.join(', ')}]`);
    }
    const input = rank === 3 ? E.unsqueeze(inputs, 0) : inputs;
    const B = input.shape[0];
    return { input, owned: rank === 3, sources: Array.from({ length: B }, (_, b) => `tensor[${b}]`), pictures: new Array(B).fill(null) };
  }
  const images: readonly ImageInput[] = Array.isArray(inputs) ? inputs : [inputs as ImageInput];
  if (images.length === 0) throw new RangeError('explain: no images given');
  const rows: Float32Array[] = [];
  const sources: string[] = [];
  const pictures: RgbImage[] = [];
  let shape: readonly number[] | null = null;
  for (const [i, image] of images.entries()) {
    const { picture, source } = await decode(image, i, maxPixels);
    const p = preprocess(picture, pre);
    if (shape && shape.join() !== p.shape.join()) {
      throw new RangeError(`${source}: preprocessed to [${p.shape.join(', ')}], unlike the batch's [${shape.join(', ')}] (this model does not resize: give images of one size)`);
    }
    shape = p.shape;
    rows.push(p.data);
    sources.push(source);
    pictures.push(p.picture);
  }
  const [C, H, W] = shape!;
  if (C !== inChannels) throw new RangeError(`the model takes ${inChannels} input channels, images give ${C}`);
  const data = new Float32Array(rows.length * C * H * W);
  rows.forEach((row, b) => data.set(row, b * C * H * W));
  return { input: E.tensor(data, [rows.length, C, H, W]), owned: true, sources, pictures };
}
