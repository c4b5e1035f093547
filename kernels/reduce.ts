// Reductions (sum, max) over any set of axes, without permuting the input first.
//
// The input's kept axes and reduced axes are coalesced separately: an output element o has a base
// offset from the kept dims, and the reduced index space r ∈ [0, R) adds an offset from the reduced dims.
// Two kernels cover the range of R:
//
// - R ≤ 64 (softmax over a few channels, small batch sums): one invocation per output loops over R.
//   Adjacent invocations are adjacent outputs, so their reads are adjacent too whenever the kept axes are
//   the inner ones.
// - R > 64: one workgroup of WG invocations per (output, chunk of 8·WG elements), WG = 256, or the power
//   of two from 64 up that covers R in one chunk. Each invocation folds 8 elements strided by WG (so a
//   workgroup reads contiguous runs), then a tree in workgroup memory folds the WG partials. When R spans several chunks, the
//   [O, chunks] partials are reduced again by the same planner (a second pass), so no invocation ever walks a long serial chain: the longest chain of
//   additions is 8 + log2(256) = 16 per pass (at most 16 + 64 over two passes), which bounds the float32
//   error at D·2^-24·Σ|x| with D ≤ 80.
//
// max propagates NaN (any NaN in the window gives NaN, like the CPU) and is exact; an empty reduction gives
// 0 for sum and -∞ for max.
//
// Outputs are written through strides over the kept dims and every offset is relative to a base, so an
// input or output larger than one binding splits into boxes of the (kept, reduced) index space
// (kernels/blocks.ts). Boxes that cut the reduced dims write partial results side by side, which one more
// reduction folds; boxes that only cut the kept dims give exactly the unsplit result.

