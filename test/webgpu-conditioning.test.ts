// The WebGPU-only map differences of issue 17, examined against the float64 CPU backend: ResNet-18 (seeded
// He-normal weights, full torchvision widths) with two target layers at once, layer4.1 and layer4.0, at
// 1×3×40×32 (the layers are 2×1) for GradCAM, GradCAM++, LayerCAM and XGradCAM, under the ReST and the
// logit target, and AblationCAM at 1×3×64×96 (2×3 layers).
//
// A map is post(raw): each layer's raw map Σ_k w_k A_k (h×w, computed on the backend) goes through the same
// float64 host code (ReLU, min-max with eps 1e-7, bilinear resize, mean over layers, min-max again), so a
// difference between backends can only come from the raw maps. The test checks, per case:
//   1. what the backend computes agrees within float32 rounding: for the gradient methods the raw maps
//      (relative 2e-4 of the largest value, the fixture README's tolerance for G); for AblationCAM the
//      activations A and the target scores y_k of the ablated copies (relative 1e-4, as for A and logits),
//      from which its weights w_k = (y − y_k)/y and raw map Σ_k w_k A_k follow, so the raw map may differ
//      by no more than those differences propagated (first order, 25% margin);
//   2. the final maps differ by no more than the raw difference propagated through the post-processing:
//      |Δmap| ≤ Σ_i |∂map/∂raw_i|·|Δraw_i| (first order), with the partial derivatives measured on the
//      float64 pipeline itself by perturbing one raw value at a time (the "amplification" of the case).
// A bug (a wrong kernel, a mis-indexed weight) breaks 1; a map difference that rounding does not explain
// breaks 2. The amplifications and differences are printed for the record (README, "float32 conditioning"):
// AblationCAM divides by the target score y, so where y is small against the ablated scores its weights
// carry the scores' rounding error multiplied by max|y_k|/|y|.

import { afterAll, beforeAll, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { aggregateLayers, scaleCamImage } from '../cam/algorithm/postprocess.ts';
import { getArchitecture } from '../models/registry.ts';
import '../models/archs/index.ts';
import { randomStateDict } from '../models/init.ts';
import type { StateDictSource } from '../models/module.ts';
import { rng } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const LAYERS = ['layer4.1', 'layer4.0'];

function gaussianInput(shape: number[], seed: number): Float32Array {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r()));
}

interface Run {
  raw: Map<string, Float64Array[]>;
  /** Channel weights per layer (AblationCAM's w_k). */
  weights: Map<string, Float64Array[]>;
  maps: Map<string, Float64Array>;
  /** Activations per layer. */
  A: Float64Array[];
  /** The target score y of the image. */
  y: number;
  hw: [number, number];
}

let weights: StateDictSource;

async function run(backend: E.Backend, shape: number[], x: Float32Array, methods: string[], target: 'rest' | 'logit', classes?: number[]): Promise<Run> {
  E.setBackend(backend);
  const module = getArchitecture('resnet18').build();
  module.loadStateDict(weights);
  const e = await explain({ module, input: E.tensor(x, shape), layers: LAYERS, methods, target, classes, keepTerms: true });
  module.disposeParameters();
  const layer = e.layers[0].shape;
  return {
    raw: new Map(methods.map((m) => [m, LAYERS.map((l) => e.methods.get(m)!.raw.get(l)!)])),
    weights: new Map(methods.map((m) => [m, LAYERS.map((l) => e.methods.get(m)!.weights.get(l) ?? new Float64Array())])),
    maps: new Map(methods.map((m) => [m, e.methods.get(m)!.maps[0]])),
    A: e.layers.map((l) => l.terms!.A),
    y: e.utilities[0],
    hw: [layer[2], layer[3]],
  };
}

