// Layout kernels (expand, transpose, slice, pad, concat) and the strided-index helpers the other
// elementwise families share.
//
// Every layout op is a copy between a contiguous tensor and a strided view of another one. Before
// dispatch, the dimensions are "coalesced": size-1 dims are dropped and neighbours that are contiguous
// in every operand are merged, so a typical call reaches the GPU with rank 1–3 whatever its nominal rank,
// and the index arithmetic (one div/mod per remaining dim) is short. Shapes and strides travel in the
// uniform struct as array<vec4<u32|i32>, 2>: up to MAX_RANK = 8 coalesced dims.

import type { KernelFamily, KernelContext, GpuStorage } from '../engine/webgpu/backend.ts';
import { WGSL_LINEAR } from '../engine/webgpu/pipelines.ts';
import { broadcastStrides, coalesce, fmt, sizeOf, stridesOf, type Coalesced, type Shape } from '../engine/shape.ts';

export { coalesce, type Coalesced };

export const MAX_RANK = 8;
/** Invocations per workgroup for the one-thread-per-element kernels. */
export const WG = 256;

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

export const WGSL_MAIN_ARGS = '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

// ---------------------------------------------------------------------------------------------------
// Gather-form copy: out[i] = x[offset(i)] over out's (coalesced) shape. expand, transpose and slice.

/** A copy over n elements with one strided side; `assign` moves element i (gather or scatter form). */
function stridedCopy(assign: string): string {
  return /* wgsl */ `
${WGSL_LINEAR}
struct U {
  ${wgslStridedMembers(1)}
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${wgslStridedOffsets(1)}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  ${assign}
}
`;
}

const GATHER_COPY = stridedCopy('out[i] = x[strided_offsets(i).x];');

