/**
 * The second-order inspection picture of one image. Per target layer: the input, the first-order map
 * Σ_k A⊙G, the second-order map Σ_k −½·A⊙H·A and their sum (one diverging colour scale for the three, so
 * they compare), and a chart of the channels with the largest ShapleyCAM weights |w_k|, each weight
 * w_k = mean(G_k) + mean(−½·H·A_k) drawn as its two parts. When H·A is zero by the structure of the head
 * (a piecewise-linear head under the logit utility) the picture says so. Plain pixels and the bitmap font
 * of font.ts, no canvas: the CLI writes it as terms_<NNN>_<image>.png and the browser page shows the same.
 */
import type { Explanation } from '../algorithm/explain.ts';
import { resizeBilinear } from '../algorithm/postprocess.ts';
import { drawText, fillRect, textWidth, type Rgb } from './font.ts';
import { createImage, resizeImageTo, type RgbImage } from './image.ts';
import { blit } from './sheet.ts';

/** One target layer of one image: maps at layer resolution, and the terms per channel. */
export interface TermsLayer {
  layer: string;
  /** Channels, height and width of the layer's activations. */
  K: number;
  h: number;
  w: number;
  /** Σ_k A⊙G, [h, w] row-major, before ReLU. */
  firstOrder: ArrayLike<number>;
  /** Σ_k −½·A⊙H·A, [h, w]; null when H·A was not computed. */
  secondOrder: ArrayLike<number> | null;
  /** G and H·A, [K, h, w]. */
  gradients: ArrayLike<number>;
  hvp: ArrayLike<number> | null;
  hvpStructurallyZero: boolean;
}

export interface TermsPictureInput {
  /** The model-sized picture the maps lie on. */
  picture: RgbImage;
  /** One line on top: the image, the class and the utility. */
  title: string;
  layers: readonly TermsLayer[];
}

/** A channel's ShapleyCAM weight w = gradient + curvature, with gradient = mean(G_k), curvature = mean(−½·H·A_k). */
export interface ChannelWeight {
  channel: number;
  gradient: number;
  curvature: number;
  weight: number;
}

// --- layout -------------------------------------------------------------------------------------------

const PAD = 10;
const GAP = 8;
const PANEL = 160;
const CHART_W = 440;
/** Channels in the chart. */
export const CHART_CHANNELS = 12;
const BIG = 2;
const SMALL = 1;
const BIG_LINE = 8 * BIG;
const SMALL_LINE = 8 * SMALL;
/** Layer heading, a caption line, a formula line, the panels, a line of panel maxima, the colour bar with its labels. */
const ROW_H = BIG_LINE + 6 + BIG_LINE + 2 + SMALL_LINE + 4 + PANEL + 3 + SMALL_LINE + 4 + 8 + 3 + SMALL_LINE + PAD;
const HEADER_H = PAD + BIG_LINE + 8;
const WIDTH = PAD + PANEL + GAP + 3 * (PANEL + GAP) + CHART_W + PAD;

/** The size of the picture for a number of target layers. */
export function termsPictureSize(layers: number): { width: number; height: number } {
  return { width: WIDTH, height: HEADER_H + layers * ROW_H };
}

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [110, 110, 110];
const AXIS: Rgb = [170, 170, 170];
/** Diverging ends (coolwarm-like): negative blue, positive red, zero white. */
const NEGATIVE: Rgb = [59, 76, 192];
const POSITIVE: Rgb = [180, 4, 38];
const GRADIENT_BAR: Rgb = [31, 119, 180];
const CURVATURE_BAR: Rgb = [255, 127, 14];
/** How much of a map panel is the map's colour (the rest is the grey picture under it). */
const MAP_OPACITY = 0.75;

// --- numbers ------------------------------------------------------------------------------------------

/** Per channel: mean_hw(G_k) and mean_hw(−½·H·A_k), and their sum (ShapleyCAM's weight). */
export function channelWeights(gradients: ArrayLike<number>, hvp: ArrayLike<number> | null, K: number, hw: number): ChannelWeight[] {
  if (gradients.length !== K * hw || (hvp && hvp.length !== K * hw)) {
    throw new RangeError(`channelWeights: expected ${K}×${hw} values, got ${gradients.length}${hvp ? ` and ${hvp.length}` : ''}`);
  }
  return Array.from({ length: K }, (_, k) => {
    let g = 0;
    let c = 0;
    for (let i = k * hw; i < (k + 1) * hw; i++) {
      g += gradients[i];
      if (hvp) c += -0.5 * hvp[i];
    }
    const gradient = g / hw;
    const curvature = c / hw;
    return { channel: k, gradient, curvature, weight: gradient + curvature };
  });
}

