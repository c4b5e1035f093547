/**
 * CAM map post-processing (pytorch-grad-cam `base_cam.py` + `utils/image.py`
 * `scale_cam_image`) on plain typed arrays. Maps are row-major (h, w).
 *
 * All functions return NEW Float64Array's and never modify their input.
 * Arithmetic is float64, so results can differ from pytorch-grad-cam (which
 * works in float32) by float32 rounding, i.e. ~1e-7 relative.
 */

export type MapArray = Float32Array | Float64Array | ArrayLike<number>;

function checkMap(src: MapArray, h: number, w: number, where: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new RangeError(`${where}: bad map size ${h}x${w}`);
  }
  if (src.length !== h * w) throw new RangeError(`${where}: map has ${src.length} values, expected ${h}x${w}`);
}

/** Per output index: lower source index, upper source index, weight of the upper one. */
function axisWeights(inSize: number, outSize: number, alignCorners: boolean): { i0: Int32Array; i1: Int32Array; t: Float64Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const t = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let s: number;
    if (alignCorners) {
      s = outSize > 1 ? (o * (inSize - 1)) / (outSize - 1) : 0;
    } else {
      s = (o + 0.5) * (inSize / outSize) - 0.5;
      if (s < 0) s = 0;
    }
    let a = Math.floor(s);
    if (a > inSize - 1) a = inSize - 1;
    const b = a + 1 < inSize ? a + 1 : inSize - 1;
    i0[o] = a;
    i1[o] = b;
    t[o] = b === a ? 0 : s - a;
  }
  return { i0, i1, t };
}

/**
 * Bilinear resize of an (h, w) map to (H, W).
 *
 * - `alignCorners = false` (default): half-pixel centres, source coordinate
 *   `(o + 0.5) * in/out - 0.5`, clamped at 0 below and at the last pixel above
 *   (edge replication). Equals `cv2.resize(m, (W, H), interpolation=INTER_LINEAR)`
 *   and `torch.nn.functional.interpolate(mode='bilinear', align_corners=False)`
 *   (no antialias). This is what pytorch-grad-cam uses to upscale CAMs.
 *   (For an exact 2x downscale OpenCV switches to INTER_AREA, which gives
 *   the same numbers.)
 * - `alignCorners = true`: source coordinate `o * (in - 1) / (out - 1)`
 *   (0 when out == 1), as torch's `align_corners=True`.
 */
export function resizeBilinear(src: MapArray, h: number, w: number, H: number, W: number, alignCorners = false): Float64Array {
  checkMap(src, h, w, 'resizeBilinear');
  if (!Number.isInteger(H) || !Number.isInteger(W) || H < 1 || W < 1) {
    throw new RangeError(`resizeBilinear: bad output size ${H}x${W}`);
  }
  const ys = axisWeights(h, H, alignCorners);
  const xs = axisWeights(w, W, alignCorners);
  const out = new Float64Array(H * W);
  for (let oy = 0; oy < H; oy++) {
    const r0 = ys.i0[oy] * w;
    const r1 = ys.i1[oy] * w;
    const ty = ys.t[oy];
    for (let ox = 0; ox < W; ox++) {
      const c0 = xs.i0[ox];
      const c1 = xs.i1[ox];
      const tx = xs.t[ox];
      const top = src[r0 + c0] * (1 - tx) + src[r0 + c1] * tx;
      const bot = src[r1 + c0] * (1 - tx) + src[r1 + c1] * tx;
      out[oy * W + ox] = top * (1 - ty) + bot * ty;
    }
  }
  return out;
}

/**
 * Returns a new array `(x - min) / (max(x - min) + eps)`, exactly
 * pytorch-grad-cam's `scale_cam_image` normalisation (eps = 1e-7). A constant
 * map becomes all zeros. NaNs are not treated specially (they propagate).
 */
export function minMaxNormalize(map: MapArray, eps = 1e-7): Float64Array {
  const n = map.length;
  const out = new Float64Array(n);
  if (n === 0) return out;
  let mn = Infinity;
  for (let i = 0; i < n; i++) if (map[i] < mn) mn = map[i];
  let mx = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = map[i] - mn;
    out[i] = v;
    if (v > mx) mx = v;
  }
  const d = mx + eps;
  for (let i = 0; i < n; i++) out[i] /= d;
  return out;
}

/** Returns a new array max(x, 0) (`np.maximum(x, 0)`). */
export function relu(map: MapArray): Float64Array {
  const n = map.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = map[i];
    out[i] = v > 0 ? v : 0;
  }
  return out;
}

/**
 * Per image of one layer, as `BaseCAM.compute_cam_per_layer`:
 * `np.maximum(cam, 0)` then `scale_cam_image(cam, (W, H))`, i.e.
 * relu → min-max (eps 1e-7) → half-pixel bilinear resize to H×W.
 * `maps` holds one (h, w) map per batch image. Returns one H×W map per image.
 */
export function scaleCamImage(maps: MapArray[], h: number, w: number, H: number, W: number): Float64Array[] {
  return maps.map((m, i) => {
    checkMap(m, h, w, `scaleCamImage[${i}]`);
    const norm = minMaxNormalize(relu(m));
    return h === H && w === W ? norm : resizeBilinear(norm, h, w, H, W, false);
  });
}

/**
 * `BaseCAM.aggregate_multi_layers`: `perLayer[layer][image]` (each H×W, from
 * `scaleCamImage`) → per image: clamp at 0, mean over layers, min-max
 * (eps 1e-7) again (`scale_cam_image` without resize). Returns one H×W map
 * per image.
 */
export function aggregateLayers(perLayer: MapArray[][]): Float64Array[] {
  if (perLayer.length === 0) throw new RangeError('aggregateLayers: no layers');
  const nImages = perLayer[0].length;
  const out: Float64Array[] = [];
  for (let b = 0; b < nImages; b++) {
    const size = perLayer[0][b].length;
    const acc = new Float64Array(size);
    for (let l = 0; l < perLayer.length; l++) {
      if (perLayer[l].length !== nImages) throw new RangeError(`aggregateLayers: layer ${l} has ${perLayer[l].length} images, expected ${nImages}`);
      const m = perLayer[l][b];
      if (m.length !== size) throw new RangeError(`aggregateLayers: layer ${l} image ${b} has ${m.length} values, expected ${size}`);
      for (let i = 0; i < size; i++) {
        const v = m[i];
        if (v > 0) acc[i] += v;
      }
    }
    for (let i = 0; i < size; i++) acc[i] /= perLayer.length;
    out.push(minMaxNormalize(acc));
  }
  return out;
}