/** The pipeline's post-processing of one image's raw per-layer maps (as cam/algorithm/explain.ts does). */
function post(raw: Float64Array[], h: number, w: number, H: number, W: number): Float64Array {
  return aggregateLayers(raw.map((r) => scaleCamImage([r], h, w, H, W)))[0];
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/**
 * AblationCAM on one image: A and the ablated scores y_k = y·(1 − w_k) within float32 rounding, and the raw
 * maps Σ_k w_k A_k within the first-order propagation of the weights' and activations' differences.
 */
function checkAblation(want: Run, got: Run, hw: number): void {
  LAYERS.forEach((layer, li) => {
    const [aCpu, aGpu] = [want.A[li], got.A[li]];
    expect(maxAbs(aCpu.map((v, i) => v - aGpu[i])), `ablationcam ${layer}: A`).toBeLessThanOrEqual(1e-4 * maxAbs(aCpu));
    const [wCpu, wGpu] = [want.weights.get('ablationcam')![li], got.weights.get('ablationcam')![li]];
    const sCpu = wCpu.map((v) => want.y * (1 - v));
    const sGpu = wGpu.map((v) => got.y * (1 - v));
    const scale = Math.max(maxAbs(sCpu), Math.abs(want.y));
    expect(Math.abs(want.y - got.y), `ablationcam ${layer}: target score`).toBeLessThanOrEqual(1e-4 * scale);
    expect(maxAbs(sCpu.map((v, k) => v - sGpu[k])), `ablationcam ${layer}: ablated scores`).toBeLessThanOrEqual(1e-4 * scale);
    const [rCpu, rGpu] = [want.raw.get('ablationcam')![li], got.raw.get('ablationcam')![li]];
    for (let p = 0; p < hw; p++) {
      let bound = 0;
      wCpu.forEach((wk, k) => (bound += Math.abs(wGpu[k] - wk) * Math.abs(aCpu[k * hw + p]) + Math.abs(wk) * Math.abs(aGpu[k * hw + p] - aCpu[k * hw + p])));
      expect(Math.abs(rGpu[p] - rCpu[p]), `ablationcam ${layer} raw pixel ${p}`).toBeLessThanOrEqual(1.25 * bound + 1e-9 * maxAbs(rCpu));
    }
    console.log(`ablationcam ${layer}: target score y ${want.y.toPrecision(6)}, max |y_k| ${maxAbs(sCpu).toPrecision(6)}: a relative score error is amplified ${(maxAbs(sCpu) / Math.abs(want.y)).toExponential(2)}× in w_k`);
  });
}

describeWebGpu('WebGPU maps against the float64 CPU backend where the target layers are tiny (issue 17)', () => {
  let gpu: E.Backend;
  beforeAll(async () => {
    gpu = await webgpuBackend();
    // Drawn once: randomStateDict draws as values are asked for, and both backends must load the same.
    const drawn = randomStateDict(getArchitecture('resnet18').build(), 17);
    const values = new Map(drawn.names().map((n) => [n, drawn.values(n)]));
    weights = { ...drawn, values: (n) => values.get(n)! };
  });
  afterAll(() => E.setBackend(E.cpuBackend()));

  const cases: { label: string; shape: number[]; methods: string[]; target: 'rest' | 'logit'; classes?: number[] }[] = [
    { label: '1×3×40×32, ReST, predicted class', shape: [1, 3, 40, 32], methods: ['gradcam', 'gradcam++', 'layercam', 'xgradcam'], target: 'rest' },
    { label: '1×3×40×32, logit of class 100', shape: [1, 3, 40, 32], methods: ['gradcam', 'gradcam++', 'layercam', 'xgradcam'], target: 'logit', classes: [100] },
    { label: '1×3×64×96, logit of class 100', shape: [1, 3, 64, 96], methods: ['ablationcam'], target: 'logit', classes: [100] },
  ];
  for (const c of cases) {
    it(`${c.methods.join(', ')} at ${c.label}: differences are float32 rounding times the post-processing's amplification`, async () => {
      const x = gaussianInput(c.shape, 40 + c.shape[2]);
      const want = await run(E.cpuBackend(), c.shape, x, c.methods, c.target, c.classes);
      const got = await run(gpu, c.shape, x, c.methods, c.target, c.classes);
      const [h, w] = want.hw;
      const [H, W] = [c.shape[2], c.shape[3]];
      for (const m of c.methods) {
        const rawCpu = want.raw.get(m)!;
        const rawGpu = got.raw.get(m)!;
        // 1. What the backend computes: float32 rounding.
        if (m === 'ablationcam') checkAblation(want, got, h * w);
        else {
          rawCpu.forEach((r, li) => {
            const scale = maxAbs(r);
            const diff = maxAbs(r.map((v, i) => v - rawGpu[li][i]));
            expect(diff, `${m} ${LAYERS[li]} raw map: |Δ| ${diff} against max ${scale}`).toBeLessThanOrEqual(2e-4 * scale);
          });
        }
        // 2. The final maps: the raw differences propagated through the float64 post-processing.
        const base = post(rawCpu, h, w, H, W);
        expect(maxAbs(base.map((v, i) => v - want.maps.get(m)![i])), `${m}: post() reproduces the pipeline`).toBe(0);
        let bound = 0;
        let amplification = 0;
        rawCpu.forEach((r, li) => {
          const step = 1e-7 * maxAbs(r);
          r.forEach((v, i) => {
            if (step === 0) return;
            const bumped = rawCpu.map((q) => Float64Array.from(q));
            bumped[li][i] = v + step;
            const slope = maxAbs(post(bumped, h, w, H, W).map((y, j) => y - base[j])) / step;
            bound += slope * Math.abs(rawGpu[li][i] - v);
            amplification = Math.max(amplification, slope * maxAbs(r));
          });
        });
        const mapDiff = maxAbs(got.maps.get(m)!.map((v, i) => v - base[i]));
        console.log(`${c.label} ${m}: max |map gpu − cpu| ${mapDiff.toExponential(2)}, first-order bound ${bound.toExponential(2)}, amplification of a relative raw change ${amplification.toExponential(2)}`);
        // Second-order terms and the bound's own rounding: a 25% margin and 1e-12 absolute.
        expect(mapDiff, `${m}: the map difference exceeds what the raw differences explain`).toBeLessThanOrEqual(1.25 * bound + 1e-12);
      }
    }, 600_000); // AblationCAM runs the head once per channel of each layer (2 × 512), on both backends
  }
});
