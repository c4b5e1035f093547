// Faithfulness metrics against the case-4 reference (caihuaiguang/pytorch-shapley-cam metrics/ADCC.py, see
// ../shared/fixtures/README.md "Case 4"): first the formulas in isolation on the fixture's own maps and
// scores, then end to end with our explain() on the fixture input; and the ROAD imputer on hand-solved
// linear systems, Pearson edge cases, percentiles, curves.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain, type Explanation } from '../cam/algorithm/explain.ts';
import { softmaxRow } from '../cam/algorithm/targets.ts';
import { loadZooModel, type LoadedModel } from '../models/zoo.ts';
import {
  adcc, adccMetrics, averageDrop, averageDropInDeletion, coherency, complexity, curveInputs, datasetAdcc,
  increaseInConfidence, multiplyByMap, pearson, percentile, relevanceOrder, stepCount, trapezoidAuc, type AdccMetrics,
} from '../cam/evaluation/metrics.ts';
import { imputationSystem, noisyLinearImpute, roadCombined, roadInputs, roadMask, solveImputation, ROAD_PERCENTAGES } from '../cam/evaluation/road.ts';
import { rngFor } from '../cam/algorithm/random.ts';
import { absErr, fixture } from './helpers/fixtures.ts';

const fx = fixture('case4_adcc_resnet20_public');
const f = fx.file;
const B = 4;
const HW = 32 * 32;
const METHODS = { GradCAM: 'gradcam', ShapleyCAM_mean: 'shapleycam', HiResCAM: 'hirescam', GradCAMPlusPlus: 'gradcam++' } as const;
type Ref = keyof typeof METHODS;
const KEYS = ['AD', 'IC', 'ADD', 'Com', 'Coh', 'ADCC'] as const;
const rows = (name: string) => {
  const d = f.float32(name);
  const n = d.length / B;
  return Array.from({ length: B }, (_, b) => d.subarray(b * n, (b + 1) * n));
};
const perImage = (k: string, ref: Ref) => Array.from(f.float64(`per_image/${k}/${ref}/layer3`));
const score = (k: string, ref: Ref) => Array.from(f.float32(`score/${k}/${ref}/layer3`));

describe('ADCC family on the fixture maps (formulas in isolation)', () => {
  for (const ref of Object.keys(METHODS) as Ref[]) {
    it(ref, () => {
      const Y = score('Y', ref);
      const O = score('O', ref);
      const D = score('D', ref);
      const maps = rows(`cam/${ref}/layer3`);
      const again = rows(`coherency_cam/${ref}/layer3`);
      // The reference computed AD, ADD and Com in float32 (≈ 6e-8 relative), Pearson in float64.
      expect(absErr(Y.map((y, b) => averageDrop(y, O[b])), perImage('AD', ref))).toBeLessThan(1e-7);
      expect(Y.map((y, b) => increaseInConfidence(y, O[b]))).toEqual(perImage('IC', ref));
      expect(absErr(Y.map((y, b) => averageDropInDeletion(y, D[b])), perImage('ADD', ref))).toBeLessThan(1e-7);
      expect(absErr(maps.map(complexity), perImage('Com', ref))).toBeLessThan(1e-7);
      expect(absErr(maps.map((m, b) => coherency(m, again[b])), perImage('Coh', ref))).toBeLessThan(1e-12);
      const coh = perImage('Coh', ref);
      const com = perImage('Com', ref);
      const ad = perImage('AD', ref);
      // The reference's harmonic mean mixes float32 terms (1 − Com, 1 − AD): ≈ 1e-8 here.
      expect(absErr(coh.map((c, b) => adcc(c, com[b], ad[b])), perImage('ADCC', ref))).toBeLessThan(1e-7);
      const all = maps.map((m, b) => adccMetrics({ Y: Y[b], O: O[b], D: D[b] }, m, again[b]));
      for (const k of KEYS) expect(absErr(all.map((r) => r[k]), perImage(k, ref)), k).toBeLessThan(1e-7);
      // Dataset values: means, and ADCC from the means of Coh, Com and AD.
      const refRows: AdccMetrics[] = Y.map((_, b) => Object.fromEntries(KEYS.map((k) => [k, perImage(k, ref)[b]])) as unknown as AdccMetrics);
      const avg = datasetAdcc(refRows);
      const expected = fx.meta.per_method[ref].dataset_average;
      // The reference averaged AD, ADD and Com in float32 (np.mean of float32 values): ≈ 4e-8 here.
      for (const k of KEYS) expect(Math.abs(avg[k] - expected[k]), k).toBeLessThan(1e-7);
    });
  }
});

