// The per-channel scale-shift y = x · scale[c] + shift[c] (engine/fusion/scale-shift.ts): eval-mode
// BatchNorm in the differentiated head as one dispatch instead of a broadcast mul and add. One invocation
// per element; the channel is recovered from the flat index, x being [outer, channels, inner].

import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS } from './prelude.ts';

const SCALE_SHIFT = /* wgsl */ `
${WGSL_LINEAR}
struct U { n: u32, inner: u32, channels: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let c = (i / u.inner) % u.channels;
  out[i] = x[i] * scale[c] + shift[c];
}
`;

export const scaleShiftKernels = {
  scaleShift(ctx, [x, scale, shift], p) {
    const out = ctx.output(p.size, [p.size]);
    if (p.size === 0) return out;
    ctx.dispatch({
      code: SCALE_SHIFT,
      constants: { WG },
      uniforms: { n: p.size, inner: p.inner, channels: p.channels },
      bindings: { x, scale, shift, out },
      workgroups: Math.ceil(p.size / WG),
      label: `scaleShift [${p.size / (p.channels * p.inner)}, ${p.channels}, ${p.inner}]`,
    });
    return out;
  },
} satisfies KernelFamily;
