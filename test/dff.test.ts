// Deep Feature Factorization: our NMF (HALS, seeded) on the fixtures' activations reaches scikit-learn's
// reconstruction error (within the README's 5%), with non-negative factors; from the fixture's own factors,
// the resized heat maps and the concepts' classes through the model's head are upstream's.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { conceptMaps, deepFeatureFactorization, findHead, labelConcepts, nmf, type DeepFeatures } from '../cam/algorithm/methods/factorization.ts';
import { absErr, fixture, relErr } from './helpers/fixtures.ts';
import { FAMILY_CASES } from './helpers/family.ts';
import { uniform } from './helpers/random.ts';

const cpu = E.cpuBackend();

for (const c of FAMILY_CASES) {
  describe(`DFF on ${c.name}`, () => {
    const { file: f, meta } = fixture(c.name);
    const L: string = meta.layer;
    const A = () => E.tensor(f.float32(`dff/activations/${L}`), f.entry(`dff/activations/${L}`).shape, cpu);

    it('our NMF: relative error within 5% of scikit-learn’s, factors non-negative, offset as upstream', async () => {
      const d = await deepFeatureFactorization(A(), 4);
      expect(d.relativeError).toBeLessThanOrEqual(1.05 * meta.dff.relative_error_fro);
      expect(d.relativeError).toBeGreaterThan(0.5 * meta.dff.relative_error_fro); // a real factorisation, not a zero error by a bug
      expect(Math.min(...d.explanations)).toBeGreaterThanOrEqual(0);
      const W = d.concepts.map((v, i) => v - d.offset[Math.floor(i / 4)]);
      expect(Math.min(...W)).toBeGreaterThanOrEqual(0);
      expect(absErr(d.offset, f.float32(`dff/offset/${L}`))).toBe(0);
      // The error reported is the error of the factors returned.
      const [B, K, h, w] = A().shape;
      const a = await E.permute(A(), [1, 0, 2, 3]).values();
      let num = 0;
      let den = 0;
      for (let k = 0; k < K; k++) {
        for (let b = 0; b < B; b++) {
          for (let p = 0; p < h * w; p++) {
            const x = a[(k * B + b) * h * w + p] - d.offset[k];
            let y = 0;
            for (let j = 0; j < 4; j++) y += W[k * 4 + j] * d.explanations[(b * 4 + j) * h * w + p];
            num += (x - y) ** 2;
            den += x * x;
          }
        }
      }
      expect(Math.abs(Math.sqrt(num / den) - d.relativeError)).toBeLessThan(1e-9);
    });

    it('from upstream’s factors: the resized heat maps, the head’s outputs, scores and top-2 classes', async () => {
      const model = await c.build();
      const [B, K, h, w] = f.entry(`dff/activations/${L}`).shape;
      const [, , H, W] = f.entry('input').shape;
      const d: DeepFeatures = {
        concepts: Float64Array.from(f.float32(`dff/concepts/${L}`)),
        offset: Float64Array.from(f.float32(`dff/offset/${L}`)),
        explanations: Float64Array.from(f.float32(`dff/explanations/${L}`)),
        shape: { B, K, h, w, concepts: 4 },
        relativeError: 0,
        iterations: 0,
      };
      const maps = conceptMaps(d, H, W);
      expect(absErr(Float64Array.from(maps.flat().flatMap((m) => Array.from(m))), f.float32(`dff/explanations_resized/${L}`))).toBeLessThan(1e-5);
      const head = findHead(model, K)!;
      expect(head.path).toBe(c.name.includes('resnet20') ? 'linear' : 'fc');
      const labels = await labelConcepts(head.head, d, 2);
      expect(relErr(labels.outputs, f.float32(`dff/concept_outputs/${L}`))).toBeLessThan(1e-5);
      expect(absErr(labels.scores, f.float32(`dff/concept_scores/${L}`))).toBeLessThan(1e-6);
      expect(labels.top.flat()).toEqual(f.int(`dff/concept_top2/${L}`));
    });
  });
}

describe('nmf', () => {
  it('recovers an exactly factorisable matrix; the seed decides the start, not the fit', () => {
    const [m, n, k] = [30, 40, 3];
    const W0 = uniform(m * k, 1, 0, 1);
    const H0 = uniform(k * n, 2, 0, 1);
    const X = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) X[i * n + j] += W0[i * k + t] * H0[t * n + j];
    const a = nmf(X, m, n, k, { seed: 1 });
    const b = nmf(X, m, n, k, { seed: 1 });
    const c = nmf(X, m, n, k, { seed: 2 });
    expect(a.relativeError).toBeLessThan(1e-3);
    expect(c.relativeError).toBeLessThan(1e-3);
    expect(Array.from(a.W)).toEqual(Array.from(b.W));
    expect(Array.from(a.W)).not.toEqual(Array.from(c.W));
  });

  it('refuses a negative matrix', () => {
    expect(() => nmf(Float64Array.of(1, -1), 1, 2, 1)).toThrow(/non-negative/);
  });
});