describe('ADCC family end to end with our explain() on the fixture input (CPU, float64)', () => {
  const cpu = E.cpuBackend();
  let model: LoadedModel;
  let e: Explanation;
  const x = Float64Array.from(f.float32('input'));
  const images = Array.from({ length: B }, (_, b) => x.subarray(b * 3 * HW, (b + 1) * 3 * HW));
  const getModel = async () => (model ??= await loadZooModel('resnet20_cifar10'));
  const probs = async (inputs: Float64Array[], classes: number[]) => {
    const flat = new Float64Array(inputs.length * 3 * HW);
    inputs.forEach((r, i) => flat.set(r, i * 3 * HW));
    const logits = await (await getModel()).module.call(E.tensor(flat, [inputs.length, 3, 32, 32], cpu)).values();
    return inputs.map((_, i) => softmaxRow(logits.subarray(i * 10, (i + 1) * 10))[classes[i]]);
  };
  const getExplanation = async () =>
    (e ??= await explain({ module: (await getModel()).module, input: E.tensor(x, [B, 3, 32, 32], cpu), layers: ['layer3'], methods: Object.values(METHODS) }));

  // Tolerances. The reference ran the model in float32, we run it in float64. The fixture README observes
  // float32 logits within 2.3e-5 of float64 relative to their largest magnitude (|o| ≲ 10 here, so ≲ 2e-4
  // absolute, which moves a softmax probability p by at most p(1−p)·Δ ≤ 5e-5), and maps within 1e-4
  // (GradCAM++: 2e-3, its G³ ratio). A map error δ moves O, D by ≲ |∂p/∂x|·|x|·δ, and Coh and Com by ≲ δ.
  // Observed here: scores and metrics ≤ 5e-6, maps ≤ 7e-7, recomputed maps ≤ 5e-6.
  const mapTol = (ref: Ref) => (ref === 'GradCAMPlusPlus' ? 2e-3 : 1e-4);
  const metricTol = (ref: Ref) => (ref === 'GradCAMPlusPlus' ? 2e-3 : 1e-4);

  it('predicts the fixture classes with the fixture probabilities', async () => {
    const ex = await getExplanation();
    expect(ex.classes).toEqual(Array.from(f.int('pred')).map(Number));
    expect(absErr(await probs(images, ex.classes), score('Y', 'GradCAM'))).toBeLessThan(5e-5);
    expect(absErr(ex.probabilities, score('Y', 'GradCAM'))).toBeLessThan(5e-5);
  });

  for (const ref of Object.keys(METHODS) as Ref[]) {
    it(`${ref} (${METHODS[ref]}): maps, scores, recomputed maps, per-image metrics and dataset averages`, async () => {
      const ex = await getExplanation();
      const maps = ex.methods.get(METHODS[ref])!.maps;
      const refMaps = rows(`cam/${ref}/layer3`);
      maps.forEach((m, b) => expect(absErr(m, refMaps[b]), `map ${b}`).toBeLessThan(mapTol(ref)));
      const kept = images.map((img, b) => multiplyByMap(img, maps[b]));
      const O = await probs(kept, ex.classes);
      const D = await probs(images.map((img, b) => multiplyByMap(img, maps[b], true)), ex.classes);
      expect(absErr(O, score('O', ref))).toBeLessThan(metricTol(ref));
      expect(absErr(D, score('D', ref))).toBeLessThan(metricTol(ref));
      const flat = new Float64Array(B * 3 * HW);
      kept.forEach((r, i) => flat.set(r, i * 3 * HW));
      const again = await explain({ module: model.module, input: E.tensor(flat, [B, 3, 32, 32], cpu), layers: ['layer3'], methods: [METHODS[ref]], classes: ex.classes });
      const refAgain = rows(`coherency_cam/${ref}/layer3`);
      again.methods.get(METHODS[ref])!.maps.forEach((m, b) => expect(absErr(m, refAgain[b]), `m' ${b}`).toBeLessThan(mapTol(ref)));
      const all = maps.map((m, b) => adccMetrics({ Y: ex.probabilities[b], O: O[b], D: D[b] }, m, again.methods.get(METHODS[ref])!.maps[b]));
      for (const k of KEYS) expect(absErr(all.map((r) => r[k]), perImage(k, ref)), k).toBeLessThan(k === 'IC' ? 1e-15 : metricTol(ref));
      const avg = datasetAdcc(all);
      const expected = fx.meta.per_method[ref].dataset_average;
      for (const k of KEYS) expect(Math.abs(avg[k] - expected[k]), k).toBeLessThan(metricTol(ref));
    });
  }
});

