// The engine under Deno (wgpu + naga compile the same WGSL kernels) against Node (Dawn + Tint) and the
// float64 CPU reference: a small conv net's forward pass and HVP.

import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { relErr } from './helpers/fixtures.ts';
import { smokeNet as compute } from './helpers/smoke-net.ts';
import { describeWebGpu } from './helpers/webgpu.ts';

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