/** The `n` channels with the largest |w|, largest first (ties: lower channel first). */
export function topChannels(weights: readonly ChannelWeight[], n = CHART_CHANNELS): ChannelWeight[] {
  return [...weights].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight) || a.channel - b.channel).slice(0, n);
}

/** Short signed scientific notation for axis labels: 1.2e-3, -4.0e+1, 0. */
function short(v: number): string {
  return v === 0 ? '0' : v.toExponential(1);
}

const maxAbs = (values: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return m;
};

// --- drawing ------------------------------------------------------------------------------------------

const mix = (a: number, b: number, t: number) => Math.round(a + (b - a) * t);

/** A value in [−1, 1] on the diverging scale. */
function diverging(t: number): Rgb {
  const end = t < 0 ? NEGATIVE : POSITIVE;
  const u = Math.min(1, Math.abs(t));
  return [mix(255, end[0], u), mix(255, end[1], u), mix(255, end[2], u)];
}

/** The picture resized into a PANEL square, and its grey version for map panels. */
function panelPicture(picture: RgbImage): { colour: RgbImage; grey: Uint8Array; x: number; y: number; width: number; height: number } {
  const f = PANEL / Math.max(picture.width, picture.height);
  const width = Math.max(1, Math.round(picture.width * f));
  const height = Math.max(1, Math.round(picture.height * f));
  const colour = resizeImageTo(picture, width, height);
  const grey = new Uint8Array(width * height);
  for (let i = 0; i < grey.length; i++) {
    grey[i] = Math.round(0.299 * colour.data[i * 3] + 0.587 * colour.data[i * 3 + 1] + 0.114 * colour.data[i * 3 + 2]);
  }
  return { colour, grey, x: Math.floor((PANEL - width) / 2), y: Math.floor((PANEL - height) / 2), width, height };
}

/** A signed map at layer resolution, upsampled (bilinear, half-pixel centres) over the grey picture. */
function drawMap(out: RgbImage, x0: number, y0: number, map: ArrayLike<number>, h: number, w: number, scale: number, under: ReturnType<typeof panelPicture>): void {
  const up = resizeBilinear(map, h, w, under.height, under.width);
  for (let y = 0; y < under.height; y++) {
    for (let x = 0; x < under.width; x++) {
      const i = y * under.width + x;
      const c = diverging(scale > 0 ? up[i] / scale : 0);
      const g = under.grey[i];
      const o = ((y0 + under.y + y) * out.width + x0 + under.x + x) * 3;
      for (let ch = 0; ch < 3; ch++) out.data[o + ch] = mix(g, c[ch], MAP_OPACITY);
    }
  }
}

function centredText(out: RgbImage, x: number, width: number, y: number, text: string, colour: Rgb, scale: number): void {
  drawText(out, x + Math.floor((width - textWidth(text, scale)) / 2), y, text, colour, scale);
}

/** Text cut to fit a width (the 5×7 font is fixed-width). */
function fit(text: string, width: number, scale: number): string {
  const chars = Math.floor((width / scale + 1) / 6);
  return text.length <= chars ? text : `${text.slice(0, Math.max(0, chars - 3))}...`;
}

/** The colour bar under the three map panels, from −scale to +scale. */
function drawColourBar(out: RgbImage, x0: number, y0: number, width: number, scale: number): void {
  for (let x = 0; x < width; x++) fillRect(out, x0 + x, y0, 1, 8, diverging((2 * x) / (width - 1) - 1));
  const y = y0 + 8 + 3;
  drawText(out, x0, y, short(-scale), BLACK, SMALL);
  centredText(out, x0, width, y, '0', BLACK, SMALL);
  const right = short(scale);
  drawText(out, x0 + width - textWidth(right, SMALL), y, right, BLACK, SMALL);
}

