import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { centerCrop, preprocess, resizeImage, toNormalizedCHW, type RgbImage } from '../cam/rendering/image.ts';
import { DEFAULT_MAX_PIXELS, decodeImage, decodeImageBytes, encodePng, headerSize, ImageError, PixelLimitError, writePng } from '../cam/rendering/codec.ts';
import { aggregateLayers, minMaxNormalize, relu, resizeBilinear, scaleCamImage } from '../cam/algorithm/postprocess.ts';
import { JET_LUT_RGB, jetColormap, jetLutEntry, quantizeMask, showCamOnImage } from '../cam/rendering/colormap.ts';
import { comparisonSheet } from '../cam/rendering/sheet.ts';
import { drawText, textWidth } from '../cam/rendering/font.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const IMAGES = join(FIXTURES, 'images');

function img(width: number, height: number, fill: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = fill(x, y, c);
  return { width, height, data };
}

// --- minimal PNG writer for formats pngjs cannot produce (palette, 16-bit, tRNS) ---
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const v of b) c = CRC_TABLE[(c ^ v) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
/** rows: raw (unfiltered) scanline bytes per row. */
function makePng(width: number, height: number, bitDepth: number, colorType: number, rows: number[][], extra: [string, number[]][] = []): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const raw = rows.flatMap((r) => [0, ...r]);
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...extra.map(([t, d]) => chunk(t, Uint8Array.from(d))),
    chunk('IDAT', deflateSync(Uint8Array.from(raw))),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Ref {
  jet_lut_rgb: number[];
  resize: { h: number; w: number; H: number; W: number; src: number[]; cv2: number[]; torch_false: number[]; torch_true: number[] }[];
  show_cam: { h: number; w: number; img: number[]; mask: number[]; w05: number[]; w03: number[] };
  scale_cam: { H: number; W: number; layers: { h: number; w: number; maps: number[][] }[]; scaled: number[][][]; aggregated: number[][] };
  center_crop: { src_w: number; src_h: number; src: number[]; cases: { h: number; w: number; out: number[] }[] };
  pil: {
    mean: number[];
    std: number[];
    cases: {
      name: string; size: number; crop: number | [number, number];
      resized_w: number; resized_h: number; resized: number[];
      cropped_w: number; cropped_h: number; cropped: number[];
      normalized?: number[]; src_w?: number; src_h?: number; src?: number[];
    }[];
  };
}
const ref: Ref = JSON.parse(readFileSync(join(FIXTURES, 'postprocess_reference.json'), 'utf8'));

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThanOrEqual(tol);
}

