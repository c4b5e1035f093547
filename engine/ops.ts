// The public tensor operations. Primitives (engine/primitives) are applied with `bind`; everything else
// here is a composition of them, so its derivatives of every order come for free.

import { bind, setAccumulate } from './trace.ts';
import { DataRef, Tensor } from './tensor.ts';
import { getBackend } from './runtime.ts';
import { keep } from './memory.ts';
import type { Backend } from './backend.ts';
import { fmt, normalizeAxes, normalizeAxis, pair, reducedShape, sameShape, ShapeError, sizeOf, type Shape } from './shape.ts';
import type { MaybeZero } from './primitive.ts';
import * as E from './primitives/elementwise.ts';
import * as R from './primitives/reduce.ts';
import * as S from './primitives/structure.ts';
import { scaleShift } from './fusion/scale-shift.ts';
import { logsumexpLast } from './fusion/logsumexp.ts';
import * as L from './primitives/linalg.ts';

export type TensorLike = Tensor | number;
type Nested = number | readonly Nested[];

// ---------------------------------------------------------------------------------------------------
// Creation

function flattenNested(values: Nested, out: number[], shape: number[], depth: number): void {
  if (typeof values === 'number') {
    out.push(values);
    return;
  }
  if (shape.length <= depth) shape.push(values.length);
  else if (shape[depth] !== values.length) throw new ShapeError('tensor: nested arrays are ragged');
  for (const v of values) flattenNested(v, out, shape, depth + 1);
}

