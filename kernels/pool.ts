// maxPoolArgmax: the flat index (h · W + w) of each pooling window's maximum within its (n, c) plane.
//
// One invocation per output element scans its window in the CPU's order (rows, then columns) with the
// CPU's rule — a value replaces the best if it is greater, if nothing was taken yet, or if it is NaN — so
// ties go to the first maximum and the last NaN wins, exactly as in the reference. Padding positions are
// skipped (they never win); a window made only of padding gives -1. Windows are small (k ≤ 7 or so), so
// a serial scan per invocation beats any cooperative scheme; adjacent invocations read adjacent columns.
// Tensors larger than one binding split into boxes of (plane, output pixel) (kernels/blocks.ts).

import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { bindBox, boxesFor } from './blocks.ts';
import { fmt, sizeOf } from '../engine/shape.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH } from './prelude.ts';

const ARGMAX = /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U {
  n: u32,
  box_pix: u32, // output pixels per plane in this box, from pix0
  pix0: u32,
  x_base: u32,
  out_base: u32,
  h: u32,
  w: u32,
  oh: u32,
  ow: u32,
  kh: u32,
  kw: u32,
  sh: u32,
  sw: u32,
  ph: i32,
  pw: i32,
  dh: u32,
  dw: u32,
}
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let plane = i / u.box_pix;
  let pix = u.pix0 + i % u.box_pix;
  let ox = pix % u.ow;
  let oy = pix / u.ow;
  let base = u.x_base + plane * u.h * u.w;
  var best = -inf_f32();
  var best_idx = -1;
  for (var ky = 0u; ky < u.kh; ky++) {
    let iy = i32(oy * u.sh + ky * u.dh) - u.ph;
    if (iy < 0 || iy >= i32(u.h)) { continue; }
    for (var kx = 0u; kx < u.kw; kx++) {
      let ix = i32(ox * u.sw + kx * u.dw) - u.pw;
      if (ix < 0 || ix >= i32(u.w)) { continue; }
      let at = iy * i32(u.w) + ix;
      let v = x[base + u32(at)];
      if (v > best || best_idx < 0 || is_nan(v)) {
        best = v;
        best_idx = at;
      }
    }
  }
  out[u.out_base + plane * u.oh * u.ow + i % u.box_pix] = f32(best_idx);
}
`;

export const poolKernels = {
  maxPoolArgmax(ctx, [x], p) {
    if (p.xShape.length !== 4 || p.outShape.length !== 4) throw new Error(`webgpu maxPoolArgmax: expects NCHW, got ${fmt(p.xShape)} → ${fmt(p.outShape)}`);
    const [, , H, W] = p.xShape;
    const [, , OH, OW] = p.outShape;
    if (H * W > 2 ** 24) throw new Error(`webgpu maxPoolArgmax: a ${H}×${W} plane has indices float32 cannot hold exactly`);
    const n = sizeOf(p.outShape);
    const out = ctx.output(n, p.outShape);
    if (n === 0) return out;
    const what = `maxPoolArgmax ${fmt(p.xShape)} → ${fmt(p.outShape)}`;
    // Index space (plane, output pixel): x is read anywhere in the box's planes, out at its own offsets.
    const operands = [{ strides: [H * W, 0], reach: H * W - 1 }, { strides: [OH * OW, 1] }];
    for (const box of boxesFor(ctx, [n / (OH * OW), OH * OW], operands, [x, out], what)) {
      const { bindings, base } = bindBox(ctx, box, [x, out], what);
      ctx.dispatch({
        code: ARGMAX,
        constants: { WG },
        uniforms: {
          n: box.size,
          box_pix: box.shape[1],
          pix0: box.start[1],
          x_base: base[0],
          out_base: base[1],
          h: H,
          w: W,
          oh: OH,
          ow: OW,
          kh: p.kernel[0],
          kw: p.kernel[1],
          sh: p.stride[0],
          sw: p.stride[1],
          ph: p.padding[0],
          pw: p.padding[1],
          dh: p.dilation[0],
          dw: p.dilation[1],
        },
        bindings: { x: bindings[0], out: bindings[1] },
        workgroups: Math.ceil(box.size / WG),
      });
    }
    return out;
  },
} satisfies KernelFamily;
