// Elementwise chains (engine/fusion/elementwise-chain.ts): the one-kernel chain equals the composition of
// ordinary engine ops on every backend (exactly on the float64 CPU and on wasm, whose kernels are the same
// float32 operations in the same order; within float32 rounding on WebGPU, whose compiler may contract a
// multiply and an add inside one shader) and the float64 reference within float32 tolerances relative to
// each element's magnitude; outputs are NaN-poisoned so a skipped element fails. Under a transform the
// chain expands into ordinary ops, so its JVP, VJP and forward-over-reverse product are the
// composition's, checked against finite differences. On WebGPU a chain is one dispatch.

import { afterEach, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Backend, ChainExpr, Tensor } from '../engine/index.ts';
import type { KernelName } from '../engine/backend.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { BACKENDS, fusedEqualsComposed } from './helpers/fused-primitive.ts';
import { assertClose, rand, u, type Tol } from './helpers/float32.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { uniform } from './helpers/random.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

afterEach(() => E.setChainFusion(null));

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

interface ChainCase {
  name: string;
  shapes: number[][];
  build: (...xs: ChainExpr[]) => ChainExpr;
  /** Input values (default uniform in [-2, 2)); float32-representable. */
  values?: (n: number, seed: number) => Float64Array;
  /** Allowed |float32 − float64| per element, given the float64 value (default 64u·max(|c|, 1)). */
  tol?: (c: number) => number;
}

/** Inputs with NaN, ±∞, ±0 and ties mixed in: NaN-propagation and select semantics must match the CPU. */
function poisoned(n: number, seed: number): Float64Array {
  const v = rand(n, seed, -2, 2);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1];
  for (let i = seed % 5; i < n; i += 7) v[i] = specials[i % specials.length];
  return v;
}

const CASES: ChainCase[] = [
  {
    name: 'CAM post-processing: relu(x·m), a row of 7 against a column (broadcast both ways)',
    shapes: [[3, 5, 7], [5, 1], [1, 7]],
    build: (x, a, b) => x.mul(a).add(b).relu().div(a.abs().add(0.5)),
  },
  {
    name: 'metric masks x⊙m and x⊙(1−m) mixed with a baseline, rows of 300 (two blocks, a tail)',
    shapes: [[2, 3, 2, 300], [2, 1, 2, 300], [3, 1, 1]],
    build: (x, m, base) => x.mul(m).add(x.mul(m.neg().add(1)).mul(0.25)).add(base.mul(m.sub(1).square())),
  },
  {
    name: 'normalisation (x − mean)/std per channel, clamp',
    shapes: [[2, 3, 9, 11], [1, 3, 1, 1], [1, 3, 1, 1]],
    build: (x, mean, std) => x.sub(mean).div(std.abs().add(0.25)).clamp(-1.5, 1.5),
    values: (n, seed) => rand(n, seed, -3, 3),
  },
  {
    name: 'exp/log/sqrt/min/max with a scalar input',
    shapes: [[4, 33], []],
    build: (x, s) => x.exp().add(s.square()).log().sqrt().max(x.min(s)).sub(x.abs().exp().log1p()),
    tol: (c) => 256 * u * Math.max(Math.abs(c), 4),
  },
  {
    name: 'comparisons and select, constants folded',
    shapes: [[6, 17], [17]],
    build: (x, y) => x.greater(y).select(x.sub(y), y.less(0).select(x.mul(2 * 3), y.sigmoid())).add(x.equal(y)),
  },
  {
    name: 'NaN, ±∞ and ±0 inputs: max/min propagate NaN, relu(NaN) = 0, a NaN condition selects a',
    shapes: [[5, 13], [5, 13]],
    build: (x, y) => x.max(y).add(x.min(y).relu()).add(x.select(y, 3)).sub(y.relu().notEqual(0)),
    values: poisoned,
  },
  {
    name: 'a result that is an input, broadcast to the others',
    shapes: [[1, 4], [3, 4], [3, 1]],
    build: (x) => x,
  },
  {
    name: 'large, same shapes (several wasm tasks, many WebGPU workgroups)',
    shapes: [[70001], [70001]],
    build: (x, y) => x.mul(y).add(x).sub(y.mul(0.5)).relu(),
  },
  {
    name: 'zero-size output',
    shapes: [[0, 3], [3]],
    build: (x, y) => x.add(y),
  },
];

