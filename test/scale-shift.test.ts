// The fused scale-shift primitive (engine/fusion/scale-shift.ts) and the BatchNorm2d module that uses it.
// - float64 CPU: value, JVP, VJP, second order and forward-over-reverse against central finite differences,
//   with respect to x, the scale and the shift, at awkward geometries (inner sizes 1, 3, 35; channel axis
//   first, middle, last);
// - every backend: value, JVP, VJP and the forward-over-reverse product of the fused primitive against the
//   unfused composition x · reshape(s) + reshape(t) on the same backend and against the float64 reference,
//   with outputs poisoned (NaN) so an element a kernel skips fails;
// - BatchNorm2d fused (cached affine map, one scale-shift) against its unfused graph, a reload of its
//   parameters seen by the cache, the cache freed with the parameters, and on WebGPU one dispatch.

import { afterEach, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Backend, Tensor } from '../engine/index.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { BatchNorm2d } from '../models/layers.ts';
import { setFusion } from '../models/fusion-switch.ts';
import type { StateDictSource } from '../models/module.ts';
import type { Case } from './helpers/derivative-cases.ts';
import { BACKENDS, fusedEqualsComposed } from './helpers/fused-primitive.ts';
import { relErr } from './helpers/fixtures.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { uniform } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

afterEach(() => setFusion(null));