/** Creates a tensor from flat values and a shape, from nested arrays, or from a number (scalar). */
export function tensor(values: Nested | ArrayLike<number>, shape?: Shape, backend: Backend = getBackend()): Tensor {
  let flat: ArrayLike<number>;
  let inferred: number[] = [];
  if (typeof values === 'number') flat = [values];
  else if (Array.isArray(values) && values.some((v) => Array.isArray(v))) {
    const out: number[] = [];
    flattenNested(values as Nested, out, inferred, 0);
    flat = out;
  } else {
    flat = values as ArrayLike<number>;
    inferred = typeof values === 'number' ? [] : [flat.length];
  }
  const finalShape = shape ? [...shape] : inferred;
  if (finalShape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`tensor: invalid shape ${fmt(finalShape)}`);
  if (sizeOf(finalShape) !== flat.length) {
    throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmt(finalShape)} (${sizeOf(finalShape)} elements)`);
  }
  return Tensor.concrete(finalShape, new DataRef(backend.upload(flat)));
}

export function full(shape: Shape, value: number, backend: Backend = getBackend()): Tensor {
  return Tensor.concrete(shape, new DataRef(backend.run('fill', [], { size: sizeOf(shape), value })));
}

export const zeros = (shape: Shape, backend?: Backend) => full(shape, 0, backend);
export const ones = (shape: Shape, backend?: Backend) => full(shape, 1, backend);
export const zerosLike = (x: Tensor) => full(x.shape, 0, x.backend);
export const onesLike = (x: Tensor) => full(x.shape, 1, x.backend);

// Scalar constants are cached per backend and live for the process: rules use them constantly, and an
// upload per constant per op would dominate small kernels on a GPU.
const constants = new Map<Backend, Map<number, Tensor>>();

function constant(value: number, backend: Backend): Tensor {
  let table = constants.get(backend);
  if (!table) constants.set(backend, (table = new Map()));
  const key = Object.is(value, -0) ? 0 : value;
  let t = table.get(key);
  if (!t || t.isDisposed) {
    t = keep(full([], key, backend));
    table.set(key, t);
  }
  return t;
}

function lift(x: TensorLike, like: TensorLike | undefined): Tensor {
  if (x instanceof Tensor) return x;
  if (typeof x !== 'number') throw new TypeError(`expected a Tensor or a number, got ${typeof x}`);
  return constant(x, like instanceof Tensor ? like.backend : getBackend());
}

// ---------------------------------------------------------------------------------------------------
// Elementwise

export const neg = (x: Tensor) => bind(E.neg, [x], null);
export const exp = (x: Tensor) => bind(E.exp, [x], null);
export const log = (x: Tensor) => bind(E.log, [x], null);
export const log1p = (x: Tensor) => bind(E.log1p, [x], null);
export const sqrt = (x: Tensor) => bind(E.sqrt, [x], null);
export const rsqrt = (x: Tensor) => bind(E.rsqrt, [x], null);
export const abs = (x: Tensor) => bind(E.abs, [x], null);
export const sign = (x: Tensor) => bind(E.sign, [x], null);
export const tanh = (x: Tensor) => bind(E.tanh, [x], null);
export const sigmoid = (x: Tensor) => bind(E.sigmoid, [x], null);
export const erf = (x: Tensor) => bind(E.erf, [x], null);
/** ReLU itself, never guided: for ops that merely use a ReLU inside (softplus, hard sigmoid). */
const plainRelu = (x: Tensor) => bind(E.relu, [x], null);
let guidedDepth = 0;
/** ReLU; inside `withGuidedRelu`, guided backpropagation's ReLU (same forward, guided backward). */
export const relu = (x: Tensor) => (guidedDepth > 0 ? bind(E.guidedRelu, [x], null) : plainRelu(x));

/**
 * Runs fn with every `relu` (and `relu6`, a clipped ReLU built on it) bound to guided backpropagation's
 * ReLU: gradients taken through what fn computes pass only positive cotangents at positive inputs. The
 * rule is chosen when an op is recorded, so fn must compute the forward pass (it may also take the
 * gradient). Activations that are not ReLUs (leaky ReLU, hard sigmoid/swish, softplus, GELU, SiLU) keep
 * their derivatives.
 */
export function withGuidedRelu<T>(fn: () => T): T {
  guidedDepth++;
  try {
    return fn();
  } finally {
    guidedDepth--;
  }
}
export const sin = (x: Tensor) => bind(E.sin, [x], null);
export const cos = (x: Tensor) => bind(E.cos, [x], null);
export const reciprocal = (x: Tensor) => bind(E.reciprocal, [x], null);
export const stopGradient = (x: Tensor) => bind(E.stopGradient, [x], null);

function binaryOp(prim: typeof E.add) {
  return (a: TensorLike, b: TensorLike): Tensor => bind(prim, [lift(a, b), lift(b, a)], null);
}

export const add = binaryOp(E.add);
export const sub = binaryOp(E.sub);
export const mul = binaryOp(E.mul);
export const div = binaryOp(E.div);
export const pow = binaryOp(E.pow);
export const maximum = binaryOp(E.maximum);
export const minimum = binaryOp(E.minimum);
export const greater = binaryOp(E.greater);
export const greaterEqual = binaryOp(E.greaterEqual);
export const less = binaryOp(E.less);
export const lessEqual = binaryOp(E.lessEqual);
export const equal = binaryOp(E.equal);
export const notEqual = binaryOp(E.notEqual);

/** cond ? a : b elementwise (cond non-zero), broadcasting all three; `shape` forces the output shape. */
export function where(cond: TensorLike, a: TensorLike, b: TensorLike, shape?: Shape): Tensor {
  const ref = [cond, a, b].find((v) => v instanceof Tensor);
  const out = bind(E.where, [lift(cond, ref), lift(a, ref), lift(b, ref)], null);
  return shape && !sameShape(out.shape, shape) ? broadcastTo(out, shape) : out;
}

/** min(max(x, 0), 6), a clipped ReLU: guided like ReLU (positive cotangents pass only where 0 < x < 6). */
export const relu6 = (x: Tensor) => where(less(x, 6), relu(x), 6);
export const leakyRelu = (x: Tensor, slope = 0.01) => where(greater(x, 0), x, mul(x, slope));
export const silu = (x: Tensor) => mul(x, sigmoid(x));
export const hardsigmoid = (x: Tensor) => {
  const y = add(x, 3);
  return div(sub(plainRelu(y), plainRelu(sub(y, 6))), 6);
};
export const hardswish = (x: Tensor) => mul(x, hardsigmoid(x));
/** log(1 + eˣ), computed as max(x, 0) + log1p(e^−|x|) so it never overflows. */
export const softplus = (x: Tensor) => add(plainRelu(x), log1p(exp(neg(abs(x)))));

/** GELU: the exact erf form by default, the tanh approximation with {approximate: 'tanh'}. */
export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  if (opts.approximate === 'tanh') {
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

// ---------------------------------------------------------------------------------------------------
// Structure

export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    const rest = sizeOf(s.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError(`reshape: cannot infer -1 reshaping ${fmt(x.shape)} to ${fmt(shape)}`);
    s[infer] = x.size / rest;
  }
  if (sameShape(s, x.shape)) return x;
  return bind(S.reshape, [x], { shape: s });
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const a = normalizeAxis('flatten', startDim, x.rank);
  const b = normalizeAxis('flatten', endDim, x.rank);
  return reshape(x, [...x.shape.slice(0, a), sizeOf(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)]);
}

export function squeeze(x: Tensor, axis: number | number[]): Tensor {
  const axes = normalizeAxes('squeeze', axis, x.rank);
  for (const a of axes) if (x.shape[a] !== 1) throw new ShapeError(`squeeze: axis ${a} of ${fmt(x.shape)} has size ${x.shape[a]}, not 1`);
  return reshape(x, x.shape.filter((_, i) => !axes.includes(i)));
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis('unsqueeze', axis, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  return bind(S.expand, [x], { shape: [...shape] });
}

/** Broadcasts x to `shape` (numpy rules); same as broadcastTo. */
export const expand = broadcastTo;

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normalizeAxis('permute', a, x.rank));
  if (p.every((a, i) => a === i)) return x;
  return bind(S.transpose, [x], { perm: p });
}

/** Swaps the last two axes, or applies a permutation when one is given. */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  if (perm) return permute(x, perm);
  if (x.rank < 2) throw new ShapeError(`transpose: needs rank ≥ 2, got ${fmt(x.shape)}`);
  const p = x.shape.map((_, i) => i);
  [p[x.rank - 2], p[x.rank - 1]] = [p[x.rank - 1], p[x.rank - 2]];
  return permute(x, p);
}

export function sliceRaw(x: Tensor, p: S.SliceParams): Tensor {
  if (p.begin.every((b) => b === 0) && p.step.every((s) => s === 1) && p.end.every((e, d) => e === x.shape[d])) return x;
  return bind(S.slice, [x], p);
}

/**
 * numpy-style x[b0:e0:s0, b1:e1:s1, …]. Negative begin/end count from the end and are clamped; axes not
 * given are taken whole; steps must be positive.
 */
export function slice(x: Tensor, begin: readonly number[], end?: readonly (number | null)[], step?: readonly number[]): Tensor {
  if (begin.length > x.rank) throw new ShapeError(`slice: ${begin.length} begin values for a tensor of rank ${x.rank}`);
  const norm = (v: number, n: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
  const b = x.shape.map((n, d) => norm(begin[d] ?? 0, n));
  const e = x.shape.map((n, d) => Math.max(b[d], norm(end?.[d] ?? n, n)));
  const s = x.shape.map((_, d) => step?.[d] ?? 1);
  if (s.some((v) => !Number.isInteger(v) || v < 1)) throw new ShapeError(`slice: steps must be positive integers, got [${s}]`);
  return sliceRaw(x, { begin: b, end: e, step: s });
}

export function padRaw(x: Tensor, p: S.PadParams): Tensor {
  if ([...p.before, ...p.after, ...p.interior].every((v) => v === 0)) return x;
  return bind(S.pad, [x], p);
}

/** Constant padding: `pads` is [before, after] per axis (all axes), or one number for every side. */
export function pad(x: Tensor, pads: number | readonly (readonly [number, number])[], value = 0): Tensor {
  const pairs = typeof pads === 'number' ? x.shape.map(() => [pads, pads] as const) : pads;
  if (pairs.length !== x.rank) throw new ShapeError(`pad: ${pairs.length} [before, after] pairs for a tensor of rank ${x.rank}`);
  return padRaw(x, { before: pairs.map((q) => q[0]), after: pairs.map((q) => q[1]), interior: pairs.map(() => 0), value });
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: no tensors given');
  const a = normalizeAxis('concat', axis, xs[0].rank);
  if (xs.length === 1) return xs[0];
  return bind(S.concat, xs, { axis: a });
}

/** take_along_axis: indices (a Tensor or nested numbers) pick along `axis`; they have no derivative. */
export function gather(x: Tensor, indices: Tensor | Nested, axis: number): Tensor {
  const a = normalizeAxis('gather', axis, x.rank);
  const idx = indices instanceof Tensor ? indices : tensor(indices as Nested, undefined, x.backend);
  return bind(S.gather, [x, idx], { axis: a });
}

export function scatterAdd(updates: Tensor, indices: Tensor, axis: number, shape: Shape): Tensor {
  return bind(S.scatterAdd, [updates, indices], { axis: normalizeAxis('scatterAdd', axis, shape.length), shape: [...shape] });
}

// ---------------------------------------------------------------------------------------------------
// Reductions

export type Axes = number | readonly number[] | undefined | null;

export function sumAxes(x: Tensor, axes: readonly number[], keepDims: boolean): Tensor {
  if (axes.length === 0) return x;
  return bind(R.sum, [x], { axes, keepDims });
}

export function sum(x: Tensor, axis?: Axes, keepDims = false): Tensor {
  return sumAxes(x, normalizeAxes('sum', axis, x.rank), keepDims);
}

export function mean(x: Tensor, axis?: Axes, keepDims = false): Tensor {
  const axes = normalizeAxes('mean', axis, x.rank);
  const count = sizeOf(axes.map((a) => x.shape[a]));
  return div(sumAxes(x, axes, keepDims), count);
}

export function max(x: Tensor, axis?: Axes, keepDims = false): Tensor {
  const axes = normalizeAxes('max', axis, x.rank);
  if (axes.length === 0) return x;
  return bind(R.max, [x], { axes, keepDims });
}

export function min(x: Tensor, axis?: Axes, keepDims = false): Tensor {
  return neg(max(neg(x), axis, keepDims));
}

/** Variance with `correction` subtracted from the count (0: population, as numpy; 1: torch's default). */
export function variance(x: Tensor, axis?: Axes, keepDims = false, correction = 0): Tensor {
  const axes = normalizeAxes('var', axis, x.rank);
  const count = sizeOf(axes.map((a) => x.shape[a]));
  const centred = sub(x, mean(x, axes, true));
  return div(sumAxes(mul(centred, centred), axes, keepDims), count - correction);
}
export { variance as var };

/** log Σ exp(x), stable: the maximum is subtracted as a constant (its derivative cancels exactly). */
export function logsumexp(x: Tensor, axis?: Axes, keepDims = false): Tensor {
  const axes = normalizeAxes('logsumexp', axis, x.rank);
  if (axes.length === 1 && axes[0] === x.rank - 1 && x.shape[x.rank - 1] > 0) {
    // The last axis (the logits' classes): one fused dispatch with its own rules.
    const lse = logsumexpLast(x);
    return keepDims ? reshape(lse, reducedShape(x.shape, axes, true)) : lse;
  }
  const m = stopGradient(max(x, axes, true));
  const lse = add(log(sumAxes(exp(sub(x, m)), axes, true)), m);
  return keepDims ? lse : reshape(lse, reducedShape(x.shape, axes, false));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return sub(x, logsumexp(x, axis, true));
}

export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normalizeAxis('softmax', axis, x.rank);
  const e = exp(sub(x, stopGradient(max(x, a, true))));
  return div(e, sumAxes(e, [a], true));
}

// ---------------------------------------------------------------------------------------------------
// Linear algebra and convolution

/** Matrix product; 1-D operands are promoted as numpy does (and the added axis removed again). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new ShapeError(`matmul: scalars are not allowed, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  let out = bind(L.matmul, [a2, b2], null);
  if (a.rank === 1) out = squeeze(out, -2);
  if (b.rank === 1) out = squeeze(out, -1);
  return out;
}

