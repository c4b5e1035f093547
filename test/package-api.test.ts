// The high-level API (api/) on the sources: an explainer made from the shipped ResNet-20, called on the
// four CIFAR-10 images of the PyTorch fixture, gives the reference maps and A, G, H·A (preprocessing
// included); the structural-zero flag, classes by label, every kind of input, weights as bytes, clear
// errors, memory returned on dispose, and calls that overlap run one at a time.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { createExplainer, type Explainer } from '../api/index.ts';
import { decodeImage } from '../cam/rendering/codec.ts';
import { loadZooModel } from '../models/zoo.ts';
import { ModelError } from '../models/module.ts';
import { SafetensorsError } from '../models/safetensors.ts';
import { FIXTURES, absErr, fixture, relErr } from './helpers/fixtures.ts';

const f = fixture('case1_resnet20_cifar10_public').file;
const images = ['bird_0006', 'dog_0000', 'frog_0002', 'ship_0002'].map((n) => join(FIXTURES, 'cifar10-sample', `${n}.png`));
const weightsPath = new URL('../models/weights/resnet20_cifar10.safetensors', import.meta.url);

/** Batch-wide maps of one method, [B·H·W]. */
const stacked = (maps: Float64Array[]) => Float64Array.from(maps.flatMap((m) => Array.from(m)));

let explainer: Explainer;
beforeAll(async () => {
  explainer = await createExplainer({ model: 'resnet20_cifar10', backend: 'cpu' });
});

describe('createExplainer + explain against the PyTorch reference', () => {
  it('maps of ShapleyCAM and GradCAM from image files match the fixture, predictions as the model says', async () => {
    const r = await explainer.explain(images, { methods: ['shapleycam', 'gradcam'] });
    expect(explainer.layers).toEqual(['layer3']);
    expect(r.methods).toEqual(['shapleycam', 'gradcam']);
    expect(r.images.map((i) => i.source)).toEqual(images);
    expect(r.images.map((i) => i.predicted.index)).toEqual(Array.from(f.int('pred')));
    expect(r.images.map((i) => i.explained.index)).toEqual(Array.from(f.int('pred')));
    expect(r.images[1].predicted.label).toBe('dog');
    for (const img of r.images) {
      expect(img.maps.shapleycam.shape).toEqual([32, 32]);
      const p = Array.from(img.logits, Math.exp);
      expect(img.predicted.probability).toBeCloseTo(Math.max(...p) / p.reduce((a, b) => a + b), 12);
      expect(img.picture).toMatchObject({ width: 32, height: 32 });
    }
    expect(absErr(stacked(r.images.map((i) => i.maps.shapleycam.data)), f.float32('cam/ShapleyCAM_mean/ReST/layer3'))).toBeLessThan(1e-4);
    expect(absErr(stacked(r.images.map((i) => i.maps.gradcam.data)), f.float32('cam/GradCAM/ReST/layer3'))).toBeLessThan(1e-4);
    expect(r.layers[0].hvpStructurallyZero).toBe(false);
    expect(r.layers[0].activations).toBeNull();
  });

  it('keepTerms gives A, G and H·A (float64 reference) and first/second-order maps that are their sums', async () => {
    const layers = ['layer3.2.conv1', 'layer3'];
    const two = await createExplainer({ model: 'resnet20_cifar10', backend: 'cpu', layers });
    const r = await two.explain(images, { methods: 'gradcam', keepTerms: true });
    two.dispose();
    expect(absErr(stacked(r.images.map((i) => i.maps.gradcam.data)), f.float32('cam/GradCAM/ReST/layer3+layer3.2.conv1'))).toBeLessThan(1e-4);
    for (const [li, layer] of layers.entries()) {
      const L = r.layers[li];
      expect(L.layer).toBe(layer);
      const [B, K, h, w] = L.shape;
      // The input is the float32 preprocessing of the PNGs, as the fixture's; the rest is float64.
      expect(relErr(L.activations!.data, f.float64(`A/${layer}`))).toBeLessThan(1e-6);
      expect(relErr(L.gradients!.data, f.float64(`G/ReST/${layer}`))).toBeLessThan(1e-6);
      expect(relErr(L.hvp!.data, f.float64(`HA/ReST/${layer}`))).toBeLessThan(1e-6);
      expect(L.firstOrder!.shape).toEqual([B, h, w]);
      const A = L.activations!.data, G = L.gradients!.data, HA = L.hvp!.data;
      const first = new Float64Array(B * h * w), second = new Float64Array(B * h * w);
      for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) for (let i = 0; i < h * w; i++) {
        const j = (b * K + k) * h * w + i;
        first[b * h * w + i] += A[j] * G[j];
        second[b * h * w + i] -= 0.5 * A[j] * HA[j];
      }
      expect(relErr(L.firstOrder!.data, first)).toBeLessThan(1e-12);
      expect(relErr(L.secondOrder!.data, second)).toBeLessThan(1e-12);
    }
  });

  it('flags H·A as structurally zero under the logit utility, where ShapleyCAM equals GradCAM', async () => {
    const r = await explainer.explain(images[0], { methods: ['shapleycam', 'gradcam'], target: 'logit' });
    expect(r.target).toBe('logit');
    expect(r.layers[0].hvpStructurallyZero).toBe(true);
    expect(Array.from(r.images[0].maps.shapleycam.data)).toEqual(Array.from(r.images[0].maps.gradcam.data));
  });
});

