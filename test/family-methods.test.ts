// pytorch-grad-cam's wider family on the float64 CPU backend against its fixtures (FullGrad, guided
// backpropagation, Guided Grad-CAM, KPCA-CAM, FEM, Finer-CAM, Seg-Eigen-CAM, Refine-CAM, aug_smooth,
// eigen_smooth), with the bounds of the family README; plus the properties the fixtures do not pin down:
// ResNet-20's functional ReLUs guided, terms kept per augmentation, batches equal single images, memory,
// and the settings a method cannot run with.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { finerTarget } from '../cam/algorithm/methods/finer.ts';
import { inputGradient } from '../cam/algorithm/methods/guided.ts';
import { classifierTarget } from '../cam/algorithm/targets.ts';
import { captureForward, layerTerms } from '../cam/algorithm/terms.ts';
import { biasLayers } from '../cam/algorithm/methods/fullgrad.ts';
import { MethodSettingError } from '../cam/algorithm/methods/types.ts';
import { Lambda } from '../models/layers.ts';
import { loadZooModel } from '../models/zoo.ts';
import { absErr, fixture, relErr } from './helpers/fixtures.ts';
import { FAMILY_BOUNDS, FAMILY_CASES, familyDifferences, flatMaps } from './helpers/family.ts';

const cpu = E.cpuBackend();
beforeAll(() => E.setBackend(cpu));

for (const c of FAMILY_CASES) {
  describe(`${c.name} on the CPU backend`, () => {
    const { file: f, meta } = fixture(c.name);
    let d: Record<string, number>;
    beforeAll(async () => {
      d = await familyDifferences(c);
    }, 120_000);

    it('every map, projection and utility within the README bounds', () => {
      const keys = Object.keys(d);
      expect(keys.length).toBeGreaterThanOrEqual(25);
      for (const k of keys) expect(d[k], k).toBeLessThanOrEqual(FAMILY_BOUNDS[k]);
    });

    it('FullGrad reads the bias layers upstream read, in the same order', async () => {
      const model = await c.build();
      expect(biasLayers(model).map((l) => l.path)).toEqual(meta.run_info.fullgrad_bias_layers_in_order);
    });

    it('Finer-CAM picks the classes upstream picked', async () => {
      const model = await c.build();
      const e = await explain({ module: model, input: E.tensor(f.float32('input'), f.entry('input').shape), layers: [meta.layer], methods: ['finer-cam'] });
      expect(e.finer!.main).toEqual(f.int('finer/main'));
      expect(e.finer!.comparisons.flat()).toEqual(f.int('finer/comparisons'));
    });
  });
}

describe('guided backpropagation guides functional ReLUs too (ResNet-20)', () => {
  const { file: f } = fixture('family_resnet20_public');
  it('differs from the plain input gradient (upstream’s ResNet-20 result); Guided Grad-CAM is Grad-CAM × it', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const input = E.tensor(f.float32('input'), f.entry('input').shape);
    const classes = f.int('pred');
    const e = await explain({ module: model, input, layers: ['layer3'], methods: ['gradcam', 'guided-backprop', 'guided-gradcam'], classes });
    const guided = flatMaps(e, 'guided-backprop');
    const plain = await inputGradient(model, input, classifierTarget('logit', classes), false).values();
    const scale = Math.max(...Array.from(plain, Math.abs));
    expect(absErr(guided, plain) / scale).toBeGreaterThan(0.1);
    // Where a guided gradient is non-zero it has the sign of the positive cotangent path: positive
    // cotangents only ever reach the input, so the sign pattern is not the plain gradient's.
    expect(guided.some((v) => v !== 0)).toBe(true);
    const cam = flatMaps(e, 'gradcam');
    const [B, , H, W] = input.shape;
    const product = guided.map((v, i) => v * cam[Math.floor(i / (3 * H * W)) * H * W + (i % (H * W))]);
    expect(absErr(flatMaps(e, 'guided-gradcam'), product)).toBe(0);
    expect(e.methods.get('guided-backprop')!.channels).toBe(3);
    expect(e.methods.get('guided-backprop')!.maps.length).toBe(B);
  });
});

describe('Finer-CAM on a ShapleyCAM base uses G and H·A of its own utility', () => {
  it('raw map = Σ_k mean(G − ½·H·A)_k A_k of the Finer-CAM utility; differs from the Grad-CAM base', async () => {
    const { file: f } = fixture('family_resnet20_public');
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const input = E.tensor(f.float32('input'), f.entry('input').shape);
    const base = (name: string) => explain({ module: model, input, layers: ['layer3'], methods: ['finer-cam'], options: { base: name } });
    const shapley = await base('shapleycam');
    const capture = captureForward(model, input, 'layer3');
    const terms = layerTerms(model, input, capture, finerTarget(shapley.finer!, 1), true);
    expect(terms.hvpStructurallyZero).toBe(false);
    const W = E.mean(E.sub(terms.G, E.mul(terms.HA!, 0.5)), [2, 3], true);
    const raw = await E.sum(E.mul(W, terms.A), 1).values();
    expect(relErr(shapley.methods.get('finer-cam')!.raw.get('layer3')!, raw)).toBeLessThan(1e-12);
    const gradcam = await base('gradcam');
    expect(absErr(flatMaps(shapley, 'finer-cam'), flatMaps(gradcam, 'finer-cam'))).toBeGreaterThan(1e-3);
    expect(shapley.methods.get('finer-cam')!.base).toBe('shapleycam');
  });
});

