// torchvision's LR-ASPP MobileNetV3-Large against the public segmentation fixture (seg_lraspp_public: a
// subset of shared/fixtures/segmentation, made by running pytorch-grad-cam 084273b on torch 1.13), with the
// engine's transforms directly (no cam/): float64 logits, the class mask, the hooked activations, and G and
// H·A of the semantic-segmentation target u = Σ_b Σ_pixels out[b, c]·mask[b] at backbone.16 and backbone.12,
// which need the exact second derivatives of the MobileNetV3 activations: no curvature of their own for
// ReLU, ReLU6 and Hardsigmoid (the reference's patched Hardsigmoid), 1/3 on (−3, 3) for Hardswish.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import { ForwardReplay, withForwardHooks, type Module } from '../models/module.ts';
import { loadModel } from '../models/zoo.ts';
import { fixture, FIXTURES, relErr } from './helpers/fixtures.ts';
import { uniformAvoiding } from './helpers/random.ts';

const cpu = E.cpuBackend();
const ref = fixture('seg_lraspp_public');
const input = () => E.tensor(ref.file.float32('input'), ref.file.entry('input').shape, cpu);
const category = Number(ref.file.int('category')[0]);
const mask = () => {
  const [B, H, W] = ref.file.entry('mask').shape;
  return E.tensor(Float64Array.from(ref.file.int('mask')), [B, 1, H, W], cpu);
};

/**
 * The target's value, G = ∂u/∂A and H·A at `layer`, as CAM computes them: a first pass memoises the network
 * up to the layer; the head (the rest of the network) is then differentiated forward-over-reverse in A.
 */
function segmentationTerms(module: Module, x: Tensor, layer: string, c: number, m: Tensor) {
  const replay = new ForwardReplay(layer);
  withForwardHooks(new Map(), () => module.call(x), replay);
  replay.finishRecording();
  const head = (a: Tensor) => {
    replay.replacement = a;
    try {
      const out = withForwardHooks(new Map(), () => module.call(x), replay);
      return E.sum(E.mul(E.slice(out, [0, c], [null, c + 1]), m));
    } finally {
      replay.replacement = null;
    }
  };
  const A = replay.captured!;
  return { A, ...E.gradAndHvp(head, A, A) };
}

describe('LR-ASPP MobileNetV3-Large against the public segmentation fixture (float64 CPU)', () => {
  const load = () => loadModel('lraspp_mobilenet_v3_large', `${FIXTURES}seg_lraspp_public.weights.safetensors`);

  it('logits (every third pixel of the upsampled map) and the class mask of category 19', async () => {
    const model = await load();
    expect([model.numClasses, model.labels[category]]).toEqual([21, 'train']);
    const out = model.module.call(input());
    expect(out.shape).toEqual([2, 21, 128, 128]);
    const grid = E.slice(out, [0, 0, 0, 0], [null, null, null, null], [1, 1, 3, 3]);
    expect(relErr(grid.valuesSync(), ref.file.float64('logits64_stride3'))).toBeLessThan(1e-12);
    // mask[b] = (argmax over classes == c); the fixture's per-image margins (≥ 3e-4) make it exact here.
    const o = out.valuesSync();
    const want = ref.file.int('mask');
    const P = 128 * 128;
    let differing = 0;
    for (let b = 0; b < 2; b++) {
      for (let p = 0; p < P; p++) {
        let best = 0;
        for (let k = 1; k < 21; k++) if (o[(b * 21 + k) * P + p] > o[(b * 21 + best) * P + p]) best = k;
        if (Number(best === category) !== Number(want[b * P + p])) differing++;
      }
    }
    expect(differing).toBe(0);
    model.module.disposeParameters();
  });

  // Image 0 only at backbone.16 (the fixture subset); both images at backbone.12.
  for (const [layer, images] of [['backbone.16', 1], ['backbone.12', 2]] as const) {
    it(`${layer}: A, the target value, G and H·A (forward-over-reverse) equal PyTorch's double backward`, async () => {
      const model = await load();
      const suffix = images === 1 ? '/image0' : '';
      const x = images === 1 ? E.slice(input(), [0], [1]) : input();
      const m = images === 1 ? E.slice(mask(), [0], [1]) : mask();
      const t = segmentationTerms(model.module, x, layer, category, m);
      expect(t.A.shape).toEqual(ref.file.entry(`A/${layer}${suffix}`).shape);
      expect(relErr(t.A.valuesSync(), ref.file.float64(`A/${layer}${suffix}`))).toBeLessThan(1e-12);
      const values = ref.file.float64('target_value/seg').slice(0, images);
      expect(Math.abs(t.value.valuesSync()[0] - values.reduce((a, b) => a + b, 0))).toBeLessThan(1e-9);
      expect(relErr(t.grad.valuesSync(), ref.file.float64(`G/seg/${layer}${suffix}`))).toBeLessThan(1e-10);
      expect(t.hvpIsStructurallyZero).toBe(false);
      expect(relErr(t.hvp.valuesSync(), ref.file.float64(`HA/seg/${layer}${suffix}`))).toBeLessThan(1e-10);
      model.module.disposeParameters();
    });
  }
});