/** Grouped bars per channel (gradient part, curvature part) with a tick at the weight. */
function drawChart(out: RgbImage, x0: number, y0: number, channels: readonly ChannelWeight[]): void {
  const left = x0 + 48;
  const right = x0 + CHART_W - 4;
  const top = y0 + 4;
  const bottom = y0 + PANEL - SMALL_LINE - 4;
  const values = channels.flatMap((c) => [c.gradient, c.curvature, c.weight]);
  let hi = Math.max(0, ...values);
  let lo = Math.min(0, ...values);
  if (hi === lo) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  hi += hi > 0 ? pad : 0;
  lo -= lo < 0 ? pad : 0;
  const yOf = (v: number) => Math.round(top + ((hi - v) / (hi - lo)) * (bottom - top));
  const zero = yOf(0);
  fillRect(out, left, top, 1, bottom - top + 1, AXIS);
  fillRect(out, left, zero, right - left, 1, AXIS);
  drawText(out, left - 4 - textWidth(short(hi), SMALL), top, short(hi), BLACK, SMALL);
  drawText(out, left - 4 - textWidth(short(lo), SMALL), bottom - 7, short(lo), BLACK, SMALL);
  if (zero - top > 10 && bottom - zero > 10) drawText(out, left - 4 - textWidth('0', SMALL), zero - 3, '0', BLACK, SMALL);
  const groupW = (right - left - 4) / Math.max(1, channels.length);
  const barW = Math.max(2, Math.floor(groupW * 0.3));
  const bar = (x: number, v: number, colour: Rgb) => {
    const y = yOf(v);
    fillRect(out, x, Math.min(y, zero), barW, Math.max(1, Math.abs(y - zero)), colour);
  };
  channels.forEach((c, i) => {
    const gx = left + 4 + i * groupW;
    const mid = Math.round(gx + groupW / 2);
    bar(mid - barW - 1, c.gradient, GRADIENT_BAR);
    bar(mid + 1, c.curvature, CURVATURE_BAR);
    fillRect(out, Math.round(gx + groupW * 0.1), yOf(c.weight) - 1, Math.round(groupW * 0.8), 2, BLACK);
    centredText(out, Math.round(gx), Math.round(groupW), bottom + 4, String(c.channel), BLACK, SMALL);
  });
}

function drawLegend(out: RgbImage, x: number, y: number): void {
  const item = (colour: Rgb, text: string, mark: 'box' | 'tick') => {
    if (mark === 'box') fillRect(out, x, y, 8, 8, colour);
    else fillRect(out, x, y + 3, 8, 2, colour);
    x = drawText(out, x + 11, y + 1, text, BLACK, SMALL) + 12;
  };
  item(GRADIENT_BAR, 'mean G_k', 'box');
  item(CURVATURE_BAR, 'mean -1/2 H*A_k', 'box');
  item(BLACK, 'w_k = sum', 'tick');
}

