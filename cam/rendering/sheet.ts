/**
 * Comparison sheets (image × CAM method grid) with a tiny built-in 5×7 bitmap
 * font, so no font files or canvas library are needed.
 */
import { createImage, type RgbImage } from './image.ts';

export type Rgb = [number, number, number];

// 5×7 glyphs for ASCII 32..126: 7 rows of 5 bits, '1' = ink, leftmost column first.
const GLYPH_ROWS: Record<string, string> = {
  ' ': '00000 00000 00000 00000 00000 00000 00000',
  '!': '00100 00100 00100 00100 00100 00000 00100',
  '"': '01010 01010 01010 00000 00000 00000 00000',
  '#': '01010 01010 11111 01010 11111 01010 01010',
  '$': '00100 01111 10100 01110 00101 11110 00100',
  '%': '11000 11001 00010 00100 01000 10011 00011',
  '&': '01100 10010 10100 01000 10101 10010 01101',
  "'": '00100 00100 01000 00000 00000 00000 00000',
  '(': '00010 00100 01000 01000 01000 00100 00010',
  ')': '01000 00100 00010 00010 00010 00100 01000',
  '*': '00000 00100 10101 01110 10101 00100 00000',
  '+': '00000 00100 00100 11111 00100 00100 00000',
  ',': '00000 00000 00000 00000 01100 00100 01000',
  '-': '00000 00000 00000 11111 00000 00000 00000',
  '.': '00000 00000 00000 00000 00000 01100 01100',
  '/': '00000 00001 00010 00100 01000 10000 00000',
  '0': '01110 10001 10011 10101 11001 10001 01110',
  '1': '00100 01100 00100 00100 00100 00100 01110',
  '2': '01110 10001 00001 00010 00100 01000 11111',
  '3': '11111 00010 00100 00010 00001 10001 01110',
  '4': '00010 00110 01010 10010 11111 00010 00010',
  '5': '11111 10000 11110 00001 00001 10001 01110',
  '6': '00110 01000 10000 11110 10001 10001 01110',
  '7': '11111 00001 00010 00100 01000 01000 01000',
  '8': '01110 10001 10001 01110 10001 10001 01110',
  '9': '01110 10001 10001 01111 00001 00010 01100',
  ':': '00000 01100 01100 00000 01100 01100 00000',
  ';': '00000 01100 01100 00000 01100 00100 01000',
  '<': '00010 00100 01000 10000 01000 00100 00010',
  '=': '00000 00000 11111 00000 11111 00000 00000',
  '>': '01000 00100 00010 00001 00010 00100 01000',
  '?': '01110 10001 00001 00010 00100 00000 00100',
  '@': '01110 10001 00001 01101 10101 10101 01110',
  A: '01110 10001 10001 11111 10001 10001 10001',
  B: '11110 10001 10001 11110 10001 10001 11110',
  C: '01110 10001 10000 10000 10000 10001 01110',
  D: '11100 10010 10001 10001 10001 10010 11100',
  E: '11111 10000 10000 11110 10000 10000 11111',
  F: '11111 10000 10000 11110 10000 10000 10000',
  G: '01110 10001 10000 10111 10001 10001 01111',
  H: '10001 10001 10001 11111 10001 10001 10001',
  I: '01110 00100 00100 00100 00100 00100 01110',
  J: '00111 00010 00010 00010 00010 10010 01100',
  K: '10001 10010 10100 11000 10100 10010 10001',
  L: '10000 10000 10000 10000 10000 10000 11111',
  M: '10001 11011 10101 10101 10001 10001 10001',
  N: '10001 10001 11001 10101 10011 10001 10001',
  O: '01110 10001 10001 10001 10001 10001 01110',
  P: '11110 10001 10001 11110 10000 10000 10000',
  Q: '01110 10001 10001 10001 10101 10010 01101',
  R: '11110 10001 10001 11110 10100 10010 10001',
  S: '01111 10000 10000 01110 00001 00001 11110',
  T: '11111 00100 00100 00100 00100 00100 00100',
  U: '10001 10001 10001 10001 10001 10001 01110',
  V: '10001 10001 10001 10001 10001 01010 00100',
  W: '10001 10001 10001 10101 10101 10101 01010',
  X: '10001 10001 01010 00100 01010 10001 10001',
  Y: '10001 10001 10001 01010 00100 00100 00100',
  Z: '11111 00001 00010 00100 01000 10000 11111',
  '[': '01110 01000 01000 01000 01000 01000 01110',
  '\\': '00000 10000 01000 00100 00010 00001 00000',
  ']': '01110 00010 00010 00010 00010 00010 01110',
  '^': '00100 01010 10001 00000 00000 00000 00000',
  _: '00000 00000 00000 00000 00000 00000 11111',
  '`': '01000 00100 00010 00000 00000 00000 00000',
  a: '00000 00000 01110 00001 01111 10001 01111',
  b: '10000 10000 10110 11001 10001 10001 11110',
  c: '00000 00000 01110 10000 10000 10001 01110',
  d: '00001 00001 01101 10011 10001 10001 01111',
  e: '00000 00000 01110 10001 11111 10000 01110',
  f: '00110 01001 01000 11100 01000 01000 01000',
  g: '00000 01111 10001 10001 01111 00001 01110',
  h: '10000 10000 10110 11001 10001 10001 10001',
  i: '00100 00000 01100 00100 00100 00100 01110',
  j: '00010 00000 00110 00010 00010 10010 01100',
  k: '10000 10000 10010 10100 11000 10100 10010',
  l: '01100 00100 00100 00100 00100 00100 01110',
  m: '00000 00000 11010 10101 10101 10001 10001',
  n: '00000 00000 10110 11001 10001 10001 10001',
  o: '00000 00000 01110 10001 10001 10001 01110',
  p: '00000 00000 11110 10001 11110 10000 10000',
  q: '00000 00000 01101 10011 01111 00001 00001',
  r: '00000 00000 10110 11001 10000 10000 10000',
  s: '00000 00000 01110 10000 01110 00001 11110',
  t: '01000 01000 11100 01000 01000 01001 00110',
  u: '00000 00000 10001 10001 10001 10011 01101',
  v: '00000 00000 10001 10001 10001 01010 00100',
  w: '00000 00000 10001 10001 10101 10101 01010',
  x: '00000 00000 10001 01010 00100 01010 10001',
  y: '00000 00000 10001 10001 01111 00001 01110',
  z: '00000 00000 11111 00010 00100 01000 11111',
  '{': '00010 00100 00100 01000 00100 00100 00010',
  '|': '00100 00100 00100 00100 00100 00100 00100',
  '}': '01000 00100 00100 00010 00100 00100 01000',
  '~': '00000 00000 01000 10101 00010 00000 00000',
};

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character (glyph + 1 px gap), before scaling. */
export const GLYPH_ADVANCE = 6;
/** Line height (glyph + 1 px gap), before scaling. */
export const LINE_HEIGHT = 8;

