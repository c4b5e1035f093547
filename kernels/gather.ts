// gather (take_along_axis) and its transpose scatterAdd.
//
// The index tensor matches the data on every axis but `axis`, so both ops need only a 3-D view:
// (outer, along-axis, inner), with offset = (p · axisLength + j) · inner + q. Indices arrive as floats.
//
// gather: one invocation per output element reads x at the index it holds. An index outside
// [0, axis length) yields NaN rather than whatever the memory happens to hold.
//
// scatterAdd: WGSL has no float atomics, so there are two strategies, chosen by the length K of the
// update axis:
// - K ≤ 64 (class indices, small windows): one invocation per OUTPUT element walks the K updates that
//   could land on it and sums those whose index matches, in the CPU's order. Deterministic, no atomics.
// - K > 64 (max-pool backward scatters [N, C, OH·OW] into [N, C, H·W]: walking every update per output
//   would cost O(H·W·OH·OW)): the output is zero-filled, then one invocation per UPDATE adds its value
//   with a compare-and-swap loop on the float's bits (atomic<u32>). Cost O(updates); contention is as
//   low as the number of updates sharing a target (≤ 4 for overlapping 3×3/2 pooling windows). The
//   order of additions into one element is then unspecified, so results may differ in the last bits from
//   run to run; a target hit once is exact.
// Updates whose index is out of range are dropped.

import type { GpuStorage, KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { fmt, sizeOf, type Shape } from '../engine/shape.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH } from './prelude.ts';

/** Largest update-axis length handled by the atomic-free gather-form scatter. */
export const SCATTER_LOOP_MAX = 64;

interface View3 {
  outer: number;
  inner: number;
}

/** (outer, inner) extents around `axis`, after checking that the shapes agree off the axis. */
function view3(kernel: string, a: Shape, b: Shape, axis: number): View3 {
  if (a.length !== b.length || a.some((d, i) => i !== axis && d !== b[i])) {
    throw new Error(`webgpu ${kernel}: shapes ${fmt(a)} and ${fmt(b)} must agree on every axis but ${axis}`);
  }
  return { outer: sizeOf(a.slice(0, axis)), inner: sizeOf(a.slice(axis + 1)) };
}

const UNIFORMS = /* wgsl */ `
struct U {
  n: u32,
  inner: u32,
  src_axis: u32, // axis length of the tensor read from
  dst_axis: u32, // axis length of the tensor written to
}
@group(0) @binding(0) var<uniform> u: U;
`;

const GATHER = /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
${UNIFORMS}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let q = i % u.inner;
  let p = i / (u.inner * u.dst_axis);
  let j = idx[i];
  if (!(j >= 0.0 && j < f32(u.src_axis))) {
    out[i] = nan_f32();
    return;
  }
  out[i] = x[(p * u.src_axis + u32(j)) * u.inner + q];
}
`;

/** One invocation per output element; sums the matching updates in order. */
const SCATTER_LOOP = /* wgsl */ `
${WGSL_LINEAR}
${UNIFORMS}
@group(0) @binding(1) var<storage, read> upd: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let q = i % u.inner;
  let t = i / u.inner;
  let j = f32(t % u.dst_axis);
  let p = t / u.dst_axis;
  var acc = 0.0;
  for (var k = 0u; k < u.src_axis; k++) {
    let e = (p * u.src_axis + k) * u.inner + q;
    if (idx[e] == j) {
      acc += upd[e];
    }
  }
  out[i] = acc;
}
`;

/** One invocation per update; float add by compare-and-swap on the bits. `out` must start zeroed. */
const SCATTER_ATOMIC = /* wgsl */ `
${WGSL_LINEAR}
${UNIFORMS}
@group(0) @binding(1) var<storage, read> upd: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let e = linear_index(wid, nwg, lid, WG);
  if (e >= u.n) { return; }
  let j = idx[e];
  if (!(j >= 0.0 && j < f32(u.dst_axis))) { return; }
  let q = e % u.inner;
  let p = e / (u.inner * u.src_axis);
  let o = (p * u.dst_axis + u32(j)) * u.inner + q;
  let v = upd[e];
  var old = atomicLoad(&out[o]);
  loop {
    let r = atomicCompareExchangeWeak(&out[o], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`;

export const gatherKernels = {
  gather(ctx, [x, idx], p) {
    const { inner } = view3('gather', p.shape, p.outShape, p.axis);
    const n = sizeOf(p.outShape);
    const out = ctx.output(n, p.outShape);
    if (n === 0) return out;
    ctx.dispatch({
      code: GATHER,
      constants: { WG },
      uniforms: { n, inner, src_axis: p.shape[p.axis], dst_axis: p.outShape[p.axis] },
      bindings: { x, idx, out },
      workgroups: Math.ceil(n / WG),
    });
    return out;
  },

  scatterAdd(ctx, [upd, idx], p) {
    const { inner } = view3('scatterAdd', p.updShape, p.outShape, p.axis);
    const n = sizeOf(p.outShape);
    const updates = sizeOf(p.updShape);
    const k = p.updShape[p.axis];
    const uniforms = { inner, src_axis: k, dst_axis: p.outShape[p.axis] };
    if (k <= SCATTER_LOOP_MAX || updates === 0) {
      const out = ctx.output(n, p.outShape);
      if (n === 0) return out;
      ctx.dispatch({ code: SCATTER_LOOP, constants: { WG }, uniforms: { n, ...uniforms }, bindings: { upd, idx, out }, workgroups: Math.ceil(n / WG) });
      return out;
    }
    const out: GpuStorage = ctx.call('fill', [], { size: n, value: 0 });
    if (n === 0) return out;
    ctx.dispatch({
      code: SCATTER_ATOMIC,
      constants: { WG },
      uniforms: { n: updates, ...uniforms },
      bindings: { upd, idx, out },
      workgroups: Math.ceil(updates / WG),
    });
    return out;
  },
} satisfies KernelFamily;
