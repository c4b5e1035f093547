// Float32 transcendental functions on four lanes at once (exp, log, tanh, sigmoid, erf), in place of
// AssemblyScript's scalar Mathf, which the unary kernel would otherwise call lane by lane. Each reduces
// its argument exactly (Cody–Waite: n·ln2 split in a 9-bit head, exact for |n| < 2^15, and a tail) and
// evaluates a minimax polynomial on the reduced range: the polynomials are Cephes' float32 ones
// (S. L. Moshier, Cephes Math Library: expf, logf, tanhf; within 1 ulp over their domains), erf is the
// fit the WGSL kernels use (N. Juffa). Special values (NaN, ±∞, ±0, subnormals) come out as Mathf's.
// Measured worst errors over 2^24 random arguments each: exp 0.68, log 0.67, tanh 1.18, sigmoid 1.64,
// erf 0.79 ulp (test/wasm-kernels.test.ts holds them to 2, 2, 3, 4 and 6).
//
// Every constant is read from a table in memory, four lanes each: V8 would otherwise rebuild each v128
// constant inside the loop on every iteration (three instructions per constant), which cost more than
// the arithmetic.

// Float constants: their index in F.
const LOG2E = 0;
const LN2_HI = 1;
const LN2_LO = 2;
const EXP_HI = 3;
const EXP_LO = 4;
const ROUNDER = 5;
const E0 = 6;
const E1 = 7;
const E2 = 8;
const E3 = 9;
const E4 = 10;
const E5 = 11;
const ONE = 12;
const TWO = 13;
const HALF = 14;
const MIN_NORMAL = 15;
const TWO23 = 16;
const SQRT_HALF = 17;
const L0 = 18;
const L1 = 19;
const L2 = 20;
const L3 = 21;
const L4 = 22;
const L5 = 23;
const L6 = 24;
const L7 = 25;
const L8 = 26;
const INF = 27;
const NEG_INF = 28;
const NAN = 29;
const T0 = 30;
const T1 = 31;
const T2 = 32;
const T3 = 33;
const T4 = 34;
const TANH_SPLIT = 35;
const ERF_CLAMP = 36;
const ERF_SPLIT = 37;
const R0 = 38;
const R1 = 39;
const R2 = 40;
const R3 = 41;
const R4 = 42;
const R5 = 43;
const R6 = 44;
const Q0 = 45;
const Q1 = 46;
const Q2 = 47;
const Q3 = 48;
const Q4 = 49;
const Q5 = 50;
const F = memory.data<f32>([
  1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, // LOG2E
  0.693359375, 0.693359375, 0.693359375, 0.693359375, // LN2_HI
  -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, -2.12194440e-4, // LN2_LO
  88.8, 88.8, 88.8, 88.8, // EXP_HI
  -104.0, -104.0, -104.0, -104.0, // EXP_LO
  12582912.0, 12582912.0, 12582912.0, 12582912.0, // ROUNDER
  1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, 1.9875691500e-4, // E0
  1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, 1.3981999507e-3, // E1
  8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, 8.3334519073e-3, // E2
  4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, 4.1665795894e-2, // E3
  1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, 1.6666665459e-1, // E4
  5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, 5.0000001201e-1, // E5
  1.0, 1.0, 1.0, 1.0, // ONE
  2.0, 2.0, 2.0, 2.0, // TWO
  0.5, 0.5, 0.5, 0.5, // HALF
  1.17549435e-38, 1.17549435e-38, 1.17549435e-38, 1.17549435e-38, // MIN_NORMAL
  8388608.0, 8388608.0, 8388608.0, 8388608.0, // TWO23
  0.707106781186547524, 0.707106781186547524, 0.707106781186547524, 0.707106781186547524, // SQRT_HALF
  7.0376836292e-2, 7.0376836292e-2, 7.0376836292e-2, 7.0376836292e-2, // L0
  -1.1514610310e-1, -1.1514610310e-1, -1.1514610310e-1, -1.1514610310e-1, // L1
  1.1676998740e-1, 1.1676998740e-1, 1.1676998740e-1, 1.1676998740e-1, // L2
  -1.2420140846e-1, -1.2420140846e-1, -1.2420140846e-1, -1.2420140846e-1, // L3
  1.4249322787e-1, 1.4249322787e-1, 1.4249322787e-1, 1.4249322787e-1, // L4
  -1.6668057665e-1, -1.6668057665e-1, -1.6668057665e-1, -1.6668057665e-1, // L5
  2.0000714765e-1, 2.0000714765e-1, 2.0000714765e-1, 2.0000714765e-1, // L6
  -2.4999993993e-1, -2.4999993993e-1, -2.4999993993e-1, -2.4999993993e-1, // L7
  3.3333331174e-1, 3.3333331174e-1, 3.3333331174e-1, 3.3333331174e-1, // L8
  Infinity, Infinity, Infinity, Infinity, // INF
  -Infinity, -Infinity, -Infinity, -Infinity, // NEG_INF
  NaN, NaN, NaN, NaN, // NAN
  -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, -5.70498872745e-3, // T0
  2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, 2.06390887954e-2, // T1
  -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, -5.37397155531e-2, // T2
  1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, 1.33314422036e-1, // T3
  -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, -3.33332819422e-1, // T4
  0.625, 0.625, 0.625, 0.625, // TANH_SPLIT
  8.0, 8.0, 8.0, 8.0, // ERF_CLAMP
  0.927734375, 0.927734375, 0.927734375, 0.927734375, // ERF_SPLIT
  -1.72853470e-5, -1.72853470e-5, -1.72853470e-5, -1.72853470e-5, // R0
  3.83197126e-4, 3.83197126e-4, 3.83197126e-4, 3.83197126e-4, // R1
  -3.88396438e-3, -3.88396438e-3, -3.88396438e-3, -3.88396438e-3, // R2
  2.42546219e-2, 2.42546219e-2, 2.42546219e-2, 2.42546219e-2, // R3
  -1.06777877e-1, -1.06777877e-1, -1.06777877e-1, -1.06777877e-1, // R4
  -6.34846687e-1, -6.34846687e-1, -6.34846687e-1, -6.34846687e-1, // R5
  -1.28717512e-1, -1.28717512e-1, -1.28717512e-1, -1.28717512e-1, // R6
  -5.96761703e-4, -5.96761703e-4, -5.96761703e-4, -5.96761703e-4, // Q0
  4.99119423e-3, 4.99119423e-3, 4.99119423e-3, 4.99119423e-3, // Q1
  -2.67681349e-2, -2.67681349e-2, -2.67681349e-2, -2.67681349e-2, // Q2
  1.12819925e-1, 1.12819925e-1, 1.12819925e-1, 1.12819925e-1, // Q3
  -3.76125336e-1, -3.76125336e-1, -3.76125336e-1, -3.76125336e-1, // Q4
  1.28379166e-1, 1.28379166e-1, 1.28379166e-1, 1.28379166e-1, // Q5
], 16);
// Integer constants: their index in I.
const ABS_MASK = 0;
const SIGN_MASK = 1;
const MANTISSA = 2;
const HALF_EXP = 3;
const BIAS = 4;
const ROUNDER_BITS = 5;
const E_OFFSET = 6;
const SUBNORMAL_SHIFT = 7;
const I = memory.data<i32>([
  0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, // ABS_MASK
  <i32>0x80000000, <i32>0x80000000, <i32>0x80000000, <i32>0x80000000, // SIGN_MASK
  0x007fffff, 0x007fffff, 0x007fffff, 0x007fffff, // MANTISSA
  0x3f000000, 0x3f000000, 0x3f000000, 0x3f000000, // HALF_EXP
  127, 127, 127, 127, // BIAS
  0x4b400000, 0x4b400000, 0x4b400000, 0x4b400000, // ROUNDER_BITS
  126, 126, 126, 126, // E_OFFSET
  23, 23, 23, 23, // SUBNORMAL_SHIFT
], 16);