describe('metric edge cases', () => {
  it('Pearson: exact cases, invariances and undefined correlations', () => {
    const a = [1, 2, 3, 4, 5];
    expect(pearson(a, a)).toBe(1);
    expect(pearson(a, a.map((v) => -2 * v + 7))).toBeCloseTo(-1, 15);
    expect(pearson(a, a.map((v) => 3 * v + 1))).toBeCloseTo(1, 15);
    expect(pearson([1, 0, 0, 1], [0, 1, 1, 0])).toBeCloseTo(-1, 15);
    expect(pearson([1, 2, 3], [1, 3, 2])).toBeCloseTo(0.5, 15);
    expect(pearson([0, 0, 0], [1, 2, 3])).toBeNaN(); // zero variance
    expect(pearson([1, 2, 3], [4, 4, 4])).toBeNaN();
    expect(pearson([1, NaN, 3], [1, 2, 3])).toBeNaN();
    expect(pearson([1, 2, Infinity], [1, 2, 3])).toBeNaN();
    expect(pearson([1], [2])).toBeNaN();
    expect(() => pearson([1, 2], [1, 2, 3])).toThrow(/lengths/);
    // Coherency maps the correlation to [0, 1] and an undefined one to 0, as the reference does.
    expect(coherency(a, a)).toBe(1);
    expect(coherency(a, a.map((v) => -v))).toBeCloseTo(0, 15);
    expect(coherency([0, 0, 0], [0, 0, 0])).toBe(0);
    expect(coherency([1, 2, 3], [NaN, 1, 2])).toBe(0);
  });

  it('AD, IC, ADD, Com and ADCC limits', () => {
    expect(averageDrop(0.8, 0.9)).toBe(0);
    expect(averageDrop(0.8, 0.2)).toBeCloseTo(0.75, 15);
    expect(increaseInConfidence(0.5, 0.5)).toBe(0);
    expect(increaseInConfidence(0.5, 0.6)).toBe(1);
    expect(averageDropInDeletion(0.5, 0.1)).toBeCloseTo(0.8, 15);
    expect(complexity([-1, 1, 0, 0])).toBe(0.5);
    expect(adcc(1, 0, 0)).toBe(1);
    expect(adcc(0.5, 0.5, 0.5)).toBeCloseTo(0.5, 15);
    expect(adcc(0, 0.2, 0.3)).toBe(0); // Coh = 0 (undefined correlation)
    expect(adcc(0.9, 0.2, 1)).toBe(0); // AD = 1
    expect(adcc(0.9, 1, 0.1)).toBe(0); // Com = 1
    const r = datasetAdcc([
      { AD: 0.2, IC: 1, ADD: 0.5, Com: 0.1, Coh: 0.9, ADCC: 0 },
      { AD: 0.4, IC: 0, ADD: 0.3, Com: 0.3, Coh: 0.7, ADCC: 0 },
    ]);
    expect(r.AD).toBeCloseTo(0.3, 15);
    expect(r.ADCC).toBeCloseTo(adcc(0.8, 0.2, 0.3), 15); // from the means, not the mean of per-image ADCC
  });

  it('multiplies CHW images by a map broadcast over channels', () => {
    const x = [1, 2, 3, 4, 5, 6];
    expect(Array.from(multiplyByMap(x, [0.5, 1]))).toEqual([0.5, 2, 1.5, 4, 2.5, 6]);
    expect(Array.from(multiplyByMap(x, [0.5, 1], true))).toEqual([0.5, 0, 1.5, 0, 2.5, 0]);
  });

  it('numpy percentiles, relevance order, insertion/deletion inputs and trapezoid AUC', () => {
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5], 20)).toBeCloseTo(1.8, 15);
    expect(percentile([1, 2, 3, 4, 5], 100)).toBe(5);
    expect(Array.from(relevanceOrder([0.1, 0.9, 0.5, 0.9]))).toEqual([1, 3, 2, 0]);
    // Ties in a seeded random order: reproducible, and both orders occur over seeds.
    const tied = new Array(8).fill(0);
    expect(Array.from(relevanceOrder(tied, rngFor(3)))).toEqual(Array.from(relevanceOrder(tied, rngFor(3))));
    expect(new Set(Array.from({ length: 10 }, (_, s) => relevanceOrder(tied, rngFor(s)).join())).size).toBeGreaterThan(1);
    const x = [1, 2, 3, 4, 10, 20, 30, 40]; // 2 channels of 2×2
    const order = Int32Array.from([2, 0, 3, 1]);
    const del = curveInputs(x, order, 4, 'deletion');
    const ins = curveInputs(x, order, 4, 'insertion');
    expect(del.map((d) => Array.from(d))).toEqual([
      [1, 2, 0, 4, 10, 20, 0, 40],
      [0, 2, 0, 4, 0, 20, 0, 40],
      [0, 2, 0, 0, 0, 20, 0, 0],
    ]);
    expect(Array.from(ins[0])).toEqual([0, 0, 3, 0, 0, 0, 30, 0]);
    expect(stepCount(1024, 1, 16)).toBe(64);
    expect(trapezoidAuc([1, 1, 1])).toBe(1);
    expect(trapezoidAuc([0, 1])).toBe(0.5);
    expect(trapezoidAuc([1, 0.5, 0.25, 0])).toBeCloseTo((0.75 + 0.375 + 0.125) / 3, 15);
  });
});

