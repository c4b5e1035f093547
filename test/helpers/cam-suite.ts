// The CAM pipeline on a float32 backend (WebGPU or wasm), written once and run by test/cam-webgpu.test.ts
// and test/wasm-cam.test.ts: logits, A, G and H·A within float32 rounding of PyTorch's float64 values
// (fixture case 1, ResNet-20), every gradient and second-order method's map within the same tolerances,
// the structural zero, no memory growth over repeated explanations, and the CLI end to end on the backend
// under Node and Deno against the CPU reference.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../../engine/index.ts';
import { explain, type Explanation } from '../../cam/algorithm/explain.ts';
import { captureForward, layerTerms } from '../../cam/algorithm/terms.ts';
import { classifierTarget } from '../../cam/algorithm/targets.ts';
import { main } from '../../cam/cli.ts';
import { loadZooModel } from '../../models/zoo.ts';
import { parseSafetensors } from '../../models/safetensors.ts';
import { FIXTURES, absErr, fixture, relErr } from './fixtures.ts';

export interface BackendUnderTest {
  name: 'webgpu' | 'wasm';
  /** `describe`, or a variant that applies a policy (describeWebGpu: skip or fail without an adapter). */
  describe: (name: string, body: () => void) => void;
  /** The backend, with output poisoning on. */
  start: () => Promise<E.Backend>;
  /** Bytes the backend holds from its host beyond live tensors (wasm: its memory), when it can say. */
  reservedBytes?: (backend: E.Backend) => number;
  /** Deno and Node run the same kernels in the same order: maps bit for bit equal (else within rounding). */
  denoBitwise: boolean;
  denoEnv?: Record<string, string>;
}

const maps = (e: Explanation, m: string) => {
  const ms = e.methods.get(m)!.maps;
  const out = new Float64Array(ms.length * ms[0].length);
  ms.forEach((x, b) => out.set(x, b * x.length));
  return out;
};

export function camFixtureSuite(b: BackendUnderTest): void {
  b.describe(`CAM on ${b.name} (ResNet-20, fixture case 1)`, () => {
    const f = fixture('case1_resnet20_cifar10_public').file;
    // Models and inputs go to the current backend: the one under test for this suite.
    let backend: E.Backend;
    beforeAll(async () => E.setBackend((backend = await b.start())));
    afterAll(() => E.setBackend(E.cpuBackend()));
    const T: Record<string, 'rest' | 'logit' | 'softmax'> = { ReST: 'rest', logit: 'logit', softmax: 'softmax' };
    const model = async () => (await loadZooModel('resnet20_cifar10')).module;
    const input = () => E.tensor(f.float32('input'), f.entry('input').shape);

    for (const layer of ['layer3', 'layer3.2.conv1']) {
      it(`${layer}: logits, A, G and H·A within float32 rounding of PyTorch's float64 values`, async () => {
        const m = await model();
        const x = input();
        const classes = f.int('pred');
        for (const t of ['ReST', 'logit', 'softmax']) {
          const capture = captureForward(m, x, layer);
          expect(relErr(await capture.logits.values(), f.float64('logits64'))).toBeLessThan(1e-4);
          const terms = layerTerms(m, x, capture, classifierTarget(T[t], classes), true);
          // Suggested float32 tolerances of the fixture README: A rtol 1e-4; G and H·A rtol 2e-4.
          expect(relErr(await terms.A.values(), f.float64(`A/${layer}`)), `A ${t}`).toBeLessThan(1e-4);
          expect(relErr(await terms.G.values(), f.float64(`G/${t}/${layer}`)), `G ${t}`).toBeLessThan(2e-4);
          if (t === 'logit') expect(terms.hvpStructurallyZero).toBe(true);
          else expect(relErr(await terms.HA!.values(), f.float64(`HA/${t}/${layer}`)), `HA ${t}`).toBeLessThan(2e-4);
        }
        m.disposeParameters();
      });
    }

    it('every gradient and second-order method: maps within 1e-4 of the reference (ReST)', async () => {
      const m = await model();
      const methods: [string, string, number][] = [
        ['shapleycam', 'ShapleyCAM_mean', 1e-4], ['shapleycam-h', 'ShapleyCAM_hires', 1e-4], ['shapleycam-e', 'ShapleyCAM_E', 1e-4],
        ['gradcam', 'GradCAM', 1e-4], ['hirescam', 'HiResCAM', 1e-4], ['gradcam-e', 'GradCAMElementWise', 1e-4], ['layercam', 'LayerCAM', 1e-4],
        ['gradcam++', 'GradCAMPlusPlus', 2e-3], ['xgradcam', 'XGradCAM', 1e-4], ['ablationcam', 'AblationCAM', 2e-4], ['scorecam', 'ScoreCAM', 1e-4],
      ];
      const e = await explain({ module: m, input: input(), layers: ['layer3'], methods: methods.map((x) => x[0]), target: 'rest', classes: f.int('pred') });
      for (const [name, ref, tol] of methods) expect(absErr(maps(e, name), f.float32(`cam/${ref}/ReST/layer3`)), name).toBeLessThan(tol);
      m.disposeParameters();
    });

    it(`ShapleyCAM equals GradCAM under the logit utility on ${b.name} too (structural zero)`, async () => {
      const m = await model();
      const e = await explain({ module: m, input: input(), layers: ['layer3.2.conv1'], methods: ['gradcam', 'shapleycam'], target: 'logit' });
      expect(e.layers[0].hvpStructurallyZero).toBe(true);
      expect(absErr(maps(e, 'gradcam'), maps(e, 'shapleycam'))).toBe(0);
      m.disposeParameters();
    });

    it('no memory growth over repeated explanations', async () => {
      const m = await model();
      const x = input();
      const run = () => explain({ module: m, input: x, layers: ['layer3'], methods: ['shapleycam', 'gradcam++'] });
      await run();
      const start = backend.memory();
      const reserved = b.reservedBytes?.(backend);
      for (let i = 0; i < 10; i++) await run();
      expect(backend.memory()).toEqual(start);
      if (reserved !== undefined) expect(b.reservedBytes!(backend), 'memory reserved from the host').toBe(reserved);
      x.dispose();
      m.disposeParameters();
    });
  });
}