describe('inputs and options', () => {
  it('a path, a file URL, PNG bytes, a decoded picture and a tensor give the same map', async () => {
    const path = images[2];
    const picture = await decodeImage(path);
    const reference = (await explainer.explain(path)).images[0];
    const tensor = E.tensor(f.float32('input').subarray(2 * 3 * 32 * 32, 3 * 3 * 32 * 32), [3, 32, 32], E.cpuBackend());
    const others = await explainer.explain([pathToFileURL(path), new Uint8Array(readFileSync(path)), picture]);
    const fromTensor = await explainer.explain(tensor);
    expect(others.images.map((i) => i.source)).toEqual([path, 'bytes[1]', 'picture[2]']);
    for (const img of [...others.images, fromTensor.images[0]]) {
      expect(absErr(img.maps.shapleycam.data, reference.maps.shapleycam.data)).toBeLessThan(1e-12);
    }
    expect(fromTensor.images[0]).toMatchObject({ source: 'tensor[0]', picture: null });
    expect(tensor.isDisposed).toBe(false);
    tensor.dispose();
  });

  it('classes by index or label, one for all or one per image', async () => {
    const one = await explainer.explain(images.slice(0, 2), { classes: 'cat' });
    expect(one.images.map((i) => [i.explained.index, i.explained.label])).toEqual([[3, 'cat'], [3, 'cat']]);
    const each = await explainer.explain(images.slice(0, 2), { classes: [0, 'ship'] });
    expect(each.images.map((i) => i.explained.index)).toEqual([0, 8]);
    expect(each.images[1].explained.probability).toBeLessThan(each.images[1].predicted.probability);
  });

  it('weights as bytes or as a path load the same model as the zoo name', async () => {
    const bytes = new Uint8Array(readFileSync(weightsPath));
    for (const weights of [bytes, weightsPath]) {
      const other = await createExplainer({ model: { arch: 'resnet20', weights }, backend: 'cpu' });
      const a = (await other.explain(images[0])).images[0];
      other.dispose();
      const b = (await explainer.explain(images[0])).images[0];
      expect(Array.from(a.logits)).toEqual(Array.from(b.logits));
    }
  });

  it('a model loaded with ./models is used where it is and left to its owner', async () => {
    E.setBackend(E.cpuBackend());
    const model = await loadZooModel('resnet56_cifar10');
    const ex = await createExplainer({ model, layers: 'layer2' });
    expect(ex.backend).toMatchObject({ name: 'cpu', choice: null });
    const r = await ex.explain(images[3]);
    expect(r.layers[0].shape).toEqual([1, 32, 16, 16]);
    ex.dispose();
    expect(await model.module.call(E.zeros([1, 3, 32, 32])).values()).toHaveLength(10);
    model.module.disposeParameters();
  });

  it('mistakes are clear errors', async () => {
    await expect(createExplainer({ model: 'resnet21_cifar10', backend: 'cpu' })).rejects.toThrow(ModelError);
    await expect(createExplainer({ model: 'resnet21_cifar10', backend: 'cpu' })).rejects.toThrow(/unknown model "resnet21_cifar10"; shipped models: resnet20_cifar10/);
    await expect(createExplainer({ model: { arch: 'resnet20', weights: new Uint8Array(12) }, backend: 'cpu' })).rejects.toThrow(SafetensorsError);
    await expect(createExplainer({ backend: 'cpu', layers: ['layer9'] })).rejects.toThrow(/layer9.*layer[123]/);
    await expect(explainer.explain(images[0], { methods: ['gradcam', 'nocam'] })).rejects.toThrow(/unknown method "nocam"/);
    await expect(explainer.explain(images, { classes: [1, 2] })).rejects.toThrow(/2 given for 4 images/);
    await expect(explainer.explain(images[0], { classes: 'zebra' })).rejects.toThrow(/"zebra" is not one of the model's labels/);
    await expect(explainer.explain(images[0], { classes: 10 })).rejects.toThrow(/10 is outside 0…9/);
    await expect(explainer.explain(E.zeros([1, 1, 32, 32], E.cpuBackend()))).rejects.toThrow(/expected \[B, 3, H, W\]/);
    await expect(explainer.explain(join(FIXTURES, 'missing.png'))).rejects.toThrow(/missing.png: cannot read file/);
  });
});

describe('segmentation models and input-space maps', () => {
  const seg = fixture('seg_lraspp_public').file;
  const segMaps = fixture('seg_lraspp_maps_public').file;
  const segWeights = join(FIXTURES, 'seg_lraspp_public.weights.safetensors');

  it('a segmentation model is explained with the segmentation target by default; its prediction is the class of the mask', async () => {
    const model = await createExplainer({ model: { arch: 'lraspp_mobilenet_v3_large', weights: segWeights }, layers: 'backbone.16', backend: 'cpu' });
    const input = E.tensor(seg.float32('input'), seg.entry('input').shape);
    const r = await model.explain(input, { methods: ['gradcam'] });
    expect(r.target).toBe('segmentation');
    const [B, , H, W] = seg.entry('input').shape;
    const mask = seg.int('mask');
    const category = Number(seg.int('category')[0]);
    expect(absErr(stacked(r.images.map((i) => i.maps.gradcam.data)), segMaps.float32('cam/GradCAM/seg/backbone.16'))).toBeLessThan(1e-4);
    r.images.forEach((img, b) => {
      expect(img.logits.length).toBe(21 * H * W);
      expect(Array.from(img.mask!)).toEqual(mask.slice(b * H * W, (b + 1) * H * W));
      // The mean over the mask of the class's per-pixel softmax probability, from the image's own output.
      let p = 0;
      for (let q = 0; q < H * W; q++) {
        if (!img.mask![q]) continue;
        const e = Array.from({ length: 21 }, (_, k) => Math.exp(img.logits[k * H * W + q]));
        p += e[category] / e.reduce((a, v) => a + v, 0);
      }
      expect(img.predicted.index).toBe(category);
      expect(img.explained.index).toBe(category);
      expect(img.predicted.probability).toBeCloseTo(p / img.mask!.reduce((a, v) => a + v, 0), 10);
      expect(img.explained.probability).toBe(img.predicted.probability);
    });
    expect(r.images.length).toBe(B);
    await expect(model.explain(input, { target: 'rest' })).rejects.toThrow(/^target rest: lraspp_mobilenet_v3_large is a segmentation model, explained with the segmentation target/);
    input.dispose();
    model.dispose();
  });

  it('a classifier refuses the segmentation target; guided maps come back as [3, H, W]', async () => {
    await expect(explainer.explain(images[0], { target: 'segmentation' })).rejects.toThrow(/^target segmentation: resnet20 is a classifier/);
    const r = await explainer.explain(images[0], { methods: ['guided-backprop', 'gradcam'] });
    expect(r.images[0].maps['guided-backprop'].shape).toEqual([3, 32, 32]);
    expect(r.images[0].maps['guided-backprop'].data.length).toBe(3 * 32 * 32);
    expect(r.images[0].maps.gradcam.shape).toEqual([32, 32]);
    expect(r.images[0].mask).toBeNull();
  });
});

describe('memory and concurrency', () => {
  it('a call frees what it made; dispose frees the weights and what was derived from them; a disposed explainer refuses calls', async () => {
    const cpu = E.cpuBackend();
    await explainer.explain(images[0]); // warm the constant cache
    const start = cpu.memory();
    const ex = await createExplainer({ backend: 'cpu' });
    const loaded = cpu.memory();
    expect(loaded.bytes).toBeGreaterThan(start.bytes + 1_000_000); // ResNet-20's weights
    // The first call may build what the weights imply (BatchNorms folded into convolutions: the compiled
    // inference prefix); those belong to the model and go with dispose. A call itself leaves nothing.
    await ex.explain(images.slice(0, 2), { methods: ['shapleycam', 'ablationcam'] });
    const derived = cpu.memory();
    expect(derived.bytes).toBeGreaterThanOrEqual(loaded.bytes);
    await ex.explain(images.slice(0, 2), { methods: ['shapleycam', 'ablationcam'] });
    expect(cpu.memory()).toEqual(derived);
    ex.dispose();
    expect(cpu.memory()).toEqual(start);
    expect(ex.disposed).toBe(true);
    await expect(ex.explain(images[0])).rejects.toThrow(/after dispose/);
  });

  it('calls that overlap run one at a time and give what they give alone', async () => {
    const alone = await explainer.explain(images[1], { methods: 'shapleycam' });
    const [a, b] = await Promise.all([explainer.explain(images[1], { methods: 'shapleycam' }), explainer.explain(images[1], { methods: 'shapleycam', target: 'logit' })]);
    expect(Array.from(a.images[0].maps.shapleycam.data)).toEqual(Array.from(alone.images[0].maps.shapleycam.data));
    expect(b.layers[0].hvpStructurallyZero).toBe(true);
  });
});