/** y = x Wᵀ + b with W of shape [out, in] (torch's nn.Linear layout). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const y = matmul(x, transpose(weight));
  return bias ? add(y, bias) : y;
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

function convParams(o: Conv2dOptions): L.ConvParams {
  const stride = pair(o.stride ?? 1, 'conv2d', 'stride');
  const padding = pair(o.padding ?? 0, 'conv2d', 'padding');
  const dilation = pair(o.dilation ?? 1, 'conv2d', 'dilation');
  for (const [what, v, lo] of [['stride', stride, 1], ['padding', padding, 0], ['dilation', dilation, 1]] as const) {
    if (v.some((q) => !Number.isInteger(q) || q < lo)) throw new ShapeError(`conv2d: ${what} must be integers ≥ ${lo}, got [${v}]`);
  }
  return { stride, padding, dilation, groups: o.groups ?? 1 };
}

export function conv2dRaw(x: Tensor, w: Tensor, p: L.ConvParams): Tensor {
  return bind(L.conv2d, [x, w], p);
}

/** 2-D convolution (cross-correlation), NCHW input, OIHW weight, torch semantics. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const y = conv2dRaw(x, weight, convParams(opts));
  if (!bias) return y;
  if (bias.rank !== 1 || bias.shape[0] !== weight.shape[0]) {
    throw new ShapeError(`conv2d: bias ${fmt(bias.shape)} does not match ${weight.shape[0]} output channels`);
  }
  return add(y, reshape(bias, [1, bias.shape[0], 1, 1]));
}

export function conv2dBackwardInput(dy: Tensor, w: Tensor, p: L.ConvParams, xShape: Shape): Tensor {
  return bind(L.conv2dBackwardInput, [dy, w], { ...p, xShape: [...xShape] });
}

export function conv2dBackwardFilter(x: Tensor, dy: Tensor, p: L.ConvParams, wShape: Shape): Tensor {
  return bind(L.conv2dBackwardFilter, [x, dy], { ...p, wShape: [...wShape] });
}

export interface Pool2dOptions {
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
}

function poolParams(op: string, o: Pool2dOptions): L.PoolParams {
  const kernel = pair(o.kernel, op, 'kernel');
  return {
    kernel,
    stride: pair(o.stride ?? kernel, op, 'stride'),
    padding: pair(o.padding ?? 0, op, 'padding'),
    dilation: pair(o.dilation ?? 1, op, 'dilation'),
  };
}

/** Max pooling: the argmax of each window is found by a kernel, then values are gathered by it. */
export function maxPool2d(x: Tensor, opts: Pool2dOptions): Tensor {
  const p = poolParams('maxPool2d', opts);
  const idx = bind(L.maxPoolArgmax, [x], p);
  const [N, C, H, W] = x.shape;
  const [, , OH, OW] = idx.shape;
  const picked = gather(reshape(x, [N, C, H * W]), reshape(idx, [N, C, OH * OW]), 2);
  return reshape(picked, idx.shape);
}

