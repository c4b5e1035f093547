// The fused logsumexp over the last axis (engine/fusion/logsumexp.ts), which ops.logsumexp, logSoftmax and
// the ReST utility reach: value, JVP, VJP, second order and forward-over-reverse against float64 finite
// differences, and on every backend against the unfused composition m + log Σ exp(x − m) it replaces, at
// awkward sizes (a single row, rows of 1000 classes, more rows than one grid dimension holds, logits far
// beyond exp's float32 range).

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import { logsumexpLast } from '../engine/fusion/logsumexp.ts';
import type { Case } from './helpers/derivative-cases.ts';
import { fusedEqualsComposed } from './helpers/fused-primitive.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { uniform } from './helpers/random.ts';

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** The unfused graph: the row maximum (no derivative), then log Σ exp(x − m) + m. */
function composed(x: Tensor): Tensor {
  const last = x.rank - 1;
  const m = E.stopGradient(E.max(x, last, true));
  return E.reshape(E.add(E.log(E.sum(E.exp(E.sub(x, m)), last, true)), m), x.shape.slice(0, -1));
}

interface Geometry {
  name: string;
  x: number[];
  range: number;
}

const SMALL: Geometry[] = [
  { name: 'one row of 7', x: [7], range: 3 },
  { name: '[3, 5]', x: [3, 5], range: 3 },
  { name: '[2, 2, 1] (rows of one)', x: [2, 2, 1], range: 3 },
  { name: '[2, 3, 9], logits up to ±100', x: [2, 3, 9], range: 100 },
];

const LARGE: Geometry[] = [
  { name: '[2, 3, 1000] (ImageNet classes)', x: [2, 3, 1000], range: 8 },
  { name: '[65601, 3] (past one grid dimension)', x: [65601, 3], range: 4 },
];

function caseOf(g: Geometry, fused: boolean, seed: number): Case {
  return { name: g.name, f: fused ? logsumexpLast : composed, inputs: [{ values: uniform(size(g.x), seed, -g.range, g.range), shape: g.x }] };
}

describe('logsumexp over the last axis against float64 finite differences', () => {
  for (const [k, g] of SMALL.entries()) {
    it(`${g.name}: value, JVP, VJP and second order`, () => {
      const c = caseOf(g, true, 5 * k + 1);
      const [x] = c.inputs.map((d) => E.tensor(d.values, d.shape, E.cpuBackend()));
      const got = c.f(x).valuesSync();
      expect(Array.from(got).every(Number.isFinite)).toBe(true);
      const want = composed(x).valuesSync();
      got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(want[i]))));
      // The logits up to ±100 make central differences of size 1e-5 lose digits: a relative 1e-6 still holds.
      checkGrads(c.f, [x], { order: 2 });
      const w = E.tensor(uniform(got.length, 50 + k), g.x.slice(0, -1), E.cpuBackend());
      checkGrads((y) => E.vjp(c.f, [y])[1](w)[0], [x], { order: 1, modes: ['fwd'] });
    });
  }

  it('ops.logsumexp, logSoftmax and softmax over the last axis go through it; other axes do not', () => {
    const x = E.tensor(uniform(12, 3), [3, 4]);
    const lse = E.logsumexp(x, -1, true);
    expect(lse.shape).toEqual([3, 1]);
    expect(Array.from(lse.valuesSync())).toEqual(Array.from(logsumexpLast(x).valuesSync()));
    expect(E.logsumexp(x, 0).shape).toEqual([4]);
    expect(() => logsumexpLast(E.zeros([2, 0]))).toThrow(/logsumexpLast: needs a non-empty last axis, got \[2, ?0\]/);
  });
});

// One exponential per element and a sum over ≤ 1000 of them: float32 to a few ulps of the largest entry.
// In float64 the rules' exp(x − y) carries a relative error of |x|·ε (x − y is rounded at |x|'s scale), so
// the logits of magnitude `range` get range × 1e-14.
fusedEqualsComposed(
  'logsumexp over the last axis',
  [...SMALL, ...LARGE].map((g, k) => ({
    name: g.name,
    fused: caseOf(g, true, 9 * k + 2),
    composed: caseOf(g, false, 9 * k + 2),
    float64Tol: 1e-14 * Math.max(1, g.range),
  })),
  2e-5,
);