interface Geometry {
  name: string;
  x: number[];
  axis: number;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

const GEOMETRIES: Geometry[] = [
  { name: 'NCHW, inner 35', x: [2, 3, 5, 7], axis: 1 },
  { name: 'NC (inner 1)', x: [5, 7], axis: 1 },
  { name: 'channel axis last', x: [3, 2, 6], axis: -1 },
  { name: 'channel axis first', x: [4, 3], axis: 0 },
];

/** Many planes and workgroups: several wasm tasks, 493 WebGPU workgroups, 130 channels. */
const LARGE: Geometry = { name: 'NCHW [3, 130, 17, 19]', x: [3, 130, 17, 19], axis: 1 };

const channels = (g: Geometry) => g.x.at(g.axis)!;
const normalized = (g: Geometry) => (g.axis < 0 ? g.axis + g.x.length : g.axis);

function unfused(x: Tensor, s: Tensor, t: Tensor, axis: number): Tensor {
  const shape = x.shape.map((d, i) => (i === axis ? d : 1));
  return E.add(E.mul(x, E.reshape(s, shape)), E.reshape(t, shape));
}

function caseOf(g: Geometry, fused: boolean, seed: number): Case {
  const C = channels(g);
  const axis = normalized(g);
  return {
    name: g.name,
    f: fused ? (x, s, t) => E.scaleShift(x, s, t, g.axis) : (x, s, t) => unfused(x, s, t, axis),
    inputs: [
      { values: uniform(size(g.x), seed, -2, 2), shape: g.x },
      { values: uniform(C, seed + 1, 0.3, 2), shape: [C] },
      { values: uniform(C, seed + 2, -1, 1), shape: [C] },
    ],
  };
}

describe('scaleShift against float64 finite differences', () => {
  for (const [k, g] of GEOMETRIES.entries()) {
    it(`${g.name}: value, JVP, VJP and second order in x, scale and shift`, () => {
      const c = caseOf(g, true, 10 * k + 1);
      const xs = c.inputs.map((d) => E.tensor(d.values, d.shape, E.cpuBackend()));
      expect(relErr(c.f(...xs).valuesSync(), caseOf(g, false, 10 * k + 1).f(...xs).valuesSync())).toBeLessThan(1e-15);
      checkGrads(c.f, xs, { order: 2 });
      // Forward-over-reverse: the JVP of the pullback against finite differences of the pullback.
      const w = E.tensor(uniform(size(g.x), 99 + k), g.x, E.cpuBackend());
      const pullback = (...ys: Tensor[]) => E.concat(E.vjp(c.f, ys)[1](w).map((t) => E.reshape(t, [t.size])), 0);
      checkGrads(pullback, xs, { order: 1, modes: ['fwd'] });
    });
  }

  it('refuses a scale or shift that does not match the channels, naming both', () => {
    const x = E.zeros([2, 3, 4]);
    expect(() => E.scaleShift(x, E.ones([4]), E.zeros([3]))).toThrow(/scaleShift: scale \[4\] does not match 3 channels on axis 1 of \[2, ?3, ?4\]/);
    expect(() => E.scaleShift(x, E.ones([4]), E.zeros([1]), 2)).toThrow(/scaleShift: shift \[1\] does not match 4 channels on axis 2/);
    expect(() => E.scaleShift(x, E.ones([3]), E.zeros([3]), 3)).toThrow(/scaleShift: axis 3 is out of range/);
  });
});

// One multiply-add per element (sums over ≤ 969 terms in the VJP): float32 to a few ulps of the largest entry.
fusedEqualsComposed(
  'scaleShift',
  [...GEOMETRIES, LARGE].map((g, k) => ({ name: g.name, fused: caseOf(g, true, 7 * k + 3), composed: caseOf(g, false, 7 * k + 3) })),
  1e-5,
);

// ---------------------------------------------------------------------------------------------------
// The BatchNorm2d module

function statistics(C: number, seed: number): StateDictSource {
  const ranges: Record<string, [number, number]> = { weight: [0.5, 1.5], bias: [-0.5, 0.5], running_mean: [-0.5, 0.5], running_var: [0.3, 2] };
  return {
    names: () => Object.keys(ranges),
    has: (n) => n in ranges,
    shape: () => [C],
    values: (n) => Float32Array.from(uniform(C, seed + n.length, ...ranges[n])),
  };
}

/** Loads statistics into bn's parameters on `backend` (loading allocates on the current backend). */
function reload(bn: BatchNorm2d, backend: Backend, seed: number): void {
  const previous = E.getBackend();
  E.setBackend(backend);
  try {
    bn.loadStateDict(statistics(bn.channels, seed));
  } finally {
    E.setBackend(previous);
  }
}

function batchNormOn(backend: Backend, C: number, seed: number): BatchNorm2d {
  const bn = new BatchNorm2d(C);
  reload(bn, backend, seed);
  return bn;
}

async function forward(bn: BatchNorm2d, x: Tensor, fused: boolean): Promise<Float64Array> {
  setFusion(fused);
  const y = bn.call(x);
  const v = await y.values();
  y.dispose();
  return v;
}

function moduleSuite(name: string, describeIt: (name: string, body: () => void) => void, start: () => Promise<Backend>) {
  describeIt(`BatchNorm2d on ${name}`, () => {
    it('fused (cached scale-shift) equals the unfused graph and float64, and follows a reload', async () => {
      const backend = await start();
      const shape = [2, 5, 7, 3];
      const values = uniform(size(shape), 5, -3, 3);
      const x = E.tensor(values, shape, backend);
      const bn = batchNormOn(backend, 5, 1);
      const ref = batchNormOn(E.cpuBackend(), 5, 1);
      const refX = E.tensor(values, shape, E.cpuBackend());
      const tol = backend.epsilon < 1e-10 ? 1e-15 : 1e-6;
      try {
        const want = await forward(ref, refX, false);
        expect(relErr(await forward(ref, refX, true), want)).toBeLessThan(1e-15);
        expect(relErr(await forward(bn, x, true), want)).toBeLessThan(tol);
        expect(relErr(await forward(bn, x, true), want), 'from the cache').toBeLessThan(tol);
        expect(relErr(await forward(bn, x, false), want)).toBeLessThan(tol);
        // New statistics: the cached scale and shift must not survive them.
        reload(bn, backend, 2);
        reload(ref, E.cpuBackend(), 2);
        const reloaded = await forward(ref, refX, false);
        expect(relErr(reloaded, want)).toBeGreaterThan(1e-3);
        expect(relErr(await forward(bn, x, true), reloaded), 'after a reload').toBeLessThan(tol);
      } finally {
        E.dispose([x, refX]);
        bn.disposeParameters();
        ref.disposeParameters();
      }
    });

    it('frees its cached scale and shift with the parameters', async () => {
      const backend = await start();
      const before = backend.memory().buffers;
      const bn = batchNormOn(backend, 4, 3);
      const x = E.tensor(uniform(4 * 6, 4), [1, 4, 2, 3], backend);
      await forward(bn, x, true);
      bn.disposeParameters();
      x.dispose();
      expect(backend.memory().buffers).toBe(before);
    });
  });
}

for (const [name, describeIt, start] of BACKENDS) moduleSuite(name, describeIt, start);

describeWebGpu('BatchNorm2d on WebGPU is one dispatch', () => {
  it('once its scale and shift are cached; the unfused graph takes more', async () => {
    const gpu: WebGpuBackend = await webgpuBackend();
    const bn = batchNormOn(gpu, 6, 4);
    const x = E.tensor(uniform(2 * 6 * 9 * 5, 6), [2, 6, 9, 5], gpu);
    const dispatches = async (fused: boolean) => {
      await gpu.read(E.tensor([0], [1], gpu).storage()); // flush what came before
      const before = gpu.stats().dispatches;
      await forward(bn, x, fused);
      return gpu.stats().dispatches - before;
    };
    await dispatches(true); // computes and caches the affine map
    expect(await dispatches(true)).toBe(1);
    expect(await dispatches(false)).toBeGreaterThanOrEqual(2);
    bn.disposeParameters();
    x.dispose();
  });
});
