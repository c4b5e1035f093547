/**
 * 8-bit RGB images and torchvision-style preprocessing on plain typed arrays (no I/O: see codec.ts).
 *
 * Preprocessing mirrors `torchvision.transforms` on a PIL image: `Resize(size:int)` (PIL bilinear,
 * antialiased when shrinking, 8-bit fixed-point arithmetic exactly as Pillow's `ImagingResample`),
 * `CenterCrop`, then `ToTensor` + `Normalize` in float32 — resizing and cropping stay in 8 bits, so only
 * the model-sized image is ever converted to floating point.
 */
/** 8-bit RGB image, row-major, 3 bytes per pixel (R, G, B). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Throws when the data length does not match the size. */
export function checkImage(img: RgbImage, where: string): void {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`${where}: data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3`);
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

/**
 * Resize → CenterCrop (in 8 bits) → ToTensor → Normalize. Returns CHW float32 data, and the resized and
 * cropped 8-bit picture the data shows (for overlays).
 */
export function preprocess(img: RgbImage, opts: PreprocessOptions): { data: Float32Array; shape: [3, number, number]; picture: RgbImage } {
  let cur = img;
  if (opts.resize !== undefined) cur = resizeImage(cur, opts.resize);
  if (opts.crop !== undefined) {
    const [h, w] = typeof opts.crop === 'number' ? [opts.crop, opts.crop] : opts.crop;
    cur = centerCrop(cur, h, w);
  }
  return { data: toNormalizedCHW(cur, opts.mean, opts.std), shape: [3, cur.height, cur.width], picture: cur };
}
