// pytorch-grad-cam's own tests/test_run_all_models.py as a test of this project, through the CLI: resnet18
// with layer4[-1] and layer4[-2] at once and vgg11 with features[-1]; inputs 2×3×32×32 and 1×3×40×32 (the
// target layers are then 1×1 and 2×1: maps must come out finite, in [0, 1], and all-zero exactly where
// upstream's are); the predicted class and class 100 (upstream's ClassifierOutputTarget: --target logit);
// with and without --eigen-smooth; every method of our registry that upstream also has. Upstream only checks
// shapes; here the maps are compared with upstream's classes run on the same seeded weights
// (gradcam_matrix.*, scripts/make-gradcam-matrix.py, reduced widths, ImageNet's 1000 classes).
//
// The generator covers every upstream method, also those this branch does not have: a case runs when its
// CLI name is in METHOD_NAMES, and the --eigen-smooth cases when `explain` has that flag, so the matrix grows
// as those land. Projections (EigenCAM, EigenGradCAM, KPCA-CAM, eigen smoothing) are accepted with any sign
// per layer, as upstream's sign is whatever LAPACK returns.
//
// Conditioning: at 2×1 layers a normalised per-layer map is a ramp (up or down) or zero, so two layers can
// average to a constant, and two nearly equal raw values normalise to an arbitrary ramp; the min-max then
// divides rounding error by ~1e-7 and upstream's float32 map is noise. A projection whose top two eigenvalues
// (nearly) coincide has an arbitrary direction in the same way. The generator records, per image and stored
// map, the smallest relative range (max − min)/max|·| of any map upstream normalised on the way (FullGrad's
// per-channel ones included) and the smallest relative eigengap of any projection it made. An image matches when ours is within the bound of a well-conditioned candidate (upstream's map, or one of its
// other projection signs); when none matches but a candidate is ill-conditioned (ours may be that one: noise
// against noise), it is checked for the properties only, and the suite counts such images.
//
// AblationCAM's reference runs the layers in forward order (upstream pairs one layer's ablation weights with
// the other's activations when they are given out of order; see scripts/make-gradcam-matrix.py).

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { METHOD_NAMES } from '../cam/algorithm/methods/index.ts';
import type { SafetensorsFile } from '../models/safetensors.ts';
import { FIXTURES, fixture } from './helpers/fixtures.ts';
import { readJson, readOutput, runCli, tmp, writeInput } from './helpers/cli-run.ts';

interface StoredMap {
  key?: string;
  zero?: boolean;
  shape?: number[];
  /** Per image, the smallest relative range of a map upstream normalised on the way to this one. */
  conditioning?: number[];
}
interface MatrixCase {
  model: string;
  input: string;
  class: number | null;
  eigen_smooth: boolean;
  method: string;
  upstream: string;
  map?: StoredMap;
  sign_alternatives?: StoredMap[];
  error?: string;
}

const ref = fixture('gradcam_matrix');
const cases: MatrixCase[] = ref.meta.cases;
/** Whether `explain` knows --eigen-smooth (it prints its usage and exits 0 with it; an unknown flag exits 2). */
async function explainHasFlag(flag: string): Promise<boolean> {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    return (await runCli(['explain', flag, '--help'])).code === 0;
  } finally {
    out.mockRestore();
  }
}
const hasEigenSmooth = await explainHasFlag('--eigen-smooth');
/** Our methods that upstream does not have (the fork's variants): the only registry entries the matrix may miss. */
const NOT_UPSTREAM = ['shapleycam-h', 'shapleycam-e'];

/** The family fixture README's checker bounds: absolute on maps in [0, 1], relative to max|ref| for guided ones. */
const TOLERANCE: Record<string, { abs?: number; rel?: number }> = {
  'gradcam++': { abs: 2e-3 },
  fullgrad: { abs: 2e-3 },
  'refine-cam': { abs: 2e-3 },
  'kpca-cam': { abs: 1e-3 },
  'guided-backprop': { rel: 5e-3 },
  'guided-gradcam': { rel: 1e-3 },
};
const DEFAULT_TOLERANCE = { abs: 1e-4 };
/** Float32 rounding (6e-8) over this relative range stays below 6e-5, inside every bound above. */
const ILL_CONDITIONED = 1e-3;
/** Guided maps are gradients (3 channels), not maps in [0, 1]. */
const GUIDED = new Set(['guided-backprop', 'guided-gradcam']);
/** Random channel weights: upstream's draw (NumPy) cannot be ours; only the properties are checked. */
const RANDOM = new Set(['random']);

function stored(m: StoredMap, shape: number[]): Float64Array {
  if (m.zero) return new Float64Array(m.shape!.reduce((a, b) => a * b, 1));
  const v = ref.file.float32(m.key!);
  expect(ref.file.entry(m.key!).shape).toEqual(shape);
  return Float64Array.from(v);
}

/**
 * Difference of row b of `got` from row b of a reference (relative to its max |·| when asked); an all-zero
 * reference is matched only by an all-zero row.
 */
