// The second-order inspection shared by the CLI and the browser page: the channel split against the
// ShapleyCAM method's own weights, the picture's size and colours, the CLI's terms_<NNN>_<image>.png (only
// for the ShapleyCAM family, the renderer's picture of the same explanation), and the two small API
// additions the page uses (weights named in errors, progress steps).

import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createExplainer, type ExplainStep, type Explainer } from '../api/index.ts';
import { main } from '../cam/cli.ts';
import { imageStem } from '../cam/algorithm/record-files.ts';
import { decodeImageBytes } from '../cam/rendering/codec.ts';
import { createImage, type RgbImage } from '../cam/rendering/image.ts';
import { channelWeights, explanationTermsPicture, termsPicture, termsPictureSize, topChannels, type TermsLayer } from '../cam/rendering/terms-picture.ts';
import { ModelError } from '../models/module.ts';
import { SafetensorsError } from '../models/safetensors.ts';
import { FIXTURES } from './helpers/fixtures.ts';
import { rng } from './helpers/random.ts';

const images = ['cat_0000', 'dog_0000'].map((n) => join(FIXTURES, 'images', `${n}.png`));
const png = (path: string) => decodeImageBytes(new Uint8Array(readFileSync(path)), path);

let explainer: Explainer;
beforeAll(async () => {
  explainer = await createExplainer({ model: 'resnet20_cifar10', backend: 'cpu' });
});

describe('channel weights', () => {
  it('split ShapleyCAM\'s own channel weights exactly into mean(G) and mean(−½·H·A)', async () => {
    const r = await explainer.explain(images, { methods: ['shapleycam'], keepTerms: true });
    const layer = r.layers[0];
    const [B, K, h, w] = layer.shape;
    const methodWeights = r.raw.methods.get('shapleycam')!.weights.get('layer3')!;
    for (let b = 0; b < B; b++) {
      const n = K * h * w;
      const split = channelWeights(layer.gradients!.data.subarray(b * n, (b + 1) * n), layer.hvp!.data.subarray(b * n, (b + 1) * n), K, h * w);
      split.forEach((c, k) => {
        expect(c.weight).toBeCloseTo(methodWeights[b * K + k], 12);
        expect(c.gradient + c.curvature).toBe(c.weight);
      });
      // The curvature part is not zero under ReST: the split shows something GradCAM's weights do not.
      expect(split.some((c) => Math.abs(c.curvature) > 1e-6)).toBe(true);
    }
  });

  it('computes the means per channel and orders the top channels by |w|', () => {
    const G = [1, 3, /* k=1 */ -4, -4, /* k=2 */ 0.5, 0.5];
    const HA = [2, 2, /* k=1 */ 0, 0, /* k=2 */ -1, 1];
    const split = channelWeights(G, HA, 3, 2);
    expect(split.map((c) => [c.gradient, c.curvature, c.weight])).toEqual([[2, -1, 1], [-4, 0, -4], [0.5, 0, 0.5]]);
    expect(topChannels(split, 2).map((c) => c.channel)).toEqual([1, 0]);
    expect(channelWeights(G, null, 3, 2).map((c) => c.curvature)).toEqual([0, 0, 0]);
    expect(() => channelWeights(G, HA, 4, 2)).toThrow(/expected 4×2 values/);
  });
});

describe('the terms picture', () => {
  const random = rng(7);
  const picture: RgbImage = createImage(32, 32);
  picture.data.fill(128);
  const layer = (sign: number, zero = false): TermsLayer => ({
    layer: 'layer3',
    K: 16,
    h: 8,
    w: 8,
    firstOrder: Array.from({ length: 64 }, () => sign * (0.5 + random())),
    secondOrder: Array.from({ length: 64 }, () => (zero ? 0 : sign * 0.1 * random())),
    gradients: Array.from({ length: 16 * 64 }, () => random() - 0.5),
    hvp: zero ? null : Array.from({ length: 16 * 64 }, () => random() - 0.5),
    hvpStructurallyZero: zero,
  });
  /** Pixels clearly red (positive on the diverging scale) and clearly blue (negative). */
  const tally = (img: RgbImage) => {
    let red = 0;
    let blue = 0;
    for (let i = 0; i < img.data.length; i += 3) {
      const [r, , b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
      if (r > b + 40) red++;
      if (b > r + 40) blue++;
    }
    return { red, blue };
  };

  it('has the size termsPictureSize gives: a row per layer', () => {
    const one = termsPicture({ picture, title: 'x', layers: [layer(1)] });
    const two = termsPicture({ picture, title: 'x', layers: [layer(1), layer(-1)] });
    expect([one.width, one.height]).toEqual(Object.values(termsPictureSize(1)));
    expect([two.width, two.height]).toEqual(Object.values(termsPictureSize(2)));
    expect(two.height).toBeGreaterThan(one.height);
    expect(two.width).toBe(one.width);
  });

  it('draws positive maps red and negative maps blue on one scale', () => {
    const pos = tally(termsPicture({ picture, title: 'x', layers: [layer(1)] }));
    const neg = tally(termsPicture({ picture, title: 'x', layers: [layer(-1)] }));
    // Three map panels of 160² mostly coloured: far more red than the colour bar's half, and vice versa.
    expect(pos.red).toBeGreaterThan(neg.red + 3 * 160 * 100);
    expect(neg.blue).toBeGreaterThan(pos.blue + 3 * 160 * 100);
  });

  it('renders a structurally zero or missing H·A, and refuses maps of the wrong size', () => {
    const zero = termsPicture({ picture, title: 'x', layers: [layer(1, true)] });
    const full = termsPicture({ picture, title: 'x', layers: [layer(1)] });
    expect(zero.data).not.toEqual(full.data);
    expect(() => termsPicture({ picture, title: 'x', layers: [{ ...layer(1), firstOrder: [1, 2, 3] }] })).toThrow(/8×8 values/);
    expect(() => termsPicture({ picture, title: 'x', layers: [] })).toThrow(/no layers/);
  });
});

describe('explain writes terms_<NNN>_<image>.png for the ShapleyCAM family', () => {
  beforeEach(() => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());
  const tmp = () => mkdtempSync(join(tmpdir(), 'cam-terms-'));
  const termsFiles = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('terms_')).sort();

  it('one per image, of the expected size, the renderer\'s picture of the same explanation', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', ...images, '--method', 'shapleycam,gradcam', '--backend', 'cpu', '--out', out])).toBe(0);
    expect(termsFiles(out)).toEqual(['terms_000_cat_0000.png', 'terms_001_dog_0000.png']);
    const r = await explainer.explain(images, { methods: ['shapleycam', 'gradcam'], keepTerms: true });
    for (const [b, file] of termsFiles(out).entries()) {
      const written = png(join(out, file));
      expect([written.width, written.height]).toEqual(Object.values(termsPictureSize(1)));
      const expected = explanationTermsPicture(r.raw, b, r.images[b].picture!, `${['cat', 'dog'][b]}_0000.png`, explainer.model.labels);
      expect(written.data).toEqual(expected.data);
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.files).toContain('terms_000_cat_0000.png');
  });

  it('a row per layer, for any method of the family; none without one', async () => {
    const two = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'shapleycam-e', '--layer', 'layer3', '--layer', 'layer2', '--backend', 'cpu', '--out', two])).toBe(0);
    const picture = png(join(two, 'terms_000_cat_0000.png'));
    expect([picture.width, picture.height]).toEqual(Object.values(termsPictureSize(2)));
    const none = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam,hirescam', '--backend', 'cpu', '--out', none])).toBe(0);
    expect(termsFiles(none)).toEqual([]);
  });
});

