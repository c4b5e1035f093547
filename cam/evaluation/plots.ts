// Small PNG charts for `eval` (grouped bars, line curves) drawn on an RgbImage with the 5×7 bitmap font
// of rendering/font.ts: axes with ticks and numbers, axis labels, a title and a legend.

import { createImage, type RgbImage } from '../rendering/image.ts';
import { drawText, fillRect, textWidth, textHeight, type Rgb } from '../rendering/font.ts';

/** matplotlib's tab10 palette. */
export const PALETTE: Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];
const TEXT = 1; // font scale of tick numbers and legend
const TITLE = 2;

export const colorOf = (i: number): Rgb => PALETTE[i % PALETTE.length];

/** Tick positions from lo to hi at a 1/2/5 × 10^k step giving about `target` intervals. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

function formatTick(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** Draws a line of thickness `t` from (x0, y0) to (x1, y1). */
export function drawLine(img: RgbImage, x0: number, y0: number, x1: number, y1: number, color: Rgb, t = 2): void {
  const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
  const h = Math.floor(t / 2);
  for (let i = 0; i <= n; i++) {
    const x = Math.round(x0 + ((x1 - x0) * i) / n);
    const y = Math.round(y0 + ((y1 - y0) * i) / n);
    fillRect(img, x - h, y - h, t, t, color);
  }
}

/** Text rotated by 90° counter-clockwise (reading bottom to top), centred on (cx, cy). */
function drawVerticalText(img: RgbImage, cx: number, cy: number, text: string, color: Rgb, scale: number): void {
  const w = textWidth(text, scale);
  const h = textHeight(scale);
  if (w === 0) return;
  const tmp = createImage(w, h);
  tmp.data.fill(255);
  drawText(tmp, 0, 0, text, BLACK, scale);
  const x0 = Math.round(cx - h / 2);
  const y0 = Math.round(cy + w / 2);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (tmp.data[(y * w + x) * 3] !== 0) continue;
      fillRect(img, x0 + y, y0 - x, 1, 1, color);
    }
  }
}

interface Frame {
  img: RgbImage;
  left: number;
  top: number;
  width: number;
  height: number;
  yLo: number;
  yHi: number;
}

const yPixel = (f: Frame, v: number) => f.top + f.height - ((v - f.yLo) / (f.yHi - f.yLo)) * f.height;

/** White canvas, title, y axis with ticks, grid and label; returns the plot frame. */
function frame(width: number, height: number, title: string, yLabel: string, yLo: number, yHi: number, legendH: number, xAxisH: number): Frame & { yTicks: number[] } {
  const img = createImage(width, height);
  img.data.fill(255);
  const yTicks = niceTicks(yLo, yHi, 5);
  yLo = Math.min(yLo, yTicks[0]);
  yHi = Math.max(yHi, yTicks[yTicks.length - 1]);
  const tickW = Math.max(...yTicks.map((t) => textWidth(formatTick(t, yTicks), TEXT)));
  const left = 12 + textHeight(TEXT) + 8 + tickW + 6;
  const top = 12 + textHeight(TITLE) + 10 + legendH;
  const f: Frame = { img, left, top, width: width - left - 16, height: height - top - xAxisH, yLo, yHi };
  drawText(img, Math.floor((width - textWidth(title, TITLE)) / 2), 12, title, BLACK, TITLE);
  for (const t of yTicks) {
    const y = Math.round(yPixel(f, t));
    fillRect(img, left, y, f.width, 1, GRID);
    fillRect(img, left - 4, y, 4, 1, BLACK);
    const s = formatTick(t, yTicks);
    drawText(img, left - 6 - textWidth(s, TEXT), y - Math.floor(textHeight(TEXT) / 2), s, BLACK, TEXT);
  }
  drawVerticalText(img, 12 + Math.floor(textHeight(TEXT) / 2), top + f.height / 2, yLabel, BLACK, TEXT);
  return { ...f, yTicks };
}

function axes(f: Frame): void {
  fillRect(f.img, f.left, f.top, 1, f.height + 1, BLACK);
  const y0 = Math.round(yPixel(f, Math.max(f.yLo, Math.min(f.yHi, 0))));
  fillRect(f.img, f.left, y0, f.width, 1, BLACK);
  fillRect(f.img, f.left, f.top + f.height, f.width, 1, BLACK);
}

/** A legend of coloured swatches in rows under the title; returns its height when `draw` is false. */
function legend(img: RgbImage | null, names: string[], x0: number, y0: number, maxW: number): number {
  const sw = 10;
  const lineH = textHeight(TEXT) + 6;
  let x = x0;
  let y = y0;
  names.forEach((name, i) => {
    const w = sw + 4 + textWidth(name, TEXT) + 14;
    if (x > x0 && x + w > x0 + maxW) {
      x = x0;
      y += lineH;
    }
    if (img) {
      fillRect(img, x, y, sw, sw - 2, colorOf(i));
      drawText(img, x + sw + 4, y, name, BLACK, TEXT);
    }
    x += w;
  });
  return y - y0 + lineH;
}

