// pytorch-grad-cam's metrics in `eval --metrics`: the confidence family (CamMultImageConfidenceChange,
// DropInConfidence, IncreaseInConfidence) and ARCC with its Complexity and Coherency parts, against the family
// fixture (family_metrics_public: upstream pytorch_grad_cam.metrics at 084273b on the pretrained ResNet-20, 4
// CIFAR images, GradCAM and ShapleyCAM maps, ClassifierOutputSoftmaxTarget of the predicted class).
//
// On the fixture's own maps the deterministic metrics agree to 1e-6, and so do ROAD and ARCC with the
// imputer's noise set to 0 (metric_noise0) under pytorch-grad-cam's percentile selection — the one ARCC uses.
// With the noise on, ours comes from another generator than torch's: it is compared with upstream's seed-0
// values within the spread the fixture measured across seeds. Then the CLI, end to end.

import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isCI, webgpuProbe } from './helpers/webgpu.ts';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { rngFor } from '../cam/algorithm/random.ts';
import { softmaxRow } from '../cam/algorithm/targets.ts';
import { arcc, arccMetrics, coherencyUpstream, confidenceMetrics, multiplyByMap } from '../cam/evaluation/metrics.ts';
import { roadCombined, roadInputs, roadMask, roadThresholdMask, type RoadSelection } from '../cam/evaluation/road.ts';
import { loadZooModel, type LoadedModel } from '../models/zoo.ts';
import { FIXTURES, fixture } from './helpers/fixtures.ts';
import { readJson, runCli, tmp } from './helpers/cli-run.ts';

const ref = fixture('family_metrics_public');
const f = ref.file;
const METHODS = ['GradCAM', 'ShapleyCAM'] as const;
const B = 4;
const N = 3 * 32 * 32;
const pred = Array.from(f.int('pred'), Number);
const rows = Array.from({ length: B }, (_, b) => Float64Array.from(f.float32('input').subarray(b * N, (b + 1) * N)));
const mapsOf = (M: string) => Array.from({ length: B }, (_, b) => Float64Array.from(f.float32(`metric_maps/${M}`).subarray(b * 1024, (b + 1) * 1024)));
/** The README's measured spread of a noisy metric across torch seeds (the larger of its two measures, either method). */
const spread = (metric: string) => Math.max(...METHODS.flatMap((M) => {
  const s = ref.meta.metrics_sidecar.noise_spread[M];
  return [s.max_abs_vs_seed0[metric], s.noise0_vs_seed0[metric]];
}));

let model: LoadedModel;
async function probabilities(images: Float64Array[], classes: number[]): Promise<number[]> {
  const flat = new Float64Array(images.length * N);
  images.forEach((r, i) => flat.set(r, i * N));
  const x = E.tensor(flat, [images.length, 3, 32, 32]);
  const y = await model.module.call(x).values();
  return images.map((_, i) => softmaxRow(y.subarray(i * 10, (i + 1) * 10))[classes[i]]);
}

interface Computed {
  Y: number[];
  O: number[];
  recomputed: Float64Array[];
}
const computed = new Map<string, Computed>();

beforeAll(async () => {
  E.setBackend(E.cpuBackend());
  model = await loadZooModel('resnet20_cifar10');
  const Y = await probabilities(rows, pred);
  for (const M of METHODS) {
    const kept = mapsOf(M).map((m, b) => multiplyByMap(rows[b], m));
    const flat = new Float64Array(B * N);
    kept.forEach((r, i) => flat.set(r, i * N));
    const e = await explain({ module: model.module, input: E.tensor(flat, [B, 3, 32, 32]), layers: ['layer3'], methods: ['gradcam++'], target: 'softmax', classes: pred });
    computed.set(M, { Y, O: await probabilities(kept, pred), recomputed: e.methods.get('gradcam++')!.maps });
  }
});

/** ROAD of image b under a selection rule: MoRF and LeRF probability changes at 20/40/60/80% removed. */
async function road(b: number, map: Float64Array, selection: RoadSelection, noise: number, seed = 1) {
  const r = roadInputs(rows[b], map, 32, 32, rngFor(seed), { noise, selection });
  const scores = await probabilities([...r.morf, ...r.lerf], new Array(8).fill(pred[b]));
  const Y = computed.get(METHODS[0])!.Y[b];
  return { morf: scores.slice(0, 4).map((s) => s - Y), lerf: scores.slice(4).map((s) => s - Y), combined: roadCombined(scores.slice(0, 4), scores.slice(4)) };
}

