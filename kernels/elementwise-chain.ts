// The elementwise-chain kernel (engine/fusion/elementwise-chain.ts): WGSL generated from the chain's
// program, one invocation per output element, every step a `let` in registers, so a chain of k operations
// is one dispatch that reads each input once and writes the output once (the unfused ops write and read
// k − 1 intermediate tensors).
//
// A shader is built per program text and "shape class": how each input is read, contiguous with the
// output's layout (`same`), one value (`scalar`) or through broadcast strides (`strided`). Constants are
// not part of the source: they travel in the uniform struct, so a chain that differs only in an epsilon or
// a scale reuses the pipeline. Op semantics are the elementwise family's own expressions (kernels/
// elementwise.ts), so a chain agrees with its unfused composition on this backend to the last bit wherever
// WGSL's `let` does not change the rounding (it does not: every step is one f32 result).
//
// Tensors larger than one binding: with every input `same` or `scalar` the chain runs over aligned
// contiguous chunks like the elementwise family; a strided chain that large runs as its unfused kernels.

import type { BinaryOp, ChainProgram, ChainStep, KernelParams, UnaryOp } from '../engine/backend.ts';
import { cachedShader, fitsBinding, windowOf, type Binding, type GpuStorage, type KernelContext, type KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { broadcastShapes, broadcastStrides, fmt, sizeOf, type Shape } from '../engine/shape.ts';
import { contiguousChunks } from './blocks.ts';
import { BINARY_EXPR, UNARY_EXPR } from './elementwise.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH, checkRank, coalesce } from './prelude.ts';

type Access = 'same' | 'scalar' | 'strided';

const vec4Index = (k: number) => `[${k >> 2}][${k & 3}]`;

/** WGSL for one step, `r<i>`, given the constant numbering of the program's key. */
function stepLine(s: ChainStep, i: number, access: readonly Access[], constIndex: ReadonlyMap<number, number>): string {
  const expr = (() => {
    switch (s.op) {
      case 'input': {
        const a = access[s.input];
        return `in${s.input}[${a === 'same' ? 'i' : a === 'scalar' ? '0' : `o${s.input}`}]`;
      }
      case 'const': return `u.consts${vec4Index(constIndex.get(i)!)}`;
      case 'unary': return `un_${s.fn}(r${s.a})`;
      case 'binary': return `bin_${s.fn}(r${s.a}, r${s.b})`;
      // cond != 0 written as !(cond == 0) so that a NaN condition selects a, as on the CPU.
      case 'where': return `select(r${s.b}, r${s.a}, !(r${s.cond} == 0.0))`;
    }
  })();
  return `let r${i} = ${expr};`;
}

function chainSource(program: ChainProgram, access: readonly Access[]): string {
  const { steps } = program;
  const strided = access.map((a, k) => (a === 'strided' ? k : -1)).filter((k) => k >= 0);
  const constIndex = new Map<number, number>();
  steps.forEach((s, i) => s.op === 'const' && constIndex.set(i, constIndex.size));
  const unaries = [...new Set(steps.flatMap((s) => (s.op === 'unary' ? [s.fn] : [])))] as UnaryOp[];
  const binaries = [...new Set(steps.flatMap((s) => (s.op === 'binary' ? [s.fn] : [])))] as BinaryOp[];
  const members = [
    'n: u32,',
    ...(strided.length > 0 ? ['rank: u32,', 'shape: array<vec4<u32>, 2>,', ...strided.map((k) => `s${k}: array<vec4<i32>, 2>,`)] : []),
    ...(constIndex.size > 0 ? [`consts: array<vec4<f32>, ${Math.ceil(constIndex.size / 4)}>,`] : []),
  ];
  const offsets = strided.length === 0 ? '' : /* wgsl */ `
  var rem = i;
  ${strided.map((k) => `var o${k} = 0i;`).join(' ')}
  for (var dd = i32(u.rank) - 1; dd >= 0; dd--) {
    let d = u32(dd);
    let n = u.shape[d >> 2u][d & 3u];
    let c = i32(rem % n);
    rem = rem / n;
    ${strided.map((k) => `o${k} += c * u.s${k}[d >> 2u][d & 3u];`).join('\n    ')}
  }`;
  return /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U {
  ${members.join('\n  ')}
}
@group(0) @binding(0) var<uniform> u: U;
${access.map((_, k) => `@group(0) @binding(${k + 1}) var<storage, read> in${k}: array<f32>;`).join('\n')}
@group(0) @binding(${access.length + 1}) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${unaries.map((fn) => `fn un_${fn}(x: f32) -> f32 { return ${UNARY_EXPR[fn]}; }`).join('\n')}
${binaries.map((fn) => `fn bin_${fn}(x: f32, y: f32) -> f32 { return ${BINARY_EXPR[fn]}; }`).join('\n')}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }${offsets}
  ${steps.map((s, j) => stepLine(s, j, access, constIndex)).join('\n  ')}
  out[i] = r${steps.length - 1};
}
`;
}

/** The constants as the uniform's vec4 array (zero-padded), or nothing when there are none. */
function constantUniforms(program: ChainProgram): Record<string, number[]> {
  const c = program.constants;
  if (c.length === 0) return {};
  return { consts: [...c, ...new Array<number>((4 - (c.length % 4)) % 4).fill(0)] };
}

/** numpy broadcasting of two operands' shapes (the engine checked that the whole chain broadcasts). */
const broadcastPair = (a: Shape, b: Shape) => broadcastShapes('elementwiseChain', a, b);

/**
 * The chain as the backend's own unary/binary/where kernels, one per step (for strided chains too large
 * for one binding: those kernels know how to split such tensors). Intermediates are freed as they die.
 */
function runUnfused(ctx: KernelContext, inputs: readonly GpuStorage[], p: KernelParams['elementwiseChain']): GpuStorage {
  const { steps } = p.program;
  const values: { s: GpuStorage; shape: Shape }[] = [];
  const made = new Set<GpuStorage>();
  const fresh = (s: GpuStorage, shape: Shape) => (made.add(s), { s, shape });
  for (const s of steps) {
    const v = (j: number) => values[j];
    switch (s.op) {
      case 'input': values.push({ s: inputs[s.input], shape: p.shapes[s.input] }); break;
      case 'const': values.push(fresh(ctx.call('fill', [], { size: 1, value: s.value }), [])); break;
      case 'unary': values.push(fresh(ctx.call('unary', [v(s.a).s], { op: s.fn, size: sizeOf(v(s.a).shape) }), v(s.a).shape)); break;
      case 'binary': {
        const shape = broadcastPair(v(s.a).shape, v(s.b).shape);
        values.push(fresh(ctx.call('binary', [v(s.a).s, v(s.b).s], { op: s.fn, aShape: v(s.a).shape, bShape: v(s.b).shape, outShape: shape }), shape));
        break;
      }
      case 'where': {
        const shape = broadcastPair(broadcastPair(v(s.cond).shape, v(s.a).shape), v(s.b).shape);
        const params = { condShape: v(s.cond).shape, aShape: v(s.a).shape, bShape: v(s.b).shape, outShape: shape };
        values.push(fresh(ctx.call('where', [v(s.cond).s, v(s.a).s, v(s.b).s], params), shape));
        break;
      }
    }
  }
  let result = values[values.length - 1];
  if (result.shape.join() !== p.outShape.join()) result = fresh(ctx.call('expand', [result.s], { shape: result.shape, outShape: p.outShape }), p.outShape);
  for (const s of made) if (s !== result.s) s.backend.free(s);
  return result.s;
}

export const elementwiseChainKernels = {
  elementwiseChain(ctx, inputs, p) {
    const n = sizeOf(p.outShape);
    const access = p.shapes.map((s, k): Access => (inputs[k].size === 1 ? 'scalar' : inputs[k].size === n ? 'same' : 'strided'));
    const stridedInputs = access.map((a, k) => (a === 'strided' ? k : -1)).filter((k) => k >= 0);
    const fits = n <= ctx.bindingLimit && inputs.every((s) => fitsBinding(ctx, s));
    if (!fits && stridedInputs.length > 0) return runUnfused(ctx, inputs, p);
    const out = ctx.output(n, p.outShape);
    if (n === 0) return out;
    const what = `${p.shapes.map(fmt).join(', ')} → ${fmt(p.outShape)}`;
    const uniforms: Record<string, number | number[]> = constantUniforms(p.program);
    if (stridedInputs.length > 0) {
      const c = coalesce(p.outShape, stridedInputs.map((k) => broadcastStrides(p.shapes[k], p.outShape)));
      checkRank(c, ctx.kernel, what);
      const pad = (v: readonly number[]) => [...v, ...new Array<number>(8 - v.length).fill(0)];
      uniforms.rank = c.shape.length;
      uniforms.shape = pad(c.shape);
      stridedInputs.forEach((k, j) => (uniforms[`s${k}`] = pad(c.strides[j])));
    }
    const code = cachedShader(`chain:${p.program.key}|${access.join(',')}`, () => chainSource(p.program, access));
    // Whole tensors, or (too large for one binding, every input contiguous or scalar) aligned chunks in which
    // element i sits at the same offset of every window.
    for (const [start, end] of contiguousChunks(ctx, n)) {
      const part = (s: GpuStorage): Binding => (fits || s.size === 1 ? s : windowOf(ctx, s, start, end - 1, what));
      const bindings: Record<string, Binding> = { out: part(out) };
      inputs.forEach((s, k) => (bindings[`in${k}`] = part(s)));
      ctx.dispatch({ code, constants: { WG }, uniforms: { ...uniforms, n: end - start }, bindings, workgroups: Math.ceil((end - start) / WG) });
    }
    return out;
  },
} satisfies KernelFamily;