@inline function f(i: i32): v128 {
  return v128.load(F + ((<usize>i) << 4));
}

@inline function k(i: i32): v128 {
  return v128.load(I + ((<usize>i) << 4));
}

/** a·b + c (two roundings: WebAssembly SIMD has no fused multiply-add). */
@inline function mad(a: v128, b: v128, c: i32): v128 {
  return f32x4.add(f32x4.mul(a, b), f(c));
}

/** e^x. Results below 2^−126 are scaled in two steps, so a subnormal result is rounded once. */
@inline export function expV(x: v128): v128 {
  // Beyond these e^x is ∞ or 0 in float32. pmin/pmax keep a NaN x (they return x unless the bound wins).
  const xc = f32x4.pmax(f32x4.pmin(x, f(EXP_HI)), f(EXP_LO));
  // n = round(x·log2 e) by the 1.5·2^23 rounder: its low mantissa bits are n as an integer.
  const t = f32x4.add(f32x4.mul(xc, f(LOG2E)), f(ROUNDER));
  const n = f32x4.sub(t, f(ROUNDER));
  const ni = i32x4.sub(t, k(ROUNDER_BITS));
  let r = f32x4.sub(xc, f32x4.mul(n, f(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f(LN2_LO)));
  // e^r, |r| ≤ ln2/2 (Cephes expf).
  let p = mad(f(E0), r, E1);
  p = mad(p, r, E2);
  p = mad(p, r, E3);
  p = mad(p, r, E4);
  p = mad(p, r, E5);
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f(ONE));
  // 2^n as two factors 2^n1 · 2^(n − n1), each a normal float.
  const n1 = i32x4.shr_s(ni, 1);
  const s1 = i32x4.shl(i32x4.add(n1, k(BIAS)), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, n1), k(BIAS)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

/** ln x: −∞ at ±0, NaN below 0, +∞ at +∞. */
@inline export function logV(x: v128): v128 {
  // Subnormal arguments are scaled by 2^23 first.
  const tiny = f32x4.lt(x, f(MIN_NORMAL));
  const xs = v128.bitselect(f32x4.mul(x, f(TWO23)), x, tiny);
  // x = m·2^e with m in [0.5, 1).
  let e = i32x4.sub(i32x4.shr_s(xs, 23), k(E_OFFSET));
  e = i32x4.sub(e, v128.and(tiny, k(SUBNORMAL_SHIFT)));
  const m = v128.or(v128.and(xs, k(MANTISSA)), k(HALF_EXP));
  // m below √½: use 2m − 1 with e − 1, so that f = m − 1 lies in [√½ − 1, √2 − 1].
  const low = f32x4.lt(m, f(SQRT_HALF));
  e = i32x4.add(e, low); // true lanes are −1
  const g = f32x4.sub(f32x4.add(m, v128.and(low, m)), f(ONE));
  const ef = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(g, g);
  // ln(1 + g) = g − g²/2 + g³·P(g) (Cephes logf).
  let p = mad(f(L0), g, L1);
  p = mad(p, g, L2);
  p = mad(p, g, L3);
  p = mad(p, g, L4);
  p = mad(p, g, L5);
  p = mad(p, g, L6);
  p = mad(p, g, L7);
  p = mad(p, g, L8);
  let y = f32x4.mul(f32x4.mul(p, g), z);
  y = f32x4.add(y, f32x4.mul(ef, f(LN2_LO)));
  y = f32x4.sub(y, f32x4.mul(z, f(HALF)));
  let r = f32x4.add(f32x4.add(g, y), f32x4.mul(ef, f(LN2_HI)));
  // Special values: NaN and x < 0 → NaN; ±0 → −∞; +∞ → +∞.
  r = v128.bitselect(f(NEG_INF), r, f32x4.eq(x, f32x4.splat(0)));
  r = v128.bitselect(f(INF), r, f32x4.eq(x, f(INF)));
  return v128.bitselect(f(NAN), r, v128.or(f32x4.ne(x, f32x4.abs(x)), f32x4.ne(x, x)));
}

/** tanh x: an odd polynomial below 0.625 (Cephes tanhf), 1 − 2/(e^{2|x|} + 1) above, with x's sign. */
@inline export function tanhV(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = mad(f(T0), z, T1);
  p = mad(p, z, T2);
  p = mad(p, z, T3);
  p = mad(p, z, T4);
  const near = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const e = expV(f32x4.add(ax, ax));
  const far = f32x4.sub(f(ONE), f32x4.div(f(TWO), f32x4.add(e, f(ONE))));
  // x's sign onto the far branch (a NaN stays NaN).
  const signed = v128.or(v128.and(far, k(ABS_MASK)), v128.and(x, k(SIGN_MASK)));
  return v128.bitselect(near, signed, f32x4.lt(ax, f(TANH_SPLIT)));
}

/** 1 / (1 + e^−x), from e = e^−|x| so that neither branch overflows: 1/(1+e) for x ≥ 0, e/(1+e) below. */
@inline export function sigmoidV(x: v128): v128 {
  const e = expV(f32x4.neg(f32x4.abs(x)));
  const s = f32x4.div(f(ONE), f32x4.add(f(ONE), e));
  return v128.bitselect(s, f32x4.mul(e, s), v128.or(f32x4.ge(x, f32x4.splat(0)), f32x4.ne(x, x)));
}

/** erf x (N. Juffa's float32 minimax fit), both branches on every lane. */
@inline export function erfV(a: v128): v128 {
  // pmin keeps a NaN (|a| is NaN, and so is every branch).
  const t = f32x4.pmin(f32x4.abs(a), f(ERF_CLAMP));
  const s = f32x4.mul(t, t);
  // |a| > 0.927734375: 1 − e^(r(t)), with a's sign.
  let r = mad(f(R0), t, R1);
  const u = mad(f(R2), t, R3);
  r = f32x4.add(f32x4.mul(r, s), u);
  r = mad(r, t, R4);
  r = mad(r, t, R5);
  r = mad(r, t, R6);
  r = f32x4.sub(f32x4.mul(r, t), t);
  const far = v128.or(f32x4.sub(f(ONE), expV(r)), v128.and(a, k(SIGN_MASK)));
  // |a| ≤ 0.927734375: a + a·q(a²).
  let q = mad(f(Q0), s, Q1);
  q = mad(q, s, Q2);
  q = mad(q, s, Q3);
  q = mad(q, s, Q4);
  q = mad(q, s, Q5);
  const near = f32x4.add(f32x4.mul(q, a), a);
  return v128.bitselect(far, near, f32x4.gt(t, f(ERF_SPLIT)));
}
