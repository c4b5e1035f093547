/**
 * Deep Feature Factorization pictures, after pytorch-grad-cam's `show_factorization_on_image`: each pixel
 * takes the colour of the concept whose heat map is largest there, at that map's intensity (its HSV value);
 * the colours are blended with the image (30% image, as upstream's `run_dff_on_image`), and a legend beside
 * the picture names each concept's colour and its top classes.
 */
import { LINE_HEIGHT, drawText, fillRect, textWidth, type Rgb } from './font.ts';
import { createImage, type RgbImage } from './image.ts';
import { blit, upscaleNearest } from './sheet.ts';

/** matplotlib's gist_rainbow (its segment data), the colours upstream gives concepts i/n. */
const GIST_RAINBOW: [number, Rgb][] = [
  [0.0, [1.0, 0.0, 0.16]],
  [0.03, [1.0, 0.0, 0.0]],
  [0.215, [1.0, 1.0, 0.0]],
  [0.4, [0.0, 1.0, 0.0]],
  [0.586, [0.0, 1.0, 1.0]],
  [0.77, [0.0, 0.0, 1.0]],
  [0.954, [1.0, 0.0, 1.0]],
  [1.0, [1.0, 0.0, 0.75]],
];

/** The colour of concept i of n, in [0, 1] (matplotlib samples a 256-entry table at floor(x·256)). */
export function conceptColor(i: number, n: number): Rgb {
  const x = Math.min(255, Math.floor((i / n) * 256)) / 255;
  let k = 0;
  while (k < GIST_RAINBOW.length - 2 && x > GIST_RAINBOW[k + 1][0]) k++;
  const [x0, c0] = GIST_RAINBOW[k];
  const [x1, c1] = GIST_RAINBOW[k + 1];
  const t = (x - x0) / (x1 - x0);
  return [0, 1, 2].map((j) => c0[j] + (c1[j] - c0[j]) * t) as Rgb;
}

/**
 * The concepts' heat maps (concepts × H × W, each in [0, 1]) over the picture: per pixel the winning
 * concept's colour scaled by its value (every colour here has HSV value 1, so setting V scales it).
 */
export function factorizationOverlay(picture: RgbImage, maps: Float64Array[], imageWeight = 0.3): RgbImage {
  const { width, height } = picture;
  const n = width * height;
  const colors = maps.map((_, i) => conceptColor(i, maps.length));
  const out = createImage(width, height);
  for (let p = 0; p < n; p++) {
    let best = 0;
    for (let i = 1; i < maps.length; i++) if (maps[i][p] > maps[best][p]) best = i;
    const v = Math.trunc(255 * Math.min(1, Math.max(0, maps[best][p]))) / 255;
    for (let c = 0; c < 3; c++) {
      const blended = (picture.data[p * 3 + c] / 255) * imageWeight + colors[best][c] * v * (1 - imageWeight);
      out.data[p * 3 + c] = Math.trunc(Math.min(1, blended) * 255);
    }
  }
  return out;
}

/** The overlay, enlarged to at least `minSide` pixels, with a legend panel to its right. */
export function factorizationPicture(overlay: RgbImage, labels: string[][], minSide = 256): RgbImage {
  const scale = Math.max(1, Math.ceil(minSide / Math.min(overlay.width, overlay.height)));
  const big = scale === 1 ? overlay : upscaleNearest(overlay, scale);
  const ts = 2;
  const pad = 8;
  const swatch = 24;
  const lineH = LINE_HEIGHT * ts + 2;
  const textW = Math.max(...labels.flat().map((l) => textWidth(l, ts)), 0);
  const legendW = pad * 3 + swatch + textW;
  const legendH = pad + labels.reduce((s, ls) => s + Math.max(swatch, ls.length * lineH) + pad, 0);
  const out = createImage(big.width + legendW, Math.max(big.height, legendH));
  out.data.fill(255);
  blit(out, big, 0, 0);
  let y = pad;
  labels.forEach((lines, i) => {
    const c = conceptColor(i, labels.length).map((v) => Math.round(v * 255)) as Rgb;
    fillRect(out, big.width + pad, y, swatch, swatch, c);
    lines.forEach((line, j) => drawText(out, big.width + pad * 2 + swatch, y + j * lineH, line, [0, 0, 0], ts));
    y += Math.max(swatch, lines.length * lineH) + pad;
  });
  return out;
}
