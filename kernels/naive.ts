// Naive matmul and convolutions: one invocation per output element, a plain loop over the summed
// indices, no workgroup memory. They are the simple, obviously-correct baseline the tiled kernels
// (kernels/matmul.ts, kernels/conv2d.ts) are compared against, in the tests and the benchmarks; they are
// not in the backend's kernel table (kernels/index.ts), so production never runs them.
//
// Each invocation accumulates in the CPU reference's order (k ascending for matmul; channel, ky, kx for
// the convolutions) in float32.

import type { ConvGeometry } from '../engine/backend.ts';
import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { broadcastStrides, fmt, sizeOf } from '../engine/shape.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, checkRank, coalesce, stridedUniforms, wgslStridedMembers, wgslStridedOffsets } from './prelude.ts';

// ---------------------------------------------------------------------------------------------------
// matmul: batch dims broadcast via strided offsets over the (coalesced) batch shape.

const MATMUL = /* wgsl */ `
${WGSL_LINEAR}
struct U {
  ${wgslStridedMembers(2)}
  total: u32,
  m: u32,
  k: u32,
  cols: u32,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${wgslStridedOffsets(2)}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.total) { return; }
  let col = i % u.cols;
  let row = (i / u.cols) % u.m;
  let off = strided_offsets(i / (u.cols * u.m));
  let a0 = u32(off.x) + row * u.k;
  let b0 = u32(off.y) + col;
  var acc = 0.0;
  for (var kk = 0u; kk < u.k; kk++) {
    acc += a[a0 + kk] * b[b0 + kk * u.cols];
  }
  out[i] = acc;
}
`;

// ---------------------------------------------------------------------------------------------------
// Convolutions: three entry points over one set of named bindings; each pipeline binds only what its
// entry point uses (conv2d: x, w, y; backward_input: dy, w, dx; backward_filter: x, dy, dw).

const CONV = /* wgsl */ `
${WGSL_LINEAR}
struct U {
  total: u32,
  batch: u32,
  c: u32,
  h: u32,
  w: u32,
  o: u32,
  cg: u32,
  og: u32,
  kh: u32,
  kw: u32,
  oh: u32,
  ow: u32,
  sh: u32,
  sw: u32,
  ph: i32,
  pw: i32,
  dh: u32,
  dw: u32,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
override WG: u32 = 256;

fn w_index(o: u32, cg: u32, ky: u32, kx: u32) -> u32 { return ((o * u.cg + cg) * u.kh + ky) * u.kw + kx; }
fn x_index(n: u32, c: u32, iy: u32, ix: u32) -> u32 { return ((n * u.c + c) * u.h + iy) * u.w + ix; }
fn y_index(n: u32, o: u32, oy: u32, ox: u32) -> u32 { return ((n * u.o + o) * u.oh + oy) * u.ow + ox; }

// Input coordinate seen by output coordinate q through kernel tap k (may be out of range).
fn in_y(oy: u32, ky: u32) -> i32 { return i32(oy * u.sh + ky * u.dh) - u.ph; }
fn in_x(ox: u32, kx: u32) -> i32 { return i32(ox * u.sw + kx * u.dw) - u.pw; }

@compute @workgroup_size(WG)
fn conv2d(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.total) { return; }
  let ox = i % u.ow;
  let oy = (i / u.ow) % u.oh;
  let o = (i / (u.ow * u.oh)) % u.o;
  let n = i / (u.ow * u.oh * u.o);
  let g = o / u.og;
  var acc = 0.0;
  for (var cg = 0u; cg < u.cg; cg++) {
    for (var ky = 0u; ky < u.kh; ky++) {
      let iy = in_y(oy, ky);
      if (iy < 0 || iy >= i32(u.h)) { continue; }
      for (var kx = 0u; kx < u.kw; kx++) {
        let ix = in_x(ox, kx);
        if (ix < 0 || ix >= i32(u.w)) { continue; }
        acc += x[x_index(n, g * u.cg + cg, u32(iy), u32(ix))] * wt[w_index(o, cg, ky, kx)];
      }
    }
  }
  y[i] = acc;
}

@compute @workgroup_size(WG)
fn backward_input(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.total) { return; }
  let ix = i % u.w;
  let iy = (i / u.w) % u.h;
  let c = (i / (u.w * u.h)) % u.c;
  let n = i / (u.w * u.h * u.c);
  let g = c / u.cg;
  let cg = c % u.cg;
  var acc = 0.0;
  for (var o = g * u.og; o < (g + 1u) * u.og; o++) {
    for (var ky = 0u; ky < u.kh; ky++) {
      // oy·sh = iy + ph - ky·dh must hold for an integer oy in range.
      let ty = i32(iy) + u.ph - i32(ky * u.dh);
      if (ty < 0 || ty % i32(u.sh) != 0) { continue; }
      let oy = u32(ty) / u.sh;
      if (oy >= u.oh) { continue; }
      for (var kx = 0u; kx < u.kw; kx++) {
        let tx = i32(ix) + u.pw - i32(kx * u.dw);
        if (tx < 0 || tx % i32(u.sw) != 0) { continue; }
        let ox = u32(tx) / u.sw;
        if (ox >= u.ow) { continue; }
        acc += dy[y_index(n, o, oy, ox)] * wt[w_index(o, cg, ky, kx)];
      }
    }
  }
  dx[i] = acc;
}

@compute @workgroup_size(WG)
fn backward_filter(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.total) { return; }
  let kx = i % u.kw;
  let ky = (i / u.kw) % u.kh;
  let cg = (i / (u.kw * u.kh)) % u.cg;
  let o = i / (u.kw * u.kh * u.cg);
  let c = (o / u.og) * u.cg + cg;
  var acc = 0.0;
  for (var n = 0u; n < u.batch; n++) {
    for (var oy = 0u; oy < u.oh; oy++) {
      let iy = in_y(oy, ky);
      if (iy < 0 || iy >= i32(u.h)) { continue; }
      for (var ox = 0u; ox < u.ow; ox++) {
        let ix = in_x(ox, kx);
        if (ix < 0 || ix >= i32(u.w)) { continue; }
        acc += x[x_index(n, c, u32(iy), u32(ix))] * dy[y_index(n, o, oy, ox)];
      }
    }
  }
  dw[i] = acc;
}
`;