/** Average pooling as a depthwise convolution with constant weights (padding counted, as torch's default). */
export function avgPool2d(x: Tensor, opts: Pool2dOptions & { countIncludePad?: boolean }): Tensor {
  const p = poolParams('avgPool2d', opts);
  L.poolOutShape('avgPool2d', x.shape, p);
  const C = x.shape[1];
  const [kh, kw] = p.kernel;
  const conv = { stride: p.stride, padding: p.padding, dilation: p.dilation, groups: C };
  if (opts.countIncludePad === false && (p.padding[0] > 0 || p.padding[1] > 0)) {
    const summed = conv2dRaw(x, ones([C, 1, kh, kw], x.backend), conv);
    const counts = conv2dRaw(ones([1, 1, x.shape[2], x.shape[3]], x.backend), ones([1, 1, kh, kw], x.backend), { ...conv, groups: 1 });
    return div(summed, counts);
  }
  return conv2dRaw(x, full([C, 1, kh, kw], 1 / (kh * kw), x.backend), conv);
}

/** torch's adaptive average pooling: window i covers [floor(i·n/m), ceil((i+1)·n/m)). */
function adaptivePoolMatrix(n: number, m: number, backend: Backend): Tensor {
  const values = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const start = Math.floor((i * n) / m);
    const end = Math.ceil(((i + 1) * n) / m);
    for (let j = start; j < end; j++) values[i * n + j] = 1 / (end - start);
  }
  return tensor(values, [m, n], backend);
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  if (x.rank !== 4) throw new ShapeError(`adaptiveAvgPool2d: input must be NCHW, got ${fmt(x.shape)}`);
  const [oh, ow] = pair(outputSize, 'adaptiveAvgPool2d', 'outputSize');
  const [, , H, W] = x.shape;
  if (oh === 1 && ow === 1) return mean(x, [2, 3], true);
  if (H % oh === 0 && W % ow === 0) return avgPool2d(x, { kernel: [H / oh, W / ow] });
  // Separable and linear: P_h · X · P_wᵀ.
  return matmul(matmul(adaptivePoolMatrix(H, oh, x.backend), x), transpose(adaptivePoolMatrix(W, ow, x.backend)));
}

