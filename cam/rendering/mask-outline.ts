// The segmentation target's mask drawn on a picture: a light tint over the masked pixels and a one-pixel
// outline where the mask meets the rest, so the region a segmentation CAM explains shows in the sheet's
// image column without hiding the picture.

import type { Rgb } from './font.ts';
import type { RgbImage } from './image.ts';

const OUTLINE: Rgb = [255, 255, 255];
const TINT: Rgb = [0, 255, 255];
const TINT_WEIGHT = 0.25;

/** A copy of `img` (W×H) with the H×W 0/1 `mask` tinted and outlined. */
export function outlineMask(img: RgbImage, mask: ArrayLike<number>): RgbImage {
  const { width: W, height: H } = img;
  if (mask.length !== W * H) throw new RangeError(`outlineMask: a mask of ${mask.length} pixels for a ${W}×${H} picture`);
  const out = Uint8Array.from(img.data);
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < W && y < H && mask[y * W + x] !== 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!inside(x, y)) continue;
      const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
      const o = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) {
        out[o + c] = edge ? OUTLINE[c] : Math.round((1 - TINT_WEIGHT) * out[o + c] + TINT_WEIGHT * TINT[c]);
      }
    }
  }
  return { width: W, height: H, data: out };
}
