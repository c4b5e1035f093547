// pytorch-grad-cam's wider family on a float32 backend (WebGPU, wasm) against the same fixtures and the
// same README bounds as the CPU suite (test/helpers/family.ts); DFF from activations computed on that
// backend; the guided ReLU rule against the CPU reference; no memory growth.

import { afterAll, beforeAll, expect, it } from 'vitest';
import * as E from '../../engine/index.ts';
import { explain } from '../../cam/algorithm/explain.ts';
import { deepFeatureFactorization } from '../../cam/algorithm/methods/factorization.ts';
import { captureForward } from '../../cam/algorithm/terms.ts';
import type { BackendUnderTest } from './cam-suite.ts';
import { fixture, relErr } from './fixtures.ts';
import { FAMILY_BOUNDS, FAMILY_CASES, familyDifferences } from './family.ts';
import { uniformAvoiding } from './random.ts';

export function familySuite(b: BackendUnderTest): void {
  b.describe(`the CAM family on ${b.name}`, () => {
    let backend: E.Backend;
    beforeAll(async () => E.setBackend((backend = await b.start())));
    afterAll(() => E.setBackend(E.cpuBackend()));

    for (const c of FAMILY_CASES) {
      it(`${c.name}: every map, projection and utility within the README bounds`, async () => {
        const d = await familyDifferences(c);
        expect(Object.keys(d).length).toBeGreaterThanOrEqual(25);
        for (const k of Object.keys(d)) expect(d[k], k).toBeLessThanOrEqual(FAMILY_BOUNDS[k]);
      }, 300_000);

      it(`${c.name}: DFF of the activations computed on ${b.name} within 5% of scikit-learn's error`, async () => {
        const { file: f, meta } = fixture(c.name);
        const model = await c.build();
        const x = E.tensor(f.float32('input'), f.entry('input').shape);
        const A = captureForward(model, x, meta.layer).activation;
        expect(relErr(await A.values(), f.float32(`dff/activations/${meta.layer}`))).toBeLessThan(1e-4);
        const d = await deepFeatureFactorization(A, 4);
        expect(d.relativeError).toBeLessThanOrEqual(1.05 * meta.dff.relative_error_fro);
        model.disposeParameters();
      });
    }

    it('the guided ReLU rule gives the CPU’s gradients (forward, guided backward)', async () => {
      const xv = uniformAvoiding(2 * 3 * 7 * 5, 4, [0]);
      const grad = (backend: E.Backend) =>
        E.withGuidedRelu(() => E.grad((x: E.Tensor) => E.sum(E.mul(E.relu6(E.relu(x)), E.tensor(uniformAvoiding(210, 5, [0]), [2, 3, 7, 5], backend))))(E.tensor(xv, [2, 3, 7, 5], backend)));
      expect(relErr(await grad(backend).values(), await grad(E.cpuBackend()).values())).toBeLessThan(1e-6);
    });

    it('no memory growth over repeated runs of the new methods with both smoothings', async () => {
      const { file: f } = fixture('family_resnet20_public');
      const model = await FAMILY_CASES[0].build();
      const x = E.slice(E.tensor(f.float32('input'), f.entry('input').shape), [0], [1]);
      const run = () => explain({ module: model, input: x, layers: ['layer2', 'layer3'], methods: ['fullgrad', 'guided-gradcam', 'kpca-cam', 'refine-cam'], augSmooth: true, eigenSmooth: true, keepTerms: true });
      await run();
      const start = backend.memory();
      await run();
      expect(backend.memory()).toEqual(start);
      model.disposeParameters();
    });
  });
}
