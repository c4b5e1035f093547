// The wasm backend under Deno (Web Workers, fetch of the module) against the same computation under
// Node (worker_threads) and the float64 CPU reference: a small conv net's forward pass and HVP.

import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { relErr } from './helpers/fixtures.ts';
import { smokeNet } from './helpers/smoke-net.ts';

// Large enough that some kernel calls are shared with the worker (small ones run on the caller alone).
const SIZE = 16;
const CHANNELS = 8;

it('Deno runs the wasm backend with worker threads and matches Node and the CPU reference', async () => {
  const r = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'test/deno/engine-smoke.ts', 'wasm', String(SIZE), String(CHANNELS)], {
    encoding: 'utf8',
    env: { ...process.env, ENGINE_WASM_THREADS: '2' },
    timeout: 120_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  expect(out.adapter).toBe('wasm (float32 SIMD, 2 threads)');
  expect(out.shared).toBeGreaterThan(0); // the worker joined some dispatches
  const previous = E.getBackend();
  const node = await smokeNet(await E.useBackend('wasm'), SIZE, CHANNELS);
  E.setBackend(previous);
  // Same kernels, same order of every sum: Deno and Node agree exactly; both within float32 error of the CPU.
  expect(out.forward).toEqual(node.forward);
  expect(out.hvp).toEqual(node.hvp);
  const cpu = await smokeNet(E.cpuBackend(), SIZE, CHANNELS);
  expect(relErr(out.forward, cpu.forward)).toBeLessThan(1e-5);
  expect(relErr(out.grad, cpu.grad)).toBeLessThan(1e-4);
  expect(relErr(out.hvp, cpu.hvp)).toBeLessThan(1e-4);
});
