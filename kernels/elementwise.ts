// Elementwise kernels: fill, unary, binary (numpy broadcasting), where.
//
// One invocation per output element, 256 per workgroup, a 1-D grid that turns 2-D past 65535
// workgroups. Each op is its own WGSL source (the op's expression spliced into a template, built once),
// so the pipeline does no per-element switching. Binary and where pick a variant per call: contiguous
// operands of the output's shape and scalar operands are read directly; anything else goes through the
// strided path (coalesced shapes and broadcast strides, stride 0 on broadcast dims).
//
// Tensors larger than one binding (kernels/blocks.ts): fill, unary and binary/where whose operands are all
// contiguous or scalar run over aligned contiguous chunks of the same shaders; strided binary/where run a
// "boxed" variant in which the output is addressed through strides too, one dispatch per box.
//
// Float semantics follow the CPU reference where WGSL leaves them open: NaN is detected by its bits
// (compilers may fold `x != x`), maximum/minimum propagate NaN, comparisons are written so NaN gives
// the IEEE answer (notEqual(NaN, x) = 1), sign(NaN) = relu(NaN) = 0, pow handles negative bases with
// integer exponents like Math.pow. tanh, expm1, log1p and erf are implemented here rather than taken
// from the built-ins, whose WGSL accuracy guarantees are weak near 0 (tanh is only as good as
// sinh/cosh, log has absolute error 2^-21 near 1).

import type { BinaryOp, UnaryOp } from '../engine/backend.ts';
import { cachedShader, fitsBinding, windowOf, type Binding, type GpuStorage, type KernelContext, type KernelFamily } from '../engine/webgpu/kernel-api.ts';
import { broadcastStrides, fmt, sameShape, sizeOf, type Shape } from '../engine/shape.ts';
import { bindBox, contiguousChunks, naturalStrides, splitBoxes } from './blocks.ts';
import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS, WGSL_MATH, checkRank, coalesce, stridedUniforms, wgslStridedMembers, wgslStridedOffsets } from './prelude.ts';

// ---------------------------------------------------------------------------------------------------
// fill

const FILL = /* wgsl */ `
${WGSL_LINEAR}
struct U { n: u32, value: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i < u.n) { out[i] = u.value; }
}
`;

// ---------------------------------------------------------------------------------------------------
// unary

export const UNARY_EXPR: Record<UnaryOp, string> = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  log1p: 'log1p_(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  abs: 'abs(x)',
  sign: 'select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0)',
  tanh: 'tanh_(x)',
  sigmoid: 'sigmoid_(x)',
  erf: 'erf_(x)',
  relu: 'select(0.0, x, x > 0.0)',
  sin: 'sin(x)',
  cos: 'cos(x)',
  reciprocal: '1.0 / x',
};

