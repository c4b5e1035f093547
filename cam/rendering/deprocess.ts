/**
 * pytorch-grad-cam's `deprocess_image`, how it shows an input-space map such as guided backpropagation's
 * (after keras-grad-cam): over the whole map (all three channels), subtract the mean, divide by
 * (std + 1e-5), scale by 0.1, add 0.5, clip to [0, 1] and truncate 255·v to 8 bits. The map comes CHW
 * (3 × H × W, as maps.safetensors stores it); the picture is RGB.
 */
import { createImage, type RgbImage } from './image.ts';

export function deprocessImage(chw: ArrayLike<number>, height: number, width: number): RgbImage {
  const n = height * width;
  if (chw.length !== 3 * n) throw new RangeError(`deprocessImage: ${chw.length} values, expected 3×${height}×${width}`);
  let mean = 0;
  for (let i = 0; i < 3 * n; i++) mean += chw[i];
  mean /= 3 * n;
  let variance = 0;
  for (let i = 0; i < 3 * n; i++) variance += (chw[i] - mean) ** 2;
  const std = Math.sqrt(variance / (3 * n));
  const out = createImage(width, height);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < n; p++) {
      const v = Math.min(1, Math.max(0, ((chw[c * n + p] - mean) / (std + 1e-5)) * 0.1 + 0.5));
      out.data[p * 3 + c] = Math.trunc(v * 255);
    }
  }
  return out;
}