describe("pytorch-grad-cam's metrics on the fixture's maps (ResNet-20, float64 CPU)", () => {
  for (const M of METHODS) {
    it(`${M}: ConfChange, DropInConf, IncreaseInConf, Complexity and Coherency within 1e-6`, () => {
      const c = computed.get(M)!;
      const maps = mapsOf(M);
      for (let b = 0; b < B; b++) {
        const conf = confidenceMetrics(c.Y[b], c.O[b]);
        const parts = arccMetrics(maps[b], c.recomputed[b], 0);
        const want = (k: string) => f.float64(`metric/${k}/${M}`)[b];
        expect(Math.abs(conf.ConfChange - want('CamMultImageConfidenceChange'))).toBeLessThan(1e-6);
        expect(Math.abs(conf.DropInConf - want('DropInConfidence'))).toBeLessThan(1e-6);
        expect(conf.IncreaseInConf).toBe(want('IncreaseInConfidence'));
        expect(Math.abs(parts.Complexity - want('Complexity'))).toBeLessThan(1e-6);
        expect(Math.abs(parts.Coherency - want('Coherency'))).toBeLessThan(1e-6);
      }
      // Both signs of the change occur in these images, so both branches of DropInConf are exercised.
      expect(new Set(f.float64(`metric/IncreaseInConfidence/${M}`))).toEqual(new Set([0, 1]));
    });

    it(`${M}: with noise 0 and the percentile selection, ROAD (MoRF 80, LeRF 20, combined) and ARCC within 1e-6 of metric_noise0`, async () => {
      const c = computed.get(M)!;
      const maps = mapsOf(M);
      for (let b = 0; b < B; b++) {
        const r = await road(b, maps[b], 'percentile', 0);
        const want = (k: string) => f.float64(`metric_noise0/${k}/${M}`)[b];
        // ROADMostRelevantFirst(80) removes the top 20%; ROADLeastRelevantFirst(20) the least relevant 80%.
        expect(Math.abs(r.morf[0] - want('ROADMostRelevantFirst'))).toBeLessThan(1e-6);
        expect(Math.abs(r.lerf[3] - want('ROADLeastRelevantFirst'))).toBeLessThan(1e-6);
        expect(Math.abs(r.combined - want('ROADCombined'))).toBeLessThan(1e-6);
        expect(Math.abs(arccMetrics(maps[b], c.recomputed[b], r.combined).ARCC - want('ARCC'))).toBeLessThan(1e-6);
      }
    });

    // A single-percentile ROAD is one noise draw; the combined one averages eight, and ARCC rests on it. Only
    // those two are compared with noise on (ours: another generator; at one percentile our draw lands 0.023
    // from seed 0's where torch's seeds 1–3 stayed within 0.015, so that one is checked at noise 0 only).
    it(`${M}: with the imputer's noise (our generator), ROADCombined and ARCC within the fixture's seed spread of upstream's seed-0 values`, async () => {
      const c = computed.get(M)!;
      const maps = mapsOf(M);
      for (let b = 0; b < B; b++) {
        const r = await road(b, maps[b], 'percentile', 0.01, 100 + b);
        const want = (k: string) => f.float64(`metric/${k}/${M}`)[b];
        expect(Math.abs(r.combined - want('ROADCombined'))).toBeLessThan(spread('ROADCombined'));
        expect(Math.abs(arccMetrics(maps[b], c.recomputed[b], r.combined).ARCC - want('ARCC'))).toBeLessThan(spread('ARCC'));
      }
    });
  }

  it("ARCC recomposes from the fixture's own parts (its definition), clipping 2·ROAD to [0, 1]", () => {
    for (const M of METHODS) {
      for (let b = 0; b < B; b++) {
        const g = (k: string) => f.float64(`metric/${k}/${M}`)[b];
        expect(Math.abs(arcc(g('Coherency'), g('Complexity'), g('ROADCombined')) - g('ARCC'))).toBeLessThan(1e-6);
      }
    }
    expect(arcc(1, 0, 0.7)).toBeCloseTo(1, 7);
    expect(arcc(1, 0, -0.2)).toBeCloseTo(3 / (2 + 1e8), 12);
  });

  it("Coherency's Pearson: sample statistics with 1e-8 in the denominator; a constant map gives (0 + 1)/2", () => {
    const a = [0, 1, 2, 3, 4];
    expect(coherencyUpstream(a, a)).toBeCloseTo(1, 8);
    expect(coherencyUpstream(a, [4, 3, 2, 1, 0])).toBeCloseTo(0, 8);
    expect(coherencyUpstream(a, [1, 1, 1, 1, 1])).toBe(0.5);
    // cov/(std·std + 1e-8): with tiny variances the eps shows.
    const tiny = a.map((v) => v * 1e-5);
    expect(coherencyUpstream(tiny, tiny)).toBeCloseTo((2.5e-10 / (2.5e-10 + 1e-8) + 1) / 2, 10);
  });

  it('the percentile selection removes every pixel tied at the threshold; the rank selection exactly q%', () => {
    const map = [0, 1, 0, 0.5, 0, 0]; // sorted: 0 0 0 0 0.5 1
    // MoRF 20%: m ≥ percentile(m, 80) = 0.5. LeRF 20%: 1 − m ≥ percentile(1 − m, 80) = 1: all four zeros
    // (67% of the pixels). MoRF 40%: m ≥ percentile(m, 60) = 0: the whole image.
    expect(Array.from(roadThresholdMask(map, 20, 'morf'))).toEqual([0, 1, 0, 1, 0, 0]);
    expect(Array.from(roadThresholdMask(map, 20, 'lerf'))).toEqual([1, 0, 1, 0, 1, 1]);
    expect(Array.from(roadThresholdMask(map, 40, 'morf'))).toEqual([1, 1, 1, 1, 1, 1]);
    const order = Int32Array.from([1, 3, 0, 2, 4, 5]);
    expect(Array.from(roadMask(order, 20, 'lerf')).reduce((s, v) => s + v, 0)).toBe(1);
    expect(Array.from(roadMask(order, 40, 'morf')).reduce((s, v) => s + v, 0)).toBe(2);
  });
});

