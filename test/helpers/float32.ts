// Shared by the float32 backends' kernel tests (WebGPU and wasm): float32 inputs, the comparison with
// the float64 CPU reference under per-element tolerances, and the dot-product (γ) bound. See
// test/webgpu-kernels.test.ts and test/webgpu-matmul-conv.test.ts for the reasoning behind the bounds.

import type { Backend, ConvGeometry, KernelName, KernelParams } from '../../engine/backend.ts';
import { cpuBackend } from '../../engine/runtime.ts';
import { stridesOf, type Shape } from '../../engine/shape.ts';
import { rng } from './random.ts';

/** Unit roundoff and machine epsilon of float32. */
export const u = 2 ** -24;
export const U = 2 ** -23;

/** n random float32 values in [lo, hi). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));
}

/** n values drawn from a small set (ties on purpose). */
export function pick(n: number, seed: number, values: readonly number[]): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => values[Math.floor(r() * values.length)]);
}

/** Allowed |got − cpu| for element i whose CPU value is c. */
export type Tol = (i: number, c: number) => number;
export const exact: Tol = () => 0;

export function assertClose(label: string, got: Float64Array, want: Float64Array, tol: Tol): void {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length}, want ${want.length}`);
  let bad = 0;
  let first = '';
  for (let i = 0; i < want.length; i++) {
    const c = want[i];
    const g = got[i];
    const w = Math.fround(c); // what float32 storage can hold (overflow → ∞)
    let ok: boolean;
    if (Number.isNaN(c)) ok = Number.isNaN(g);
    else if (!Number.isFinite(w)) ok = g === w;
    else ok = Math.abs(g - c) <= (Number.isNaN(tol(i, c)) ? 0 : tol(i, c)); // NaN tolerance (∞·0 from ∞ inputs): exact
    if (!ok) {
      if (bad === 0) first = `[${i}] got ${g} cpu ${c} |diff| ${Math.abs(g - c)} tol ${Number.isNaN(c) ? 'NaN' : tol(i, c)}`;
      bad++;
    }
  }
  if (bad > 0) throw new Error(`${label}: ${bad} of ${want.length} elements out of tolerance; first ${first}`);
}

export function describeParams(p: unknown): string {
  const s = JSON.stringify(p);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export const absAll = (v: ArrayLike<number>) => Float64Array.from(v, Math.abs);

export function outShapeOfPad(shape: Shape, before: number[], after: number[], interior: number[]): number[] {
  return shape.map((n, d) => before[d] + after[d] + (n === 0 ? 0 : (n - 1) * (interior[d] + 1) + 1));
}

export function convGeometry(x: Shape, w: Shape, o: { stride?: number[]; padding?: number[]; dilation?: number[]; groups?: number } = {}): ConvGeometry {
  const stride = (o.stride ?? [1, 1]) as [number, number];
  const padding = (o.padding ?? [0, 0]) as [number, number];
  const dilation = (o.dilation ?? [1, 1]) as [number, number];
  const oh = Math.floor((x[2] + 2 * padding[0] - dilation[0] * (w[2] - 1) - 1) / stride[0]) + 1;
  const ow = Math.floor((x[3] + 2 * padding[1] - dilation[1] * (w[3] - 1) - 1) / stride[1]) + 1;
  return { xShape: x, wShape: w, yShape: [x[0], w[0], oh, ow], stride, padding, dilation, groups: o.groups ?? 1 };
}

/** Flat index into a broadcast operand of shape `shape` for element i of `outShape`. */
export function broadcastIndex(shape: Shape, outShape: Shape): (i: number) => number {
  const rank = outShape.length;
  const strides = stridesOf(shape);
  const outStrides = stridesOf(outShape);
  return (i) => {
    let off = 0;
    for (let d = 0; d < rank; d++) {
      const c = Math.floor(i / outStrides[d]) % outShape[d];
      const sd = d - (rank - shape.length);
      if (sd >= 0 && shape[sd] !== 1) off += c * strides[sd];
    }
    return off;
  };
}

/** Every subset of 0..rank-1, as sorted axis lists. */
export const subsets = (rank: number) => Array.from({ length: 2 ** rank }, (_, m) => [...Array(rank).keys()].filter((d) => m & (1 << d)));

/** γ_{L+1} = (L+1)u / (1 − (L+1)u): the float32 bound of an L-term dot product (the +1 covers the float64 reference). */
export function gammaBound(terms: number): number {
  const n = terms + 1;
  return (n * u) / (1 - n * u);
}

export interface Comparison {
  /** Elements outside the bound (NaN included). */
  bad: number;
  first: string;
  /** max |got − cpu| / bound over the elements (≤ 1 when all pass). */
  worst: number;
}

/** Compares under the bound γ_terms · Σ|a||b| (absSum: the same product on absolute values). */
export function compare(got: Float64Array, want: Float64Array, absSum: Float64Array, terms: number): Comparison {
  const g = gammaBound(terms);
  let bad = 0;
  let first = '';
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const tol = g * absSum[i];
    const diff = Math.abs(got[i] - want[i]);
    if (!(diff <= tol)) {
      if (bad === 0) first = `[${i}] got ${got[i]} cpu ${want[i]} |diff| ${diff} bound ${tol}`;
      bad++;
    } else if (tol > 0) {
      worst = Math.max(worst, diff / tol);
    }
  }
  return { bad, first, worst };
}

/** matmul params for two shapes (numpy batch broadcasting). */
export function matmulShapes(aShape: Shape, bShape: Shape): KernelParams['matmul'] {
  const ab = aShape.slice(0, -2);
  const bb = bShape.slice(0, -2);
  const r = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = ab[ab.length - r + i] ?? 1;
    const db = bb[bb.length - r + i] ?? 1;
    batch.push(da === 1 ? db : da);
  }
  return { aShape, bShape, outShape: [...batch, aShape[aShape.length - 2], bShape[bShape.length - 1]] };
}

/** The float64 CPU kernel on given inputs (tolerance helpers: Σ|x| per output and the like). */
export function cpuRun<K extends KernelName>(kernel: K, inputs: readonly ArrayLike<number>[], params: KernelParams[K]): Float64Array {
  const cpu = cpuBackend();
  const ins = inputs.map((v) => cpu.upload(v));
  const out = cpu.run(kernel, ins, params);
  const values = cpu.readSync!(out);
  [...ins, out].forEach((s) => cpu.free(s));
  return values;
}

/** Runs `kernel` on `backend` and on the CPU with the same inputs and compares under `tol`. Returns the CPU result. */
export async function checkKernel<K extends KernelName>(backend: Backend, kernel: K, inputs: readonly ArrayLike<number>[], params: KernelParams[K], tol: Tol = exact): Promise<Float64Array> {
  const ins = inputs.map((v) => backend.upload(v));
  try {
    const out = backend.run(kernel, ins, params);
    const got = await backend.read(out);
    backend.free(out);
    const want = cpuRun(kernel, inputs, params);
    assertClose(`${kernel} ${describeParams(params)}`, got, want, tol);
    return want;
  } finally {
    ins.forEach((s) => backend.free(s));
  }
}

/** Checks a dot-product kernel (matmul, conv) on `backend` under γ_terms·Σ|a||b|. */
export async function checkDotKernel<K extends KernelName>(backend: Backend, kernel: K, inputs: Float64Array[], params: KernelParams[K], terms: number): Promise<Comparison> {
  const want = cpuRun(kernel, inputs, params);
  const absSum = cpuRun(kernel, inputs.map(absAll), params);
  const ins = inputs.map((v) => backend.upload(v));
  const out = backend.run(kernel, ins, params);
  const got = await backend.read(out);
  [...ins, out].forEach((s) => backend.free(s));
  const c = compare(got, want, absSum, terms);
  if (got.length !== want.length || c.bad > 0) throw new Error(`${kernel} ${describeParams(params)}: ${c.bad} of ${want.length} elements outside the float32 bound (length ${got.length}); first ${c.first}`);
  return c;
}
