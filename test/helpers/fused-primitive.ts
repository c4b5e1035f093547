// Checks a fused primitive against the composition of engine ops it replaces, on one backend: value, JVP,
// VJP and the forward-over-reverse product (derivative-cases.ts `derivatives`) of the fused case equal
// the unfused case's on the same backend and the unfused case's on the float64 CPU reference.

import { describe, expect, it } from 'vitest';
import * as E from '../../engine/index.ts';
import type { Backend } from '../../engine/index.ts';
import { derivatives, DERIVATIVE_LABELS, type Case } from './derivative-cases.ts';
import { relErr } from './fixtures.ts';
import { wasmBackend } from './wasm.ts';
import { describeWebGpu, webgpuBackend } from './webgpu.ts';

export interface FusedCase {
  name: string;
  fused: Case;
  composed: Case;
  /** float64 bound when the case is ill-conditioned (default 1e-14: summation order only). */
  float64Tol?: number;
}

/** The backends every fused primitive runs on, outputs poisoned (NaN) so that a skipped element fails. */
export const BACKENDS: [string, (name: string, body: () => void) => void, () => Promise<Backend>][] = [
  ['cpu (float64)', describe, async () => E.cpuBackend()],
  ['wasm', describe, () => wasmBackend(2)],
  [
    'webgpu',
    describeWebGpu,
    async () => {
      const gpu = await webgpuBackend();
      gpu.debug.poisonOutputs = true;
      return gpu;
    },
  ],
];

/**
 * One suite per backend. `float32Tol` bounds the relative error (to the largest entry) of a float32
 * backend; float64 must agree to 1e-14 (summation order only).
 */
export function fusedEqualsComposed(title: string, cases: FusedCase[], float32Tol: number): void {
  for (const [name, describeIt, start] of BACKENDS) {
    describeIt(`${title} on ${name}: fused = unfused = float64 reference`, () => {
      for (const c of cases) {
        it(`${c.name}: value, JVP, VJP, forward-over-reverse`, async () => {
          const backend = await start();
          const fused = await derivatives(c.fused, backend);
          const composed = await derivatives(c.composed, backend);
          const ref = await derivatives(c.composed, E.cpuBackend());
          const tol = backend.epsilon < 1e-10 ? (c.float64Tol ?? 1e-14) : float32Tol;
          fused.forEach((got, i) => {
            expect(relErr(got, composed[i]), `${DERIVATIVE_LABELS[i]} fused vs unfused`).toBeLessThan(tol);
            expect(relErr(got, ref[i]), `${DERIVATIVE_LABELS[i]} vs float64`).toBeLessThan(tol);
          });
        });
      }
    });
  }
}