export interface ResizeOptions {
  /** torch's align_corners: corner pixels' centres map onto each other (default false: half-pixel centres). */
  alignCorners?: boolean;
}

/**
 * The interpolation matrix of one axis, resizing n positions to m as torch's upsample_bilinear2d does:
 * output i reads source position `scale·(i + ½) − ½` clamped at 0 (align_corners: `i·(n − 1)/(m − 1)`),
 * i.e. its floor and the next index (the last one repeated at the edge), weighted by the fractional part.
 * `outputsFirst` gives the (m × n) matrix, otherwise its transpose (n × m).
 */
function bilinearMatrix(n: number, m: number, alignCorners: boolean, outputsFirst: boolean, backend: Backend): Tensor {
  const values = new Float64Array(n * m);
  const at = (out: number, src: number) => (outputsFirst ? out * n + src : src * m + out);
  const scale = alignCorners ? (m > 1 ? (n - 1) / (m - 1) : 0) : n / m;
  for (let i = 0; i < m; i++) {
    const src = alignCorners ? scale * i : Math.max(0, scale * (i + 0.5) - 0.5);
    const i0 = Math.min(Math.floor(src), n - 1);
    const i1 = i0 < n - 1 ? i0 + 1 : i0;
    const frac = Math.min(Math.max(src - i0, 0), 1);
    values[at(i, i0)] += 1 - frac;
    values[at(i, i1)] += frac;
  }
  return tensor(values, outputsFirst ? [m, n] : [n, m], backend);
}

