// Properties of the CAM pipeline: only the network after the target layer is evaluated again and
// differentiated; batches equal single images; memory returns to where it started.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { explain } from '../cam/algorithm/explain.ts';
import { captureForward, layerTerms } from '../cam/algorithm/terms.ts';
import { classifierTarget } from '../cam/algorithm/targets.ts';
import { loadZooModel } from '../models/zoo.ts';
import { setFusion } from '../models/inference-prefix.ts';
import { fixture } from './helpers/fixtures.ts';

const cpu = E.cpuBackend();
const f = fixture('case1_resnet20_cifar10_public').file;
const input = () => E.tensor(f.float32('input'), f.entry('input').shape, cpu);

describe('CAM pipeline', () => {
  // With the compiled prefix (models/inference-prefix.ts) a module before the layer may run fused inside
  // another (its own forward then never runs); without it, every one runs its forward exactly once.
  it.each([
    ['unfused', false],
    ['compiled prefix', true],
  ] as const)('differentiates only what follows the layer: modules before it run at most once, never under a transform (%s)', async (_label, fused) => {
    setFusion(fused);
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const calls = new Map<string, number>();
    const traced = new Map<string, number>();
    for (const [path, m] of model.modules()) {
      const forward = m.forward.bind(m);
      m.forward = (...xs: E.Tensor[]) => {
        calls.set(path, (calls.get(path) ?? 0) + 1);
        if (xs.some((x) => x.level > 0)) traced.set(path, (traced.get(path) ?? 0) + 1);
        return forward(...xs);
      };
    }
    const x = input();
    const capture = captureForward(model, x, 'layer3.2');
    layerTerms(model, x, capture, classifierTarget('rest', [0, 1, 2, 3]), true);
    // Before the layer: exactly one evaluation (the capture pass), untraced.
    for (const p of ['conv1', 'bn1', 'layer1', 'layer2.1.conv2', 'layer3.0', 'layer3.1', 'layer3.2.conv1']) {
      expect(calls.get(p) ?? 0, p).toBe(fused && p !== 'layer1' ? 0 : 1);
      expect(traced.get(p) ?? 0, p).toBe(0);
    }
    // After it: the linear head ran again, traced.
    expect(calls.get('linear')).toBe(2);
    expect(traced.get('linear')).toBe(1);
    setFusion(null);
  });

  it('a batch gives the same maps as its images one at a time (no cross-image Hessian terms)', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = input();
    const methods = ['shapleycam', 'shapleycam-e', 'gradcam++'];
    const batch = await explain({ module: model, input: x, layers: ['layer3.2.conv1'], methods });
    for (let b = 0; b < 4; b++) {
      const single = await explain({ module: model, input: E.slice(x, [b], [b + 1]), layers: ['layer3.2.conv1'], methods });
      for (const m of methods) {
        const a = batch.methods.get(m)!.maps[b];
        const s = single.methods.get(m)!.maps[0];
        expect(Math.max(...a.map((v, i) => Math.abs(v - s[i]))), `${m} image ${b}`).toBeLessThan(1e-12);
      }
    }
  });

  it('repeated explanations leave the live buffer count unchanged', async () => {
    const model = (await loadZooModel('resnet20_cifar10')).module;
    const x = input();
    const run = () => explain({ module: model, input: x, layers: ['layer3'], methods: ['shapleycam', 'gradcam', 'eigencam'] });
    await run();
    const start = cpu.memory();
    for (let i = 0; i < 5; i++) await run();
    expect(cpu.memory()).toEqual(start);
  });
});
