/**
 * OpenCV COLORMAP_JET and pytorch-grad-cam `show_cam_on_image`.
 *
 * OpenCV (`modules/imgproc/src/colormap.cpp`, class `Jet`) defines jet as
 * three 256-entry float32 tables (GNU Octave's jet(256)) which it samples with
 * `interp1` at `linspace(0, 1, 256)` in float32 and converts with
 * `convertTo(CV_8U, 255)` (round half to even). The tables are piecewise
 * linear with slope 4/255 per entry; we rebuild them from their key points and
 * replay the float32 arithmetic, which gives OpenCV's LUT byte for byte
 * (checked against cv2 4.6 in test/fixtures/postprocess_reference.json).
 *
 * Key points (entry index i → value·255), red/green/blue:
 *   R: 0 for i ≤ 95; 1.5 + 4(i−96) for 96..159; 255 for 160..223; 251.5 − 4(i−224) for 224..255
 *   G: 0 for i ≤ 31; 0.5 + 4(i−32) for 32..95;  255 for 96..159;  252.5 − 4(i−160) for 160..223; 0 after
 *   B: 127.5 + 4i for 0..31; 255 for 32..95; 253.5 − 4(i−96) for 96..159; 0 for i ≥ 160
 */
import type { RgbImage } from './image.ts';

const f32 = Math.fround;

function jetBase(i: number): [number, number, number] {
  let r: number, g: number, b: number;
  if (i <= 95) r = 0;
  else if (i <= 159) r = (1.5 + 4 * (i - 96)) / 255;
  else if (i <= 223) r = 1;
  else r = (251.5 - 4 * (i - 224)) / 255;

  if (i <= 31) g = 0;
  else if (i <= 95) g = (0.5 + 4 * (i - 32)) / 255;
  else if (i <= 159) g = 1;
  else if (i <= 223) g = (252.5 - 4 * (i - 160)) / 255;
  else g = 0;

  if (i <= 31) b = (127.5 + 4 * i) / 255;
  else if (i <= 95) b = 1;
  else if (i <= 159) b = (253.5 - 4 * (i - 96)) / 255;
  else b = 0;
  return [f32(r), f32(g), f32(b)];
}

/** C's lrintf / OpenCV cvRound on a float: round half to even. */
function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const d = x - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

function buildJetLut(): Uint8Array {
  const n = 256;
  // linspace(0, 1, 256) in float32: x0 + i*step, step = (x1-x0)/(n-1)
  const step = f32(1 / (n - 1));
  const X = new Float64Array(n);
  for (let i = 0; i < n; i++) X[i] = f32(i * step);
  const base: [number, number, number][] = [];
  for (let i = 0; i < n; i++) base.push(jetBase(i));
  const lut = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      // interp1_<float>: the binary search ends with X[low] < xi <= X[high]
      // (low = 0, high = 1 for xi = X[0]).
      const low = i === 0 ? 0 : i - 1;
      const high = i === 0 ? 1 : i;
      const yl = base[low][c];
      const yh = base[high][c];
      const dx = f32(X[i] - X[low]);
      const y = f32(yl + f32(f32(dx * f32(yh - yl)) / f32(X[high] - X[low])));
      // convertTo(CV_8U, 255.0): saturate_cast<uchar>(float(y * 255))
      const v = roundHalfEven(f32(y * 255));
      lut[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return lut;
}

/** OpenCV COLORMAP_JET as an RGB table: entry i at [3i, 3i+1, 3i+2] = (R, G, B). */
export const JET_LUT_RGB: Uint8Array = buildJetLut();

/**
 * `np.uint8(255 * mask)` for a float32 mask value: float32 product, truncation.
 * Values outside [0, 1] are clamped to 0..255 (NumPy's cast of out-of-range
 * floats is undefined/wrapping; we clamp) and NaN gives 0.
 */
export function quantizeMask(v: number): number {
  const x = f32(255 * f32(v));
  if (!(x > 0)) return 0;
  if (x >= 255) return 255;
  return Math.trunc(x);
}

/** Jet colour of entry `u8` (0..255) as [r, g, b]. */
export function jetLutEntry(u8: number): [number, number, number] {
  const i = Math.max(0, Math.min(255, Math.trunc(u8)));
  return [JET_LUT_RGB[i * 3], JET_LUT_RGB[i * 3 + 1], JET_LUT_RGB[i * 3 + 2]];
}

/**
 * `cv2.applyColorMap(np.uint8(255 * v), cv2.COLORMAP_JET)` converted to RGB,
 * for one value v in [0, 1]. Returns [r, g, b] in 0..255.
 */
export function jetColormap(v: number): [number, number, number] {
  return jetLutEntry(quantizeMask(v));
}

/**
 * pytorch-grad-cam `show_cam_on_image(img_float, mask, use_rgb=True,
 * colormap=cv2.COLORMAP_JET, image_weight)` where `img_float =
 * np.float32(img) / 255`:
 *   heatmap = float32(jet(uint8(255·mask))) / 255
 *   cam = (1 − w)·heatmap + w·img_float;  cam = cam / max(cam);  uint8(255·cam)
 * All in float32 like NumPy, final cast truncates. `mask` is H×W (row-major,
 * same size as `img`), values in [0, 1]. A zero maximum (only possible with
 * w = 1 and a black image) yields a black image instead of NaNs.
 */
export function showCamOnImage(img: RgbImage, mask: Float64Array | Float32Array | ArrayLike<number>, imageWeight = 0.5): RgbImage {
  const { width, height, data } = img;
  const n = width * height;
  if (data.length !== n * 3) throw new RangeError(`showCamOnImage: image data has ${data.length} bytes, expected ${width}x${height}x3`);
  if (mask.length !== n) throw new RangeError(`showCamOnImage: mask has ${mask.length} values, expected ${height}x${width}`);
  if (!(imageWeight >= 0 && imageWeight <= 1)) throw new RangeError(`showCamOnImage: image_weight should be in the range [0, 1], got ${imageWeight}`);
  const wImg = f32(imageWeight);
  const wHeat = f32(1 - imageWeight);
  const cam = new Float32Array(n * 3);
  let mx = -Infinity;
  for (let p = 0; p < n; p++) {
    const q = quantizeMask(mask[p]);
    for (let c = 0; c < 3; c++) {
      const heat = f32(JET_LUT_RGB[q * 3 + c] / 255);
      const im = f32(data[p * 3 + c] / 255);
      const v = f32(f32(wHeat * heat) + f32(wImg * im));
      cam[p * 3 + c] = v;
      if (v > mx) mx = v;
    }
  }
  const out = new Uint8Array(n * 3);
  if (mx > 0) {
    for (let i = 0; i < n * 3; i++) {
      const v = f32(255 * f32(cam[i] / mx));
      out[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
    }
  }
  return { width, height, data: out };
}