/** code point (32..126) → 7 row bitmasks, bit 4 = leftmost column. */
const FONT: Map<number, Uint8Array> = (() => {
  const m = new Map<number, Uint8Array>();
  for (const [ch, rows] of Object.entries(GLYPH_ROWS)) {
    const parts = rows.split(' ');
    if (parts.length !== GLYPH_HEIGHT || parts.some((p) => !/^[01]{5}$/.test(p))) {
      throw new Error(`font: bad glyph for ${JSON.stringify(ch)}`);
    }
    m.set(ch.charCodeAt(0), Uint8Array.from(parts, (p) => parseInt(p, 2)));
  }
  return m;
})();

/** The 7 row bitmasks of a character; characters outside ASCII 32..126 render as '?'. */
export function glyph(ch: string): Uint8Array {
  return FONT.get(ch.charCodeAt(0)) ?? FONT.get(63)!;
}

/** Width in pixels of `text` drawn at `scale` (no trailing gap). */
export function textWidth(text: string, scale = 2): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * GLYPH_ADVANCE - 1) * scale;
}

/** Height in pixels of one line of text at `scale` (glyph only, no gap). */
export function textHeight(scale = 2): number {
  return GLYPH_HEIGHT * scale;
}

/**
 * Draws one line of `text` with its top-left corner at (x, y), each font
 * pixel as a `scale`×`scale` block. Pixels outside the image are clipped.
 * Returns the x just past the drawn text.
 */
