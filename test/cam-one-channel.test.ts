// One-channel models: pytorch-grad-cam's tests/test_one_channel.py through the CLI (a ResNet-18 whose conv1
// takes one channel; GradCAM at layer4 on 16 copies of a grayscale image, unnormalised), against upstream's
// map on the same weights (cam_one_channel, scripts/make-cam-target-fixtures.py, at 112×112 rather than
// 224×224 to keep the fixture small); images given to such a model become their luma; channel mismatches
// are bad input in one line.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../cam/rendering/codec.ts';
import { preprocess } from '../cam/rendering/image.ts';
import { getArchitecture } from '../models/registry.ts';
import { lumaNormalisation, lumaRow } from '../cam/cli/inputs.ts';
import { FIXTURES, absErr, fixture } from './helpers/fixtures.ts';
import { readJson, readOutput, runCli, tmp, writeInput } from './helpers/cli-run.ts';
import { isCI, webgpuProbe } from './helpers/webgpu.ts';

const ref = fixture('cam_one_channel');
const WEIGHTS = join(FIXTURES, 'arch_resnet18_1ch.weights.safetensors');
const IMAGE = join(FIXTURES, 'images', 'cat_0000.png');
const model = ['--arch', 'resnet18', '--weights', WEIGHTS];

describe("pytorch-grad-cam's test_one_channel: ResNet-18 with a one-channel conv1", () => {
  for (const backend of ['cpu', 'wasm', 'webgpu'] as const) {
    it.runIf(backend !== 'webgpu' || webgpuProbe.available || isCI)(`--input with one channel (16 copies) on ${backend}: every GradCAM map within 1e-4 of upstream`, async () => {
      const dir = tmp();
      const [h, w] = ref.file.entry('image').shape;
      const image = Float32Array.from(ref.file.int('image'), Number);
      const batch = new Float32Array(16 * h * w);
      for (let b = 0; b < 16; b++) batch.set(image, b * h * w);
      const out = join(dir, 'out');
      // targets=None upstream: ClassifierOutputTarget of the predicted class, i.e. --target logit.
      const r = await runCli(['explain', ...model, '--input', writeInput(dir, batch, [16, 1, h, w]), '--layer', 'layer4', '--method', 'gradcam', '--target', 'logit', '--backend', backend, '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      const maps = readOutput(out, 'maps.safetensors').float32('cam/gradcam');
      const want = ref.file.float32('cam/GradCAM/layer4');
      for (let b = 0; b < 16; b++) expect(absErr(maps.subarray(b * h * w, (b + 1) * h * w), want), `row ${b}`).toBeLessThan(1e-4);
      expect(readJson(out, 'summary.json').images.map((i: any) => i.predicted.index)).toEqual(new Array(16).fill(ref.meta.predicted_class));
      expect(readJson(out, 'summary.json').backend).toBe(backend);
    }, 300_000);
  }

  it('--image for a one-channel model: its luma, normalised with the luma weights of mean and std (same maps as that tensor)', async () => {
    const dir = tmp();
    const r1 = await runCli(['explain', ...model, '--image', IMAGE, '--method', 'gradcam,shapleycam', '--backend', 'cpu', '--out', join(dir, 'image')]);
    expect(r1.code, r1.stderr).toBe(0);
    // The same conversion written out here: Y = 0.299 R + 0.587 G + 0.114 B of the unnormalised RGB.
    const pre = getArchitecture('resnet18').preprocessing;
    const p = preprocess(await decodeImage(IMAGE), pre);
    const n = p.shape[1] * p.shape[2];
    const g = { mean: 0.299 * pre.mean[0] + 0.587 * pre.mean[1] + 0.114 * pre.mean[2], std: 0.299 * pre.std[0] + 0.587 * pre.std[1] + 0.114 * pre.std[2] };
    expect(lumaNormalisation(pre).mean).toBeCloseTo(g.mean, 15);
    const luma = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const rgb = [0, 1, 2].map((c) => p.data[c * n + i] * pre.std[c] + pre.mean[c]);
      luma[i] = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] - g.mean) / g.std;
    }
    expect(absErr(lumaRow(p.data, pre), luma)).toBeLessThan(1e-6);
    const r2 = await runCli(['explain', ...model, '--input', writeInput(dir, luma, [1, 1, p.shape[1], p.shape[2]]), '--method', 'gradcam,shapleycam', '--backend', 'cpu', '--out', join(dir, 'tensor')]);
    expect(r2.code, r2.stderr).toBe(0);
    for (const key of ['cam/gradcam', 'cam/shapleycam']) {
      expect(absErr(readOutput(join(dir, 'image'), 'maps.safetensors').float32(key), readOutput(join(dir, 'tensor'), 'maps.safetensors').float32(key))).toBeLessThan(1e-6);
    }
  });

  it('a tensor with the wrong number of channels is bad input: one line naming the file, exit 1', async () => {
    const dir = tmp();
    const three = writeInput(dir, new Float32Array(3 * 32 * 32), [1, 3, 32, 32], 'rgb.safetensors');
    let r = await runCli(['explain', ...model, '--input', three, '--backend', 'cpu', '--out', join(dir, 'a')]);
    expect([r.code, r.stderr.trim().split('\n').filter((l) => !l.startsWith('backend:'))]).toEqual([1, [`error: ${three}: tensor "input" has 3 channels, but the model's first layer takes 1`]]);
    const one = writeInput(dir, new Float32Array(32 * 32), [1, 1, 32, 32], 'gray.safetensors');
    r = await runCli(['explain', '--model', 'resnet20_cifar10', '--input', one, '--backend', 'cpu', '--out', join(dir, 'b')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/gray\.safetensors: tensor "input" has 1 channel, but the model's first layer takes 3/);
    const five = writeInput(dir, new Float32Array(5 * 4), [1, 5, 2, 2], 'five.safetensors');
    r = await runCli(['explain', ...model, '--input', five, '--backend', 'cpu', '--out', join(dir, 'c')]);
    expect([r.code, r.stderr.split('\n')[0]]).toEqual([1, `error: ${five}: tensor "input" must be N×3×H×W (or N×1×H×W for a one-channel model), got [1,5,2,2]`]);
  });
});
