// Function transforms in the JAX style, built on the traces of trace.ts. Derivatives known to be zero
// by structure come back as zero tensors flagged `symbolicZero`, so callers can tell "zero because
// nothing depends on it" from "zero by arithmetic".

import { beginJvp, beginReverse, endTrace } from './trace.ts';
import { Tensor } from './tensor.ts';
import { fmt } from './shape.ts';
import { onesLike, tensor, zerosLike, type TensorLike } from './ops.ts';
import type { MaybeZero } from './primitive.ts';

function asTensor(x: TensorLike, what: string): Tensor {
  if (x instanceof Tensor) return x;
  if (typeof x === 'number') return tensor(x);
  throw new TypeError(`${what}: expected a Tensor or a number`);
}

/** Materialises a symbolic zero as a flagged tensor of zeros shaped like `like`. */
function orZero(t: MaybeZero, like: Tensor): Tensor {
  if (t) return t;
  const z = zerosLike(like.concreteValue());
  z.symbolicZero = true;
  return z;
}

function checkOutput(out: unknown, what: string): Tensor {
  if (!(out instanceof Tensor)) throw new TypeError(`${what}: the function must return a Tensor`);
  return out;
}

/**
 * Reverse mode: returns f(primals) and a pullback mapping an output cotangent to one cotangent per
 * primal. The pullback may be called several times.
 */
export function vjp(f: (...xs: Tensor[]) => Tensor, primals: readonly TensorLike[]): [Tensor, (ct: TensorLike) => Tensor[]] {
  const xs = primals.map((p) => asTensor(p, 'vjp'));
  const trace = beginReverse();
  let out: Tensor;
  let watched: Tensor[];
  try {
    watched = xs.map((x) => trace.watch(x));
    out = checkOutput(f(...watched), 'vjp');
  } finally {
    endTrace(trace);
  }
  const value = trace.primalOf(out);
  const pullback = (ct: TensorLike): Tensor[] => {
    const c = asTensor(ct, 'vjp pullback');
    if (c.shape.join() !== value.shape.join()) {
      throw new Error(`vjp: cotangent shape ${fmt(c.shape)} does not match output shape ${fmt(value.shape)}`);
    }
    return trace.backward(out, c, watched).map((g, i) => orZero(g, xs[i]));
  };
  return [value, pullback];
}

/** Returns a function computing f's value and its gradient with respect to argument `argnum`. */
export function valueAndGrad(f: (...xs: Tensor[]) => Tensor, argnum = 0): (...args: TensorLike[]) => [Tensor, Tensor] {
  return (...args) => {
    const xs = args.map((a) => asTensor(a, 'grad'));
    if (argnum < 0 || argnum >= xs.length) throw new Error(`grad: argnum ${argnum} but ${xs.length} arguments`);
    const [value, pullback] = vjp((x) => f(...xs.map((other, i) => (i === argnum ? x : other))), [xs[argnum]]);
    if (value.size !== 1) throw new Error(`grad: the function must return a single value, got shape ${fmt(value.shape)}`);
    return [value, pullback(onesLike(value))[0]];
  };
}

/** Returns a function computing the gradient of scalar-valued f with respect to argument `argnum`. */
export function grad(f: (...xs: Tensor[]) => Tensor, argnum = 0): (...args: TensorLike[]) => Tensor {
  const vg = valueAndGrad(f, argnum);
  return (...args) => vg(...args)[1];
}

/** Forward mode: returns [f(primals), J·tangents]. */
export function jvp(f: (...xs: Tensor[]) => Tensor, primals: readonly TensorLike[], tangents: readonly TensorLike[]): [Tensor, Tensor] {
  if (primals.length !== tangents.length) throw new Error(`jvp: ${primals.length} primals but ${tangents.length} tangents`);
  const xs = primals.map((p) => asTensor(p, 'jvp'));
  const ts = tangents.map((t) => asTensor(t, 'jvp'));
  const trace = beginJvp();
  try {
    const out = checkOutput(f(...xs.map((x, i) => trace.dual(x, ts[i]))), 'jvp');
    const [value, tangent] = trace.split(out);
    return [value, orZero(tangent, value)];
  } finally {
    endTrace(trace);
  }
}

/** Exact Hessian-vector product H·v of scalar f at x, by forward-over-reverse. */
export function hvp(f: (x: Tensor) => Tensor, x: TensorLike, v: TensorLike): Tensor {
  return gradAndHvp(f, x, v).hvp;
}

export interface GradAndHvp {
  value: Tensor;
  grad: Tensor;
  hvp: Tensor;
  /** True when H·v is zero by the structure of f (e.g. a piecewise-linear path under a logit). */
  hvpIsStructurallyZero: boolean;
}

/** Value, gradient and H·v of scalar f at x in one forward-over-reverse pass. */
export function gradAndHvp(f: (x: Tensor) => Tensor, x: TensorLike, v: TensorLike): GradAndHvp {
  let value: Tensor | undefined;
  const [g, hv] = jvp(
    (xd) => {
      const [val, gr] = valueAndGrad(f)(xd);
      value = val;
      return gr;
    },
    [x],
    [v],
  );
  return { value: value!.level > 0 ? value!.concreteValue() : value!, grad: g, hvp: hv, hvpIsStructurallyZero: hv.symbolicZero };
}
