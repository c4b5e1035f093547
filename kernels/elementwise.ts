// Elementwise kernels: fill, unary, binary (numpy broadcasting), where.
//
// One invocation per output element, 256 per workgroup, a 1-D grid that turns 2-D past 65535
// workgroups. Each op is its own WGSL source (the op's expression spliced into a template, built once),
// so the pipeline does no per-element switching. Binary and where pick a variant per call: contiguous
// operands of the output's shape and scalar operands are read directly; anything else goes through the
// strided path (coalesced shapes and broadcast strides, stride 0 on broadcast dims).
//
// Float semantics follow the CPU reference where WGSL leaves them open: NaN is detected by its bits
// (compilers may fold `x != x`), maximum/minimum propagate NaN, comparisons are written so NaN gives
// the IEEE answer (notEqual(NaN, x) = 1), sign(NaN) = relu(NaN) = 0, pow handles negative bases with
// integer exponents like Math.pow. tanh, expm1, log1p and erf are implemented here rather than taken
// from the built-ins, whose WGSL accuracy guarantees are weak near 0 (tanh is only as good as
// sinh/cosh, log has absolute error 2^-21 near 1).

import type { BinaryOp, UnaryOp } from '../engine/backend.ts';
import type { GpuStorage, KernelContext, KernelFamily } from '../engine/webgpu/backend.ts';
import { WGSL_LINEAR } from '../engine/webgpu/pipelines.ts';
import { broadcastStrides, fmt, sameShape, sizeOf, type Shape } from '../engine/shape.ts';
import { WG, WGSL_MAIN_ARGS, checkRank, coalesce, stridedUniforms, wgslStridedMembers, wgslStridedOffsets } from './layout.ts';

/** Scalar helpers shared by the elementwise sources. */
export const WGSL_MATH = /* wgsl */ `
// NaN and ∞ cannot be written as constants (constant evaluation rejects them), so they come from
// bit patterns held in private variables, which are not constant expressions.
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> INF_BITS: u32 = 0x7f800000u;
fn nan_f32() -> f32 { return bitcast<f32>(NAN_BITS); }
fn inf_f32() -> f32 { return bitcast<f32>(INF_BITS); }
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }

// exp(x) - 1 without cancellation: Taylor series (degree 8, truncation < 2^-27 relative) for |x| < 0.5,
// where exp(x) - 1 would lose up to 6 bits; exp(x) - 1 beyond (at most ~1.5 bits lost).
fn expm1_(x: f32) -> f32 {
  if (abs(x) < 0.5) {
    var p = 1.0 / 40320.0;
    p = fma(p, x, 1.0 / 5040.0);
    p = fma(p, x, 1.0 / 720.0);
    p = fma(p, x, 1.0 / 120.0);
    p = fma(p, x, 1.0 / 24.0);
    p = fma(p, x, 1.0 / 6.0);
    p = fma(p, x, 0.5);
    return fma(p * x, x, x);
  }
  return exp(x) - 1.0;
}

// log(1 + x): for 1 + x in [0.7, 1.42] use 2·atanh(s), s = x / (2 + x), |s| < 0.18, as an odd series
// (truncation < 2^-26); elsewhere log(1 + x) is well conditioned.
fn log1p_(x: f32) -> f32 {
  if (x > -0.3 && x < 0.42) {
    let s = x / (2.0 + x);
    let s2 = s * s;
    var p = 1.0 / 13.0;
    p = fma(p, s2, 1.0 / 11.0);
    p = fma(p, s2, 1.0 / 9.0);
    p = fma(p, s2, 1.0 / 7.0);
    p = fma(p, s2, 1.0 / 5.0);
    p = fma(p, s2, 1.0 / 3.0);
    return 2.0 * fma(p * s2, s, s);
  }
  return log(1.0 + x);
}

// tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), sign restored; exactly ±1 past |x| = 10.
fn tanh_(x: f32) -> f32 {
  if (is_nan(x)) { return x; }
  let ax = abs(x);
  var t = 1.0;
  if (ax < 10.0) {
    let e = expm1_(-2.0 * ax);
    t = -e / (2.0 + e);
  }
  return select(t, -t, x < 0.0);
}

// erf in float32 after N. Juffa's minimax approximations (max error below 1 ulp over the whole range when
// exp is correctly rounded; checked against the float64 reference in the tests).
fn erf_(a: f32) -> f32 {
  if (is_nan(a)) { return a; }
  let t = min(abs(a), 8.0); // erf(8) rounds to 1; the clamp keeps ∞ out of the polynomial
  let s = t * t;
  if (t > 0.927734375) {
    var r = fma(-1.72853470e-5, t, 3.83197126e-4);
    let u = fma(-3.88396438e-3, t, 2.42546219e-2);
    r = fma(r, s, u);
    r = fma(r, t, -1.06777877e-1);
    r = fma(r, t, -6.34846687e-1);
    r = fma(r, t, -1.28717512e-1);
    r = fma(r, t, -t);
    r = 1.0 - exp(r);
    return select(r, -r, a < 0.0);
  }
  var r = -5.96761703e-4;
  r = fma(r, s, 4.99119423e-3);
  r = fma(r, s, -2.67681349e-2);
  r = fma(r, s, 1.12819925e-1);
  r = fma(r, s, -3.76125336e-1);
  r = fma(r, s, 1.28379166e-1);
  return fma(r, a, a);
}

fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn max_nan(a: f32, b: f32) -> f32 {
  if (is_nan(a)) { return a; }
  if (is_nan(b)) { return b; }
  return max(a, b);
}

fn min_nan(a: f32, b: f32) -> f32 {
  if (is_nan(a)) { return a; }
  if (is_nan(b)) { return b; }
  return min(a, b);
}

// Math.pow semantics: x^0 = 1 (even for NaN x), NaN otherwise propagates, a negative base needs an
// integer exponent (odd keeps the sign), 0^negative = ∞. |a|^b = exp2(b·log2|a|), with b = 1, 2 exact.
fn pow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (is_nan(a) || is_nan(b)) { return nan_f32(); }
  if (b == 1.0) { return a; }
  if (b == 2.0) { return a * a; }
  let m = abs(a);
  var r: f32;
  if (m == 0.0) {
    r = select(inf_f32(), 0.0, b > 0.0);
  } else {
    r = exp2(b * log2(m));
  }
  if (a < 0.0 || (a == 0.0 && (bitcast<u32>(a) & 0x80000000u) != 0u)) {
    if (floor(b) != b) {
      // A finite negative base needs an integer exponent; (−∞)^b and (−0)^b are |a|^b.
      if (a < 0.0 && m != inf_f32()) { return nan_f32(); }
      return r;
    }
    let odd = abs(b) < 16777216.0 && (i32(abs(b)) & 1) == 1;
    return select(r, -r, odd);
  }
  return r;
}
`;

