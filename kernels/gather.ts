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
//
// Every kernel runs over a box of its 3-D index space (outer, axis, inner) with a base offset per operand,
// so tensors larger than one binding split into boxes (kernels/blocks.ts); the data-dependent axis is
// always bound whole (its reach), and an unsplit call is the one box covering everything.

import type { GpuStorage, KernelContext, KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { fmt, sizeOf, type Shape } from '../engine/shape.ts';
import { bindBox, boxesFor, type Operand } from './blocks.ts';
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

// A box of the index space the kernel walks, (outer, axis, inner) of extents (n / (box_axis·box_inner),
// box_axis, box_inner) from axis index axis0; `inner`, `src_axis`, `dst_axis` are the full tensors' extents
// (their strides). Bases are element offsets of the box's origin within each bound window.
const UNIFORMS = /* wgsl */ `
struct U {
  n: u32,
  box_axis: u32,
  box_inner: u32,
  axis0: u32,
  inner: u32,
  src_axis: u32, // axis length of the tensor read from
  dst_axis: u32, // axis length of the tensor written to
  src_base: u32,
  idx_base: u32,
  out_base: u32,
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
  let q = i % u.box_inner;
  let t = i / u.box_inner;
  let p = t / u.box_axis;
  let at = (p * u.dst_axis + t % u.box_axis) * u.inner + q;
  let o = u.out_base + at;
  let j = idx[u.idx_base + at];
  if (!(j >= 0.0 && j < f32(u.src_axis))) {
    out[o] = nan_f32();
    return;
  }
  out[o] = x[u.src_base + (p * u.src_axis + u32(j)) * u.inner + q];
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
  let q = i % u.box_inner;
  let t = i / u.box_inner;
  let jj = t % u.box_axis;
  let p = t / u.box_axis;
  let j = f32(u.axis0 + jj);
  var acc = 0.0;
  for (var k = 0u; k < u.src_axis; k++) {
    let e = (p * u.src_axis + k) * u.inner + q;
    if (idx[u.idx_base + e] == j) {
      acc += upd[u.src_base + e];
    }
  }
  out[u.out_base + (p * u.dst_axis + jj) * u.inner + q] = acc;
}
`;

/** One invocation per update; float add by compare-and-swap on the bits. \`out\` must start zeroed. */
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
  let q = e % u.box_inner;
  let t = e / u.box_inner;
  let p = t / u.box_axis;
  let at = (p * u.src_axis + t % u.box_axis) * u.inner + q;
  let j = idx[u.idx_base + at];
  if (!(j >= 0.0 && j < f32(u.dst_axis))) { return; }
  let o = u.out_base + (p * u.dst_axis + u32(j)) * u.inner + q;
  let v = upd[u.src_base + at];
  var old = atomicLoad(&out[o]);
  loop {
    let r = atomicCompareExchangeWeak(&out[o], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`;

/**
 * Dispatches `code` over the boxes of the index space (outer, walked axis, inner). `operands` are the
 * [source, idx, out] sides' strides over that space (a side addressed through the data-dependent axis has
 * stride 0 there and reaches across the whole axis).
 */
function dispatchBoxes(
  ctx: KernelContext,
  code: string,
  srcName: 'x' | 'upd',
  space: [number, number, number],
  storages: [GpuStorage, GpuStorage, GpuStorage],
  operands: [Operand, Operand, Operand],
  axes: { src: number; dst: number; inner: number },
  what: string,
): void {
  for (const box of boxesFor(ctx, space, operands, storages, what)) {
    const { bindings, base } = bindBox(ctx, box, storages, what);
    const [src, idx, out] = bindings;
    ctx.dispatch({
      code,
      constants: { WG },
      uniforms: {
        n: box.size,
        box_axis: box.shape[1],
        box_inner: box.shape[2],
        axis0: box.start[1],
        inner: axes.inner,
        src_axis: axes.src,
        dst_axis: axes.dst,
        src_base: base[0],
        idx_base: base[1],
        out_base: base[2],
      },
      bindings: { [srcName]: src, idx, out },
      workgroups: Math.ceil(box.size / WG),
    });
  }
}

export const gatherKernels = {
  gather(ctx, [x, idx], p) {
    const { outer, inner } = view3('gather', p.shape, p.outShape, p.axis);
    const n = sizeOf(p.outShape);
    const out = ctx.output(n, p.outShape);
    if (n === 0) return out;
    const src = p.shape[p.axis];
    const dst = p.outShape[p.axis];
    // Over the output's space: idx and out alike; x at the same (outer, inner), anywhere along its axis.
    const side: Operand = { strides: [dst * inner, inner, 1] };
    const xSide: Operand = { strides: [src * inner, 0, 1], reach: (src - 1) * inner };
    dispatchBoxes(ctx, GATHER, 'x', [outer, dst, inner], [x, idx, out], [xSide, side, side], { src, dst, inner }, `gather ${fmt(p.shape)} → ${fmt(p.outShape)}`);
    return out;
  },

  scatterAdd(ctx, [upd, idx], p) {
    const { outer, inner } = view3('scatterAdd', p.updShape, p.outShape, p.axis);
    const n = sizeOf(p.outShape);
    const updates = sizeOf(p.updShape);
    const k = p.updShape[p.axis];
    const dst = p.outShape[p.axis];
    const axes = { src: k, dst, inner };
    const what = `scatterAdd ${fmt(p.updShape)} → ${fmt(p.outShape)}`;
    if (k <= SCATTER_LOOP_MAX || updates === 0) {
      const out = ctx.output(n, p.outShape);
      if (n === 0) return out;
      // Over the output's space; each output walks the whole update axis.
      const walked: Operand = { strides: [k * inner, 0, 1], reach: (k - 1) * inner };
      dispatchBoxes(ctx, SCATTER_LOOP, 'upd', [outer, dst, inner], [upd, idx, out], [walked, walked, { strides: [dst * inner, inner, 1] }], axes, what);
      return out;
    }
    const out: GpuStorage = ctx.call('fill', [], { size: n, value: 0 });
    if (n === 0) return out;
    // Over the updates' space; each update lands anywhere along the output's axis.
    const side: Operand = { strides: [k * inner, inner, 1] };
    dispatchBoxes(ctx, SCATTER_ATOMIC, 'upd', [outer, k, inner], [upd, idx, out], [side, side, { strides: [dst * inner, 0, 1], reach: (dst - 1) * inner }], axes, what);
    return out;
  },
} satisfies KernelFamily;
