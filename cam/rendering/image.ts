/**
 * Image I/O and torchvision-style preprocessing on plain typed arrays.
 *
 * - Decoding: PNG via pngjs, JPEG via jpeg-js. Everything becomes 8-bit RGB
 *   (`RgbImage`): grayscale is replicated to three channels, palettes are
 *   expanded, alpha is DROPPED (not composited) like PIL's `convert('RGB')`,
 *   16-bit samples keep their high byte (v >> 8, which is what PIL does for
 *   16-bit RGB/RGBA PNGs), sub-8-bit grayscale is scaled to 0..255.
 * - Preprocessing mirrors `torchvision.transforms` on a PIL image:
 *   `Resize(size:int)` (PIL bilinear, antialiased when shrinking, 8-bit
 *   fixed-point arithmetic exactly as Pillow's `ImagingResample`),
 *   `CenterCrop`, `ToTensor` + `Normalize` in float32.
 */
import { Buffer } from 'node:buffer';
import { readFile, writeFile } from 'node:fs/promises';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

/** 8-bit RGB image, row-major, 3 bytes per pixel (R, G, B). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Thrown for unsupported or corrupt image files; the message is one line naming the file. */
export class ImageError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem.replace(/\s*\n\s*/g, ' ')}`);
    this.name = 'ImageError';
    this.file = file;
  }
}

/** Allocates a black image. */
export function createImage(width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`createImage: bad size ${width}x${height}`);
  }
  return { width, height, data: new Uint8Array(width * height * 3) };
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function isPng(b: Uint8Array): boolean {
  if (b.length < 8) return false;
  for (let i = 0; i < 8; i++) if (b[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Removes tRNS chunks. pngjs zeroes the RGB of pixels that match a tRNS colour
 * key (grey/RGB images); since alpha is dropped anyway, removing the chunk keeps
 * the stored colour like PIL's convert('RGB'). Palette alpha is irrelevant for
 * the same reason. Returns the input unchanged when the chunk walk fails (the
 * decoder then reports the damage).
 */
function stripTrns(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [b.subarray(0, 8)];
  let pos = 8;
  let found = false;
  while (pos + 12 <= b.length) {
    const len = ((b[pos] << 24) | (b[pos + 1] << 16) | (b[pos + 2] << 8) | b[pos + 3]) >>> 0;
    const end = pos + 12 + len;
    if (end > b.length) return b;
    const type = String.fromCharCode(b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]);
    if (type === 'tRNS') found = true;
    else parts.push(b.subarray(pos, end));
    pos = end;
    if (type === 'IEND') break;
  }
  if (!found) return b;
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function decodePng(bytes: Uint8Array, fileName: string): RgbImage {
  if (bytes.length < 33) throw new ImageError(fileName, 'corrupt PNG: file too short for an IHDR chunk');
  const ihdrType = String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]);
  if (ihdrType !== 'IHDR') throw new ImageError(fileName, 'corrupt PNG: first chunk is not IHDR');
  const bitDepth = bytes[24];
  const sixteen = bitDepth === 16;
  let png: { width: number; height: number; data: ArrayLike<number> };
  try {
    const buf = Buffer.from(stripTrns(bytes));
    png = PNG.sync.read(buf, sixteen ? { skipRescale: true } : {}) as unknown as typeof png;
  } catch (e) {
    throw new ImageError(fileName, `corrupt or unsupported PNG: ${errorText(e)}`);
  }
  const { width, height, data } = png;
  if (!(width > 0 && height > 0) || data.length < width * height * 4) {
    throw new ImageError(fileName, `corrupt PNG: decoded ${data.length} samples for ${width}x${height}`);
  }
  const out = createImage(width, height);
  const n = width * height;
  const shift = sixteen ? 8 : 0;
  for (let i = 0; i < n; i++) {
    out.data[i * 3] = data[i * 4] >> shift;
    out.data[i * 3 + 1] = data[i * 4 + 1] >> shift;
    out.data[i * 3 + 2] = data[i * 4 + 2] >> shift;
  }
  return out;
}

function decodeJpeg(bytes: Uint8Array, fileName: string): RgbImage {
  let dec: { width: number; height: number; data: Uint8Array };
  try {
    dec = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
  } catch (e) {
    throw new ImageError(fileName, `corrupt or unsupported JPEG: ${errorText(e)}`);
  }
  const { width, height, data } = dec;
  if (!(width > 0 && height > 0) || data.length < width * height * 4) {
    throw new ImageError(fileName, `corrupt JPEG: decoded ${data.length} bytes for ${width}x${height}`);
  }
  const out = createImage(width, height);
  const n = width * height;
  for (let i = 0; i < n; i++) {
    out.data[i * 3] = data[i * 4];
    out.data[i * 3 + 1] = data[i * 4 + 1];
    out.data[i * 3 + 2] = data[i * 4 + 2];
  }
  return out;
}

/**
 * Decodes PNG or JPEG bytes (format sniffed from the magic bytes, not the
 * name). `fileName` is only used in error messages.
 */
export function decodeImageBytes(bytes: Uint8Array, fileName: string): RgbImage {
  if (isPng(bytes)) return decodePng(bytes, fileName);
  if (isJpeg(bytes)) return decodeJpeg(bytes, fileName);
  if (bytes.length === 0) throw new ImageError(fileName, 'empty file');
  throw new ImageError(fileName, 'unsupported image format (expected PNG or JPEG signature)');
}

/** Reads and decodes a PNG or JPEG file. */
export async function decodeImage(path: string): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ImageError(path, `cannot read file: ${errorText(e)}`);
  }
  return decodeImageBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

function checkImage(img: RgbImage, where: string): void {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`${where}: data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3`);
  }
}

/** Encodes an RGB image as an 8-bit RGB PNG (colour type 2, no alpha). */
export function encodePng(img: RgbImage): Uint8Array {
  checkImage(img, 'encodePng');
  // colorType === inputColorType === 2 takes pngjs's pass-through route (RGB in, RGB out).
  const buf = PNG.sync.write(
    { width: img.width, height: img.height, data: Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength) } as unknown as PNG,
    { colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: 8 },
  );
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Encodes and writes a PNG file. */
export async function writePng(path: string, img: RgbImage): Promise<void> {
  await writeFile(path, encodePng(img));
}

// ---------------------------------------------------------------------------
// Resize (Pillow bilinear, as torchvision.transforms.Resize on a PIL image)
// ---------------------------------------------------------------------------

/** Pillow: PRECISION_BITS = 32 - 8 - 2 for 8-bit fixed-point resampling. */
const PRECISION_BITS = 22;

interface Coeffs {
  /** first source index per output index */
  bounds: Int32Array; // [xmin, count] pairs
  /** fixed-point weights, ksize per output index */
  kk: Int32Array;
  ksize: number;
}

function bilinearFilter(x: number): number {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

/**
 * Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear
 * (triangle, support 1) filter on the full box [0, inSize).
 */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinearFilter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? k[x] / ww : k[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(v: number): number {
  // v is the accumulator incl. the 1 << (PRECISION_BITS-1) rounding term.
  if (v >= 256 * (1 << PRECISION_BITS)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / (1 << PRECISION_BITS));
}

function resampleHorizontal(img: RgbImage, outW: number): RgbImage {
  const { width: W, height: H, data } = img;
  const { bounds, kk, ksize } = precomputeCoeffs(W, outW);
  const out = createImage(outW, H);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < H; y++) {
    const row = y * W * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      let s0 = half, s1 = half, s2 = half;
      for (let x = 0; x < xmax; x++) {
        const w = kk[xx * ksize + x];
        const p = row + (x + xmin) * 3;
        s0 += data[p] * w;
        s1 += data[p + 1] * w;
        s2 += data[p + 2] * w;
      }
      const o = (y * outW + xx) * 3;
      out.data[o] = clip8(s0);
      out.data[o + 1] = clip8(s1);
      out.data[o + 2] = clip8(s2);
    }
  }
  return out;
}

function resampleVertical(img: RgbImage, outH: number): RgbImage {
  const { width: W, height: H, data } = img;
  const { bounds, kk, ksize } = precomputeCoeffs(H, outH);
  const out = createImage(W, outH);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2];
    const ymax = bounds[yy * 2 + 1];
    for (let xx = 0; xx < W; xx++) {
      let s0 = half, s1 = half, s2 = half;
      for (let y = 0; y < ymax; y++) {
        const w = kk[yy * ksize + y];
        const p = ((y + ymin) * W + xx) * 3;
        s0 += data[p] * w;
        s1 += data[p + 1] * w;
        s2 += data[p + 2] * w;
      }
      const o = (yy * W + xx) * 3;
      out.data[o] = clip8(s0);
      out.data[o + 1] = clip8(s1);
      out.data[o + 2] = clip8(s2);
    }
  }
  return out;
}

/**
 * Resizes to exactly `outW` x `outH` with Pillow's BILINEAR filter
 * (`Image.resize(size, Image.BILINEAR)`): a triangle filter whose support is
 * widened by the scale factor when shrinking (antialias, like PIL and
 * torchvision's `antialias=True`), plain half-pixel-centre bilinear with edge
 * replication when enlarging. Horizontal pass first, then vertical, each
 * rounded to uint8 with Pillow's 22-bit fixed-point weights, so results match
 * Pillow byte for byte.
 */
export function resizeImageTo(img: RgbImage, outW: number, outH: number): RgbImage {
  checkImage(img, 'resizeImageTo');
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) {
    throw new RangeError(`resizeImageTo: bad output size ${outW}x${outH}`);
  }
  let cur = img;
  if (outW !== img.width) cur = resampleHorizontal(cur, outW);
  if (outH !== img.height) cur = resampleVertical(cur, outH);
  if (cur === img) cur = { width: img.width, height: img.height, data: img.data.slice() };
  return cur;
}

/**
 * torchvision `Resize(size)` output size for an int `size`: the shorter side
 * becomes `size`, the longer one `int(size * long / short)` (truncated).
 */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`resize: bad size ${size}`);
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newShort = size;
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: newShort, height: newLong } : { width: newLong, height: newShort };
}

/**
 * torchvision `Resize(size)` with an int `size` on a PIL image: shorter side to
 * `size`, aspect kept (longer side truncated), Pillow bilinear (antialiased
 * when shrinking). Returns a copy when the size does not change.
 */
export function resizeImage(img: RgbImage, size: number): RgbImage {
  const { width, height } = resizedSize(img.width, img.height, size);
  return resizeImageTo(img, width, height);
}

// ---------------------------------------------------------------------------
// Crop, normalise
// ---------------------------------------------------------------------------

/** Python 3 `round()` for x.5 ties: round half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * torchvision `CenterCrop((h, w))`: top = round((H - h) / 2), left =
 * round((W - w) / 2) with Python's round (half to even). When the crop is
 * larger than the image, the image is first zero-padded as torchvision does
 * (left/top get floor(d/2), right/bottom ceil(d/2)).
 */
export function centerCrop(img: RgbImage, h: number, w: number): RgbImage {
  checkImage(img, 'centerCrop');
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new RangeError(`centerCrop: bad crop size ${h}x${w}`);
  }
  let src = img;
  if (w > img.width || h > img.height) {
    const padL = w > img.width ? Math.floor((w - img.width) / 2) : 0;
    const padT = h > img.height ? Math.floor((h - img.height) / 2) : 0;
    const padR = w > img.width ? Math.floor((w - img.width + 1) / 2) : 0;
    const padB = h > img.height ? Math.floor((h - img.height + 1) / 2) : 0;
    const pw = img.width + padL + padR;
    const ph = img.height + padT + padB;
    src = createImage(pw, ph);
    for (let y = 0; y < img.height; y++) {
      src.data.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y + padT) * pw + padL) * 3);
    }
    if (pw === w && ph === h) return src;
  }
  const top = roundHalfEven((src.height - h) / 2);
  const left = roundHalfEven((src.width - w) / 2);
  const out = createImage(w, h);
  for (let y = 0; y < h; y++) {
    const s = ((y + top) * src.width + left) * 3;
    out.data.set(src.data.subarray(s, s + w * 3), y * w * 3);
  }
  return out;
}

/**
 * torchvision `ToTensor()` + `Normalize(mean, std)` in float32:
 * x = fp32(u8 / 255); y = (x - mean[c]) / std[c]; CHW layout (3, H, W).
 * Each step is rounded to float32 like torch does.
 */
export function toNormalizedCHW(img: RgbImage, mean: number[], std: number[]): Float32Array {
  checkImage(img, 'toNormalizedCHW');
  if (mean.length !== 3 || std.length !== 3) throw new RangeError('toNormalizedCHW: mean and std need 3 entries');
  const f = Math.fround;
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]);
    const s = f(std[c]);
    if (s === 0) throw new RangeError('toNormalizedCHW: std must be non-zero');
    // 256-entry table: identical result per byte value.
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = f(f(f(v / 255) - m) / s);
    const base = c * n;
    for (let i = 0; i < n; i++) out[base + i] = lut[img.data[i * 3 + c]];
  }
  return out;
}

export interface PreprocessOptions {
  /** torchvision Resize(int): shorter side to this size. Omit to skip. */
  resize?: number;
  /** torchvision CenterCrop: [h, w] or a square size. Omit to skip. */
  crop?: [number, number] | number;
  mean: number[];
  std: number[];
}

/** Resize → CenterCrop → ToTensor → Normalize. Returns CHW float32 data. */
export function preprocess(
  img: RgbImage,
  opts: PreprocessOptions,
): { data: Float32Array; shape: [3, number, number] } {
  let cur = img;
  if (opts.resize !== undefined) cur = resizeImage(cur, opts.resize);
  if (opts.crop !== undefined) {
    const [h, w] = typeof opts.crop === 'number' ? [opts.crop, opts.crop] : opts.crop;
    cur = centerCrop(cur, h, w);
  }
  return { data: toNormalizedCHW(cur, opts.mean, opts.std), shape: [3, cur.height, cur.width] };
}
