// The engine under Deno (wgpu + naga compile the same WGSL kernels) against Node (Dawn + Tint) and the
// float64 CPU reference: a small conv net's forward pass and HVP.

import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { relErr } from './helpers/fixtures.ts';
import { describeWebGpu } from './helpers/webgpu.ts';

async function compute(backend: E.Backend) {
  const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  const x = E.tensor(values(2 * 3 * 8 * 8, 0.37), [2, 3, 8, 8], backend);
  const w1 = E.tensor(values(4 * 3 * 3 * 3, 0.11), [4, 3, 3, 3], backend);
  const w2 = E.tensor(values(5 * 4, 0.23), [5, 4], backend);
  const classes = E.tensor([[1], [3]], [2, 1], backend);
  const a = E.relu(E.conv2d(x, w1, null, { padding: 1 }));
  const head = (t: E.Tensor) => {
    const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.silu(t), { kernel: 2 }), 1), 1), w2);
    return E.sum(E.sub(E.mul(E.gather(logits, classes, 1), 2), E.logsumexp(logits, 1, true)));
  };
  const r = E.gradAndHvp(head, a, a);
  return { forward: await a.values(), grad: await r.grad.values(), hvp: await r.hvp.values() };
}


describeWebGpu('Deno', () => {
  it('forward pass and HVP of a small conv net on WebGPU under Deno match Node (Dawn) and the CPU reference', async () => {
    const r = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'test/deno/engine-smoke.ts'], { encoding: 'utf8', env: { ...process.env, DENO_WEBGPU_BACKEND: 'vulkan' } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.adapter).toMatch(/navigator/);
    const previous = E.getBackend();
    const node = await compute(await E.useBackend('webgpu'));
    E.setBackend(previous);
    for (const ref of [await compute(E.cpuBackend()), node]) {
      expect(relErr(out.forward, ref.forward)).toBeLessThan(1e-5);
      expect(relErr(out.grad, ref.grad)).toBeLessThan(1e-4);
      expect(relErr(out.hvp, ref.hvp)).toBeLessThan(1e-4);
    }
  });
});