describe('decode / encode', () => {
  it('PNG round trip (encodePng → decodeImageBytes, writePng → decodeImage)', async () => {
    const a = img(7, 5, (x, y, c) => (x * 37 + y * 11 + c * 101) & 255);
    const back = decodeImageBytes(encodePng(a), 'mem.png');
    expect(back.width).toBe(7);
    expect(back.height).toBe(5);
    expect(Array.from(back.data)).toEqual(Array.from(a.data));
    const p = join(mkdtempSync(join(tmpdir(), 'camimg-')), 'rt.png');
    await writePng(p, a);
    expect(Array.from((await decodeImage(p)).data)).toEqual(Array.from(a.data));
  });

  it('decodes real CIFAR-10 PNGs from test/fixtures/images', async () => {
    for (const name of ['cat_0000.png', 'dog_0000.png', 'ship_0000.png']) {
      const im = await decodeImage(join(IMAGES, name));
      expect([im.width, im.height, im.data.length]).toEqual([32, 32, 32 * 32 * 3]);
      expect(new Set(im.data).size).toBeGreaterThan(50);
    }
  });

  it('grayscale, gray+alpha, palette, 16-bit, tRNS and 1-bit PNGs become RGB', () => {
    // 8-bit grey
    let d = decodeImageBytes(makePng(2, 1, 8, 0, [[10, 200]]), 'g.png');
    expect(Array.from(d.data)).toEqual([10, 10, 10, 200, 200, 200]);
    // grey + alpha: alpha dropped
    d = decodeImageBytes(makePng(2, 1, 8, 4, [[10, 0, 200, 255]]), 'ga.png');
    expect(Array.from(d.data)).toEqual([10, 10, 10, 200, 200, 200]);
    // palette
    d = decodeImageBytes(makePng(3, 1, 8, 3, [[2, 0, 1]], [['PLTE', [255, 0, 0, 0, 255, 0, 1, 2, 3]], ['tRNS', [0, 128, 255]]]), 'p.png');
    expect(Array.from(d.data)).toEqual([1, 2, 3, 255, 0, 0, 0, 255, 0]);
    // 16-bit RGB → high byte
    d = decodeImageBytes(makePng(1, 1, 16, 2, [[0x12, 0x34, 0xff, 0xff, 0x00, 0x80]]), 'rgb16.png');
    expect(Array.from(d.data)).toEqual([0x12, 0xff, 0x00]);
    // RGBA with alpha 0 keeps its colour
    d = decodeImageBytes(makePng(1, 1, 8, 6, [[9, 8, 7, 0]]), 'rgba.png');
    expect(Array.from(d.data)).toEqual([9, 8, 7]);
    // tRNS colour key on RGB: colour kept (pngjs alone would zero it)
    d = decodeImageBytes(makePng(1, 1, 8, 2, [[9, 8, 7]], [['tRNS', [0, 9, 0, 8, 0, 7]]]), 'trns.png');
    expect(Array.from(d.data)).toEqual([9, 8, 7]);
    // 1-bit grey: 0 / 255
    d = decodeImageBytes(makePng(3, 1, 1, 0, [[0b10100000]]), 'g1.png');
    expect(Array.from(d.data)).toEqual([255, 255, 255, 0, 0, 0, 255, 255, 255]);
  });

  it('JPEG made with jpeg-js decodes to the right size and nearly the same colours', () => {
    const w = 16, h = 12;
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < w * h; i++) {
      rgba[i * 4] = 200;
      rgba[i * 4 + 1] = 100;
      rgba[i * 4 + 2] = 50;
      rgba[i * 4 + 3] = 255;
    }
    const enc = jpeg.encode({ width: w, height: h, data: rgba }, 95);
    const d = decodeImageBytes(new Uint8Array(enc.data), 'x.jpg');
    expect([d.width, d.height]).toEqual([w, h]);
    for (let i = 0; i < w * h; i++) {
      expect(Math.abs(d.data[i * 3] - 200)).toBeLessThanOrEqual(4);
      expect(Math.abs(d.data[i * 3 + 1] - 100)).toBeLessThanOrEqual(4);
      expect(Math.abs(d.data[i * 3 + 2] - 50)).toBeLessThanOrEqual(4);
    }
  });

  it('corrupt / unsupported files throw a one-line ImageError naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'camimg-'));
    const good = readFileSync(join(IMAGES, 'cat_0000.png'));
    const cases: [string, Uint8Array][] = [
      ['truncated.png', good.subarray(0, Math.floor(good.length / 2))],
      ['garbage.png', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5])],
      ['notes.txt', new TextEncoder().encode('hello, not an image')],
      ['empty.jpg', new Uint8Array(0)],
      ['bad.jpg', Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3])],
    ];
    for (const [name, bytes] of cases) {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      const err = await decodeImage(p).then(() => null, (e: unknown) => e);
      expect(err, name).toBeInstanceOf(ImageError);
      expect((err as Error).message).toContain(p);
      expect((err as Error).message).not.toContain('\n');
    }
    await expect(decodeImage(join(dir, 'missing.png'))).rejects.toThrow(ImageError);
  });
});