describe('eval --metrics confidence,arcc through the CLI (the fixture\'s 4 images)', () => {
  const files = ['airplane/airplane_0000.png', 'automobile/automobile_0004.png', 'deer/deer_0001.png', 'horse/horse_0004.png'];
  let out: string;
  let records: any[];
  beforeAll(async () => {
    const dir = tmp();
    const data = join(dir, 'data');
    mkdirSync(data);
    const labels: Record<string, number> = {};
    files.forEach((file, i) => {
      const name = file.split('/')[1];
      symlinkSync(join(FIXTURES, 'cifar10-sample', name), join(data, name));
      labels[name] = Number(f.int('label')[i]);
    });
    writeFileSync(join(data, 'labels.json'), JSON.stringify(labels));
    out = join(dir, 'out');
    const r = await runCli(['eval', '--model', 'resnet20_cifar10', '--data', data, '--methods', 'gradcam,shapleycam', '--metrics', 'arcc,confidence', '--steps', '2', '--quiet', '--backend', 'cpu', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    records = readFileSync(join(out, 'per_image.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  }, 600_000);

  it('per image: the extra fields, consistent with Y, O and the ROAD they come from, close to upstream on its maps', () => {
    expect(records).toHaveLength(8);
    records.forEach((r, i) => {
      const M = METHODS[i % 2];
      const b = Math.floor(i / 2);
      expect(r.pred).toBe(pred[b]);
      expect(r.ConfChange).toBe(r.O - r.Y);
      expect(r.DropInConf).toBe(Math.max(r.Y - r.O, 0));
      expect(r.IncreaseInConf).toBe(r.IC);
      expect(r.Complexity).toBe(r.Com);
      expect(r.arcc_road.percentages).toEqual([20, 40, 60, 80]);
      expect(r.ARCC).toBe(arcc(r.Coherency, r.Complexity, r.arcc_road.combined));
      expect(r.road).toBeUndefined(); // --road was not asked for
      // These are our own maps (the pipeline's GradCAM/ShapleyCAM, float64), not the fixture's float32 ones:
      // they differ by float32 rounding, which moves the metrics by about 1e-6 (measured: 2e-6 at most).
      const want = (k: string) => f.float64(`metric/${k}/${M}`)[b];
      expect(Math.abs(r.ConfChange - want('CamMultImageConfidenceChange'))).toBeLessThan(1e-5);
      expect(r.IncreaseInConf).toBe(want('IncreaseInConfidence'));
      expect(Math.abs(r.Complexity - want('Complexity'))).toBeLessThan(1e-6);
      expect(Math.abs(r.Coherency - want('Coherency'))).toBeLessThan(1e-5);
      expect(Math.abs(r.ARCC - f.float64(`metric_noise0/ARCC/${M}`)[b])).toBeLessThan(spread('ARCC'));
    });
  });

  for (const backend of ['wasm', 'webgpu'] as const) {
    it.runIf(backend !== 'webgpu' || webgpuProbe.available || isCI)(`on ${backend} (float32): the same records within float32 rounding of the CPU's`, async () => {
      const other = join(tmp(), backend);
      const data = join(out, '..', 'data');
      const r = await runCli(['eval', '--model', 'resnet20_cifar10', '--data', data, '--methods', 'gradcam,shapleycam', '--metrics', 'arcc,confidence', '--steps', '2', '--quiet', '--backend', backend, '--out', other]);
      expect(r.code, r.stderr).toBe(0);
      const theirs = readFileSync(join(other, 'per_image.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(theirs.map((t) => [t.file, t.method, t.pred, t.IncreaseInConf])).toEqual(records.map((t) => [t.file, t.method, t.pred, t.IncreaseInConf]));
      const worst: Record<string, number> = {};
      theirs.forEach((t, i) => {
        for (const k of ['ConfChange', 'DropInConf', 'Complexity', 'Coherency', 'ARCC']) worst[k] = Math.max(worst[k] ?? 0, Math.abs(t[k] - records[i][k]));
      });
      // Measured 2026-12-03: at most 3.0e-6 (ConfChange on WebGPU), 1.5e-6 on wasm.
      for (const k of Object.keys(worst)) expect(worst[k], k).toBeLessThan(1e-5);
    }, 600_000);
  }

  it('tables, CSV and the metrics plot carry the new columns; settings record the families', () => {
    const results = readJson(out, 'results.json');
    expect(results.metrics).toEqual(['confidence', 'arcc']);
    for (const m of ['gradcam', 'shapleycam']) {
      const mine = records.filter((r) => r.method === m);
      for (const k of ['ConfChange', 'DropInConf', 'IncreaseInConf', 'Complexity', 'Coherency', 'ARCC']) {
        expect(results.methods[m][k]).toBeCloseTo((100 * mine.reduce((s, r) => s + r[k], 0)) / mine.length, 10);
      }
    }
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toMatch(/\| method \| AD ↓ \| IC ↑ \| ADD ↑ \| Com ↓ \| Coh ↑ \| ADCC ↑ \| Insertion ↑ \| Deletion ↓ \| ConfChange ↑ \| DropInConf ↓ \| IncreaseInConf ↑ \| Complexity ↓ \| Coherency ↑ \| ARCC ↑ \|/);
    expect(readFileSync(join(out, 'results.csv'), 'utf8').split('\n')[0]).toBe('method,n,accuracy,AD,IC,ADD,Com,Coh,ADCC,Insertion,Deletion,ConfChange,DropInConf,IncreaseInConf,Complexity,Coherency,ARCC');
    expect(existsSync(join(out, 'metrics.png'))).toBe(true);
    expect(readJson(out, 'settings.json').metrics).toEqual(['confidence', 'arcc']);
  });

  it('an unknown family is bad usage; without --metrics nothing extra is computed or recorded', async () => {
    const dir = tmp();
    const bad = await runCli(['eval', '--model', 'resnet20_cifar10', '--data', join(FIXTURES, 'cifar10-sample'), '--metrics', 'arcc,fidelity', '--out', join(dir, 'x')]);
    expect([bad.code, bad.stderr.split('\n')[0]]).toEqual([2, 'error: --metrics: unknown metric family "fidelity"; choose from confidence arcc']);
    expect(existsSync(join(dir, 'x'))).toBe(false);
    const plain = join(dir, 'plain');
    const r = await runCli(['eval', '--model', 'resnet20_cifar10', '--data', join(FIXTURES, 'cifar10-sample'), '--methods', 'gradcam', '--limit', '1', '--steps', '2', '--quiet', '--backend', 'cpu', '--out', plain]);
    expect(r.code, r.stderr).toBe(0);
    const [record] = readFileSync(join(plain, 'per_image.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(Object.keys(record).filter((k) => ['ConfChange', 'DropInConf', 'IncreaseInConf', 'Complexity', 'Coherency', 'ARCC', 'arcc_road'].includes(k))).toEqual([]);
    expect('metrics' in readJson(plain, 'settings.json')).toBe(false);
    expect(readFileSync(join(plain, 'results.csv'), 'utf8').split('\n')[0]).toBe('method,n,accuracy,AD,IC,ADD,Com,Coh,ADCC,Insertion,Deletion');
  });
});