describe('file stems (shared by the CLI and the page)', () => {
  it('are what node:path gives for a file name, sanitised and numbered', () => {
    const byPath = (source: string, index: number) => `${String(index).padStart(3, '0')}_${basename(source, extname(source)).replace(/[^A-Za-z0-9._-]+/g, '_') || 'image'}`;
    const sources = ['samples/cifar10/cat_0001.png', 'cat.JPEG', 'a b.c.jpg', '.hidden', 'dir/x.', 'ünï cødé.png', 'noext', '/abs/path/dog_0000.png'];
    sources.forEach((s, i) => expect(imageStem(s, i), s).toBe(byPath(s, i)));
    expect(imageStem('', 12)).toBe('012_image');
  });
});

describe('what the page needs from the API', () => {
  it('weights given as { name, bytes } are named in errors like a file the CLI reads', async () => {
    const wrong = new Uint8Array(readFileSync(join(FIXTURES, 'arch_resnet18_1ch.weights.safetensors')));
    const err = await createExplainer({ model: { arch: 'resnet20', weights: { name: 'mine.safetensors', bytes: wrong } }, backend: 'cpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect(err.message).toMatch(/^mine\.safetensors: missing \d+ /);
    expect(err.message).not.toContain('\n');
    const broken = await createExplainer({ model: { arch: 'resnet20', weights: { name: 'cut.safetensors', bytes: wrong.subarray(0, 100) } }, backend: 'cpu' }).catch((e) => e);
    expect(broken).toBeInstanceOf(SafetensorsError);
    expect(broken.message).toMatch(/^cut\.safetensors: /);
  });

  it('onStep reports each layer\'s derivatives and each method, in order', async () => {
    const steps: ExplainStep[] = [];
    const two = await createExplainer({ model: explainer.model, layers: ['layer3', 'layer2'] });
    await two.explain(images[0], { methods: ['shapleycam', 'gradcam'], onStep: (s) => steps.push(s) });
    expect(steps.map((s) => [s.done, s.total, s.what])).toEqual([
      [1, 6, 'layer3: forward, G, H·A'],
      [2, 6, 'layer3: shapleycam'],
      [3, 6, 'layer3: gradcam'],
      [4, 6, 'layer2: forward, G, H·A'],
      [5, 6, 'layer2: shapleycam'],
      [6, 6, 'layer2: gradcam'],
    ]);
    expect(steps.every((s) => s.ms >= 0)).toBe(true);
  });

  it('onStep counts every step ahead: augmentations, a second utility, FullGrad and guided backpropagation', async () => {
    const steps: ExplainStep[] = [];
    await explainer.explain(images[0], { methods: ['gradcam', 'finer-cam', 'fullgrad', 'guided-backprop'], augSmooth: true, onStep: (s) => steps.push(s) });
    // Six augmentations × (layer3: the target's and Finer-CAM's derivatives, gradcam, finer-cam's gradcam; fullgrad) + guided backprop once.
    expect(steps.map((s) => s.done)).toEqual(Array.from({ length: 6 * 5 + 1 }, (_, i) => i + 1));
    expect(new Set(steps.map((s) => s.total))).toEqual(new Set([31]));
    expect(steps[0].what).toBe('noflip-x0.9: layer3: forward, G');
    expect(steps.map((s) => s.what)).toContain('flip-x1.1: layer3: G (Finer-CAM utility)');
    expect(steps.at(-1)!.what).toBe('guided-backprop');
  });
});