describe('the pixel limit', () => {
  it('reads the size from PNG and JPEG headers without decoding', () => {
    expect(headerSize(makePng(3, 2, 8, 0, [[1, 2, 3], [4, 5, 6]]))).toEqual({ width: 3, height: 2 });
    const enc = jpeg.encode({ width: 37, height: 5, data: new Uint8Array(37 * 5 * 4) }, 90);
    expect(headerSize(new Uint8Array(enc.data))).toEqual({ width: 37, height: 5 });
    expect(headerSize(new TextEncoder().encode('not an image'))).toBeNull();
    expect(headerSize(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0, 2]))).toBeNull(); // a scan before any frame header
  });

  it("refuses more pixels than the limit before decoding (Pillow's 89,478,485 by default)", () => {
    const png = makePng(3, 2, 8, 0, [[1, 2, 3], [4, 5, 6]]);
    expect(() => decodeImageBytes(png, 'a.png', { maxPixels: 5 })).toThrow(PixelLimitError);
    expect(decodeImageBytes(png, 'a.png', { maxPixels: 6 }).data.length).toBe(18);
    expect(DEFAULT_MAX_PIXELS).toBe(89_478_485);
    // Only the header is valid: the limit is checked before the decoder could allocate anything.
    expect(() => decodeImageBytes(makePng(9460, 9460, 8, 0, [[0]]), 'bomb.png')).toThrow(
      /^bomb\.png: 9460×9460 = 89,491,600 pixels, over the limit of 89,478,485$/,
    );
    const jpegBomb = Uint8Array.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xff, 0xff, 0xff, 0xff, 3]);
    expect(() => decodeImageBytes(jpegBomb, 'bomb.jpg')).toThrow(/bomb\.jpg: 65535×65535 = 4,294,836,225 pixels/);
  });

  it('decodes JPEG straight to packed RGB, equal to the colour channels of an RGBA decode', () => {
    const w = 9;
    const h = 7;
    for (const gray of [false, true]) {
      const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? 255 : gray ? Math.floor(i / 4) * 3 : (i * 37) % 256));
      const bytes = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 90).data);
      const ref = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
      const got = decodeImageBytes(bytes, 'x.jpg');
      expect(Array.from(got.data)).toEqual(Array.from(ref.data).filter((_, i) => i % 4 !== 3));
    }
  });
});

