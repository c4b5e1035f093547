// Guided backpropagation's ReLU as a rule of the autodiff (engine/primitives/elementwise.ts `guidedRelu`,
// bound by `relu` inside `withGuidedRelu`): its forward and JVP are ReLU's (checked against finite
// differences); its VJP passes a cotangent only where input and cotangent are both positive (checked
// against a hand-written guided backward, and equal to ReLU's true VJP for positive cotangents); its
// backward is itself differentiable (checked against finite differences, orders 1 and 2).

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { uniform, uniformAvoiding } from './helpers/random.ts';

const cpu = E.cpuBackend();
const t = (values: Float64Array, shape: number[]) => E.tensor(values, shape, cpu);
const guided = (f: (...xs: E.Tensor[]) => E.Tensor) => (...xs: E.Tensor[]) => E.withGuidedRelu(() => f(...xs));

describe('guided ReLU (withGuidedRelu)', () => {
  const x = t(uniformAvoiding(24, 1, [0]), [4, 6]);

  it('has ReLU’s forward; outside the scope relu is the ordinary primitive again', () => {
    const g = guided(E.relu)(x).valuesSync();
    expect(Array.from(g)).toEqual(Array.from(E.relu(x).valuesSync()));
    // The rule is chosen when the op is recorded: the same gradient differs inside and outside the scope.
    const ct = t(uniformAvoiding(24, 2, [0]), [4, 6]);
    const inside = E.vjp(guided(E.relu), [x])[1](ct)[0].valuesSync();
    const outside = E.vjp(E.relu, [x])[1](ct)[0].valuesSync();
    expect(Array.from(inside)).not.toEqual(Array.from(outside));
  });

  it('forward mode is ReLU’s derivative (finite differences, orders 1 and 2)', () => {
    checkGrads(guided(E.relu), [x], { modes: ['fwd'] });
  });

  it('passes only positive cotangents at positive inputs', () => {
    const ctv = uniformAvoiding(24, 3, [0]);
    const xv = x.valuesSync();
    const got = E.vjp(guided(E.relu), [x])[1](t(ctv, [4, 6]))[0].valuesSync();
    const want = ctv.map((c, i) => (c > 0 && xv[i] > 0 ? c : 0));
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(want.some((v) => v !== 0)).toBe(true);
    expect(ctv.some((c, i) => c < 0 && xv[i] > 0)).toBe(true); // the case that tells guided from plain
  });

  it('equals ReLU’s true VJP for positive cotangents (checked against finite differences)', () => {
    const u = t(uniform(24, 4, 0.1, 1), [4, 6]);
    const v = uniform(24, 5);
    const got = E.vjp(guided(E.relu), [x])[1](u)[0].valuesSync();
    const eps = 1e-6;
    const xv = x.valuesSync();
    const uv = u.valuesSync();
    const f = (s: number) => E.relu(t(xv.map((a, i) => a + s * v[i]), [4, 6])).valuesSync();
    const plus = f(eps);
    const minus = f(-eps);
    let lhs = 0;
    let rhs = 0;
    for (let i = 0; i < 24; i++) {
      lhs += got[i] * v[i];
      rhs += (uv[i] * (plus[i] - minus[i])) / (2 * eps);
    }
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-8);
  });

  it('its backward map is differentiable in the cotangent (finite differences, orders 1 and 2, both modes)', () => {
    const backward = (ct: E.Tensor) => E.vjp(guided((a) => E.mul(E.relu(a), 1.5)), [x])[1](ct)[0];
    checkGrads(backward, [t(uniformAvoiding(24, 6, [0]), [4, 6])]);
  });

  it('guides every ReLU of a small network: the gradient equals a hand-written guided backward', () => {
    // y = w2 · relu(W1 · relu(x)), gradient with respect to x.
    const xv = uniformAvoiding(5, 7, [0], 0.05, -0.5, 1);
    const W1 = uniform(20, 12);
    const w2 = uniform(4, 13);
    const f = (a: E.Tensor) => E.sum(E.matmul(t(w2, [1, 4]), E.relu(E.matmul(t(W1, [4, 5]), E.relu(a)))));
    const got = E.withGuidedRelu(() => E.grad(f)(t(xv, [5]))).valuesSync();
    // By hand: forward, then the guided backward through both ReLUs.
    const h0 = Array.from(xv, (v) => Math.max(v, 0));
    const z1 = [0, 1, 2, 3].map((i) => h0.reduce((s, v, j) => s + W1[i * 5 + j] * v, 0));
    const g1 = z1.map((z, i) => (z > 0 && w2[i] > 0 ? w2[i] : 0));
    const gh0 = [0, 1, 2, 3, 4].map((j) => g1.reduce((s, g, i) => s + g * W1[i * 5 + j], 0));
    const want = gh0.map((g, j) => (xv[j] > 0 && g > 0 ? g : 0));
    expect(Array.from(got)).toEqual(want.map((v) => expect.closeTo(v, 12)));
    // The plain gradient differs (otherwise this network would not test the rule).
    expect(Array.from(E.grad(f)(t(xv, [5])).valuesSync())).not.toEqual(Array.from(got));
  });

  it('relu6 is guided too (positive cotangents inside 0 < x < 6); hardswish and softplus keep their derivatives', () => {
    const xv = uniformAvoiding(16, 10, [0, 6], 0.05, -2, 8);
    const ctv = uniformAvoiding(16, 11, [0]);
    const xs = t(xv, [16]);
    const got = E.vjp(guided(E.relu6), [xs])[1](t(ctv, [16]))[0].valuesSync();
    expect(Array.from(got)).toEqual(Array.from(ctv, (c, i) => (c > 0 && xv[i] > 0 && xv[i] < 6 ? c : 0)));
    for (const f of [E.hardswish, E.softplus, E.hardsigmoid]) {
      const a = E.vjp(guided(f), [xs])[1](t(ctv, [16]))[0].valuesSync();
      const b = E.vjp(f, [xs])[1](t(ctv, [16]))[0].valuesSync();
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });

  it('the scope is restored after an exception and nests', () => {
    expect(() => E.withGuidedRelu(() => { throw new Error('boom'); })).toThrow('boom');
    const ct = t(Float64Array.from([-1, 1]), [2]);
    const xs = t(Float64Array.from([1, 1]), [2]);
    expect(Array.from(E.vjp(E.relu, [xs])[1](ct)[0].valuesSync())).toEqual([-1, 1]);
    const nested = E.withGuidedRelu(() => E.withGuidedRelu(() => E.vjp(E.relu, [xs])[1](ct)[0]));
    expect(Array.from(nested.valuesSync())).toEqual([0, 1]);
    expect(Array.from(E.withGuidedRelu(() => E.vjp(E.relu, [xs])[1](ct)[0]).valuesSync())).toEqual([0, 1]);
  });
});