/**
 * Bilinear resizing of the last two axes to `size` ([h, w] or one number for both), with torch's
 * `F.interpolate(mode='bilinear')` semantics (no antialiasing). It is linear and separable, so it is two
 * matrix products with constant interpolation matrices, Mh·X·Mwᵀ: every backend runs it and
 * its derivatives of every order are those of matmul (the second derivative is structurally zero).
 */
export function resizeBilinear(x: Tensor, size: number | readonly [number, number], opts: ResizeOptions = {}): Tensor {
  if (x.rank < 2) throw new ShapeError(`resizeBilinear: needs rank ≥ 2 (resizes the last two axes), got ${fmt(x.shape)}`);
  const [oh, ow] = pair(size, 'resizeBilinear', 'size');
  if (![oh, ow].every((v) => Number.isInteger(v) && v >= 1)) throw new ShapeError(`resizeBilinear: size must be positive integers, got [${oh}, ${ow}]`);
  const H = x.shape[x.rank - 2];
  const W = x.shape[x.rank - 1];
  if (H === 0 || W === 0) throw new ShapeError(`resizeBilinear: cannot resize an empty ${fmt(x.shape)}`);
  const alignCorners = opts.alignCorners ?? false;
  let y = x;
  // Equal sizes give the identity under both conventions (scale 1, integer source positions).
  if (ow !== W) y = matmul(y, bilinearMatrix(W, ow, alignCorners, false, x.backend));
  if (oh !== H) y = matmul(bilinearMatrix(H, oh, alignCorners, true, x.backend), y);
  return y;
}