describe('preprocessing', () => {
  it('toNormalizedCHW matches (u8/255 - mean)/std by hand, CHW order', () => {
    const a: RgbImage = { width: 2, height: 1, data: Uint8Array.from([255, 0, 128, 0, 255, 64]) };
    const out = toNormalizedCHW(a, [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]);
    const expected = [
      (1 - 0.5) / 0.25, (0 - 0.5) / 0.25, // R of pixel 0, 1
      (0 - 0.4) / 0.2, (1 - 0.4) / 0.2, // G
      (128 / 255 - 0.3) / 0.1, (64 / 255 - 0.3) / 0.1, // B
    ];
    expectClose(out, expected, 1e-5);
    expect(out[0]).toBe(2);
    expect(out[3]).toBeCloseTo(3, 5);
  });

  it('resize / centerCrop shapes follow torchvision', () => {
    const a = img(23, 17, () => 0);
    const r = resizeImage(a, 10); // shorter side (17) → 10, longer int(10*23/17) = 13
    expect([r.width, r.height]).toEqual([13, 10]);
    const t = resizeImage(img(17, 23, () => 0), 10);
    expect([t.width, t.height]).toEqual([10, 13]);
    expect([resizeImage(a, 40).width, resizeImage(a, 40).height]).toEqual([54, 40]);
    const c = centerCrop(a, 8, 9);
    expect([c.width, c.height]).toEqual([9, 8]);
    const p = centerCrop(a, 20, 30); // larger than the image: zero padding
    expect([p.width, p.height]).toEqual([30, 20]);
    const pp = preprocess(img(32, 32, () => 128), { resize: 40, crop: [36, 30], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(pp.shape).toEqual([3, 36, 30]);
    expect(pp.data.length).toBe(3 * 36 * 30);
    expect(preprocess(img(5, 4, () => 0), { crop: 2, mean: [0, 0, 0], std: [1, 1, 1] }).shape).toEqual([3, 2, 2]);
  });

  it('centerCrop: top = round((H - h) / 2) with half-to-even, against torchvision', () => {
    const cc = ref.center_crop;
    const src: RgbImage = { width: cc.src_w, height: cc.src_h, data: Uint8Array.from(cc.src) };
    for (const k of cc.cases) {
      const out = centerCrop(src, k.h, k.w);
      expect(Array.from(out.data), `${k.h}x${k.w}`).toEqual(k.out);
    }
  });

  it('Resize + CenterCrop + ToTensor + Normalize match torchvision/Pillow byte for byte', async () => {
    const cat = await decodeImage(join(IMAGES, 'cat_0000.png'));
    for (const k of ref.pil.cases) {
      const src = k.src ? { width: k.src_w!, height: k.src_h!, data: Uint8Array.from(k.src) } : cat;
      const r = resizeImage(src, k.size);
      const label = `${k.name} resize ${k.size}`;
      expect([r.width, r.height], label).toEqual([k.resized_w, k.resized_h]);
      expect(Array.from(r.data), label).toEqual(k.resized);
      const [ch, cw] = typeof k.crop === 'number' ? [k.crop, k.crop] : k.crop;
      const c = centerCrop(r, ch, cw);
      expect(Array.from(c.data), label).toEqual(k.cropped);
      if (k.normalized) {
        const pp = preprocess(src, { resize: k.size, crop: k.crop, mean: ref.pil.mean, std: ref.pil.std });
        expect(pp.shape).toEqual([3, k.cropped_h, k.cropped_w]);
        expect(Array.from(pp.data), label).toEqual(k.normalized.map(Math.fround));
      }
    }
  });
});

describe('postprocess', () => {
  // src = [[1, 2], [3, 4]] = 1 + x + 2y, so each output is 1 + sx + 2*sy at its source coordinate.
  const src = Float64Array.from([1, 2, 3, 4]);

  it('resizeBilinear 2x2 → 4x4, half-pixel (cv2 INTER_LINEAR)', () => {
    // sx = (o + 0.5) * 2/4 - 0.5 = -0.25 (→ clamped 0), 0.25, 0.75, 1.25 (→ last pixel, 1)
    const c = [0, 0.25, 0.75, 1];
    const expected: number[] = [];
    for (const sy of c) for (const sx of c) expected.push(1 + sx + 2 * sy);
    expect(expected.slice(0, 4)).toEqual([1, 1.25, 1.75, 2]);
    expectClose(resizeBilinear(src, 2, 2, 4, 4), expected, 1e-12);
    // non-linear: [[0, 4], [0, 0]]; out(1, 1) at (0.25, 0.25) = 4 * 0.25 * 0.75
    const spike = resizeBilinear([0, 4, 0, 0], 2, 2, 4, 4);
    expect(spike[1 * 4 + 1]).toBeCloseTo(0.75, 12);
    expect(spike[0 * 4 + 3]).toBe(4);
  });

  it('resizeBilinear 2x2 → 4x4, align_corners=True', () => {
    // sx = o * (2 - 1) / (4 - 1) = 0, 1/3, 2/3, 1
    const c = [0, 1 / 3, 2 / 3, 1];
    const expected: number[] = [];
    for (const sy of c) for (const sx of c) expected.push(1 + sx + 2 * sy);
    expectClose(resizeBilinear(src, 2, 2, 4, 4, true), expected, 1e-12);
    expect(resizeBilinear([0, 4, 0, 0], 2, 2, 4, 4, true)[1 * 4 + 1]).toBeCloseTo(4 * (1 / 3) * (2 / 3), 12);
  });

  it('resizeBilinear matches cv2.resize and torch.interpolate (fixture)', () => {
    for (const k of ref.resize) {
      const s = Float32Array.from(k.src);
      expectClose(resizeBilinear(s, k.h, k.w, k.H, k.W), k.cv2, 2e-6);
      expectClose(resizeBilinear(s, k.h, k.w, k.H, k.W), k.torch_false, 2e-6);
      expectClose(resizeBilinear(s, k.h, k.w, k.H, k.W, true), k.torch_true, 2e-6);
    }
  });

  it('minMaxNormalize is (x - min) / (max(x - min) + eps) and does not modify its input', () => {
    const m = Float64Array.from([2, 4, 3, 6]);
    const out = minMaxNormalize(m);
    expectClose(out, [0, 2 / (4 + 1e-7), 1 / (4 + 1e-7), 4 / (4 + 1e-7)], 1e-15);
    expect(Array.from(m)).toEqual([2, 4, 3, 6]);
    expect(Array.from(minMaxNormalize([5, 5, 5]))).toEqual([0, 0, 0]);
    expect(minMaxNormalize([0, 1], 1)[1]).toBe(0.5);
    expect(Array.from(relu([-1, 0, 2.5]))).toEqual([0, 0, 2.5]);
  });

  it('scaleCamImage + aggregateLayers match pytorch-grad-cam (fixture)', () => {
    const sc = ref.scale_cam;
    const mine = sc.layers.map((l) => scaleCamImage(l.maps, l.h, l.w, sc.H, sc.W));
    mine.forEach((layer, li) => layer.forEach((m, b) => expectClose(m, sc.scaled[li][b], 2e-6)));
    const agg = aggregateLayers(mine);
    agg.forEach((m, b) => expectClose(m, sc.aggregated[b], 2e-6));
    // by hand: relu, mean over layers, minmax
    const hand = aggregateLayers([[Float64Array.from([0, 1, -1, 0.5])], [Float64Array.from([1, 1, 0, -2])]]);
    expectClose(hand[0], [0.5 / (1 + 1e-7), 1 / (1 + 1e-7), 0, 0.25 / (1 + 1e-7)], 1e-12);
  });
});

describe('colormap', () => {
  it('jet LUT key points (OpenCV COLORMAP_JET, RGB order)', () => {
    expect(jetLutEntry(0)).toEqual([0, 0, 128]); // BGR (128, 0, 0)
    expect(jetLutEntry(255)).toEqual([128, 0, 0]);
    // key points land on x.5 before cvRound; float32 noise decides: 255*g(32) = 0.5 → 0, 255*r(96) = 1.5 → 2, 255*b(159) ≈ 1.5 → 1
    expect(jetLutEntry(32)).toEqual([0, 0, 255]);
    expect(jetLutEntry(33)).toEqual([0, 4, 255]);
    expect(jetLutEntry(159)).toEqual([254, 255, 1]);
    expect(jetLutEntry(96)).toEqual([2, 255, 254]);
    expect(jetLutEntry(127)).toEqual([126, 255, 130]);
    expect(jetLutEntry(128)).toEqual([130, 255, 126]);
    expect(jetLutEntry(160)).toEqual([255, 252, 0]);
    expect(jetColormap(0)).toEqual([0, 0, 128]);
    expect(jetColormap(1)).toEqual([128, 0, 0]);
    expect(jetColormap(0.5)).toEqual(jetLutEntry(127)); // uint8(127.5) = 127 (truncation)
    expect(quantizeMask(0.999)).toBe(254);
    expect(quantizeMask(-0.2)).toBe(0);
    expect(quantizeMask(1.5)).toBe(255);
  });

  it('jet LUT equals cv2.applyColorMap for all 256 entries (fixture)', () => {
    expect(Array.from(JET_LUT_RGB)).toEqual(ref.jet_lut_rgb);
  });

  it('showCamOnImage on one pixel, by hand', () => {
    // mask 0.5 → uint8(127.5) = 127 → jet (126, 255, 130); img (100, 50, 200)
    // cam = 0.5*heat + 0.5*img = (113, 152.5, 165)/255; / max (165/255) → ×255 → (174.6, 235.7, 255) → (174, 235, 255)
    const out = showCamOnImage({ width: 1, height: 1, data: Uint8Array.from([100, 50, 200]) }, Float64Array.from([0.5]));
    expect(Array.from(out.data)).toEqual([174, 235, 255]);
  });

  it('showCamOnImage matches show_cam_on_image(use_rgb=True) (fixture)', () => {
    const s = ref.show_cam;
    const im: RgbImage = { width: s.w, height: s.h, data: Uint8Array.from(s.img) };
    expect(Array.from(showCamOnImage(im, Float32Array.from(s.mask)).data)).toEqual(s.w05);
    expect(Array.from(showCamOnImage(im, s.mask, 0.3).data)).toEqual(s.w03);
    expect(() => showCamOnImage(im, s.mask, 1.5)).toThrow(RangeError);
  });
});

describe('comparison sheet', () => {
  it('drawText puts glyph pixels where the font says', () => {
    const canvas = img(12, 9, () => 255);
    const end = drawText(canvas, 1, 1, 'A', [0, 0, 0], 1);
    expect(end).toBe(7);
    const at = (x: number, y: number) => canvas.data[(y * canvas.width + x) * 3];
    expect(at(1, 1)).toBe(255); // 'A' row 0 = 01110
    expect(at(2, 1)).toBe(0);
    expect(at(1, 4)).toBe(0); // row 3 = 11111
    expect(textWidth('AB', 2)).toBe(22);
  });

  it('lays out a grid with titles, labels and upscaled tiles', () => {
    const a = img(32, 32, (x, y, c) => (c === 0 ? 200 : x * 4));
    const heat = img(32, 32, () => 40);
    const rows = [
      { image: a, label: 'cat 0.93', cells: [{ image: heat }, { image: heat, title: 'x' }, { image: heat }] },
      { image: a, label: 'dog 0.51', cells: [{ image: heat }, { image: heat }, { image: heat }] },
    ];
    const sheet = comparisonSheet(rows, ['image', 'GradCAM', 'ShapleyCAM', 'ScoreCAM']);
    // scale 4 → 128 px tiles; pad 8, text ×2 (line 16), gap 4
    expect(sheet.width).toBe(8 + 4 * (128 + 8));
    expect(sheet.height).toBe(8 + 16 + 4 + 2 * (128 + 4 + 16 + 8));
    const px = (x: number, y: number) => Array.from(sheet.data.subarray((y * sheet.width + x) * 3, (y * sheet.width + x) * 3 + 3));
    // title band not all white
    let ink = 0;
    for (let y = 8; y < 8 + 14; y++) for (let x = 0; x < sheet.width; x++) if (px(x, y)[0] !== 255) ink++;
    expect(ink).toBeGreaterThan(50);
    // first tile at (8, 28), upscaled ×4 by nearest
    expect(px(8, 28)).toEqual([200, 0, 0]);
    expect(px(8 + 4 * 5 + 3, 28 + 7)).toEqual([200, 20, 20]);
    expect(px(8 + 136, 28)).toEqual([40, 40, 40]);
    // row label under the original image is drawn
    let labelInk = 0;
    for (let y = 28 + 128 + 4; y < 28 + 128 + 4 + 14; y++) for (let x = 8; x < 8 + 128; x++) if (px(x, y)[0] !== 255) labelInk++;
    expect(labelInk).toBeGreaterThan(20);
    // explicit scale and method-only titles
    const small = comparisonSheet(rows, ['G', 'S', 'C'], { scale: 1 });
    // column 0 widens to the label: textWidth('cat 0.93') = (8*6 - 1)*2 = 94
    expect(small.width).toBe(8 + (94 + 8) + 3 * (32 + 8));
    expect(small.height).toBe(8 + 16 + 4 + 2 * (32 + 4 + 16 + 8));
  });
});
