// The segmentation target through the CLI against the public segmentation fixture (pytorch-grad-cam 084273b's
// SemanticSegmentationTarget on torchvision's LR-ASPP MobileNet-V3, torch 1.13): the segmentation README's CLI
// contract — `explain --arch lraspp_mobilenet_v3_large --weights W --input IN --layer L --target segmentation
// --class 19 --method gradcam,hirescam,shapleycam,seg-eigencam,layercam` — with its checker's bounds: maps
// ≤ 1e-4 absolute, terms ≤ 2e-4 relative L2, the mask pixel by pixel. The CLI computes the mask from its own
// output. Seg-Eigen-CAM's sign rule (negate the projection when |min| > |max|) is decided far from a tie in
// every image of the fixture (sign margins 0.55–0.80), so its map is compared with upstream's sign only: the
// other sign's map is ~1 away.
// Fixtures: seg_lraspp_public.* (input, mask, terms; scripts/make-model-fixtures.py) and
// seg_lraspp_maps_public.* (the maps; scripts/make-cam-target-fixtures.py), both copied from
// shared/fixtures/segmentation. The family's other methods under the same target, on image 0, against
// seg_lraspp_family.* (upstream's classes run by scripts/make-cam-target-fixtures.py; where upstream cannot
// take a dense output or keeps a mirrored input's mask unmirrored, its building blocks on the target this
// project defines — the fixture's JSON says which), with the family fixture README's bounds.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, absErr, fixture, relErr } from './helpers/fixtures.ts';
import { readJson, readOutput, relL2, runCli, tmp, writeInput } from './helpers/cli-run.ts';
import { describeWebGpu } from './helpers/webgpu.ts';
import { outlineMask } from '../cam/rendering/mask-outline.ts';

const ref = fixture('seg_lraspp_public').file;
const maps = fixture('seg_lraspp_maps_public').file;
const family = fixture('seg_lraspp_family').file;
const WEIGHTS = join(FIXTURES, 'seg_lraspp_public.weights.safetensors');
const CATEGORY = Number(ref.int('category')[0]);
const METHODS: [string, string][] = [['gradcam', 'GradCAM'], ['hirescam', 'HiResCAM'], ['shapleycam', 'ShapleyCAM_mean'], ['seg-eigencam', 'SegEigenCAM'], ['layercam', 'LayerCAM']];
const [B, , H, W] = ref.entry('input').shape;

function inputFile(dir: string): string {
  return writeInput(dir, ref.float32('input'), ref.entry('input').shape);
}

/** Every third pixel of a (B, C, H, W) array, as the fixture's logits64_stride3. */
function stride3(values: ArrayLike<number>, C: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y += 3) for (let x = 0; x < W; x += 3) out.push(values[((b * C + c) * H + y) * W + x]);
  return out;
}

/** The segmentation README's CLI contract at one layer, on one backend, checked with its checker's bounds. */
function contractCase(layer: string, backend: 'cpu' | 'webgpu' | 'wasm', timeout?: number) {
    it(`${layer}: the five maps within 1e-4, the terms within 2e-4 (relative L2), the mask exactly`, async () => {
      const dir = tmp();
      const out = join(dir, 'out');
      const argv = ['explain', '--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', inputFile(dir), '--layer', layer,
        '--target', 'segmentation', '--class', String(CATEGORY), '--method', METHODS.map(([m]) => m).join(','), '--backend', backend, '--out', out];
      const r = await runCli(argv);
      expect(r.code, r.stderr).toBe(0);
      const got = readOutput(out, 'maps.safetensors');
      // No image is a near tie of Seg-Eigen-CAM's sign rule (the checker would then accept either sign).
      expect(Math.min(...maps.float64(`segeigen_sign_margin/${layer}`))).toBeGreaterThan(1e-3);
      for (const [name, key] of METHODS) {
        const want = maps.float32(`cam/${key}/seg/${layer}`);
        expect(got.entry(`cam/${name}`).shape).toEqual([B, H, W]);
        expect(absErr(got.float32(`cam/${name}`), want), name).toBeLessThan(1e-4);
      }
      const terms = readOutput(out, 'terms.safetensors');
      // The mask the CLI derived from its own output is the reference's, pixel by pixel.
      expect(terms.entry('mask')).toMatchObject({ dtype: 'U8', shape: [B, H, W] });
      expect(Array.from(terms.int('mask'))).toEqual(Array.from(ref.int('mask')));
      expect(terms.entry('logits').shape).toEqual([B, 21, H, W]);
      expect(relL2(stride3(terms.float32('logits'), 21), ref.float64('logits64_stride3'))).toBeLessThan(2e-4);
      // Terms: backbone.12 for both images, backbone.16 for image 0 (the fixture subset).
      const images = layer === 'backbone.12' ? B : 1;
      const suffix = images === B ? '' : '/image0';
      for (const [ours, theirs] of [['activations', 'A'], ['gradients', 'G/seg'], ['hvp', 'HA/seg']]) {
        const want = ref.float64(`${theirs}/${layer}${suffix}`);
        const mine = terms.float32(`${ours}/${layer}`).subarray(0, want.length);
        expect(relL2(mine, want), `${ours}/${layer}`).toBeLessThan(2e-4);
      }
      const summary = readJson(out, 'summary.json');
      expect(summary.target).toBe('segmentation');
      const mask = Array.from(ref.int('mask'), Number);
      const pixels = Array.from({ length: B }, (_, b) => mask.slice(b * H * W, (b + 1) * H * W).reduce((s, v) => s + v, 0));
      expect(summary.images.map((i: any) => [i.class.index, i.class.name, i.mask_pixels])).toEqual(pixels.map((p) => [CATEGORY, 'train', p]));
      const values = ref.float64('target_value/seg');
      // The sum over ~5,000 mask pixels: float64 on the CPU, float32 on WebGPU.
      const rtol = backend === 'cpu' ? 1e-9 : 1e-6;
      summary.images.forEach((i: any, b: number) => expect(Math.abs(i.utility - values[b])).toBeLessThan(rtol * Math.abs(values[b])));
      expect(summary.layers[0]).toMatchObject({ layer, hvp_structurally_zero: false });
      expect(summary.backend).toBe(backend);
      expect(existsSync(join(out, 'sheet.png'))).toBe(true);
    }, timeout);
}

