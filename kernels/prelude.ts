// The WGSL every family shares, and the TypeScript that fills it in: the linear invocation index and the
// entry point's argument header of one-thread-per-element kernels, scalar math helpers, and strided
// addressing (coalesced shapes and strides in a uniform struct). Kernel families import these from here
// and from nowhere else.

import type { Coalesced, Shape } from '../engine/shape.ts';

export const MAX_RANK = 8;
/** Invocations per workgroup for the one-thread-per-element kernels. */
export const WG = 256;


// ---------------------------------------------------------------------------------------------------
// One thread per element: the linear index and the entry point's arguments

/**
 * WGSL helper every 1-D kernel includes: the linear invocation index under the 2-D grid the backend makes of a
 * linear workgroup count (engine/webgpu/pipelines.ts `gridFor`).
 * `wg` is the workgroup size (an override), `lid` the local_invocation_index.
 */
export const WGSL_LINEAR = /* wgsl */ `
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * wg + lid;
}
`;

/** The arguments of a one-thread-per-element entry point, as `linear_index` takes them. */
export const WGSL_MAIN_ARGS = '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

// ---------------------------------------------------------------------------------------------------
// Math

/** Scalar helpers: NaN/∞ by bits, accurate expm1/log1p/tanh/erf, NaN-propagating max/min, Math.pow semantics. */
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
// Strided addressing
//
// Before dispatch, dimensions are "coalesced": size-1 dims are dropped and neighbours that are contiguous
// in every operand are merged, so a typical call reaches the GPU with rank 1–3 whatever its nominal rank,
// and the index arithmetic (one div/mod per remaining dim) is short. Shapes and strides travel in the
// uniform struct as array<vec4<u32|i32>, 2>: up to MAX_RANK = 8 coalesced dims.

// `coalesce` itself lives in engine/shape.ts: the wasm backend's kernel plans use it too.
export { coalesce, type Coalesced } from '../engine/shape.ts';

/** Throws (naming the kernel and shapes) when coalescing left more dims than the uniforms hold. */
export function checkRank(c: Coalesced, kernel: string, shapes: string): void {
  if (c.shape.length > MAX_RANK) {
    throw new Error(`webgpu ${kernel}: ${shapes} has ${c.shape.length} non-mergeable dims; the kernels handle at most ${MAX_RANK}`);
  }
}

/**
 * WGSL: `strided_offsets(i)` maps flat index i over `u.shape` (rank `u.rank`) to one offset per operand,
 * offsets[k] = u.base[k] + Σ_d idx_d · u.s<k>[d]. Needs a uniform `u` with members rank, shape, base
 * (vec4<i32>) and s0..s{n-1} (array<vec4<i32>, 2>).
 */
export function wgslStridedOffsets(operands: number): string {
  const terms = Array.from({ length: operands }, (_, k) => `u.s${k}[d >> 2u][d & 3u]`);
  const vec = `vec4<i32>(${[...terms, ...Array(4 - operands).fill('0')].join(', ')})`;
  return /* wgsl */ `
fn strided_offsets(flat: u32) -> vec4<i32> {
  var rem = flat;
  var off = u.base;
  for (var dd = i32(u.rank) - 1; dd >= 0; dd--) {
    let d = u32(dd);
    let n = u.shape[d >> 2u][d & 3u];
    let c = i32(rem % n);
    rem = rem / n;
    off += c * ${vec};
  }
  return off;
}
`;
}

/** WGSL struct members for a strided kernel with `operands` stride sets. */
export function wgslStridedMembers(operands: number): string {
  return [
    'n: u32,',
    'rank: u32,',
    'base: vec4<i32>,',
    'shape: array<vec4<u32>, 2>,',
    ...Array.from({ length: operands }, (_, k) => `s${k}: array<vec4<i32>, 2>,`),
  ].join('\n  ');
}

/** Uniform values for wgslStridedMembers. */
export function stridedUniforms(n: number, c: Coalesced, base: readonly number[] = []): Record<string, number | number[]> {
  const u: Record<string, number | number[]> = {
    n,
    rank: c.shape.length,
    base: [0, 1, 2, 3].map((k) => base[k] ?? 0),
    shape: c.shape,
  };
  c.strides.forEach((s, k) => (u[`s${k}`] = s));
  return u;
}