export function camCliSuite(b: BackendUnderTest): void {
  b.describe(`the CLI with --backend ${b.name}`, () => {
    const images = ['cat_0000', 'ship_0000'].map((n) => join(FIXTURES, 'images', `${n}.png`));
    const read = (dir: string) => parseSafetensors(new Uint8Array(readFileSync(join(dir, 'maps.safetensors'))));
    afterAll(() => E.setBackend(E.cpuBackend()));

    it(`Node and Deno on ${b.name} give the CPU reference maps within float32 rounding`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `cam-${b.name}-`));
      const args = ['explain', '--image', ...images, '--method', 'shapleycam,gradcam', '--out'];
      expect(await main([...args, join(dir, 'cpu'), '--backend', 'cpu'])).toBe(0);
      expect(await main([...args, join(dir, 'node'), '--backend', b.name])).toBe(0);
      const deno = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'cam/cli.ts', ...args, join(dir, 'deno'), '--backend', b.name], {
        encoding: 'utf8',
        env: { ...process.env, ...b.denoEnv },
        timeout: 300_000,
      });
      expect(deno.status, deno.stderr).toBe(0);
      expect(deno.stderr).toContain(`backend: ${b.name} (as asked)`);
      for (const sub of ['node', 'deno']) {
        const summary = JSON.parse(readFileSync(join(dir, sub, 'summary.json'), 'utf8'));
        expect(summary, sub).toMatchObject({ backend: b.name, backend_choice: b.name });
      }
      for (const key of ['cam/shapleycam', 'cam/gradcam']) {
        const ref = read(join(dir, 'cpu')).float32(key);
        const node = read(join(dir, 'node')).float32(key);
        const fromDeno = read(join(dir, 'deno')).float32(key);
        expect(absErr(node, ref), `node ${key}`).toBeLessThan(1e-4);
        expect(absErr(fromDeno, ref), `deno ${key}`).toBeLessThan(1e-4);
        if (b.denoBitwise) expect(Array.from(fromDeno), `deno = node ${key}`).toEqual(Array.from(node));
      }
    });
  });
}
