// The engine's derivative suites on the wasm backend: for every op family, the value, the JVP, the VJP
// and the forward-over-reverse product computed by the wasm kernels, against the float64 CPU reference,
// at float32 tolerance (the same cases and bound as test/autodiff-webgpu.test.ts).

import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { WasmBackend } from '../engine/wasm/backend.ts';
import { DERIVATIVE_LABELS, cases, derivatives } from './helpers/derivative-cases.ts';
import { relErr } from './helpers/fixtures.ts';
import { wasmBackend } from './helpers/wasm.ts';

let wasm: WasmBackend;
beforeAll(async () => {
  wasm = await wasmBackend();
});

describe('derivatives on wasm against the CPU reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const ref = await derivatives(c, E.cpuBackend());
      const got = await derivatives(c, wasm);
      // float32 kernels: errors of a few ulps per op, amplified a little through the chain of a rule.
      got.forEach((g, i) => expect(relErr(g, ref[i]), DERIVATIVE_LABELS[i]).toBeLessThan(2e-4));
    });
  }
});
