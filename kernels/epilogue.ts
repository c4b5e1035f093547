// A convolution's epilogue in WGSL: y = act(conv + bias[o] + residual), applied by the implicit-GEMM
// convolution as it stores (kernels/conv2d.ts asks `epilogueStore` for the store), or, after the routes
// that reuse other kernels (1×1 as matmul, depthwise), by one in-place pass over the output.

import type { ConvEpilogue, ConvGeometry, EpilogueActivation } from '../engine/backend.ts';
import { cachedShader, isWindow, windowOf, type Binding, type GpuStorage, type KernelContext } from '../engine/webgpu/kernel-api.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH } from './prelude.ts';

/** The activation of `v` (a WGSL f32 expression), as the engine's ops define it. */
function activationWgsl(act: EpilogueActivation, v: string): string {
  switch (act) {
    case 'none': return v;
    case 'relu': return `select(0.0, ${v}, ${v} > 0.0)`; // relu(NaN) = 0, as the unary kernel
    case 'relu6': return `min(select(0.0, ${v}, ${v} > 0.0), 6.0)`;
    case 'silu': return `(${v} * sigmoid_(${v}))`;
    case 'hardswish': return `(${v} * (clamp(${v} + 3.0, 0.0, 6.0) / 6.0))`;
    case 'gelu': return `(${v} * 0.5 * (1.0 + erf_(${v} * 0.7071067811865476)))`;
  }
}

/** Declarations the epilogue's WGSL needs (the maths functions of silu and gelu). */
export function epilogueDecls(e: ConvEpilogue): string {
  return e.activation === 'silu' || e.activation === 'gelu' ? WGSL_MATH : '';
}

/** The storage bindings an epilogue adds, in input order after x and w. */
export function epilogueBindings(e: ConvEpilogue): { name: string; type: string; access: 'read' }[] {
  return [
    ...(e.bias ? [{ name: 'bias', type: 'array<f32>', access: 'read' as const }] : []),
    ...(e.residual ? [{ name: 'res', type: 'array<f32>', access: 'read' as const }] : []),
  ];
}

/** Binding name → kernel input index, for a plan whose x and w are inputs 0 and 1. */
export function epilogueInputs(e: ConvEpilogue): Record<string, number> {
  const out: Record<string, number> = {};
  if (e.bias) out.bias = 2;
  if (e.residual) out.res = e.bias ? 3 : 2;
  return out;
}

/**
 * WGSL that stores `value` of output channel `channel` at `out[index]` through the epilogue; the residual is
 * read at `residualIndex` (default `index`: where its binding window starts where the output's does).
 */
export function epilogueStore(e: ConvEpilogue, out: string, index: string, channel: string, value: string, residualIndex = index): string {
  const lines = [`var ev = ${value};`];
  if (e.bias) lines.push(`ev = ev + bias[${channel}];`);
  if (e.residual) lines.push(`ev = ev + res[${residualIndex}];`);
  lines.push(`${out}[${index}] = ${activationWgsl(e.activation, 'ev')};`);
  return lines.join('\n');
}

/** A short, stable name of an epilogue (shader cache keys, labels). */
export function epilogueKey(e: ConvEpilogue): string {
  return `${e.bias ? 'b' : ''}${e.residual ? 'r' : ''}:${e.activation}`;
}

function inPlaceShader(e: ConvEpilogue): string {
  return cachedShader(`conv-epilogue:${epilogueKey(e)}`, () => /* wgsl */ `${WGSL_LINEAR}
${epilogueDecls(e)}
struct Params { start: u32, end: u32, P: u32, O: u32, base_y: u32, base_res: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${epilogueBindings(e).map((b, i) => `@group(0) @binding(${i + 2}) var<storage, read> ${b.name}: ${b.type};`).join('\n')}
override WG: u32 = ${WG};
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = params.start + linear_index(wid, nwg, lid, WG);
  if (i >= params.end) { return; }
  let o = (i / params.P) % params.O;
  let yi = i - params.base_y;
${epilogueStore(e, 'y', 'yi', 'o', 'y[yi]', 'i - params.base_res')}
}`);
}

/**
 * Applies the epilogue to y [N, O, oh, ow] in place; `extra` holds bias and residual. One dispatch, or one
 * per range of elements when y (and the residual, laid out as y) exceed one binding: each binds windows.
 */
export function epilogueInPlace(ctx: KernelContext, y: GpuStorage, extra: readonly GpuStorage[], g: ConvGeometry, e: ConvEpilogue): GpuStorage {
  const [N, O, OH, OW] = g.yShape;
  const n = N * O * OH * OW;
  if (n === 0) return y;
  const inputs: Record<string, GpuStorage> = {};
  for (const [name, index] of Object.entries(epilogueInputs(e))) inputs[name] = extra[index - 2];
  const whole = y.size <= ctx.bindingLimit && (inputs.res?.size ?? 0) <= ctx.bindingLimit;
  // A window starts up to bindingAlign − 1 elements before its range and is rounded up to whole vec4s.
  const step = whole ? n : ctx.bindingLimit - ctx.bindingAlign - 3;
  for (let start = 0; start < n; start += step) {
    const end = Math.min(n, start + step);
    const yw = whole ? y : windowOf(ctx, y, start, end - 1, 'the output');
    const rw = inputs.res && !whole ? windowOf(ctx, inputs.res, start, end - 1, 'the residual') : inputs.res;
    const base = (b: Binding | undefined) => (b && isWindow(b) ? b.offset : 0);
    const bindings: Record<string, Binding> = { y: yw, ...(inputs.bias ? { bias: inputs.bias } : {}), ...(rw ? { res: rw } : {}) };
    ctx.dispatch({
      code: inPlaceShader(e),
      constants: { WG },
      uniforms: { start, end, P: OH * OW, O, base_y: base(yw), base_res: base(rw) },
      bindings,
      workgroups: Math.ceil((end - start) / WG),
      label: `conv2d epilogue ${epilogueKey(e)} [${g.yShape}]`,
    });
  }
  return y;
}
