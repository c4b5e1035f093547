// Hessian-vector products: against finite differences of the gradient, against the explicit Hessian
// built column by column, structural zeros, and nesting of transforms.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { numericalJvp } from './helpers/gradcheck.ts';
import { uniform, uniformAvoiding } from './helpers/random.ts';
import { relErr } from './helpers/fixtures.ts';

const t = (shape: number[], seed: number, lo = -1, hi = 1) => E.tensor(uniform(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);

const rest = (logits: E.Tensor, cls: number[]) => {
  const idx = E.tensor(cls.map((c) => [c]), [cls.length, 1]);
  return E.sum(E.sub(E.mul(E.gather(logits, idx, 1), 2), E.logsumexp(logits, 1, true)));
};

describe('hvp', () => {
  const functions: [string, (x: E.Tensor) => E.Tensor, number[]][] = [
    ['cubic sum', (x) => E.sum(E.pow(x, 3)), [5]],
    ['logsumexp of a matrix product', (x) => E.logsumexp(E.matmul(x, t([3, 4], 7))), [2, 3]],
    ['softmax entropy', (x) => E.neg(E.sum(E.mul(E.softmax(x, -1), E.logSoftmax(x, -1)))), [2, 4]],
    ['gelu/silu/tanh chain', (x) => E.sum(E.mul(E.gelu(x), E.silu(E.tanh(x)))), [6]],
  ];

  for (const [name, f, shape] of functions) {
    it(`equals the finite difference of grad: ${name}`, () => {
      const x = t(shape, 1);
      const v = t(shape, 2);
      const hv = E.hvp(f, x, v).valuesSync();
      const fd = numericalJvp((y) => E.grad(f)(y), [x], [v], 1e-5);
      expect(relErr(hv, fd)).toBeLessThan(1e-7);
    });

    it(`equals the explicit Hessian times v: ${name}`, () => {
      const x = t(shape, 3);
      const n = x.size;
      // Column j of H is H·e_j.
      const H: Float64Array[] = [];
      for (let j = 0; j < n; j++) {
        const e = new Float64Array(n);
        e[j] = 1;
        H.push(E.hvp(f, x, E.tensor(e, shape)).valuesSync());
      }
      // Symmetric, as a Hessian must be.
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(Math.abs(H[j][i] - H[i][j])).toBeLessThan(1e-12 * (1 + Math.abs(H[i][j])));
      const vv = uniform(n, 4);
      const expected = Float64Array.from({ length: n }, (_, i) => H.reduce((acc, col, j) => acc + col[i] * vv[j], 0));
      const hv = E.hvp(f, x, E.tensor(vv, shape)).valuesSync();
      expect(relErr(hv, expected)).toBeLessThan(1e-12);
    });
  }

  it('matches a closed form: H of ReST after a linear head', () => {
    // u = 2 o_c − lse(o), o = W a; H = −Wᵀ (diag(s) − s sᵀ) W.
    const W = t([4, 3], 5);
    const a = t([1, 3], 6);
    const v = t([1, 3], 7);
    const f = (x: E.Tensor) => rest(E.linear(x, W), [2]);
    const hv = E.hvp(f, a, v).valuesSync();
    const Wv = W.valuesSync();
    const o = E.linear(a, W).valuesSync();
    const m = Math.max(...o);
    const ex = Array.from(o, (z) => Math.exp(z - m));
    const s = ex.map((z) => z / ex.reduce((p, q) => p + q, 0));
    const vv = v.valuesSync();
    const Wvv = [0, 1, 2, 3].map((i) => [0, 1, 2].reduce((acc, j) => acc + Wv[i * 3 + j] * vv[j], 0));
    const sWv = s.reduce((acc, si, i) => acc + si * Wvv[i], 0);
    const inner = s.map((si, i) => si * (Wvv[i] - sWv));
    const expected = Float64Array.from([0, 1, 2], (j) => -[0, 1, 2, 3].reduce((acc, i) => acc + Wv[i * 3 + j] * inner[i], 0));
    expect(relErr(hv, expected)).toBeLessThan(1e-12);
  });
});

describe('structural zeros', () => {
  const W = t([5, 4], 1);
  const head = (a: E.Tensor) => E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.relu(a), { kernel: 2 }), 1), 1), W);
  const a = E.tensor(uniformAvoiding(2 * 4 * 4 * 4, 2, [0]), [2, 4, 4, 4]);
  const logitOf = (o: E.Tensor) => E.sum(E.gather(o, E.tensor([[1], [3]], [2, 1]), 1));

  it('ReLU, max-pool, average-pool and a linear head under the logit utility give a structurally zero HVP', () => {
    const r = E.gradAndHvp((x) => logitOf(head(x)), a, a);
    expect(r.hvpIsStructurallyZero).toBe(true);
    expect(r.hvp.symbolicZero).toBe(true);
    expect(Array.from(r.hvp.valuesSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.grad.valuesSync()).some((v) => v !== 0)).toBe(true);
  });

  it('the ReST utility on the same head gives a non-zero HVP that matches finite differences', () => {
    const f = (x: E.Tensor) => rest(head(x), [1, 3]);
    const r = E.gradAndHvp(f, a, a);
    expect(r.hvpIsStructurallyZero).toBe(false);
    const fd = numericalJvp((y) => E.grad(f)(y), [a], [a], 1e-6);
    expect(relErr(r.hvp.valuesSync(), fd)).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(r.hvp.valuesSync(), Math.abs))).toBeGreaterThan(1e-6);
  });

  it('softmax utility also has curvature; a curved activation (SiLU) has curvature even under the logit', () => {
    const sm = (o: E.Tensor) => E.sum(E.gather(E.softmax(o, 1), E.tensor([[1], [3]], [2, 1]), 1));
    expect(E.gradAndHvp((x) => sm(head(x)), a, a).hvpIsStructurallyZero).toBe(false);
    const curved = (x: E.Tensor) => logitOf(E.linear(E.flatten(E.adaptiveAvgPool2d(E.silu(x), 1), 1), W));
    expect(E.gradAndHvp(curved, a, a).hvpIsStructurallyZero).toBe(false);
  });

  it('a gradient with respect to an unused input is a flagged zero', () => {
    const g = E.grad((x, y) => E.sum(E.exp(x)), 1)(t([3], 1), t([2], 2));
    expect(g.symbolicZero).toBe(true);
    expect(g.shape).toEqual([2]);
  });

  it('batched inputs: the cross-sample Hessian blocks are zero', () => {
    // Perturbing image 0 only must leave image 1's row of H·v at zero.
    const f = (x: E.Tensor) => rest(head(x), [1, 3]);
    const v = E.concat([E.reshape(t([4, 4, 4], 9), [1, 4, 4, 4]), E.zeros([1, 4, 4, 4])], 0);
    const hv = E.hvp(f, a, v).valuesSync();
    expect(hv.slice(64).every((x) => x === 0)).toBe(true);
    expect(hv.slice(0, 64).some((x) => x !== 0)).toBe(true);
  });
});