export function drawText(img: RgbImage, x: number, y: number, text: string, color: Rgb = [0, 0, 0], scale = 2): number {
  const s = Math.max(1, Math.trunc(scale));
  x = Math.round(x);
  y = Math.round(y);
  let cx = x;
  for (const ch of text) {
    const rows = glyph(ch);
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      const bits = rows[gy];
      if (bits === 0) continue;
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        if (((bits >> (GLYPH_WIDTH - 1 - gx)) & 1) === 0) continue;
        fillRect(img, cx + gx * s, y + gy * s, s, s, color);
      }
    }
    cx += GLYPH_ADVANCE * s;
  }
  return cx;
}

/** Fills a rectangle, clipped to the image. */
export function fillRect(img: RgbImage, x: number, y: number, w: number, h: number, color: Rgb): void {
  const x0 = Math.max(0, x);
  const y0 = Math.max(0, y);
  const x1 = Math.min(img.width, x + w);
  const y1 = Math.min(img.height, y + h);
  for (let yy = y0; yy < y1; yy++) {
    for (let xx = x0; xx < x1; xx++) {
      const o = (yy * img.width + xx) * 3;
      img.data[o] = color[0];
      img.data[o + 1] = color[1];
      img.data[o + 2] = color[2];
    }
  }
}

/** Nearest-neighbour integer upscaling. */
export function upscaleNearest(img: RgbImage, factor: number): RgbImage {
  const f = Math.trunc(factor);
  if (f < 1) throw new RangeError(`upscaleNearest: bad factor ${factor}`);
  const out = createImage(img.width * f, img.height * f);
  for (let y = 0; y < out.height; y++) {
    const sy = Math.floor(y / f);
    for (let x = 0; x < out.width; x++) {
      const s = (sy * img.width + Math.floor(x / f)) * 3;
      const o = (y * out.width + x) * 3;
      out.data[o] = img.data[s];
      out.data[o + 1] = img.data[s + 1];
      out.data[o + 2] = img.data[s + 2];
    }
  }
  return out;
}

/** Copies `src` into `dst` with its top-left corner at (x, y), clipped. */
export function blit(dst: RgbImage, src: RgbImage, x: number, y: number): void {
  for (let sy = 0; sy < src.height; sy++) {
    const dy = y + sy;
    if (dy < 0 || dy >= dst.height) continue;
    for (let sx = 0; sx < src.width; sx++) {
      const dx = x + sx;
      if (dx < 0 || dx >= dst.width) continue;
      const s = (sy * src.width + sx) * 3;
      const o = (dy * dst.width + dx) * 3;
      dst.data[o] = src.data[s];
      dst.data[o + 1] = src.data[s + 1];
      dst.data[o + 2] = src.data[s + 2];
    }
  }
}

export interface SheetRow {
  /** The original (input) image, shown in the first column. */
  image: RgbImage;
  /** Drawn under the original image, e.g. "cat 0.93". */
  label: string;
  /** One cell per method column (e.g. the CAM overlay); `title` is drawn under it. */
  cells: { title?: string; image: RgbImage }[];
}

export interface SheetOptions {
  /** Integer nearest-neighbour upscaling of every image. Default: the smallest factor that makes every tile ≥ 128 px on its shorter side (at least 1). */
  scale?: number;
  /** Text scale of the 5×7 font (default 2). */
  textScale?: number;
  /** Gap in pixels around tiles (default 8). */
  padding?: number;
}