export interface BarChartOptions {
  title: string;
  /** Categories along x (e.g. metric names); '\n' starts a second label line. */
  groups: string[];
  /** One bar per series in each group; null leaves a gap. */
  series: { name: string; values: (number | null)[] }[];
  yLabel: string;
  width?: number;
  height?: number;
}

/** A grouped bar chart, the value printed over each bar. */
export function barChart(opts: BarChartOptions): RgbImage {
  const nS = Math.max(1, opts.series.length);
  const barW = Math.max(8, Math.min(28, Math.floor(400 / nS)));
  const width = opts.width ?? Math.max(640, 90 + opts.groups.length * (nS * barW + 24));
  const height = opts.height ?? 460;
  const values = opts.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const lo = Math.min(0, ...values);
  const hi = Math.max(1e-9, ...values) * 1.08;
  const legendH = legend(null, opts.series.map((s) => s.name), 0, 0, width - 40);
  const labelLines = Math.max(1, ...opts.groups.map((g) => g.split('\n').length));
  const f = frame(width, height, opts.title, opts.yLabel, lo, hi, legendH, labelLines * (textHeight(TEXT) + 3) + 12);
  legend(f.img, opts.series.map((s) => s.name), f.left, 12 + textHeight(TITLE) + 8, f.width);
  const groupW = f.width / Math.max(1, opts.groups.length);
  const bw = Math.max(2, Math.min(barW, Math.floor((groupW - 12) / nS)));
  opts.groups.forEach((g, gi) => {
    const gx = f.left + gi * groupW;
    const x0 = Math.round(gx + (groupW - bw * nS) / 2);
    opts.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const ya = Math.round(yPixel(f, 0));
      const yb = Math.round(yPixel(f, v));
      const x = x0 + si * bw;
      fillRect(f.img, x, Math.min(ya, yb), Math.max(1, bw - 1), Math.max(1, Math.abs(yb - ya)), colorOf(si));
      const label = Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(1);
      if (textWidth(label, TEXT) <= bw + 4) {
        drawText(f.img, x + Math.floor((bw - textWidth(label, TEXT)) / 2), v >= 0 ? yb - textHeight(TEXT) - 2 : yb + 2, label, BLACK, TEXT);
      }
    });
    g.split('\n').forEach((line, li) => {
      drawText(f.img, Math.round(gx + (groupW - textWidth(line, TEXT)) / 2), f.top + f.height + 6 + li * (textHeight(TEXT) + 3), line, BLACK, TEXT);
    });
  });
  axes(f);
  return f.img;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: { name: string; xs: number[]; ys: number[] }[];
  xRange?: [number, number];
  yRange?: [number, number];
  width?: number;
  height?: number;
}

/** Line curves with markers, a legend and labelled axes. */
export function lineChart(opts: LineChartOptions): RgbImage {
  const width = opts.width ?? 720;
  const height = opts.height ?? 480;
  const xs = opts.series.flatMap((s) => s.xs);
  const ys = opts.series.flatMap((s) => s.ys).filter(Number.isFinite);
  const [xLo, xHi] = opts.xRange ?? [Math.min(...xs), Math.max(...xs)];
  const [yLo0, yHi0] = opts.yRange ?? [Math.min(0, ...ys), Math.max(1e-9, ...ys)];
  const legendH = legend(null, opts.series.map((s) => s.name), 0, 0, width - 40);
  const xAxisH = 2 * textHeight(TEXT) + 26;
  const f = frame(width, height, opts.title, opts.yLabel, yLo0, yHi0, legendH, xAxisH);
  legend(f.img, opts.series.map((s) => s.name), f.left, 12 + textHeight(TITLE) + 8, f.width);
  const xPixel = (v: number) => f.left + ((v - xLo) / (xHi - xLo || 1)) * f.width;
  const xTicks = niceTicks(xLo, xHi, 5);
  for (const t of xTicks) {
    const x = Math.round(xPixel(t));
    fillRect(f.img, x, f.top, 1, f.height, GRID);
    fillRect(f.img, x, f.top + f.height, 1, 4, BLACK);
    const s = formatTick(t, xTicks);
    drawText(f.img, x - Math.floor(textWidth(s, TEXT) / 2), f.top + f.height + 7, s, BLACK, TEXT);
  }
  drawText(f.img, Math.round(f.left + (f.width - textWidth(opts.xLabel, TEXT)) / 2), f.top + f.height + 12 + textHeight(TEXT) + 4, opts.xLabel, BLACK, TEXT);
  axes(f);
  opts.series.forEach((s, si) => {
    const c = colorOf(si);
    for (let i = 0; i < s.xs.length; i++) {
      const x = xPixel(s.xs[i]);
      const y = yPixel(f, s.ys[i]);
      if (i > 0) drawLine(f.img, xPixel(s.xs[i - 1]), yPixel(f, s.ys[i - 1]), x, y, c, 2);
      fillRect(f.img, Math.round(x) - 2, Math.round(y) - 2, 5, 5, c);
    }
  });
  return f.img;
}