describe('nested transforms', () => {
  it('does not confuse perturbations (the classic d/dx [x · d/dy (x + y)] = 1)', () => {
    const x = E.tensor(2);
    const [, dx] = E.jvp((xx) => {
      const [, inner] = E.jvp((y) => E.add(xx, y), [E.tensor(1)], [E.tensor(1)]);
      return E.mul(xx, inner);
    }, [x], [E.tensor(1)]);
    expect(dx.valuesSync()[0]).toBe(1);
    const g = E.grad((xx) => E.mul(xx, E.grad((y) => E.add(xx, y))(E.tensor(1))))(x);
    expect(g.valuesSync()[0]).toBe(1);
  });

  it('reverse-over-reverse and forward-over-forward agree with forward-over-reverse', () => {
    const f = (x: E.Tensor) => E.sum(E.mul(E.sin(x), E.exp(x)));
    const x = t([4], 5);
    const v = t([4], 6);
    const fwdRev = E.hvp(f, x, v).valuesSync();
    const revRev = E.grad((y) => E.sum(E.mul(E.grad(f)(y), v)))(x).valuesSync();
    const fwdFwd = E.jvp((y) => E.jvp(f, [y], [v])[1], [x], [E.onesLike(x)])[1].valuesSync();
    expect(relErr(revRev, fwdRev)).toBeLessThan(1e-13);
    // Σ_j H_ij v_i summed over i equals 1ᵀ H v.
    expect(Math.abs(fwdFwd[0] - fwdRev.reduce((p, q) => p + q, 0))).toBeLessThan(1e-12);
  });

  it('records only what depends on a watched input: other values stay concrete inside a transform', () => {
    const c = t([3], 2);
    let seen: E.Tensor[] = [];
    E.hvp((x) => {
      seen = [E.exp(c), E.mul(c, 2), E.mul(x, 2)];
      return E.sum(E.mul(seen[2], x));
    }, t([3], 1), t([3], 3));
    expect(seen[0].level).toBe(0);
    expect(seen[1].level).toBe(0);
    expect(seen[2].level).toBeGreaterThan(0);
  });

  it('a tracer used after its transform returned is a clear error', () => {
    let leaked: E.Tensor | undefined;
    E.grad((x) => {
      leaked = x;
      return E.sum(x);
    })(t([2], 1));
    expect(() => E.exp(leaked!)).toThrow(/transform that has already returned/);
  });
});