/** out (contiguous, `outShape`) = x read through `strides` from element `base`. */
function gatherCopy(ctx: KernelContext, x: GpuStorage, outShape: Shape, strides: readonly number[], base: number, what: string): GpuStorage {
  const n = sizeOf(outShape);
  const out = ctx.output(n, outShape);
  const c = coalesce(outShape, [strides]);
  checkRank(c, ctx.kernel, what);
  ctx.dispatch({
    code: GATHER_COPY,
    constants: { WG },
    uniforms: stridedUniforms(n, c, [base]),
    bindings: { x, out },
    workgroups: Math.ceil(n / WG),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Scatter-form copy: out[offset(i)] = x[i] over x's shape. concat (one dispatch per input).

const SCATTER_COPY = stridedCopy('out[strided_offsets(i).x] = x[i];');

// ---------------------------------------------------------------------------------------------------
// Pad: one thread per OUTPUT element, which is either the pad value or one input element, so every
// output element is written exactly once and no prior fill pass is needed.

const PAD = /* wgsl */ `
${WGSL_LINEAR}
struct U {
  n: u32,
  rank: u32,
  value: f32,
  out_shape: array<vec4<u32>, 2>,
  in_shape: array<vec4<u32>, 2>,
  in_stride: array<vec4<u32>, 2>,
  before: array<vec4<u32>, 2>,
  step: array<vec4<u32>, 2>,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  var rem = i;
  var off = 0u;
  var inside = true;
  for (var dd = i32(u.rank) - 1; dd >= 0; dd--) {
    let d = u32(dd);
    let n = u.out_shape[d >> 2u][d & 3u];
    let c = rem % n;
    rem = rem / n;
    // Position relative to the first input element; inputs sit every \`step\` (= interior + 1) elements.
    let before = u.before[d >> 2u][d & 3u];
    let step = u.step[d >> 2u][d & 3u];
    let q = c - before; // wraps when c < before: caught by the range test below
    let k = q / step;
    if (c < before || q % step != 0u || k >= u.in_shape[d >> 2u][d & 3u]) {
      inside = false;
    }
    off += k * u.in_stride[d >> 2u][d & 3u];
  }
  out[i] = select(u.value, x[select(0u, off, inside)], inside);
}
`;

/**
 * Merges dim d+1 into d when d+1 is unpadded and d has no interior padding: the pair is then one dim
 * whose edge padding is scaled by the inner extent.
 */
function coalescePad(shape: Shape, before: readonly number[], after: readonly number[], interior: readonly number[]) {
  const dims: { n: number; before: number; after: number; interior: number }[] = [];
  for (let d = 0; d < shape.length; d++) {
    const cur = { n: shape[d], before: before[d], after: after[d], interior: interior[d] };
    const last = dims[dims.length - 1];
    const plain = cur.before === 0 && cur.after === 0 && (cur.interior === 0 || cur.n <= 1);
    if (last && plain && (last.interior === 0 || last.n <= 1)) {
      last.before *= cur.n;
      last.after *= cur.n;
      last.n *= cur.n;
      last.interior = 0;
    } else {
      dims.push(cur);
    }
  }
  return dims;
}

export const layoutKernels: KernelFamily = {
  expand(ctx, [x], p) {
    return gatherCopy(ctx, x, p.outShape, broadcastStrides(p.shape, p.outShape), 0, `expand ${fmt(p.shape)} → ${fmt(p.outShape)}`);
  },

  transpose(ctx, [x], p) {
    const inStrides = stridesOf(p.shape);
    const outShape = p.perm.map((a) => p.shape[a]);
    return gatherCopy(ctx, x, outShape, p.perm.map((a) => inStrides[a]), 0, `transpose ${fmt(p.shape)} by ${fmt(p.perm)}`);
  },

  slice(ctx, [x], p) {
    const inStrides = stridesOf(p.shape);
    const base = p.begin.reduce((acc, b, d) => acc + b * inStrides[d], 0);
    const strides = inStrides.map((s, d) => s * p.step[d]);
    return gatherCopy(ctx, x, p.outShape, strides, base, `slice ${fmt(p.shape)} → ${fmt(p.outShape)}`);
  },

  pad(ctx, [x], p) {
    const n = sizeOf(p.outShape);
    if (sizeOf(p.shape) === 0) return ctx.call('fill', [], { size: n, value: p.value });
    const out = ctx.output(n, p.outShape);
    const dims = coalescePad(p.shape, p.before, p.after, p.interior);
    if (dims.length > MAX_RANK) throw new Error(`webgpu pad: ${fmt(p.shape)} → ${fmt(p.outShape)} has ${dims.length} non-mergeable dims (max ${MAX_RANK})`);
    const inShape = dims.map((d) => d.n);
    const outShape = dims.map((d) => d.before + d.after + (d.n === 0 ? 0 : (d.n - 1) * (d.interior + 1) + 1));
    ctx.dispatch({
      code: PAD,
      constants: { WG },
      uniforms: {
        n,
        rank: dims.length,
        value: p.value,
        out_shape: outShape,
        in_shape: inShape,
        in_stride: stridesOf(inShape),
        before: dims.map((d) => d.before),
        step: dims.map((d) => d.interior + 1),
      },
      bindings: { x, out },
      workgroups: Math.ceil(n / WG),
    });
    return out;
  },

  concat(ctx, inputs, p) {
    const out = ctx.output(sizeOf(p.outShape), p.outShape);
    const outStrides = stridesOf(p.outShape);
    let along = 0;
    inputs.forEach((x, k) => {
      const shape = p.shapes[k];
      const n = sizeOf(shape);
      const base = along * outStrides[p.axis];
      along += shape[p.axis];
      if (n === 0) return;
      const c = coalesce(shape, [outStrides]);
      checkRank(c, 'concat', `input ${k} ${fmt(shape)} of ${fmt(p.outShape)}`);
      ctx.dispatch({
        code: SCATTER_COPY,
        constants: { WG },
        uniforms: stridedUniforms(n, c, [base]),
        bindings: { x, out },
        workgroups: Math.ceil(n / WG),
      });
    });
    return out;
  },
};