export interface BatchNormParams {
  mean: Tensor;
  var: Tensor;
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps?: number;
}

/** Inference-mode batch normalisation over axis 1 with running statistics: one scale-shift dispatch on x. */
export function batchNorm(x: Tensor, p: BatchNormParams): Tensor {
  const C = x.shape[1];
  for (const [name, t] of [['mean', p.mean], ['var', p.var], ['weight', p.weight], ['bias', p.bias]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== C)) throw new ShapeError(`batchNorm: ${name} ${fmt(t.shape)} does not match ${C} channels of ${fmt(x.shape)}`);
  }
  const { scale, shift } = batchNormAffine(p);
  return scaleShift(x, scale, shift, 1);
}

/**
 * Eval-mode BatchNorm as the per-channel affine map it is: y = x · scale + shift with
 * scale = weight / √(var + ε), shift = bias − mean · scale. Callers with fixed statistics compute it once.
 */
export function batchNormAffine(p: BatchNormParams): { scale: Tensor; shift: Tensor } {
  let scale = rsqrt(add(p.var, p.eps ?? 1e-5));
  if (p.weight) scale = mul(scale, p.weight);
  let shift = neg(mul(p.mean, scale));
  if (p.bias) shift = add(shift, p.bias);
  return { scale, shift };
}

/** Layer normalisation over the trailing axes covered by weight's shape (biased variance, as torch). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5, normalizedShape?: Shape): Tensor {
  const ns = normalizedShape ?? weight?.shape;
  if (!ns) throw new ShapeError('layerNorm: give a weight or a normalizedShape');
  const axes = ns.map((_, i) => x.rank - ns.length + i);
  if (!sameShape(x.shape.slice(x.rank - ns.length), ns)) throw new ShapeError(`layerNorm: normalized shape ${fmt(ns)} does not end ${fmt(x.shape)}`);
  const mu = mean(x, axes, true);
  const centred = sub(x, mu);
  const v = mean(mul(centred, centred), axes, true);
  let y = mul(centred, rsqrt(add(v, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

// ---------------------------------------------------------------------------------------------------
// Helpers for derivative rules

/** Sums a broadcast result back down to `shape`. */
export function unbroadcast(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  return reshape(sumAxes(x, axes, false), shape);
}

/** Adds two tangents that may be symbolic zeros, broadcasting the result to `shape`. */
export function addTangents(a: MaybeZero, b: MaybeZero, shape: Shape): MaybeZero {
  if (!a && !b) return null;
  const s = a && b ? add(a, b) : (a ?? b)!;
  return broadcastTo(s, shape);
}

setAccumulate(add);