describe('ROAD noisy linear imputer', () => {
  // 3×3 image (one channel), values a…i row by row.
  const grid = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const mask = (...removed: number[]) => {
    const m = new Uint8Array(9);
    for (const p of removed) m[p] = 1;
    return m;
  };

  it('a removed centre pixel becomes the weighted mean of its 8 neighbours (1/6 edge, 1/12 diagonal)', () => {
    const out = noisyLinearImpute(grid, mask(4), 3, 3, undefined, 0).image;
    expect(out[4]).toBeCloseTo((2 + 4 + 6 + 8) / 6 + (1 + 3 + 7 + 9) / 12, 12);
    expect(Array.from(out).filter((_, i) => i !== 4)).toEqual(grid.filter((_, i) => i !== 4));
  });

  it('a corner pixel uses its in-bounds neighbours, renormalised', () => {
    const out = noisyLinearImpute(grid, mask(0), 3, 3, undefined, 0).image;
    expect(out[0]).toBeCloseTo((2 / 6 + 4 / 6 + 5 / 12) / (5 / 12), 12);
  });

  it('two adjacent removed pixels: the hand-solved 2×2 system', () => {
    // Unknowns u (centre, p4) and v (right middle, p5):
    //   u − v/6 = (1+3+7+9)/12 + (2+4+8)/6 = 4
    //   (2/3)v − u/6 = (2+8)/12 + (3+9)/6 = 17/6        (v has 5 in-bounds neighbours: 1/12+1/6+1/6+1/12+1/6)
    // ⇒ v = 126/23, u = 113/23.
    const sys = imputationSystem(grid, mask(4, 5), 3, 3);
    expect(sys.diag[0]).toBeCloseTo(1, 15);
    expect(sys.diag[1]).toBeCloseTo(2 / 3, 15);
    expect(Array.from(sys.rhs[0]).map((v) => +v.toFixed(12))).toEqual([4, +(17 / 6).toFixed(12)]);
    const sol = solveImputation(sys, sys.rhs[0]);
    expect(sol.x[0]).toBeCloseTo(113 / 23, 12);
    expect(sol.x[1]).toBeCloseTo(126 / 23, 12);
    expect(sol.iterations).toBeLessThanOrEqual(2);
    const out = noisyLinearImpute(grid, mask(4, 5), 3, 3, undefined, 0).image;
    expect(out[4]).toBeCloseTo(113 / 23, 12);
    expect(out[5]).toBeCloseTo(126 / 23, 12);
  });

  it('conjugate gradients agree with a dense direct solve on a large random mask', () => {
    const H = 12;
    const W = 10;
    const r = rngFor(7);
    const img = Float64Array.from({ length: 3 * H * W }, () => r() * 4 - 2);
    const removed = Uint8Array.from({ length: H * W }, () => (r() < 0.7 ? 1 : 0));
    const sys = imputationSystem(img, removed, H, W);
    const n = sys.pixels.length;
    // Dense M = D − W, Gaussian elimination with partial pivoting.
    const dense = (b: Float64Array) => {
      const A = Array.from({ length: n }, (_, i) => {
        const row = new Float64Array(n + 1);
        row[i] = sys.diag[i];
        for (let k = sys.rowStart[i]; k < sys.rowStart[i + 1]; k++) row[sys.col[k]] += sys.val[k];
        row[n] = b[i];
        return row;
      });
      for (let c = 0; c < n; c++) {
        let p = c;
        for (let i = c + 1; i < n; i++) if (Math.abs(A[i][c]) > Math.abs(A[p][c])) p = i;
        [A[c], A[p]] = [A[p], A[c]];
        for (let i = c + 1; i < n; i++) {
          const fct = A[i][c] / A[c][c];
          for (let j = c; j <= n; j++) A[i][j] -= fct * A[c][j];
        }
      }
      const x = new Float64Array(n);
      for (let i = n - 1; i >= 0; i--) {
        let s = A[i][n];
        for (let j = i + 1; j < n; j++) s -= A[i][j] * x[j];
        x[i] = s / A[i][i];
      }
      return x;
    };
    for (let c = 0; c < 3; c++) {
      const sol = solveImputation(sys, sys.rhs[c]);
      expect(sol.residual).toBeLessThan(1e-10);
      const ref = dense(sys.rhs[c]);
      expect(absErr(sol.x, ref)).toBeLessThan(1e-9 * Math.max(...ref.map(Math.abs)));
    }
  });

  it('adds seeded N(0, 0.01²) noise to the imputed pixels only', () => {
    const H = 40;
    const W = 40;
    const img = Float64Array.from({ length: 3 * H * W }, (_, i) => Math.sin(i / 7));
    const removed = Uint8Array.from({ length: H * W }, (_, p) => (p % W > 10 && p % W < 30 ? 1 : 0));
    const clean = noisyLinearImpute(img, removed, H, W, undefined, 0).image;
    const a = noisyLinearImpute(img, removed, H, W, rngFor(1)).image;
    const b = noisyLinearImpute(img, removed, H, W, rngFor(1)).image;
    expect(Array.from(a)).toEqual(Array.from(b));
    const d: number[] = [];
    for (let i = 0; i < img.length; i++) {
      if (removed[i % (H * W)]) d.push(a[i] - clean[i]);
      else expect(a[i]).toBe(img[i]);
    }
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    const sd = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(sd).toBeGreaterThan(0.0095);
    expect(sd).toBeLessThan(0.0105);
  });

  it('imputes the baseline 0 when every pixel is removed (the system is singular)', () => {
    const out = noisyLinearImpute(grid, mask(0, 1, 2, 3, 4, 5, 6, 7, 8), 3, 3, undefined, 0).image;
    expect(Array.from(out)).toEqual(new Array(9).fill(0));
  });

  it('MoRF/LeRF masks remove exactly q% by rank, and ROADCombined is mean (LeRF − MoRF)/2', () => {
    const order = Int32Array.from([4, 2, 0, 1, 3]);
    expect(Array.from(roadMask(order, 40, 'morf'))).toEqual([0, 0, 1, 0, 1]);
    expect(Array.from(roadMask(order, 40, 'lerf'))).toEqual([0, 1, 0, 1, 0]);
    expect(ROAD_PERCENTAGES).toEqual([20, 40, 60, 80]);
    // pytorch-grad-cam: (mean_q(s_lerf − s_before) − mean_q(s_morf − s_before)) / 2.
    const Y = 0.9;
    const morf = [0.5, 0.3, 0.2, 0.1];
    const lerf = [0.9, 0.85, 0.8, 0.6];
    const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
    expect(roadCombined(morf, lerf)).toBeCloseTo((mean(lerf.map((s) => s - Y)) - mean(morf.map((s) => s - Y))) / 2, 15);
    const img = Float64Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i));
    const map = Float64Array.from({ length: 64 }, (_, i) => (i % 8) / 8);
    const road = roadInputs(img, map, 8, 8, rngFor(5));
    expect(road.morf).toHaveLength(4);
    expect(road.residual).toBeLessThan(1e-10);
    // MoRF at 20% changed the 13 highest-map pixels (columns 6–7 hold 16 pixels ≥ 0.75).
    let changed = 0;
    for (let p = 0; p < 64; p++) if (road.morf[0][p] !== img[p]) changed++;
    expect(changed).toBe(13);
  });
});