describe('the curvature of the MobileNetV3 activations (the reference patches Hardsigmoid to this)', () => {
  // Points away from the kinks, where the second derivative is defined.
  const x = E.tensor(uniformAvoiding(40, 7, [-3, 0, 3, 6], 0.05, -8, 9), [40], cpu);
  const w = E.tensor(uniformAvoiding(40, 8, [], 0, -1, 1), [40], cpu);
  const hvpOf = (act: (t: Tensor) => Tensor) => E.gradAndHvp((a) => E.sum(E.mul(act(a), w)), x, x);

  for (const [name, act] of [['relu', E.relu], ['relu6', E.relu6], ['hardsigmoid', E.hardsigmoid]] as const) {
    it(`${name}: its Hessian is structurally zero (no curvature of its own), its gradient piecewise constant`, () => {
      const r = hvpOf(act);
      expect(r.hvpIsStructurallyZero).toBe(true);
      const slope = { relu: (v: number) => (v > 0 ? 1 : 0), relu6: (v: number) => (v > 0 && v < 6 ? 1 : 0), hardsigmoid: (v: number) => (v > -3 && v < 3 ? 1 / 6 : 0) }[name];
      const xs = x.valuesSync();
      const ws = w.valuesSync();
      expect(relErr(r.grad.valuesSync(), Array.from(xs, (v, i) => ws[i] * slope(v)))).toBeLessThan(1e-15);
    });
  }

  it('hardswish = x·relu6(x + 3)/6: second derivative 1/3 on (−3, 3) and 0 outside', () => {
    const r = hvpOf(E.hardswish);
    expect(r.hvpIsStructurallyZero).toBe(false);
    const xs = x.valuesSync();
    const ws = w.valuesSync();
    const want = Array.from(xs, (v, i) => (v > -3 && v < 3 ? ws[i] * v / 3 : 0));
    expect(relErr(r.hvp.valuesSync(), want)).toBeLessThan(1e-15);
    // Both regimes occur at these points.
    expect(xs.some((v) => Math.abs(v) < 3) && xs.some((v) => Math.abs(v) > 3)).toBe(true);
  });

  it("a squeeze-excitation gate x·hardsigmoid(s(x)) has curvature only through the product, as the reference's", () => {
    // f(x) = Σ w·x·hardsigmoid(a·x): f'' = 2·w·a·hardsigmoid'(a·x) (the gate's own second derivative is 0).
    const a = 0.7;
    const r = E.gradAndHvp((t) => E.sum(E.mul(E.mul(t, E.hardsigmoid(E.mul(t, a))), w)), x, x);
    const xs = x.valuesSync();
    const ws = w.valuesSync();
    const want = Array.from(xs, (v, i) => (a * v > -3 && a * v < 3 ? 2 * ws[i] * (a / 6) * v : 0));
    expect(relErr(r.hvp.valuesSync(), want)).toBeLessThan(1e-15);
  });
});