function inputsOf(c: ChainCase, backend: Backend): Tensor[] {
  return c.shapes.map((s, k) => E.tensor((c.values ?? ((n, seed) => rand(n, seed, -2, 2)))(size(s), 11 * k + 3), s, backend));
}

async function evaluate(c: ChainCase, backend: Backend, fused: boolean): Promise<Float64Array> {
  E.setChainFusion(fused);
  try {
    const xs = inputsOf(c, backend);
    const y = E.elementwiseChain(xs, c.build);
    const values = await y.values();
    expect(y.shape).toEqual(c.shapes.reduce((a, s) => broadcast(a, s), [] as number[]));
    for (const x of [...xs, y]) x.dispose();
    return values;
  } finally {
    E.setChainFusion(null);
  }
}

function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const da = a[a.length - r + i] ?? 1;
    return da === 1 ? (b[b.length - r + i] ?? 1) : da;
  });
}

for (const [name, describeIt, start] of BACKENDS) {
  describeIt(`elementwise chain on ${name}: one kernel = the composition of ops = float64`, () => {
    for (const c of CASES) {
      it(c.name, async () => {
        const backend = await start();
        const fused = await evaluate(c, backend, true);
        const composed = await evaluate(c, backend, false);
        const reference = await evaluate(c, E.cpuBackend(), false);
        const tolOf = c.tol ?? ((v: number) => 64 * u * Math.max(Math.abs(v), 1));
        const tol: Tol = (_i, v) => tolOf(v);
        if (backend.name === 'webgpu') assertClose('fused vs unfused', fused, composed, tol);
        else expect(Array.from(fused), 'fused vs unfused, bit for bit').toEqual(Array.from(composed));
        if (backend.name === 'cpu') expect(Array.from(fused)).toEqual(Array.from(reference));
        else assertClose('fused vs float64', fused, reference, tol);
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Under transforms: the chain expands into engine ops

/** A chain whose derivatives exercise every kind of step: smooth maps, a select, max/min away from ties. */
const smooth = (x: Tensor, y: Tensor, s: Tensor) =>
  E.elementwiseChain([x, y, s], (a, b, c) => a.mul(b).add(c.mul(a.square())).exp().div(b.square().add(1)).max(a.mul(0.1)).select(a.tanh(), 0).sub(b.log1p().mul(c)));
const smoothComposed = (x: Tensor, y: Tensor, s: Tensor) => {
  const t = E.maximum(E.div(E.exp(E.add(E.mul(x, y), E.mul(s, E.mul(x, x)))), E.add(E.mul(y, y), 1)), E.mul(x, 0.1));
  return E.sub(E.where(t, E.tanh(x), 0), E.mul(E.log1p(y), s));
};
const smoothShapes = [[3, 4], [4], []];

describe('elementwise chain under transforms', () => {
  it('falls back to the ordinary ops for tracers (no chain kernel runs), one kernel otherwise', () => {
    const cpu = E.cpuBackend();
    const seen: KernelName[] = [];
    const run = cpu.run.bind(cpu);
    cpu.run = ((k: KernelName, inputs, p) => (seen.push(k), run(k, inputs, p))) as typeof cpu.run;
    try {
      const xs = smoothShapes.map((s, k) => E.tensor(uniform(size(s), k + 1, 0.1, 0.9), s, cpu));
      E.vjp(smooth, xs)[1](E.onesLike(smooth(...(xs as [Tensor, Tensor, Tensor]))));
      E.jvp(smooth, xs, xs);
      seen.length = 0;
      E.vjp(smooth, xs);
      expect(seen).not.toContain('elementwiseChain');
      seen.length = 0;
      smooth(...(xs as [Tensor, Tensor, Tensor]));
      expect(seen).toEqual(['elementwiseChain']);
    } finally {
      cpu.run = run;
    }
  });

  it('JVP, VJP and second order against float64 finite differences', () => {
    const cpu = E.cpuBackend();
    const xs = smoothShapes.map((s, k) => E.tensor(uniform(size(s), k + 7, 0.1, 0.9), s, cpu));
    checkGrads((x, y, s) => smooth(x, y, s), xs, { order: 2, rtol: 1e-6 });
  });
});

fusedEqualsComposed(
  'elementwise chain',
  [
    {
      name: 'broadcast smooth chain with a select and a max',
      fused: { name: 'fused', f: (x, y, s) => smooth(x, y, s), inputs: smoothShapes.map((s, k) => ({ values: uniform(size(s), k + 21, 0.1, 0.9), shape: s })) },
      composed: { name: 'composed', f: (x, y, s) => smoothComposed(x, y, s), inputs: smoothShapes.map((s, k) => ({ values: uniform(size(s), k + 21, 0.1, 0.9), shape: s })) },
    },
  ],
  1e-5,
);

// ---------------------------------------------------------------------------------------------------
// WebGPU: one dispatch, and tensors larger than one binding

describeWebGpu('elementwise chain on WebGPU: dispatches and binding splits', () => {
  const build = (x: ChainExpr, m: ChainExpr) => x.mul(m).add(x.mul(m.neg().add(1)).mul(0.5)).relu().sqrt();

  async function dispatchesOf(gpu: WebGpuBackend, fused: boolean): Promise<number> {
    const x = E.tensor(rand(2 * 3 * 40, 5), [2, 3, 40], gpu);
    const m = E.tensor(rand(2 * 40, 6, 0, 1), [2, 1, 40], gpu);
    await gpu.sync();
    const before = gpu.stats().dispatches;
    E.setChainFusion(fused);
    const y = E.elementwiseChain([x, m], build);
    E.setChainFusion(null);
    await y.values();
    const n = gpu.stats().dispatches - before;
    for (const t of [x, m, y]) t.dispose();
    return n;
  }

  it('a chain of 8 operations is one dispatch (8 unfused)', async () => {
    const gpu = await webgpuBackend();
    expect(await dispatchesOf(gpu, true)).toBe(1);
    expect(await dispatchesOf(gpu, false)).toBe(8);
  });

  it('tensors larger than one binding: contiguous chunks, and a strided chain as its unfused kernels', async () => {
    const gpu = await webgpuBackend();
    const cases: ChainCase[] = [
      { name: 'same shapes', shapes: [[5, 1000], [5, 1000], []], build: (x, y, s) => x.mul(y).add(s).relu() },
      { name: 'broadcast', shapes: [[5, 1000], [1, 1000], [5, 1]], build: (x, y, s) => x.mul(y).add(s).relu() },
    ];
    for (const c of cases) {
      const reference = await evaluate(c, E.cpuBackend(), false);
      gpu.debug.maxBindingBytes = 1024 * 4;
      try {
        const got = await evaluate(c, gpu, true);
        assertClose(`${c.name} split`, got, reference, (_i, v) => 8 * u * Math.max(Math.abs(v), 1));
      } finally {
        gpu.debug.maxBindingBytes = undefined;
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Errors

describe('elementwise chain errors', () => {
  const cpu = E.cpuBackend();
  const t = (s: number[]) => E.tensor(new Float64Array(size(s)), s, cpu);

  it('names the input whose shape does not broadcast', () => {
    expect(() => E.elementwiseChain([t([2, 3]), t([3]), t([4])], (a, b, c) => a.add(b).add(c))).toThrow(
      'elementwiseChain: input 2 of shape [4] does not broadcast against [2,3] (the inputs before it)',
    );
  });

  it('refuses bad programs with one clear line', () => {
    expect(() => E.elementwiseChain([], () => undefined as unknown as ChainExpr)).toThrow('elementwiseChain: takes 1 to 6 input tensors, got 0');
    const seven = Array.from({ length: 7 }, () => t([2]));
    expect(() => E.elementwiseChain(seven, (a) => a)).toThrow('elementwiseChain: takes 1 to 6 input tensors, got 7');
    expect(() => E.elementwiseChain([t([2])], () => 3 as unknown as ChainExpr)).toThrow('must return a chain expression');
    let other: ChainExpr | null = null;
    E.elementwiseChain([t([2])], (a) => (other = a));
    expect(() => E.elementwiseChain([t([2])], (a) => a.add(other!))).toThrow('an expression of another chain was used');
    expect(() => E.elementwiseChain([[1, 2] as unknown as Tensor], (a) => a)).toThrow('elementwiseChain: input 0 is not a Tensor');
    expect(() => E.elementwiseChain([t([2])], (a) => Array.from({ length: 60 }).reduce<ChainExpr>((acc, _, i) => acc.mul(a.add(i)), a))).toThrow(
      /the expression has \d+ steps, more than the 48 one kernel runs/,
    );
  });
});
