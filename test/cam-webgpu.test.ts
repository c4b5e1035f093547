// The CAM pipeline on the WebGPU backend (float32, handwritten kernels) against the PyTorch fixtures at
// float32 tolerances, and against the CPU reference; plus the CLI with --backend webgpu.

import { afterAll, beforeAll, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain, type Explanation } from '../cam/algorithm/explain.ts';
import { captureForward, layerTerms } from '../cam/algorithm/terms.ts';
import { classifierTarget } from '../cam/algorithm/targets.ts';
import { loadZooModel } from '../models/zoo.ts';
import { absErr, fixture, relErr } from './helpers/fixtures.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { main } from '../cam/cli.ts';
import { parseSafetensors } from '../models/safetensors.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const maps = (e: Explanation, m: string) => {
  const ms = e.methods.get(m)!.maps;
  const out = new Float64Array(ms.length * ms[0].length);
  ms.forEach((x, b) => out.set(x, b * x.length));
  return out;
};

describeWebGpu('CAM on WebGPU (ResNet-20, fixture case 1)', () => {
  const f = fixture('case1_resnet20_cifar10_public').file;
  // Models and inputs go to the current backend: WebGPU for this suite.
  let gpu: WebGpuBackend;
  beforeAll(async () => E.setBackend((gpu = await webgpuBackend())));
  afterAll(() => E.setBackend(E.cpuBackend()));
  const T: Record<string, 'rest' | 'logit' | 'softmax'> = { ReST: 'rest', logit: 'logit', softmax: 'softmax' };

  for (const layer of ['layer3', 'layer3.2.conv1']) {
    it(`${layer}: logits, A, G and H·A within float32 rounding of PyTorch's float64 values`, async () => {
      const model = (await loadZooModel('resnet20_cifar10')).module;
      const x = E.tensor(f.float32('input'), f.entry('input').shape);
      const classes = f.int('pred');
      for (const t of ['ReST', 'logit', 'softmax']) {
        const capture = captureForward(model, x, layer);
        expect(relErr(await capture.logits.values(), f.float64('logits64'))).toBeLessThan(1e-4);
        const terms = layerTerms(model, x, capture, classifierTarget(T[t], classes), true);
        // Suggested float32 tolerances of the fixture README: A rtol 1e-4; G and H·A rtol 2e-4.
        expect(relErr(await terms.A.values(), f.float64(`A/${layer}`)), `A ${t}`).toBeLessThan(1e-4);
        expect(relErr(await terms.G.values(), f.float64(`G/${t}/${layer}`)), `G ${t}`).toBeLessThan(2e-4);
        if (t === 'logit') expect(terms.hvpStructurallyZero).toBe(true);
        else expect(relErr(await terms.HA!.values(), f.float64(`HA/${t}/${layer}`)), `HA ${t}`).toBeLessThan(2e-4);
      }
      model.disposeParameters();
    });
  }

  it('every gradient and second-order method: maps within 1e-4 of the reference (ReST)', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = E.tensor(f.float32('input'), f.entry('input').shape);
    const methods: [string, string, number][] = [
      ['shapleycam', 'ShapleyCAM_mean', 1e-4], ['shapleycam-h', 'ShapleyCAM_hires', 1e-4], ['shapleycam-e', 'ShapleyCAM_E', 1e-4],
      ['gradcam', 'GradCAM', 1e-4], ['hirescam', 'HiResCAM', 1e-4], ['gradcam-e', 'GradCAMElementWise', 1e-4], ['layercam', 'LayerCAM', 1e-4],
      ['gradcam++', 'GradCAMPlusPlus', 2e-3], ['xgradcam', 'XGradCAM', 1e-4], ['ablationcam', 'AblationCAM', 2e-4], ['scorecam', 'ScoreCAM', 1e-4],
    ];
    const e = await explain({ module: model, input: x, layers: ['layer3'], methods: methods.map((m) => m[0]), target: 'rest', classes: f.int('pred') });
    for (const [name, ref, tol] of methods) expect(absErr(maps(e, name), f.float32(`cam/${ref}/ReST/layer3`)), name).toBeLessThan(tol);
    model.disposeParameters();
  });

  it('ShapleyCAM equals GradCAM under the logit utility on WebGPU too (structural zero)', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = E.tensor(f.float32('input'), f.entry('input').shape);
    const e = await explain({ module: model, input: x, layers: ['layer3.2.conv1'], methods: ['gradcam', 'shapleycam'], target: 'logit' });
    expect(e.layers[0].hvpStructurallyZero).toBe(true);
    expect(absErr(maps(e, 'gradcam'), maps(e, 'shapleycam'))).toBe(0);
    model.disposeParameters();
  });

  it('no GPU memory growth over repeated explanations', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = E.tensor(f.float32('input'), f.entry('input').shape);
    const run = () => explain({ module: model, input: x, layers: ['layer3'], methods: ['shapleycam', 'gradcam++'] });
    await run();
    const start = gpu.memory();
    for (let i = 0; i < 10; i++) await run();
    expect(gpu.memory()).toEqual(start);
    model.disposeParameters();
  });
});

describeWebGpu('the CLI with --backend webgpu', () => {
  const images = ['cat_0000', 'ship_0000'].map((n) => join(FIXTURES, 'images', `${n}.png`));
  const read = (dir: string) => parseSafetensors(new Uint8Array(readFileSync(join(dir, 'maps.safetensors'))));

  it('Node and Deno on WebGPU give the CPU reference maps within float32 rounding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cam-gpu-'));
    const args = ['explain', '--image', ...images, '--method', 'shapleycam,gradcam', '--out'];
    expect(await main([...args, join(dir, 'cpu'), '--backend', 'cpu'])).toBe(0);
    expect(await main([...args, join(dir, 'gpu'), '--backend', 'webgpu'])).toBe(0);
    const deno = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'cam/cli.ts', ...args, join(dir, 'deno'), '--backend', 'webgpu'], { encoding: 'utf8', env: { ...process.env, DENO_WEBGPU_BACKEND: 'vulkan' } });
    expect(deno.status, deno.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(dir, 'deno', 'summary.json'), 'utf8'));
    expect(summary.backend).toBe('webgpu');
    for (const key of ['cam/shapleycam', 'cam/gradcam']) {
      const ref = read(join(dir, 'cpu')).float32(key);
      expect(absErr(read(join(dir, 'gpu')).float32(key), ref), `node ${key}`).toBeLessThan(1e-4);
      expect(absErr(read(join(dir, 'deno')).float32(key), ref), `deno ${key}`).toBeLessThan(1e-4);
    }
  });
});