// ---------------------------------------------------------------------------------------------------
// fill

const FILL = /* wgsl */ `
${WGSL_LINEAR}
struct U { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i < u.n) { out[i] = u.value; }
}
`;

// ---------------------------------------------------------------------------------------------------
// unary

const UNARY_EXPR: Record<UnaryOp, string> = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  log1p: 'log1p_(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  abs: 'abs(x)',
  sign: 'select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0)',
  tanh: 'tanh_(x)',
  sigmoid: 'sigmoid_(x)',
  erf: 'erf_(x)',
  relu: 'select(0.0, x, x > 0.0)',
  sin: 'sin(x)',
  cos: 'cos(x)',
  reciprocal: '1.0 / x',
};

const unarySources = new Map<UnaryOp, string>();
function unarySource(op: UnaryOp): string {
  let code = unarySources.get(op);
  if (!code) {
    code = /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let x = a[i];
  out[i] = ${UNARY_EXPR[op]};
}
`;
    unarySources.set(op, code);
  }
  return code;
}

// ---------------------------------------------------------------------------------------------------
// binary

const BINARY_EXPR: Record<BinaryOp, string> = {
  add: 'x + y',
  sub: 'x - y',
  mul: 'x * y',
  div: 'x / y',
  pow: 'pow_(x, y)',
  maximum: 'max_nan(x, y)',
  minimum: 'min_nan(x, y)',
  greater: 'select(0.0, 1.0, x > y)',
  greaterEqual: 'select(0.0, 1.0, x >= y)',
  less: 'select(0.0, 1.0, x < y)',
  lessEqual: 'select(0.0, 1.0, x <= y)',
  equal: 'select(0.0, 1.0, x == y)',
  notEqual: 'select(1.0, 0.0, x == y)',
};

/**
 * How operands are read: `same` (contiguous, out's shape), `scalar` (element 0) or via the strided
 * offsets. One source per combination actually used.
 */
type Access = 'same' | 'scalar' | 'strided';

function operandRead(name: string, access: Access, k: number): string {
  if (access === 'same') return `${name}[i]`;
  if (access === 'scalar') return `${name}[0]`;
  return `${name}[off[${k}]]`;
}

function elementwiseSource(inputs: readonly string[], access: readonly Access[], body: string): string {
  const strided = access.includes('strided');
  const reads = inputs.map((name, k) => `let ${name}v = ${operandRead(name, access[k], k)};`).join('\n  ');
  return /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U {
  ${wgslStridedMembers(inputs.length)}
}
@group(0) @binding(0) var<uniform> u: U;
${inputs.map((name, k) => `@group(0) @binding(${k + 1}) var<storage, read> ${name}: array<f32>;`).join('\n')}
@group(0) @binding(${inputs.length + 1}) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${wgslStridedOffsets(inputs.length)}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  ${strided ? 'let off = strided_offsets(i);' : ''}
  ${reads}
  ${body}
}
`;
}