const BLACK: Rgb = [0, 0, 0];

/**
 * A grid with one row per input image and one column per method; column 0 is
 * the original image with `row.label` under it, column j ≥ 1 shows
 * `row.cells[j-1]` (with its optional title under it). `columnTitles` are
 * drawn on top: either one per column (the first for the original-image
 * column) or one per method column (the original column then gets none).
 * White background, black text; columns widen to fit their titles.
 */
export function comparisonSheet(rows: SheetRow[], columnTitles: string[], opts: SheetOptions = {}): RgbImage {
  if (rows.length === 0) throw new RangeError('comparisonSheet: no rows');
  const nCells = Math.max(...rows.map((r) => r.cells.length));
  const nCols = 1 + nCells;
  let titles: string[];
  if (columnTitles.length === nCols) titles = columnTitles;
  else if (columnTitles.length === nCells) titles = ['', ...columnTitles];
  else throw new RangeError(`comparisonSheet: ${columnTitles.length} column titles for ${nCols} columns`);

  const all = rows.flatMap((r) => [r.image, ...r.cells.map((c) => c.image)]);
  let scale = opts.scale;
  if (scale === undefined) {
    const minSide = Math.min(...all.map((im) => Math.min(im.width, im.height)));
    scale = Math.max(1, Math.ceil(128 / Math.max(1, minSide)));
  }
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`comparisonSheet: scale must be a positive integer, got ${scale}`);
  const ts = opts.textScale ?? 2;
  const pad = opts.padding ?? 8;
  const lineH = LINE_HEIGHT * ts;
  const gap = Math.floor(pad / 2);

  // Column widths: the widest tile or text in the column.
  const colW = new Array<number>(nCols).fill(0);
  for (let c = 0; c < nCols; c++) colW[c] = textWidth(titles[c], ts);
  let tileH = 0;
  for (const r of rows) {
    colW[0] = Math.max(colW[0], r.image.width * scale, textWidth(r.label, ts));
    tileH = Math.max(tileH, r.image.height * scale);
    r.cells.forEach((cell, j) => {
      colW[j + 1] = Math.max(colW[j + 1], cell.image.width * scale!, textWidth(cell.title ?? '', ts));
      tileH = Math.max(tileH, cell.image.height * scale!);
    });
  }
  const hasTitles = titles.some((t) => t.length > 0);
  const titleH = hasTitles ? lineH : 0;
  const rowH = tileH + gap + lineH; // tile, small gap, caption line
  const width = pad + colW.reduce((s, w) => s + w + pad, 0);
  const height = pad + (hasTitles ? titleH + gap : 0) + rows.length * (rowH + pad);

  const sheet = createImage(width, height);
  sheet.data.fill(255);

  const colX: number[] = [];
  let x = pad;
  for (let c = 0; c < nCols; c++) {
    colX.push(x);
    x += colW[c] + pad;
  }
  for (let c = 0; c < nCols; c++) {
    const t = titles[c];
    if (t) drawText(sheet, colX[c] + Math.floor((colW[c] - textWidth(t, ts)) / 2), pad, t, BLACK, ts);
  }
  let y = pad + (hasTitles ? titleH + gap : 0);
  for (const r of rows) {
    const put = (c: number, im: RgbImage, caption: string | undefined) => {
      const big = scale === 1 ? im : upscaleNearest(im, scale!);
      blit(sheet, big, colX[c] + Math.floor((colW[c] - big.width) / 2), y);
      if (caption) {
        drawText(sheet, colX[c] + Math.floor((colW[c] - textWidth(caption, ts)) / 2), y + tileH + gap, caption, BLACK, ts);
      }
    };
    put(0, r.image, r.label);
    r.cells.forEach((cell, j) => put(j + 1, cell.image, cell.title));
    y += rowH + pad;
  }
  return sheet;
}