function rowDifference(got: Float32Array, ref: Float64Array, b: number, n: number, rel: boolean): number {
  const row = got.subarray(b * n, (b + 1) * n);
  if (ref.subarray(b * n, (b + 1) * n).every((v) => v === 0)) return row.every((v) => v === 0) ? 0 : Infinity;
  let d = 0;
  let scale = 0;
  for (let i = b * n; i < (b + 1) * n; i++) {
    d = Math.max(d, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return rel ? d / (scale || 1) : d;
}

const wellConditioned = (m: StoredMap, b: number) => (m.conditioning?.[b] ?? 1) >= ILL_CONDITIONED;

describe('the mapping table', () => {
  it('knows whether explain has --eigen-smooth (its cases run only then)', async () => {
    expect(await explainHasFlag('--no-such-flag')).toBe(false);
  });

  it('covers every method of the registry that upstream has (a new method needs a row in scripts/make-gradcam-matrix.py)', () => {
    const table = new Set((ref.meta.methods as { name: string }[]).map((m) => m.name));
    expect(METHOD_NAMES.filter((m) => !table.has(m) && !NOT_UPSTREAM.includes(m))).toEqual([]);
  });
});

/** Per method: images whose values were compared, those with a non-zero reference, the worst difference; images checked for the properties only. */
const compared = new Map<string, { images: number; nonZero: number; worst: number; illConditioned: number }>();
const statsOf = (method: string) => compared.get(method) ?? compared.set(method, { images: 0, nonZero: 0, worst: 0, illConditioned: 0 }).get(method)!;

afterAll(() => {
  if (process.env.MATRIX_REPORT) console.log(JSON.stringify(Object.fromEntries(compared)));
});

type Group = { model: string; input: string; cls: number | null; eigen: boolean; cases: MatrixCase[] };
const groups = new Map<string, Group>();
for (const c of cases) {
  if (c.error || !METHOD_NAMES.includes(c.method) || (c.eigen_smooth && !hasEigenSmooth)) continue;
  const id = `${c.model} ${c.input}, class ${c.class ?? 'predicted'}${c.eigen_smooth ? ', --eigen-smooth' : ''}`;
  if (!groups.has(id)) groups.set(id, { model: c.model, input: c.input, cls: c.class, eigen: c.eigen_smooth, cases: [] });
  groups.get(id)!.cases.push(c);
}

for (const [id, g] of groups) {
  describe(`test_run_all_models: ${id}`, () => {
    const info = ref.meta.models[g.model];
    const shape = ref.file.entry(`input/${g.input}`).shape;
    const [B, , H, W] = shape;
    let maps: SafetensorsFile;
    let summary: any;
    beforeAll(async () => {
      const dir = tmp();
      const out = join(dir, 'out');
      const argv = ['explain', '--arch', info.arch, '--weights', join(FIXTURES, info.weights_file), '--input', writeInput(dir, ref.file.float32(`input/${g.input}`), shape),
        ...info.layers.flatMap((l: string) => ['--layer', l]), '--method', g.cases.map((c) => c.method).join(','), '--target', 'logit',
        ...(g.cls === null ? [] : ['--class', String(g.cls)]), ...(g.eigen ? ['--eigen-smooth'] : []), '--backend', 'cpu', '--out', out];
      const r = await runCli(argv);
      expect(r.code, r.stderr).toBe(0);
      maps = readOutput(out, 'maps.safetensors');
      summary = readJson(out, 'summary.json');
    }, 600_000);

    it('explains the class upstream explained', () => {
      const want = g.cls === null ? info.inputs[g.input].pred : new Array(B).fill(g.cls);
      expect(summary.images.map((i: any) => i.class.index)).toEqual(want);
    });

    for (const c of g.cases) {
      it(`${c.method} (upstream ${c.upstream}): finite${GUIDED.has(c.method) ? '' : ', in [0, 1]'}, zero where upstream's is${RANDOM.has(c.method) ? '' : ', within the checker bound'}`, () => {
        const guided = GUIDED.has(c.method);
        const want = guided ? [B, 3, H, W] : [B, H, W];
        expect(maps.entry(`cam/${c.method}`).shape).toEqual(want);
        const got = maps.float32(`cam/${c.method}`);
        expect(got.every(Number.isFinite)).toBe(true);
        if (!guided) expect(got.every((v) => v >= 0 && v <= 1)).toBe(true);
        if (RANDOM.has(c.method)) return;
        const n = got.length / B;
        const tol = TOLERANCE[c.method] ?? DEFAULT_TOLERANCE;
        const bound = tol.rel ?? tol.abs!;
        const candidates = [c.map!, ...(c.sign_alternatives ?? [])].map((m) => ({ m, values: stored(m, want) }));
        for (let b = 0; b < B; b++) {
          const judged = candidates.filter(({ m }) => wellConditioned(m, b));
          const best = Math.min(...judged.map(({ values }) => rowDifference(got, values, b, n, tol.rel !== undefined)));
          if (best < bound) {
            const stats = statsOf(c.method);
            stats.images++;
            if (!c.map!.zero) stats.nonZero++;
            stats.worst = Math.max(stats.worst, best);
            continue;
          }
          if (judged.length < candidates.length) {
            statsOf(c.method).illConditioned++;
            continue;
          }
          expect(best, `image ${b}${c.map!.zero ? ' (upstream: all zero)' : ''}`).toBeLessThan(bound);
        }
      });
    }
  });
}

// What upstream refuses and this project has: RefineCAM with one target layer is bad usage here (exit 2).
for (const c of cases.filter((x) => x.error?.includes('two or more target layers') && METHOD_NAMES.includes(x.method) && !x.eigen_smooth)) {
  describe(`test_run_all_models: ${c.model} ${c.input}, class ${c.class ?? 'predicted'}`, () => {
    it(`${c.method} with one target layer is refused as upstream's ${c.upstream} is: exit 2`, async () => {
      const info = ref.meta.models[c.model];
      const dir = tmp();
      const input = writeInput(dir, ref.file.float32(`input/${c.input}`), ref.file.entry(`input/${c.input}`).shape);
      const r = await runCli(['explain', '--arch', info.arch, '--weights', join(FIXTURES, info.weights_file), '--input', input, '--layer', info.layers[0], '--method', c.method, '--backend', 'cpu', '--out', join(dir, 'out')]);
      expect(r.code).toBe(2);
    });
  });
}