const sources = new Map<string, string>();
function cachedSource(key: string, build: () => string): string {
  let code = sources.get(key);
  if (!code) sources.set(key, (code = build()));
  return code;
}

/** Chooses each operand's access and the strides of the strided ones. */
function plan(shapes: readonly Shape[], sizes: readonly number[], outShape: Shape) {
  const n = sizeOf(outShape);
  const access: Access[] = shapes.map((s, k) => (sizes[k] === 1 ? 'scalar' : sameShape(s, outShape) || sizes[k] === n ? 'same' : 'strided'));
  // Strided operands share one coalesced index space; 'same'/'scalar' ones get zero strides there.
  const strideSets = shapes.map((s, k) => (access[k] === 'strided' ? broadcastStrides(s, outShape) : outShape.map(() => 0)));
  return { n, access, coalesced: coalesce(outShape, strideSets) };
}

function runElementwise(
  ctx: KernelContext,
  names: readonly string[],
  inputs: readonly GpuStorage[],
  shapes: readonly Shape[],
  outShape: Shape,
  opKey: string,
  body: string,
): GpuStorage {
  const { n, access, coalesced } = plan(shapes, inputs.map((s) => s.size), outShape);
  const out = ctx.output(n, outShape);
  if (n === 0) return out;
  if (access.includes('strided')) checkRank(coalesced, ctx.kernel, shapes.map(fmt).join(', ') + ` → ${fmt(outShape)}`);
  const code = cachedSource(`${opKey}|${access.join(',')}`, () => elementwiseSource(names, access, body));
  const bindings: Record<string, GpuStorage> = { out };
  names.forEach((name, k) => (bindings[name] = inputs[k]));
  ctx.dispatch({
    code,
    constants: { WG },
    uniforms: stridedUniforms(n, access.includes('strided') ? coalesced : { shape: [], strides: names.map(() => []) }),
    bindings,
    workgroups: Math.ceil(n / WG),
  });
  return out;
}

export const elementwiseKernels: KernelFamily = {
  fill(ctx, _inputs, p) {
    const out = ctx.output(p.size, [p.size]);
    if (p.size === 0) return out;
    ctx.dispatch({ code: FILL, constants: { WG }, uniforms: { n: p.size, value: p.value }, bindings: { out }, workgroups: Math.ceil(p.size / WG) });
    return out;
  },

  unary(ctx, [a], p) {
    if (!(p.op in UNARY_EXPR)) throw new Error(`webgpu unary: unknown op ${p.op}`);
    const out = ctx.output(p.size, [p.size]);
    if (p.size === 0) return out;
    ctx.dispatch({ code: unarySource(p.op), constants: { WG }, uniforms: { n: p.size }, bindings: { a, out }, workgroups: Math.ceil(p.size / WG) });
    return out;
  },

  binary(ctx, [a, b], p) {
    if (!(p.op in BINARY_EXPR)) throw new Error(`webgpu binary: unknown op ${p.op}`);
    const body = `let x = av; let y = bv; out[i] = ${BINARY_EXPR[p.op]};`;
    return runElementwise(ctx, ['a', 'b'], [a, b], [p.aShape, p.bShape], p.outShape, `binary:${p.op}`, body);
  },

  where(ctx, [c, a, b], p) {
    // cond != 0 written as !(cond == 0) so that a NaN condition selects a, as on the CPU.
    const body = 'out[i] = select(bv, av, !(condv == 0.0));';
    return runElementwise(ctx, ['cond', 'a', 'b'], [c, a, b], [p.condShape, p.aShape, p.bShape], p.outShape, 'where', body);
  },
};
