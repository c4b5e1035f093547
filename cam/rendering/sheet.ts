/**
 * Comparison sheets (image × CAM method grid), labelled with the bitmap font of font.ts, so no font files
 * or canvas library are needed.
 */
import { LINE_HEIGHT, drawText, fillRect, textHeight, textWidth, type Rgb } from './font.ts';
import { createImage, type RgbImage } from './image.ts';

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
