// The wasm backend under Deno (Web Workers, fetch of the module) against the same computation under
// Node (worker_threads) and the float64 CPU reference: a small conv net's forward pass and HVP.

import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { relErr } from './helpers/fixtures.ts';

async function compute(backend: E.Backend) {
  const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  const x = E.tensor(values(2 * 3 * 16 * 16, 0.37), [2, 3, 16, 16], backend);
  const w1 = E.tensor(values(8 * 3 * 3 * 3, 0.11), [8, 3, 3, 3], backend);
  const w2 = E.tensor(values(5 * 8, 0.23), [5, 8], backend);
  const classes = E.tensor([[1], [3]], [2, 1], backend);
  const a = E.relu(E.conv2d(x, w1, null, { padding: 1 }));
  const head = (t: E.Tensor) => {
    const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.silu(t), { kernel: 2 }), 1), 1), w2);
    return E.sum(E.sub(E.mul(E.gather(logits, classes, 1), 2), E.logsumexp(logits, 1, true)));
  };
  const r = E.gradAndHvp(head, a, a);
  return { forward: await a.values(), grad: await r.grad.values(), hvp: await r.hvp.values() };
}

it('Deno runs the wasm backend with worker threads and matches Node and the CPU reference', async () => {
  const r = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'test/deno/wasm-smoke.ts'], { encoding: 'utf8', env: { ...process.env, ENGINE_WASM_THREADS: '2' }, timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  expect(out.backend).toBe('wasm (float32 SIMD, 2 threads)');
  expect(out.shared).toBeGreaterThan(0); // the worker joined some dispatches
  const previous = E.getBackend();
  const node = await compute(await E.useBackend('wasm'));
  E.setBackend(previous);
  // Same kernels, same task order: Deno and Node agree exactly; both within float32 error of the CPU.
  expect(out.forward).toEqual(Array.from(node.forward));
  expect(out.hvp).toEqual(Array.from(node.hvp));
  const cpu = await compute(E.cpuBackend());
  expect(relErr(out.forward, cpu.forward)).toBeLessThan(1e-5);
  expect(relErr(out.grad, cpu.grad)).toBeLessThan(1e-4);
  expect(relErr(out.hvp, cpu.hvp)).toBeLessThan(1e-4);
});
