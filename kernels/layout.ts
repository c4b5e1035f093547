// Layout kernels: expand, transpose, slice, pad, concat.
//
// Every layout op is a copy between a contiguous tensor and a strided view of another one, over
// coalesced dimensions (see the prelude's strided addressing), so a typical call reaches the GPU with
// rank 1–3 whatever its nominal rank.
//
// Tensors larger than one binding: every copy then runs the boxed copy (both sides strided) once per box
// of its index space (kernels/blocks.ts); pad becomes a fill plus a boxed copy of the input into the
// positions it lands on.
//
// Matrix transposes (the last two dims swapped, possibly batched: `linear` transposes every weight) run a
// tiled kernel instead: a gather through a stride of a row per element reads one element per cache line
// and divides per element, which on a CPU adapter costs ~100 ns an element (a 411 MB VGG weight took
// 12 s); a 32 × 32 tile staged in workgroup memory reads rows and writes rows.

import { fitsBinding, type KernelContext, type GpuStorage, type KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { bindBox, naturalStrides, splitBoxes, type Operand } from './blocks.ts';
import { runSplitPlan, splittable, type SplitPlan } from './range-split.ts';
import { broadcastStrides, fmt, sizeOf, stridesOf, type Shape } from '../engine/shape.ts';
import { MAX_RANK, WG, WGSL_LINEAR, WGSL_MAIN_ARGS, checkRank, coalesce, stridedUniforms, wgslStridedMembers, wgslStridedOffsets } from './prelude.ts';

// ---------------------------------------------------------------------------------------------------
// Gather-form copy: out[i] = x[offset(i)] over out's (coalesced) shape. expand, transpose and slice.

/**
 * A copy over n elements with `sides` strided sides (1: the other side is contiguous, gather or scatter
 * form; 2: both strided); `assign` moves element i.
 */
function stridedCopy(assign: string, sides = 1): string {
  return /* wgsl */ `
${WGSL_LINEAR}
struct U {
  ${wgslStridedMembers(sides)}
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${wgslStridedOffsets(sides)}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  ${assign}
}
`;
}

const GATHER_COPY = stridedCopy('out[i] = x[strided_offsets(i).x];');

/** Both sides strided: the copy of one box of an index space split for bindings (kernels/blocks.ts). */
const BOXED_COPY = stridedCopy('let off = strided_offsets(i); out[off.y] = x[off.x];', 2);

/**
 * Copies x into out over an index space of `shape`, each side addressed by its own strides and base
 * (operand 0 = x, operand 1 = out), one dispatch per box that fits the bindings.
 */
function boxedCopy(ctx: KernelContext, x: GpuStorage, out: GpuStorage, shape: Shape, xSide: Operand, outSide: Operand, what: string): void {
  const c = coalesce(shape, [xSide.strides, outSide.strides]);
  checkRank(c, ctx.kernel, what);
  const operands = c.strides.map((strides, k) => ({ strides, base: [xSide, outSide][k].base }));
  for (const box of splitBoxes(c.shape, operands, ctx.bindingLimit, ctx.bindingAlign, `${ctx.kernel} ${what}`)) {
    const { bindings, base } = bindBox(ctx, box, [x, out], `${ctx.kernel} ${what}`);
    ctx.dispatch({
      code: BOXED_COPY,
      constants: { WG },
      uniforms: stridedUniforms(box.size, { shape: box.shape, strides: c.strides }, base),
      bindings: { x: bindings[0], out: bindings[1] },
      workgroups: Math.ceil(box.size / WG),
    });
  }
}

/** out (contiguous, `outShape`) = x read through `strides` from element `base`. */
function gatherCopy(ctx: KernelContext, x: GpuStorage, outShape: Shape, strides: readonly number[], base: number, what: string): GpuStorage {
  const n = sizeOf(outShape);
  const out = ctx.output(n, outShape);
  if (n > 0 && !(fitsBinding(ctx, x) && fitsBinding(ctx, out))) {
    boxedCopy(ctx, x, out, outShape, { strides, base }, { strides: naturalStrides(outShape) }, what);
    return out;
  }
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

// ---------------------------------------------------------------------------------------------------
// Tiled matrix transpose: out[b, p, q] = x[b, q, p], x [B, Q, P] and out [B, P, Q] row-major per batch.

const TT = 32; // tile edge
const TILED_TRANSPOSE = /* wgsl */ `// transpose: 32×32 tiles through workgroup memory
struct U {
  P: u32,
  Q: u32,
  x_batch: u32,
  out_batch: u32,
  b0: u32,
  p0: u32,
  p1: u32,
  q0: u32,
  q1: u32,
  base_x: u32,
  base_out: u32,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// One padding column so that reading a tile column hits distinct banks on GPUs.
var<workgroup> tile: array<f32, ${TT * (TT + 1)}>;
@compute @workgroup_size(${TT}, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = u.b0 + wid.z;
  let pt = u.p0 + wid.x * ${TT}u;
  let qt = u.q0 + wid.y * ${TT}u;
  // Rows q of x (contiguous along p) into the tile.
  for (var j = lid.y; j < ${TT}u; j += 8u) {
    let q = qt + j;
    let p = pt + lid.x;
    if (q < u.q1 && p < u.p1) {
      tile[j * ${TT + 1}u + lid.x] = x[b * u.x_batch + q * u.P + p - u.base_x];
    }
  }
  workgroupBarrier();
  // Rows p of out (contiguous along q) from the tile's columns.
  for (var j = lid.y; j < ${TT}u; j += 8u) {
    let p = pt + j;
    let q = qt + lid.x;
    if (p < u.p1 && q < u.q1) {
      out[b * u.out_batch + p * u.Q + q - u.base_out] = tile[lid.x * ${TT + 1}u + j];
    }
  }
}
`;

/**
 * The tiled transpose's plan when a copy to `outShape` through `strides` is a (batched) matrix transpose:
 * coalesced to [B, P, Q] with x strides [P·Q, 1, P] (or [1, P] unbatched). Null otherwise.
 */
function planTiledTranspose(outShape: Shape, strides: readonly number[], what: string): SplitPlan | null {
  const c = coalesce(outShape, [strides]);
  const [dims, st] = [c.shape, c.strides[0]];
  if (dims.length < 2 || dims.length > 3) return null;
  const [P, Q] = dims.slice(-2);
  const B = dims.length === 3 ? dims[0] : 1;
  if (st[st.length - 2] !== 1 || st[st.length - 1] !== P || (dims.length === 3 && st[0] !== P * Q)) return null;
  const grid = (p0: number, p1: number, q0: number, q1: number, b0: number, b1: number): [number, number, number] => [Math.ceil((p1 - p0) / TT), Math.ceil((q1 - q0) / TT), b1 - b0];
  return {
    label: `transpose (tiled) ${what}`,
    code: TILED_TRANSPOSE,
    uniforms: { P, Q, x_batch: P * Q, out_batch: P * Q, b0: 0, p0: 0, p1: P, q0: 0, q1: Q, base_x: 0, base_out: 0 },
    bindings: { x: 0, out: 'output' },
    outShape,
    workgroups: grid(0, P, 0, Q, 0, B),
    sizes: [B, P, Q],
    granules: [1, TT, TT],
    reach: ({ start: [b0, p0, q0], end: [b1, p1, q1] }) => ({
      x: [b0 * P * Q + q0 * P + p0, (b1 - 1) * P * Q + (q1 - 1) * P + p1 - 1],
      out: [b0 * P * Q + p0 * Q + q0, (b1 - 1) * P * Q + (p1 - 1) * Q + q1 - 1],
    }),
    boxUniforms: ({ start: [b0, p0, q0], end: [, p1, q1] }, bases) => ({ b0, p0, p1, q0, q1, base_x: bases.x, base_out: bases.out }),
    boxGrid: ({ start: [b0, p0, q0], end: [b1, p1, q1] }) => grid(p0, p1, q0, q1, b0, b1),
  };
}

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

export const layoutKernels = {
  expand(ctx, [x], p) {
    return gatherCopy(ctx, x, p.outShape, broadcastStrides(p.shape, p.outShape), 0, `expand ${fmt(p.shape)} → ${fmt(p.outShape)}`);
  },

  transpose(ctx, [x], p) {
    const inStrides = stridesOf(p.shape);
    const outShape = p.perm.map((a) => p.shape[a]);
    const strides = p.perm.map((a) => inStrides[a]);
    const what = `transpose ${fmt(p.shape)} by ${fmt(p.perm)}`;
    // Tiles need 32 whole rows of each side in a window; where a binding cannot hold that, the gather copy.
    const tiled = sizeOf(outShape) > 0 ? planTiledTranspose(outShape, strides, what) : null;
    if (tiled && splittable(ctx, tiled, [x])) return runSplitPlan(ctx, tiled, [x]);
    return gatherCopy(ctx, x, outShape, strides, 0, what);
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
    if (n > ctx.bindingLimit || !fitsBinding(ctx, x)) {
      // Too large for one binding: the pad value everywhere, then x copied to where it lands.
      const out = ctx.call('fill', [], { size: n, value: p.value });
      const outStrides = stridesOf(p.outShape);
      const target = { strides: outStrides.map((s, d) => s * (p.interior[d] + 1)), base: p.before.reduce((acc, b, d) => acc + b * outStrides[d], 0) };
      boxedCopy(ctx, x, out, p.shape, { strides: naturalStrides(p.shape) }, target, `pad ${fmt(p.shape)} → ${fmt(p.outShape)}`);
      return out;
    }
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
      const what = `input ${k} ${fmt(shape)} of ${fmt(p.outShape)}`;
      if (!(fitsBinding(ctx, x) && fitsBinding(ctx, out))) {
        boxedCopy(ctx, x, out, shape, { strides: naturalStrides(shape) }, { strides: outStrides, base }, what);
        return;
      }
      const c = coalesce(shape, [outStrides]);
      checkRank(c, 'concat', what);
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
} satisfies KernelFamily;