import type { ReduceOp } from '../engine/backend.ts';
import type { Binding, GpuStorage, KernelContext, KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { fmt, sizeOf, stridesOf, type Shape } from '../engine/shape.ts';
import { bindBox, naturalStrides, placeIn, splitBoxes, type Operand } from './blocks.ts';
import { MAX_RANK, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH, coalesce, type Coalesced } from './prelude.ts';

/** Largest R reduced by one invocation per output. */
export const LOOP_MAX = 64;
/** Tree kernel: invocations per workgroup (a power of two ≤ 256) and elements each folds per chunk. */
export const TREE_WG = 256;
export const TREE_PT = 8;

const COMBINE: Record<ReduceOp, { identity: string; combine: (a: string, b: string) => string; fill: number }> = {
  sum: { identity: '0.0', combine: (a, b) => `${a} + ${b}`, fill: 0 },
  max: { identity: '-inf_f32()', combine: (a, b) => `max_nan(${a}, ${b})`, fill: -Infinity },
};

const HEADER = /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U {
  n: u32,
  r: u32,
  chunks: u32,
  rank_k: u32,
  rank_r: u32,
  x_base: i32,
  out_base: i32,
  shape_k: array<vec4<u32>, 2>,
  stride_k: array<vec4<i32>, 2>,
  stride_o: array<vec4<i32>, 2>,
  shape_r: array<vec4<u32>, 2>,
  stride_r: array<vec4<i32>, 2>,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Offsets of output element o's first input element (x) and of its output slot (y), from the kept dims.
fn kept_offsets(o: u32) -> vec2<i32> {
  var rem = o;
  var off = vec2<i32>(u.x_base, u.out_base);
  for (var dd = i32(u.rank_k) - 1; dd >= 0; dd--) {
    let d = u32(dd);
    let n = u.shape_k[d >> 2u][d & 3u];
    off += i32(rem % n) * vec2<i32>(u.stride_k[d >> 2u][d & 3u], u.stride_o[d >> 2u][d & 3u]);
    rem = rem / n;
  }
  return off;
}

// Offset of the r-th element of the reduced index space, relative to kept_offset.
fn reduced_offset(r: u32) -> i32 {
  var rem = r;
  var off = 0;
  for (var dd = i32(u.rank_r) - 1; dd >= 0; dd--) {
    let d = u32(dd);
    let n = u.shape_r[d >> 2u][d & 3u];
    off += i32(rem % n) * u.stride_r[d >> 2u][d & 3u];
    rem = rem / n;
  }
  return off;
}
`;

function loopSource(op: ReduceOp): string {
  const c = COMBINE[op];
  return /* wgsl */ `${HEADER}
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let o = linear_index(wid, nwg, lid, WG);
  if (o >= u.n) { return; }
  let base = kept_offsets(o);
  var acc = ${c.identity};
  for (var r = 0u; r < u.r; r++) {
    acc = ${c.combine('acc', 'x[base.x + reduced_offset(r)]')};
  }
  out[base.y] = acc;
}
`;
}

function treeSource(op: ReduceOp): string {
  const c = COMBINE[op];
  return /* wgsl */ `${HEADER}
override WG: u32 = 256; // a power of two, at most 256 (the size of part)
override PT: u32 = 8;
// Sized by a literal, not by WG: override-sized workgroup arrays are not supported everywhere (naga,
// wgsl_reflect's emulator).
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // One workgroup per (output, chunk). g is the same for the whole workgroup, so this early exit keeps
  // the barriers below in uniform control flow.
  let g = wid.x + wid.y * nwg.x;
  if (g >= u.n) { return; }
  let o = g / u.chunks;
  let chunk = g % u.chunks;
  let start = chunk * WG * PT;
  let base = kept_offsets(o);
  var acc = ${c.identity};
  for (var k = 0u; k < PT; k++) {
    let r = start + k * WG + lid;
    if (r < u.r) {
      acc = ${c.combine('acc', 'x[base.x + reduced_offset(r)]')};
    }
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      part[lid] = ${c.combine('part[lid]', 'part[lid + s]')};
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    // Several chunks: output o's partials sit side by side (the output strides count in chunks).
    out[base.y + i32(chunk)] = part[0];
  }
}
`;
}

const LOOP_SOURCES: Record<ReduceOp, string> = { sum: loopSource('sum'), max: loopSource('max') };
const TREE_SOURCES: Record<ReduceOp, string> = { sum: treeSource('sum'), max: treeSource('max') };

/**
 * The reduction split into coalesced kept and reduced index spaces: x strides over both, output strides
 * over the kept dims, and base offsets of x and the output (within their bound windows).
 */
interface ReducePlan {
  kept: Coalesced;
  reduced: Coalesced;
  outStrides: number[];
  xBase: number;
  outBase: number;
  outputs: number;
  length: number;
}

function planOf(shape: Shape, axes: readonly number[]): ReducePlan {
  const strides = stridesOf(shape);
  const isReduced = shape.map((_, d) => axes.includes(d));
  const keptDims = shape.map((_, d) => d).filter((d) => !isReduced[d]);
  const redDims = shape.map((_, d) => d).filter((d) => isReduced[d]);
  const kept = coalesce(keptDims.map((d) => shape[d]), [keptDims.map((d) => strides[d])]);
  const reduced = coalesce(redDims.map((d) => shape[d]), [redDims.map((d) => strides[d])]);
  return { kept, reduced, outStrides: naturalStrides(kept.shape), xBase: 0, outBase: 0, outputs: sizeOf(kept.shape), length: sizeOf(reduced.shape) };
}

function uniformsOf(p: ReducePlan, n: number, chunks: number) {
  return {
    n,
    r: p.length,
    chunks,
    rank_k: p.kept.shape.length,
    rank_r: p.reduced.shape.length,
    x_base: p.xBase,
    out_base: p.outBase,
    shape_k: p.kept.shape,
    stride_k: p.kept.strides[0],
    stride_o: p.outStrides,
    shape_r: p.reduced.shape,
    stride_r: p.reduced.strides[0],
  };
}

/** Reduces `x` per `plan` into `out` (O elements), adding passes while R spans several chunks. */
function reduceInto(ctx: KernelContext, op: ReduceOp, x: Binding, plan: ReducePlan, out: Binding): void {
  const { outputs, length } = plan;
  if (length <= LOOP_MAX) {
    ctx.dispatch({
      label: `reduce ${op} loop O=${outputs} R=${length}`,
      code: LOOP_SOURCES[op],
      constants: { WG: 256 },
      uniforms: uniformsOf(plan, outputs, 1),
      bindings: { x, out },
      workgroups: Math.ceil(outputs / 256),
    });
    return;
  }
  // A short reduction gets a narrower workgroup (fewer idle invocations and tree levels); 64 keeps a
  // full SIMD width on real GPUs.
  const wg = Math.min(TREE_WG, Math.max(64, 2 ** Math.ceil(Math.log2(length / TREE_PT))));
  const chunks = Math.ceil(length / (wg * TREE_PT));
  // Several chunks: the partials go to scratch [outputs, chunks] (kept dims as they are, counted in chunks).
  const target = chunks === 1 ? out : ctx.scratch(outputs * chunks, [outputs, chunks]);
  const partialStrides = naturalStrides(plan.kept.shape).map((s) => s * chunks);
  const first = chunks === 1 ? plan : { ...plan, outStrides: partialStrides, outBase: 0 };
  ctx.dispatch({
    label: `reduce ${op} tree O=${outputs} R=${length} chunks=${chunks}`,
    code: TREE_SOURCES[op],
    constants: { WG: wg, PT: TREE_PT },
    uniforms: uniformsOf(first, outputs * chunks, chunks),
    bindings: { x, out: target },
    workgroups: outputs * chunks,
  });
  if (chunks > 1) {
    const partials: ReducePlan = {
      kept: { shape: plan.kept.shape, strides: [partialStrides] },
      reduced: { shape: [chunks], strides: [[1]] },
      outStrides: plan.outStrides,
      xBase: 0,
      outBase: plan.outBase,
      outputs,
      length: chunks,
    };
    reduceInto(ctx, op, target, partials, out);
  }
}

export const reduceKernels = {
  reduce(ctx, [x], p) {
    if (!(p.op in COMBINE)) throw new Error(`webgpu reduce: unknown op ${p.op}`);
    const plan = planOf(p.shape, p.axes);
    const outShape = p.shape.filter((_, d) => !p.axes.includes(d));
    if (plan.outputs === 0) return ctx.output(0, outShape);
    if (plan.length === 0) return ctx.call('fill', [], { size: plan.outputs, value: COMBINE[p.op].fill });
    for (const c of [plan.kept, plan.reduced]) {
      if (c.shape.length > MAX_RANK) {
        throw new Error(`webgpu reduce: ${fmt(p.shape)} over axes ${fmt(p.axes)} has more than ${MAX_RANK} non-mergeable dims`);
      }
    }
    if (x.size <= ctx.bindingLimit && plan.outputs <= ctx.bindingLimit) {
      const out = ctx.output(plan.outputs, outShape);
      reduceInto(ctx, p.op, x, plan, out);
      return out;
    }
    return reduceSplit(ctx, p.op, x, plan, outShape, `reduce ${p.op} ${fmt(p.shape)} over ${fmt(p.axes)}`);
  },
} satisfies KernelFamily;

/**
 * A reduction whose input or output exceeds one binding, over boxes of the (kept, reduced) index space.
 * When the boxes cut the reduced dims into `parts`, each box writes its partial results into column
 * `part` of scratch [outputs, parts], which one more reduction folds.
 */
function reduceSplit(ctx: KernelContext, op: ReduceOp, x: GpuStorage, plan: ReducePlan, outShape: Shape, what: string): GpuStorage {
  const rk = plan.kept.shape.length;
  const space = [...plan.kept.shape, ...plan.reduced.shape];
  const zeros = plan.reduced.shape.map(() => 0);
  const xSide: Operand = { strides: [...plan.kept.strides[0], ...plan.reduced.strides[0]] };
  const outSide: Operand = { strides: [...plan.outStrides, ...zeros] };
  const boxes = splitBoxes(space, [xSide, outSide], ctx.bindingLimit, ctx.bindingAlign, what);
  const block = boxes[0].shape;
  const counts = plan.reduced.shape.map((n, d) => Math.ceil(n / block[rk + d]));
  const parts = counts.reduce((a, b) => a * b, 1);
  const target = parts === 1 ? ctx.output(plan.outputs, outShape) : ctx.scratch(plan.outputs * parts, [plan.outputs, parts]);
  const targetStrides = plan.outStrides.map((s) => s * parts);
  for (const box of boxes) {
    // Which part of the reduced dims this box covers (row-major over the reduced block grid).
    const part = counts.reduce((acc, c, d) => acc * c + box.start[rk + d] / block[rk + d], 0);
    const place = placeIn({ strides: [...targetStrides, ...zeros], base: part }, box.start, box.shape);
    const { bindings, base } = bindBox(ctx, { ...box, base: [box.base[0], place.base], lo: [box.lo[0], place.lo], hi: [box.hi[0], place.hi] }, [x, target], what);
    const boxPlan: ReducePlan = {
      kept: { shape: box.shape.slice(0, rk), strides: [plan.kept.strides[0]] },
      reduced: { shape: box.shape.slice(rk), strides: [plan.reduced.strides[0]] },
      outStrides: targetStrides,
      xBase: base[0],
      outBase: base[1],
      outputs: sizeOf(box.shape.slice(0, rk)),
      length: sizeOf(box.shape.slice(rk)),
    };
    reduceInto(ctx, op, bindings[0], boxPlan, bindings[1]);
  }
  if (parts === 1) return target;
  return ctx.call('reduce', [target], { op, shape: [plan.outputs, parts], axes: [1] });
}
