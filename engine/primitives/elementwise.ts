// Elementwise primitives: unary maths, broadcasting binary arithmetic, comparisons and select.

import type { BinaryOp, UnaryOp } from '../backend.ts';
import { definePrimitive, type Primitive } from '../primitive.ts';
import { broadcastShapes, sizeOf, type Shape } from '../shape.ts';
import type { Tensor } from '../tensor.ts';
import * as ops from '../ops.ts';

/**
 * A unary primitive whose Jacobian is diagonal: `scale(v, x, y)` multiplies a tangent or cotangent v by
 * the derivative at x (input) / y (output). The same function serves as JVP and VJP.
 */
function unary(op: UnaryOp, scale: ((v: Tensor, x: Tensor, y: Tensor) => Tensor) | null): Primitive<null> {
  return definePrimitive<null>({
    name: op,
    nondiff: scale === null,
    shape: ([s]) => [...s],
    impl: (backend, [x], [s]) => backend.run('unary', [x], { op, size: sizeOf(s) }),
    jvp: scale ? ([x], [t], y) => scale(t!, x, y) : undefined,
    vjp: scale ? (ct, [x], y) => [scale(ct, x, y)] : undefined,
  });
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

export const neg = unary('neg', (v) => ops.neg(v));
export const exp = unary('exp', (v, _x, y) => ops.mul(v, y));
export const log = unary('log', (v, x) => ops.div(v, x));
export const log1p = unary('log1p', (v, x) => ops.div(v, ops.add(x, 1)));
export const sqrt = unary('sqrt', (v, _x, y) => ops.div(v, ops.mul(y, 2)));
export const rsqrt = unary('rsqrt', (v, _x, y) => ops.mul(v, ops.mul(ops.mul(y, ops.mul(y, y)), -0.5)));
export const abs = unary('abs', (v, x) => ops.mul(v, ops.sign(x)));
export const sign = unary('sign', null);
export const tanh = unary('tanh', (v, _x, y) => ops.mul(v, ops.sub(1, ops.mul(y, y))));
export const sigmoid = unary('sigmoid', (v, _x, y) => ops.mul(v, ops.mul(y, ops.sub(1, y))));
export const erf = unary('erf', (v, x) => ops.mul(v, ops.mul(ops.exp(ops.neg(ops.mul(x, x))), TWO_OVER_SQRT_PI)));
// The mask is a comparison (no derivative), so only v's own tangent passes: ReLU has zero curvature.
export const relu = unary('relu', (v, x) => ops.mul(v, ops.greater(x, 0)));
/**
 * Guided backpropagation's ReLU (Springenberg et al., 2015): ReLU's forward, but a backward that passes a
 * cotangent only where both the input and the cotangent are positive. That is not ReLU's derivative, so
 * it is a primitive of its own (ops.ts binds it for `relu` inside `withGuidedRelu`). Forward mode has no
 * guided variant: its JVP is ReLU's. The VJP rule is engine ops, piecewise linear in the cotangent, so it
 * can be differentiated again like any other rule.
 */
export const guidedRelu = definePrimitive<null>({
  name: 'guidedRelu',
  shape: ([s]) => [...s],
  impl: (backend, [x], [s]) => backend.run('unary', [x], { op: 'relu', size: sizeOf(s) }),
  jvp: ([x], [t]) => ops.mul(t!, ops.greater(x, 0)),
  vjp: (ct, [x]) => [ops.where(ops.greater(x, 0), ops.where(ops.greater(ct, 0), ct, 0), 0)],
});
export const sin = unary('sin', (v, x) => ops.mul(v, ops.cos(x)));
export const cos = unary('cos', (v, x) => ops.neg(ops.mul(v, ops.sin(x))));
export const reciprocal = unary('reciprocal', (v, _x, y) => ops.neg(ops.mul(v, ops.mul(y, y))));

function binaryShape(op: string) {
  return ([a, b]: readonly Shape[]) => broadcastShapes(op, a, b);
}

/**
 * A broadcasting binary primitive given its partial derivatives: `da`/`db` multiply a tangent or
 * cotangent by ∂y/∂a, ∂y/∂b. JVP: da(ta) + db(tb); VJP: sum each product back to its input's shape.
 */
function binary(
  op: BinaryOp,
  da: (v: Tensor, a: Tensor, b: Tensor, y: Tensor) => Tensor,
  db: (v: Tensor, a: Tensor, b: Tensor, y: Tensor) => Tensor,
): Primitive<null> {
  return definePrimitive<null>({
    name: op,
    shape: binaryShape(op),
    impl: (backend, inputs, [aShape, bShape], _p, outShape) => backend.run('binary', inputs, { op, aShape, bShape, outShape }),
    jvp: ([a, b], [ta, tb], y) =>
      ops.addTangents(ta && da(ta, a, b, y), tb && db(tb, a, b, y), y.shape),
    vjp: (ct, [a, b], y, _p, needs) => [
      needs[0] ? ops.unbroadcast(da(ct, a, b, y), a.shape) : null,
      needs[1] ? ops.unbroadcast(db(ct, a, b, y), b.shape) : null,
    ],
  });
}

export const add = binary('add', (v) => v, (v) => v);
export const sub = binary('sub', (v) => v, (v) => ops.neg(v));
export const mul = binary('mul', (v, _a, b) => ops.mul(v, b), (v, a) => ops.mul(v, a));
export const div = binary('div', (v, _a, b) => ops.div(v, b), (v, _a, b, y) => ops.neg(ops.div(ops.mul(v, y), b)));
export const pow = binary(
  'pow',
  // b·a^(b−1), defined as 0 where b = 0 (so 0^0 has derivative 0 rather than NaN).
  (v, a, b) => ops.mul(v, ops.where(ops.equal(b, 0), 0, ops.mul(b, ops.pow(a, ops.sub(b, 1))))),
  // log(a)·a^b, defined as 0 where a = 0.
  (v, a, _b, y) => ops.mul(v, ops.where(ops.equal(a, 0), 0, ops.mul(ops.log(ops.where(ops.equal(a, 0), 1, a)), y))),
);
// Ties split the derivative evenly between both operands, as JAX does.
const maxShareA = (a: Tensor, b: Tensor) => ops.add(ops.greater(a, b), ops.mul(ops.equal(a, b), 0.5));
const minShareA = (a: Tensor, b: Tensor) => ops.add(ops.less(a, b), ops.mul(ops.equal(a, b), 0.5));
export const maximum = binary('maximum', (v, a, b) => ops.mul(v, maxShareA(a, b)), (v, a, b) => ops.mul(v, ops.sub(1, maxShareA(a, b))));
export const minimum = binary('minimum', (v, a, b) => ops.mul(v, minShareA(a, b)), (v, a, b) => ops.mul(v, ops.sub(1, minShareA(a, b))));

function comparison(op: BinaryOp): Primitive<null> {
  return definePrimitive<null>({
    name: op,
    nondiff: true,
    shape: binaryShape(op),
    impl: (backend, inputs, [aShape, bShape], _p, outShape) => backend.run('binary', inputs, { op, aShape, bShape, outShape }),
  });
}

export const greater = comparison('greater');
export const greaterEqual = comparison('greaterEqual');
export const less = comparison('less');
export const lessEqual = comparison('lessEqual');
export const equal = comparison('equal');
export const notEqual = comparison('notEqual');

/** where(cond, a, b): the condition carries no derivative. */
export const where = definePrimitive<null>({
  name: 'where',
  shape: ([c, a, b]) => broadcastShapes('where', broadcastShapes('where', c, a), b),
  impl: (backend, inputs, [condShape, aShape, bShape], _p, outShape) =>
    backend.run('where', inputs, { condShape, aShape, bShape, outShape }),
  jvp: ([c], [, ta, tb], y) => {
    if (!ta && !tb) return null;
    return ops.where(c, ta ?? 0, tb ?? 0, y.shape);
  },
  vjp: (ct, [c, a, b], _y, _p, needs) => [
    null,
    needs[1] ? ops.unbroadcast(ops.where(c, ct, 0), a.shape) : null,
    needs[2] ? ops.unbroadcast(ops.where(c, 0, ct), b.shape) : null,
  ],
});

/** Identity whose output carries no derivative. */
export const stopGradient = definePrimitive<null>({
  name: 'stopGradient',
  nondiff: true,
  view: true,
  shape: ([s]) => [...s],
  impl: (_b, [x]) => x,
});