describe('explain --target segmentation against the public LR-ASPP fixture (CPU)', () => {
  for (const layer of ['backbone.12', 'backbone.16']) contractCase(layer, 'cpu');

  it('the sheet shows the mask: its border white, its inside tinted, the rest of the picture untouched', () => {
    const picture = { width: 4, height: 3, data: new Uint8Array(4 * 3 * 3).fill(100) };
    const mask = [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1];
    const shown = outlineMask(picture, mask);
    const pixel = (x: number, y: number) => Array.from(shown.data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3));
    expect(pixel(0, 0)).toEqual([100, 100, 100]);
    expect(pixel(1, 1)).toEqual([255, 255, 255]); // on the mask's border
    expect(pixel(2, 2)).toEqual([255, 255, 255]); // the last row is a border too
    expect(picture.data[0]).toBe(100); // a copy
    const inner = outlineMask({ width: 3, height: 3, data: new Uint8Array(27).fill(100) }, [1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(inner.data.subarray(12, 15))).toEqual([75, 139, 139]); // 0.75·100 + 0.25·(0, 255, 255)
    expect(() => outlineMask(picture, [1])).toThrow(/a mask of 1 pixels for a 4×3 picture/);
  });

  it('without --class, each image explains its most frequent class other than 0 (here 19 in both)', async () => {
    const dir = tmp();
    const out = join(dir, 'out');
    const r = await runCli(['explain', '--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', inputFile(dir), '--layer', 'backbone.16', '--method', 'gradcam', '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const summary = readJson(out, 'summary.json');
    expect(summary.target).toBe('segmentation');
    expect(summary.images.map((i: any) => i.class.index)).toEqual([CATEGORY, CATEGORY]);
    expect(absErr(readOutput(out, 'maps.safetensors').float32('cam/gradcam'), maps.float32('cam/GradCAM/seg/backbone.16'))).toBeLessThan(1e-4);
  });
});

describe('the family methods under the segmentation target (image 0, CPU) against upstream', () => {
  /** Runs explain on image 0 with --class 19 and the given flags; returns maps.safetensors and the summary. */
  async function explainImage0(args: string[]) {
    const dir = tmp();
    const out = join(dir, 'out');
    const input = writeInput(dir, ref.float32('input').subarray(0, 3 * H * W), [1, 3, H, W]);
    const r = await runCli(['explain', '--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', input, '--class', String(CATEGORY), ...args, '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    return { maps: readOutput(out, 'maps.safetensors'), summary: readJson(out, 'summary.json') };
  }
  const want = (key: string) => family.float32(key);

  it('backbone.16: FullGrad, KPCA-CAM, FEM, guided backpropagation of the target and Guided Grad-CAM', async () => {
    const { maps: got, summary } = await explainImage0(['--layer', 'backbone.16', '--method', 'fullgrad,kpca-cam,fem,guided-backprop,guided-gradcam']);
    expect(summary.target).toBe('segmentation');
    expect(absErr(got.float32('cam/fullgrad'), want('cam/FullGrad'))).toBeLessThan(2e-3);
    expect(absErr(got.float32('cam/kpca-cam'), want('cam/KPCA_CAM/backbone.16'))).toBeLessThan(1e-3);
    expect(absErr(got.float32('cam/fem'), want('cam/FEM/backbone.16'))).toBeLessThan(1e-4);
    expect(got.entry('cam/guided-backprop').shape).toEqual([1, 3, H, W]);
    expect(relErr(got.float32('cam/guided-backprop'), want('guided/GuidedBackprop'))).toBeLessThan(5e-3);
    expect(relErr(got.float32('cam/guided-gradcam'), want('cam/GuidedGradCAM/backbone.16'))).toBeLessThan(1e-3);
  });

  it('Refine-CAM over backbone.12 and backbone.16 (Grad-CAM++ base)', async () => {
    const { maps: got } = await explainImage0(['--layer', 'backbone.12', '--layer', 'backbone.16', '--method', 'refine-cam']);
    expect(absErr(got.float32('cam/refine-cam'), want('cam/RefineCAM/backbone.12+backbone.16'))).toBeLessThan(2e-3);
  });

  it('GradCAM with --eigen-smooth (either projection sign) and with --aug-smooth (a mirrored input scored on the mirrored mask)', async () => {
    const eigen = (await explainImage0(['--layer', 'backbone.16', '--method', 'gradcam', '--eigen-smooth'])).maps.float32('cam/gradcam');
    const key = 'cam/GradCAM/backbone.16/eigen_smooth';
    expect(Math.min(absErr(eigen, want(key)), absErr(eigen, want(`${key}/flipped`)))).toBeLessThan(1e-4);
    const aug = (await explainImage0(['--layer', 'backbone.16', '--method', 'gradcam', '--aug-smooth'])).maps.float32('cam/gradcam');
    expect(absErr(aug, want('cam/GradCAM/backbone.16/aug_smooth_mirrored_mask'))).toBeLessThan(1e-4);
  });

  it('finer-cam, which compares class logits, is refused for the segmentation target: one line, exit 2, nothing written', async () => {
    const dir = tmp();
    const out = join(dir, 'out');
    const r = await runCli(['explain', '--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', inputFile(dir), '--method', 'finer-cam', '--backend', 'cpu', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')[0]).toMatch(/^error: --method finer-cam: it compares a classifier's class logits, which the segmentation target does not have/);
    expect(existsSync(out)).toBe(false);
  });
});

describeWebGpu('explain --target segmentation on WebGPU (float32) against the same fixture', () => {
  contractCase('backbone.16', 'webgpu', 600_000);
});

describe('explain --target segmentation on wasm (float32) against the same fixture', () => {
  contractCase('backbone.16', 'wasm', 600_000);
});

describe('the target must fit the model: one line naming the flag, exit 2, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    ['--target segmentation on a classifier', ['--model', 'resnet20_cifar10', '--image', join(FIXTURES, 'images', 'cat_0000.png'), '--target', 'segmentation'],
      /^error: --target segmentation: resnet20 is a classifier/],
    ['a classifier target on a segmentation model', ['--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', '<input>', '--target', 'rest'],
      /^error: --target rest: lraspp_mobilenet_v3_large is a segmentation model, explained with the segmentation target/],
    ['--class outside the classes of a segmentation model', ['--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--input', '<input>', '--class', '21'],
      /^error: --class: 21 is outside 0…20 for this model/],
    ['--class outside the classes of a classifier', ['--model', 'resnet20_cifar10', '--image', join(FIXTURES, 'images', 'cat_0000.png'), '--class', '10'],
      /^error: --class: 10 is outside 0…9 for this model/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const dir = tmp();
      const out = join(dir, 'out');
      const argv = ['explain', ...args.map((a) => (a === '<input>' ? inputFile(dir) : a)), '--backend', 'cpu', '--out', out];
      const r = await runCli(argv);
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(message);
      expect(lines.slice(1)).toEqual(['run with --help for usage']);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('eval refuses the segmentation target and segmentation models (exit 2)', async () => {
    const dir = tmp();
    const data = join(FIXTURES, 'cifar10-sample');
    let r = await runCli(['eval', '--model', 'resnet20_cifar10', '--data', data, '--target', 'segmentation', '--backend', 'cpu', '--out', join(dir, 'a')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --target segmentation: resnet20 is a classifier/);
    r = await runCli(['eval', '--arch', 'lraspp_mobilenet_v3_large', '--weights', WEIGHTS, '--data', data, '--backend', 'cpu', '--out', join(dir, 'b')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --arch lraspp_mobilenet_v3_large: eval measures classifiers/);
    expect(existsSync(join(dir, 'a')) || existsSync(join(dir, 'b'))).toBe(false);
  });
});
