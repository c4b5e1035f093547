// Row-wise logsumexp m + log Σ exp(x − m), m the row maximum (engine/fusion/logsumexp.ts): the logits'
// utility reduction in one dispatch. One workgroup per row: each invocation strides over the row, then a
// tree reduction in workgroup memory, first for the maximum, then for the sum of exponentials.

import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { WG, WGSL_MATH } from './prelude.ts';

const LOGSUMEXP = /* wgsl */ `
${WGSL_MATH}
struct U { rows: u32, n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
var<workgroup> part: array<f32, WG>;

fn reduce_part(lid: u32, is_max: bool) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lid < stride) {
      let a = part[lid];
      let b = part[lid + stride];
      part[lid] = select(a + b, max_nan(a, b), is_max);
    }
  }
  workgroupBarrier();
  return part[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Every invocation of a workgroup shares its row, so the early exit is uniform.
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let start = row * u.n;
  var m = -bitcast<f32>(INF_BITS);
  for (var j = lid; j < u.n; j += WG) { m = max_nan(m, x[start + j]); }
  part[lid] = m;
  m = reduce_part(lid, true);
  workgroupBarrier();
  var s = 0.0;
  for (var j = lid; j < u.n; j += WG) { s += exp(x[start + j] - m); }
  part[lid] = s;
  s = reduce_part(lid, false);
  if (lid == 0u) { out[row] = log(s) + m; }
}
`;

export const logsumexpKernels = {
  logsumexp(ctx, [x], p) {
    const out = ctx.output(p.rows, [p.rows]);
    if (p.rows === 0) return out;
    ctx.dispatch({ code: LOGSUMEXP, constants: { WG }, uniforms: { rows: p.rows, n: p.n }, bindings: { x, out }, workgroups: p.rows, label: `logsumexp [${p.rows}, ${p.n}]` });
    return out;
  },
} satisfies KernelFamily;
