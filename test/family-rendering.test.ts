// How the family's maps are drawn: pytorch-grad-cam's deprocess_image for input-space maps, and the DFF
// picture (gist_rainbow concept colours, the winning concept per pixel, the legend beside it).

import { describe, expect, it } from 'vitest';
import { deprocessImage } from '../cam/rendering/deprocess.ts';
import { conceptColor, factorizationOverlay, factorizationPicture } from '../cam/rendering/factorization.ts';
import { createImage } from '../cam/rendering/image.ts';

describe('deprocessImage (pytorch-grad-cam deprocess_image)', () => {
  it('maps the mean to 127, one standard deviation to 0.6·255, clips at ±5 std, over all channels at once', () => {
    // 3 × 1 × 2: values −1 and 1 in every channel → mean 0, std 1.
    const got = deprocessImage(Float64Array.of(-1, 1, -1, 1, -1, 1), 1, 2);
    const low = Math.trunc((-1 / (1 + 1e-5)) * 0.1 * 255 + 0.5 * 255);
    const high = Math.trunc(((1 / (1 + 1e-5)) * 0.1 + 0.5) * 255);
    expect(Array.from(got.data)).toEqual([low, low, low, high, high, high]);
    expect([low, high]).toEqual([102, 152]);
    // A large outlier: everything else collapses near the mean, the outlier clips at 255.
    const spike = deprocessImage(Float64Array.from({ length: 3 * 100 }, (_, i) => (i === 0 ? 1000 : 0)), 10, 10);
    expect(spike.data[0]).toBe(255);
    expect(spike.data[3]).toBe(Math.trunc((((0 - 1000 / 300) / (Math.sqrt(1000 ** 2 / 300 - (1000 / 300) ** 2) + 1e-5)) * 0.1 + 0.5) * 255));
    // Statistics are global: shifting one channel moves the others' colours.
    const shifted = deprocessImage(Float64Array.of(-1, 1, -1, 1, 9, 11), 1, 2);
    expect(shifted.data[0]).not.toBe(got.data[0]);
  });

  it('refuses a map of the wrong size', () => {
    expect(() => deprocessImage(new Float64Array(5), 1, 2)).toThrow(/5 values, expected 3×1×2/);
  });
});

describe('DFF pictures', () => {
  it('concept colours are gist_rainbow at i/n', () => {
    expect(conceptColor(0, 4)).toEqual([1, 0, 0.16]);
    const [r, g, b] = conceptColor(2, 4); // x = 128/255, between green (0.4) and cyan (0.586)
    expect(r).toBe(0);
    expect(g).toBe(1);
    expect(b).toBeCloseTo((128 / 255 - 0.4) / 0.186, 12);
  });

  it('each pixel takes the colour of its strongest concept at that concept’s value; the legend sits beside', () => {
    const picture = createImage(2, 1); // black
    const maps = [Float64Array.of(1, 0.2), Float64Array.of(0.5, 0.6)];
    const overlay = factorizationOverlay(picture, maps);
    const c0 = conceptColor(0, 2);
    const c1 = conceptColor(1, 2);
    expect(Array.from(overlay.data.subarray(0, 3))).toEqual(c0.map((v) => Math.trunc(v * 0.7 * 255)));
    expect(Array.from(overlay.data.subarray(3, 6))).toEqual(c1.map((v) => Math.trunc(v * (Math.trunc(255 * 0.6) / 255) * 0.7 * 255)));
    const pic = factorizationPicture(overlay, [['concept 1', 'cat:0.90'], ['concept 2', 'dog:0.50']]);
    expect(pic.height).toBeGreaterThanOrEqual(256);
    expect(pic.width).toBeGreaterThan(512); // the 256-pixel overlay and a legend
  });
});