function drawLayer(out: RgbImage, y0: number, layer: TermsLayer, under: ReturnType<typeof panelPicture>, picture: RgbImage): void {
  const { K, h, w } = layer;
  const zeroNote = layer.hvpStructurallyZero ? '  H*A = 0 by structure (piecewise-linear head, logit utility)' : '';
  drawText(out, PAD, y0, fit(`${layer.layer} [${K}x${h}x${w}]${zeroNote}`, WIDTH - 2 * PAD, BIG), BLACK, BIG);
  const captionY = y0 + BIG_LINE + 6;
  const formulaY = captionY + BIG_LINE + 2;
  const panelY = formulaY + SMALL_LINE + 4;
  const columns = Array.from({ length: 4 }, (_, i) => PAD + i * (PANEL + GAP));
  const chartX = PAD + 4 * (PANEL + GAP);
  const total = Float64Array.from(layer.firstOrder, (v, i) => v + (layer.secondOrder ? layer.secondOrder[i] : 0));
  const scale = Math.max(maxAbs(layer.firstOrder), layer.secondOrder ? maxAbs(layer.secondOrder) : 0, maxAbs(total));

  const captions: [string, string][] = [
    ['input', `${picture.width}x${picture.height}`],
    ['first order', 'sum_k A*G'],
    ['second order', 'sum_k -1/2 A*H*A'],
    ['total', 'first + second'],
  ];
  captions.forEach(([caption, formula], i) => {
    centredText(out, columns[i], PANEL, captionY, caption, BLACK, BIG);
    centredText(out, columns[i], PANEL, formulaY, formula, GREY, SMALL);
  });
  drawText(out, chartX, captionY, 'channel weights', BLACK, BIG);
  drawText(out, chartX, formulaY, fit(`top ${Math.min(CHART_CHANNELS, K)} of ${K} by |w_k|, w_k = mean(G_k - 1/2 H*A_k)`, CHART_W, SMALL), GREY, SMALL);

  blit(out, under.colour, columns[0] + under.x, panelY + under.y);
  drawMap(out, columns[1], panelY, layer.firstOrder, h, w, scale, under);
  if (layer.secondOrder) drawMap(out, columns[2], panelY, layer.secondOrder, h, w, scale, under);
  if (!layer.secondOrder || layer.hvpStructurallyZero) {
    const lines = layer.secondOrder ? ['H*A = 0', 'by structure'] : ['H*A not', 'computed'];
    lines.forEach((line, j) => centredText(out, columns[2], PANEL, panelY + PANEL / 2 - BIG_LINE + j * (BIG_LINE + 4), line, BLACK, BIG));
  }
  drawMap(out, columns[3], panelY, total, h, w, scale, under);
  drawChart(out, chartX, panelY, topChannels(channelWeights(layer.gradients, layer.hvp, K, h * w)));

  const maxima = [layer.firstOrder, layer.secondOrder, total];
  maxima.forEach((map, i) => {
    if (map) centredText(out, columns[i + 1], PANEL, panelY + PANEL + 3, `max |.| ${short(maxAbs(map))}`, GREY, SMALL);
  });
  const barY = panelY + PANEL + 3 + SMALL_LINE + 4;
  drawColourBar(out, columns[1], barY, 3 * PANEL + 2 * GAP, scale);
  drawLegend(out, chartX + 48, barY);
}

/** Draws the picture (size: termsPictureSize(layers)). */
export function termsPicture(input: TermsPictureInput): RgbImage {
  if (input.layers.length === 0) throw new RangeError('termsPicture: no layers');
  for (const l of input.layers) {
    if (l.firstOrder.length !== l.h * l.w || (l.secondOrder && l.secondOrder.length !== l.h * l.w)) {
      throw new RangeError(`termsPicture: ${l.layer}: maps must have ${l.h}×${l.w} values`);
    }
  }
  const { width, height } = termsPictureSize(input.layers.length);
  const out = createImage(width, height);
  out.data.fill(255);
  drawText(out, PAD, PAD, fit(input.title, WIDTH - 2 * PAD, BIG), BLACK, BIG);
  const under = panelPicture(input.picture);
  input.layers.forEach((layer, i) => drawLayer(out, HEADER_H + i * ROW_H, layer, under, input.picture));
  return out;
}

/**
 * The picture of image `b` of an explanation made with `keepTerms` (the CLI's and the page's): the title
 * names the image, the class explained with its probability, and the utility's value.
 */
export function explanationTermsPicture(e: Explanation, b: number, picture: RgbImage, source: string, labels: readonly string[]): RgbImage {
  const c = e.classes[b];
  const title = `${source}: explaining ${labels[c] ?? c} (p=${e.probabilities[b].toFixed(3)}), ${e.target} utility ${e.utilities[b].toFixed(3)}`;
  const layers = e.layers.map((l): TermsLayer => {
    const [, K, h, w] = l.shape;
    if (!l.terms?.G || !l.firstOrder) throw new Error(`terms picture: layer ${l.layer} was explained without keepTerms`);
    const slice = (a: Float64Array, n: number) => a.subarray(b * n, (b + 1) * n);
    return {
      layer: l.layer,
      K,
      h,
      w,
      firstOrder: slice(l.firstOrder, h * w),
      secondOrder: l.secondOrder ? slice(l.secondOrder, h * w) : null,
      gradients: slice(l.terms.G, K * h * w),
      hvp: l.terms.HA ? slice(l.terms.HA, K * h * w) : null,
      hvpStructurallyZero: l.hvpStructurallyZero,
    };
  });
  return termsPicture({ picture, title, layers });
}