function convUniforms(g: ConvGeometry, total: number) {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  return {
    total,
    batch: N,
    c: C,
    h: H,
    w: W,
    o: O,
    cg: Cg,
    og: O / g.groups,
    kh: KH,
    kw: KW,
    oh: OH,
    ow: OW,
    sh: g.stride[0],
    sw: g.stride[1],
    ph: g.padding[0],
    pw: g.padding[1],
    dh: g.dilation[0],
    dw: g.dilation[1],
  };
}

export const naiveKernels = {
  matmul(ctx, [a, b], p) {
    const r = p.outShape.length;
    const m = p.outShape[r - 2];
    const cols = p.outShape[r - 1];
    const k = p.aShape[p.aShape.length - 1];
    const total = sizeOf(p.outShape);
    if (k === 0) return ctx.call('fill', [], { size: total, value: 0 });
    const out = ctx.output(total, p.outShape);
    if (total === 0) return out;
    const batchShape = p.outShape.slice(0, r - 2);
    const sa = broadcastStrides(p.aShape.slice(0, -2), batchShape).map((s) => s * m * k);
    const sb = broadcastStrides(p.bShape.slice(0, -2), batchShape).map((s) => s * k * cols);
    const c = coalesce(batchShape, [sa, sb]);
    checkRank(c, 'matmul', `${fmt(p.aShape)} @ ${fmt(p.bShape)}`);
    ctx.dispatch({
      code: MATMUL,
      constants: { WG },
      uniforms: { ...stridedUniforms(sizeOf(batchShape), c), total, m, k, cols },
      bindings: { a, b, out },
      workgroups: Math.ceil(total / WG),
    });
    return out;
  },

  conv2d(ctx, [x, wt], g) {
    const total = sizeOf(g.yShape);
    const y = ctx.output(total, g.yShape);
    if (total > 0) {
      ctx.dispatch({ code: CONV, entryPoint: 'conv2d', constants: { WG }, uniforms: convUniforms(g, total), bindings: { x, wt, y }, workgroups: Math.ceil(total / WG) });
    }
    return y;
  },

  conv2dBackwardInput(ctx, [dy, wt], g) {
    const total = sizeOf(g.xShape);
    const dx = ctx.output(total, g.xShape);
    if (total > 0) {
      ctx.dispatch({ code: CONV, entryPoint: 'backward_input', constants: { WG }, uniforms: convUniforms(g, total), bindings: { dy, wt, dx }, workgroups: Math.ceil(total / WG) });
    }
    return dx;
  },

  conv2dBackwardFilter(ctx, [x, dy], g) {
    const total = sizeOf(g.wShape);
    const dw = ctx.output(total, g.wShape);
    if (total > 0) {
      ctx.dispatch({ code: CONV, entryPoint: 'backward_filter', constants: { WG }, uniforms: convUniforms(g, total), bindings: { x, dy, dw }, workgroups: Math.ceil(total / WG) });
    }
    return dw;
  },
} satisfies KernelFamily;
