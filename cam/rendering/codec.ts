/**
 * PNG and JPEG files to and from 8-bit RGB images (pngjs, jpeg-js). Everything decodes to `RgbImage`:
 * grayscale is replicated to three channels, palettes are expanded, alpha is DROPPED (not composited) like
 * PIL's `convert('RGB')`, 16-bit samples keep their high byte (v >> 8, which is what PIL does for 16-bit
 * RGB/RGBA PNGs), sub-8-bit grayscale is scaled to 0..255.
 *
 * Images over a pixel limit (Pillow's default, 89,478,485 pixels) are refused from their header, before
 * any decoding: a small file can declare a huge image (a decompression bomb).
 */
// Platform seam: the browser page's build maps these two to pngjs's own browser bundle and the `buffer`
// package (web/vite.config.ts), so this module decodes the same bytes to the same pixels in a page.
import { Buffer } from 'node:buffer';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { readBytes, writeBytes } from '../../engine/internal.ts';
import { checkImage, createImage, type RgbImage } from './image.ts';

/** Thrown for unsupported or corrupt image files; the message is one line naming the file. */
export class ImageError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem.replace(/\s*\n\s*/g, ' ')}`);
    this.name = 'ImageError';
    this.file = file;
  }
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

function decodeJpeg(bytes: Uint8Array, fileName: string, maxPixels: number): RgbImage {
  let dec: { width: number; height: number; data: Uint8Array };
  try {
    // Straight to packed RGB (no RGBA copy). jpeg-js's own limits are set past ours: ours was checked
    // from the header already, and theirs would refuse images a raised --max-pixels allows.
    dec = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: Math.ceil(maxPixels / 1e6), maxMemoryUsageInMB: 4096 });
  } catch (e) {
    throw new ImageError(fileName, `corrupt or unsupported JPEG: ${errorText(e)}`);
  }
  const { width, height, data } = dec;
  if (!(width > 0 && height > 0) || data.length !== width * height * 3) {
    throw new ImageError(fileName, `corrupt JPEG: decoded ${data.length} bytes for ${width}x${height}`);
  }
  return { width, height, data };
}

// ---------------------------------------------------------------------------
// The pixel limit: read the size from the header, refuse before decoding
// ---------------------------------------------------------------------------

/** Pillow's default Image.MAX_IMAGE_PIXELS. */
export const DEFAULT_MAX_PIXELS = 89_478_485;

export interface DecodeOptions {
  /** Refuse images with more pixels than this, before decoding (default DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
}

/** An image over the pixel limit: a decompression bomb, or a photo larger than the limit allows. */
export class PixelLimitError extends ImageError {
  constructor(file: string, width: number, height: number, readonly limit: number) {
    super(file, `${width}×${height} = ${(width * height).toLocaleString('en-US')} pixels, over the limit of ${limit.toLocaleString('en-US')}`);
    this.name = 'PixelLimitError';
  }
}

const u16 = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];
const u32 = (b: Uint8Array, i: number) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;

/** JPEG start-of-frame markers (SOF0–SOF15 except DHT C4, JPG C8 and DAC CC): they carry the size. */
const isStartOfFrame = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/**
 * Width and height from the file header, without decoding: PNG's IHDR, or the first JPEG frame header.
 * Null when the header does not say (the decoder then reports what is wrong).
 */
export function headerSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (isPng(bytes)) return bytes.length >= 24 ? { width: u32(bytes, 16), height: u32(bytes, 20) } : null;
  if (!isJpeg(bytes)) return null;
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) return null;
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2; // markers without a segment
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image, start of scan: no frame header seen
    if (isStartOfFrame(marker)) {
      if (pos + 9 > bytes.length) return null;
      const height = u16(bytes, pos + 5);
      const width = u16(bytes, pos + 7);
      return height > 0 ? { width, height } : null; // height 0: given later by a DNL marker
    }
    pos += 2 + u16(bytes, pos + 2);
  }
  return null;
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/**
 * Decodes PNG or JPEG bytes (format sniffed from the magic bytes, not the name) to 8-bit RGB, refusing
 * images over the pixel limit before decoding them. `fileName` is only used in error messages.
 */
export function decodeImageBytes(bytes: Uint8Array, fileName: string, opts: DecodeOptions = {}): RgbImage {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const size = headerSize(bytes);
  if (size && size.width * size.height > maxPixels) throw new PixelLimitError(fileName, size.width, size.height, maxPixels);
  if (isPng(bytes)) return decodePng(bytes, fileName);
  if (isJpeg(bytes)) return decodeJpeg(bytes, fileName, maxPixels);
  if (bytes.length === 0) throw new ImageError(fileName, 'empty file');
  throw new ImageError(fileName, 'unsupported image format (expected PNG or JPEG signature)');
}

/** Reads and decodes a PNG or JPEG file (see decodeImageBytes). */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(path);
  } catch (e) {
    throw new ImageError(path, `cannot read file: ${errorText(e)}`);
  }
  return decodeImageBytes(bytes, path, opts);
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

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
  await writeBytes(path, encodePng(img));
}