describe('augmentation smoothing keeps the terms of every augmentation', () => {
  it('six augmentations in upstream’s order; the identity’s terms are the plain terms; the others differ', async () => {
    const { file: f } = fixture('family_resnet20_public');
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const input = E.tensor(f.float32('input'), f.entry('input').shape);
    const plain = await explain({ module: model, input, layers: ['layer3'], methods: ['shapleycam'], keepTerms: true });
    const aug = await explain({ module: model, input, layers: ['layer3'], methods: ['shapleycam'], keepTerms: true, augSmooth: true });
    expect(aug.augmentations!.map((a) => a.label)).toEqual(['noflip-x0.9', 'noflip-x1', 'noflip-x1.1', 'flip-x0.9', 'flip-x1', 'flip-x1.1']);
    const identity = aug.augmentations![1].layers[0].terms!;
    const p = plain.layers[0].terms!;
    expect(absErr(identity.HA!, p.HA!)).toBe(0);
    expect(absErr(aug.layers[0].terms!.G!, p.G!)).toBe(0);
    for (const a of aug.augmentations!.filter((x) => x.label !== 'noflip-x1')) {
      const t = a.layers[0].terms!;
      expect(t.G && t.HA, a.label).toBeTruthy();
      expect(absErr(t.G!, p.G!), a.label).toBeGreaterThan(1e-6);
    }
    expect(aug.methods.get('shapleycam')!.smoothed).toEqual({ aug: true, eigen: false });
  });
});

describe('new methods: batches equal their images one at a time', () => {
  it('fullgrad, guided-backprop, kpca-cam, fem, finer-cam, seg-eigencam', async () => {
    const { file: f } = fixture('family_resnet20_public');
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = E.slice(E.tensor(f.float32('input'), f.entry('input').shape), [0], [2]);
    const methods = ['fullgrad', 'guided-backprop', 'kpca-cam', 'fem', 'finer-cam', 'seg-eigencam'];
    const batch = await explain({ module: model, input: x, layers: ['layer3'], methods });
    for (let b = 0; b < 2; b++) {
      const single = await explain({ module: model, input: E.slice(x, [b], [b + 1]), layers: ['layer3'], methods });
      for (const m of methods) expect(absErr(batch.methods.get(m)!.maps[b], single.methods.get(m)!.maps[0]), `${m} image ${b}`).toBeLessThan(1e-12);
    }
  });
});

describe('memory', () => {
  it('repeated runs of the new methods and both smoothings leave the live buffers unchanged', async () => {
    const { file: f } = fixture('family_resnet20_public');
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = E.slice(E.tensor(f.float32('input'), f.entry('input').shape), [0], [1]);
    const run = () =>
      explain({ module: model, input: x, layers: ['layer2', 'layer3'], methods: ['fullgrad', 'guided-gradcam', 'kpca-cam', 'refine-cam'], augSmooth: true, eigenSmooth: true, keepTerms: true });
    await run();
    const start = cpu.memory();
    await run();
    expect(cpu.memory()).toEqual(start);
  });
});

describe('settings a method cannot run with', () => {
  const { file: f } = fixture('family_resnet20_public');
  let model: Awaited<ReturnType<typeof loadZooModel>>['module'];
  let input: E.Tensor;
  beforeAll(async () => {
    model = (await loadZooModel('resnet20_cifar10')).module;
    input = E.slice(E.tensor(f.float32('input'), f.entry('input').shape), [0], [1]);
  });
  const fails = async (opts: Partial<Parameters<typeof explain>[0]>, message: RegExp) => {
    const err = await explain({ module: model, input, layers: ['layer3'], methods: ['gradcam'], ...opts }).catch((e) => e);
    expect(err).toBeInstanceOf(MethodSettingError);
    expect(err.message).toMatch(message);
  };
  it('refine-cam with one layer', () => fails({ methods: ['refine-cam'] }, /^--layer: refine-cam needs two or more/));
  it('a base that cannot carry the meta-method', async () => {
    await fails({ methods: ['finer-cam'], options: { base: 'eigencam' } }, /^--base: finer-cam: "eigencam" cannot be its base/);
    await fails({ methods: ['refine-cam'], layers: ['layer2', 'layer3'], options: { base: 'random' } }, /^--base: refine-cam/);
  });
  it('Finer-CAM comparison ranks beyond the classes', () => fails({ methods: ['finer-cam'], options: { compare: [1, 10] } }, /^--compare: ranks must be integers in 1…9/));
  it('a gradient method at a layer the output does not depend on', async () => {
    // A module computed but unused: its output has no gradient.
    const net = (await loadZooModel('resnet20_cifar10')).module;
    const probe = new Lambda((x) => E.mul(x, 2), 'Probe');
    const wrapped = new (class extends Lambda {
      constructor() {
        super((x) => x, 'Wrapped');
        this.add('probe', probe);
        this.add('net', net);
        this.finalize();
      }
      override forward(x: E.Tensor) {
        probe.call(x);
        return net.call(x);
      }
    })();
    const err = await explain({ module: wrapped, input, layers: ['probe'], methods: ['gradcam'] }).catch((e) => e);
    expect(err).toBeInstanceOf(MethodSettingError);
    expect(err.message).toMatch(/^--layer probe: the model's output does not depend on this layer, so gradcam has no gradient there/);
    // A gradient-free method runs there.
    const ok = await explain({ module: wrapped, input, layers: ['probe'], methods: ['eigencam'] });
    expect(ok.methods.get('eigencam')!.maps[0].length).toBe(32 * 32);
  });
});

afterAll(() => E.setBackend(cpu));
