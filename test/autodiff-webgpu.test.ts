// The engine's derivative suites on WebGPU: for every op family, the value, the JVP, the VJP and the
// second-order forward-over-reverse product computed by the WGSL kernels, against the float64 CPU
// reference (itself checked against finite differences in autodiff.test.ts), at float32 tolerance.

import { expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { cases, derivatives } from './helpers/derivative-cases.ts';
import { relErr } from './helpers/fixtures.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

describeWebGpu('derivatives on WebGPU against the CPU reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const gpu = await webgpuBackend();
      const ref = await derivatives(c, E.cpuBackend());
      const got = await derivatives(c, gpu);
      const labels = ['value', 'jvp', 'vjp', 'forward-over-reverse'];
      // float32 kernels: errors of a few ulps per op, amplified a little through the chain of a rule.
      got.forEach((g, i) => expect(relErr(g, ref[i]), labels[i]).toBeLessThan(2e-4));
    });
  }
});
