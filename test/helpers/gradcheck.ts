// Derivative checks in the manner of JAX's check_grads: forward mode against central finite differences
// in float64, reverse mode against forward mode through <u, J v> = <Jᵀ u, v>, and, for higher orders,
// the same checks applied to the derivative functions themselves.

import { expect } from 'vitest';
import { concat, jvp, reshape, tensor, vjp, type Tensor } from '../../engine/index.ts';
import { rng } from './random.ts';

export type Fn = (...xs: Tensor[]) => Tensor;

export interface CheckOptions {
  order?: number;
  modes?: ('fwd' | 'rev')[];
  eps?: number;
  /** Tolerance relative to the size of the compared quantities. */
  rtol?: number;
  seed?: number;
}

const values = (t: Tensor) => t.valuesSync();

function randomLike(x: Tensor, r: () => number): Tensor {
  return tensor(Float64Array.from({ length: x.size }, () => r() * 2 - 1), x.shape, x.backend);
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function axpy(x: Tensor, v: Tensor, eps: number): Tensor {
  const xv = values(x);
  const vv = values(v);
  return tensor(xv.map((a, i) => a + eps * vv[i]), x.shape, x.backend);
}

/** Central difference of f along direction vs (one per argument). */
export function numericalJvp(f: Fn, xs: Tensor[], vs: Tensor[], eps: number): Float64Array {
  const plus = values(f(...xs.map((x, i) => axpy(x, vs[i], eps))));
  const minus = values(f(...xs.map((x, i) => axpy(x, vs[i], -eps))));
  return plus.map((p, i) => (p - minus[i]) / (2 * eps));
}

function expectClose(actual: Float64Array, expected: Float64Array, rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const scale = Math.max(1, ...Array.from(expected, Math.abs));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst / scale, `${what}: max error ${worst} at scale ${scale}`).toBeLessThanOrEqual(rtol);
}

export function checkJvp(f: Fn, xs: Tensor[], opts: Required<CheckOptions>, r: () => number): void {
  const vs = xs.map((x) => randomLike(x, r));
  const [, t] = jvp(f, xs, vs);
  expectClose(values(t), numericalJvp(f, xs, vs, opts.eps), opts.rtol, 'jvp vs finite differences');
}

export function checkVjp(f: Fn, xs: Tensor[], opts: Required<CheckOptions>, r: () => number): void {
  const [out, pullback] = vjp(f, xs);
  const u = randomLike(out, r);
  const cts = pullback(u);
  const vs = xs.map((x) => randomLike(x, r));
  const lhs = cts.reduce((acc, c, i) => acc + dot(values(c), values(vs[i])), 0);
  const rhs = dot(values(u), numericalJvp(f, xs, vs, opts.eps));
  const scale = Math.max(1, Math.abs(rhs));
  expect(Math.abs(lhs - rhs) / scale, `vjp: <Jᵀu, v> = ${lhs} vs <u, Jv> = ${rhs}`).toBeLessThanOrEqual(opts.rtol);
}

/** Checks derivatives of f at xs up to `order`, in forward and reverse mode. */
export function checkGrads(f: Fn, xs: Tensor[], options: CheckOptions = {}): void {
  const opts: Required<CheckOptions> = { order: 2, modes: ['fwd', 'rev'], eps: 1e-5, rtol: 1e-6, seed: 1, ...options };
  const r = rng(opts.seed);
  if (opts.modes.includes('fwd')) checkJvp(f, xs, opts, r);
  if (opts.modes.includes('rev')) checkVjp(f, xs, opts, r);
  if (opts.order <= 1) return;
  const next = { ...opts, order: opts.order - 1, seed: opts.seed + 1, rtol: opts.rtol * 10 };
  if (opts.modes.includes('fwd')) {
    const vs = xs.map((x) => randomLike(x, r));
    checkGrads((...ys) => jvp(f, ys, vs)[1], xs, next);
  }
  if (opts.modes.includes('rev')) {
    const u = randomLike(f(...xs), r);
    // Reverse-over-reverse on the pullback; the cotangents are flattened and joined into one output.
    checkGrads(
      (...ys) => {
        const cts = vjp(f, ys)[1](u);
        return cts.length === 1 ? cts[0] : flatConcat(cts);
      },
      xs,
      next,
    );
  }
}

function flatConcat(ts: Tensor[]): Tensor {
  return concat(ts.map((t) => reshape(t, [t.size])), 0);
}