function unarySource(op: UnaryOp): string {
  return cachedShader(`unary:${op}`, () => /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  let x = a[i];
  out[i] = ${UNARY_EXPR[op]};
}
`);
}

// ---------------------------------------------------------------------------------------------------
// binary

export const BINARY_EXPR: Record<BinaryOp, string> = {
  add: 'x + y',
  sub: 'x - y',
  mul: 'x * y',
  div: 'x / y',
  pow: 'pow_(x, y)',
  maximum: 'max_nan(x, y)',
  minimum: 'min_nan(x, y)',
  greater: 'select(0.0, 1.0, x > y)',
  greaterEqual: 'select(0.0, 1.0, x >= y)',
  less: 'select(0.0, 1.0, x < y)',
  lessEqual: 'select(0.0, 1.0, x <= y)',
  equal: 'select(0.0, 1.0, x == y)',
  notEqual: 'select(1.0, 0.0, x == y)',
};

/**
 * How operands are read: `same` (contiguous, out's shape), `scalar` (element 0) or via the strided
 * offsets. One source per combination actually used.
 */
type Access = 'same' | 'scalar' | 'strided';

function operandRead(name: string, access: Access, k: number): string {
  if (access === 'same') return `${name}[i]`;
  if (access === 'scalar') return `${name}[0]`;
  return `${name}[off[${k}]]`;
}

/**
 * The shader of one op and access combination. `body` declares `value` from the operand values `<name>v`.
 * `boxed`: the output is one more strided operand (a box of a split index space, kernels/blocks.ts).
 */
function elementwiseSource(inputs: readonly string[], access: readonly Access[], body: string, boxed = false): string {
  const strided = boxed || access.includes('strided');
  const reads = inputs.map((name, k) => `let ${name}v = ${operandRead(name, access[k], k)};`).join('\n  ');
  const operands = inputs.length + (boxed ? 1 : 0);
  return /* wgsl */ `
${WGSL_LINEAR}
${WGSL_MATH}
struct U {
  ${wgslStridedMembers(operands)}
}
@group(0) @binding(0) var<uniform> u: U;
${inputs.map((name, k) => `@group(0) @binding(${k + 1}) var<storage, read> ${name}: array<f32>;`).join('\n')}
@group(0) @binding(${inputs.length + 1}) var<storage, read_write> out: array<f32>;
override WG: u32 = 256;
${wgslStridedOffsets(operands)}
@compute @workgroup_size(WG)
fn main(${WGSL_MAIN_ARGS}) {
  let i = linear_index(wid, nwg, lid, WG);
  if (i >= u.n) { return; }
  ${strided ? 'let off = strided_offsets(i);' : ''}
  ${reads}
  ${body}
  out[${boxed ? `off[${inputs.length}]` : 'i'}] = value;
}
`;
}

/** Chooses each operand's access and the strides of the strided ones. */
function plan(shapes: readonly Shape[], sizes: readonly number[], outShape: Shape) {
  const n = sizeOf(outShape);
  const access: Access[] = shapes.map((s, k) => (sizes[k] === 1 ? 'scalar' : sameShape(s, outShape) || sizes[k] === n ? 'same' : 'strided'));
  // Strided operands share one coalesced index space; 'same'/'scalar' ones get zero strides there.
  const strideSets = shapes.map((s, k) => (access[k] === 'strided' ? broadcastStrides(s, outShape) : outShape.map(() => 0)));
  return { n, access, coalesced: coalesce(outShape, strideSets) };
}

function runElementwise(
  ctx: KernelContext,
  names: readonly string[],
  inputs: readonly GpuStorage[],
  shapes: readonly Shape[],
  outShape: Shape,
  opKey: string,
  body: string,
): GpuStorage {
  const { n, access, coalesced } = plan(shapes, inputs.map((s) => s.size), outShape);
  const out = ctx.output(n, outShape);
  if (n === 0) return out;
  const what = shapes.map(fmt).join(', ') + ` → ${fmt(outShape)}`;
  const strided = access.includes('strided');
  if (strided) checkRank(coalesced, ctx.kernel, what);
  const fits = fitsBinding(ctx, out) && inputs.every((s) => fitsBinding(ctx, s));
  if (!fits && strided) {
    runBoxed(ctx, names, inputs, shapes, out, outShape, access, opKey, body, what);
    return out;
  }
  const code = cachedShader(`elementwise:${opKey}|${access.join(',')}`, () => elementwiseSource(names, access, body));
  const uniforms = stridedUniforms(n, strided ? coalesced : { shape: [], strides: names.map(() => []) });
  // Whole tensors, or (too large for one binding, every operand contiguous or scalar) aligned chunks in which
  // element i sits at the same offset of every window.
  for (const [start, end] of contiguousChunks(ctx, n)) {
    const part = (s: GpuStorage): Binding => (fits || s.size === 1 ? s : windowOf(ctx, s, start, end - 1, what));
    const bindings: Record<string, Binding> = { out: part(out) };
    names.forEach((name, k) => (bindings[name] = part(inputs[k])));
    ctx.dispatch({ code, constants: { WG }, uniforms: { ...uniforms, n: end - start }, bindings, workgroups: Math.ceil((end - start) / WG) });
  }
  return out;
}

/** Strided operands too large for one binding: one dispatch per box of the output's index space. */
function runBoxed(
  ctx: KernelContext,
  names: readonly string[],
  inputs: readonly GpuStorage[],
  shapes: readonly Shape[],
  out: GpuStorage,
  outShape: Shape,
  access: readonly Access[],
  opKey: string,
  body: string,
  what: string,
): void {
  // Every non-scalar operand goes through strides (those of the output's layout for 'same' ones), and so
  // does the output.
  const boxedAccess = access.map((a): Access => (a === 'scalar' ? 'scalar' : 'strided'));
  const strideSets = shapes.map((s, k) => (access[k] === 'scalar' ? outShape.map(() => 0) : broadcastStrides(s, outShape)));
  const c = coalesce(outShape, [...strideSets, naturalStrides(outShape)]);
  checkRank(c, ctx.kernel, what);
  const code = cachedShader(`elementwise:${opKey}|${boxedAccess.join(',')}|boxed`, () => elementwiseSource(names, boxedAccess, body, true));
  const storages = [...inputs, out];
  for (const box of splitBoxes(c.shape, c.strides.map((strides) => ({ strides })), ctx.bindingLimit, ctx.bindingAlign, `${ctx.kernel} ${what}`)) {
    const { bindings, base } = bindBox(ctx, box, storages, `${ctx.kernel} ${what}`);
    const named: Record<string, Binding> = { out: bindings[names.length] };
    names.forEach((name, k) => (named[name] = access[k] === 'scalar' ? inputs[k] : bindings[k]));
    ctx.dispatch({
      code,
      constants: { WG },
      uniforms: stridedUniforms(box.size, { shape: box.shape, strides: c.strides }, base),
      bindings: named,
      workgroups: Math.ceil(box.size / WG),
    });
  }
}

export const elementwiseKernels = {
  fill(ctx, _inputs, p) {
    const out = ctx.output(p.size, [p.size]);
    for (const [start, end] of contiguousChunks(ctx, p.size)) {
      const bindings = { out: fitsBinding(ctx, out) ? out : windowOf(ctx, out, start, end - 1, `fill [${p.size}]`) };
      ctx.dispatch({ code: FILL, constants: { WG }, uniforms: { n: end - start, value: p.value }, bindings, workgroups: Math.ceil((end - start) / WG) });
    }
    return out;
  },

  unary(ctx, [a], p) {
    if (!(p.op in UNARY_EXPR)) throw new Error(`webgpu unary: unknown op ${p.op}`);
    const out = ctx.output(p.size, [p.size]);
    const fits = fitsBinding(ctx, out);
    for (const [start, end] of contiguousChunks(ctx, p.size)) {
      const part = (s: GpuStorage): Binding => (fits ? s : windowOf(ctx, s, start, end - 1, `unary ${p.op} [${p.size}]`));
      const bindings = { a: part(a), out: part(out) };
      ctx.dispatch({ code: unarySource(p.op), constants: { WG }, uniforms: { n: end - start }, bindings, workgroups: Math.ceil((end - start) / WG) });
    }
    return out;
  },

  binary(ctx, [a, b], p) {
    if (!(p.op in BINARY_EXPR)) throw new Error(`webgpu binary: unknown op ${p.op}`);
    const body = `let x = av; let y = bv; let value = ${BINARY_EXPR[p.op]};`;
    return runElementwise(ctx, ['a', 'b'], [a, b], [p.aShape, p.bShape], p.outShape, `binary:${p.op}`, body);
  },

  where(ctx, [c, a, b], p) {
    // cond != 0 written as !(cond == 0) so that a NaN condition selects a, as on the CPU.
    const body = 'let value = select(bv, av, !(condv == 0.0));';
    return runElementwise(ctx, ['cond', 'a', 'b'], [c, a, b], [p.condShape, p.aShape, p.bShape], p.outShape, 'where', body);
  },
} satisfies KernelFamily;
