/// <reference types="@webgpu/types" />
/**
 * The kernel-author API of the WebGPU backend: what a kernel family in `kernels/` sees of the backend and
 * hands back to it. Kernel families import this module (and `kernels/prelude.ts` for shared WGSL), never
 * the backend itself; the backend implements it and takes its kernel table from `kernels/index.ts`.
 *
 * ## Writing a kernel family
 *
 * A family is a module in `kernels/` exporting an object that maps kernel names (the keys of
 * `KernelParams` in engine/backend.ts) to implementations, declared with `satisfies KernelFamily` so
 * that `kernels/index.ts` can check by type that the families together cover every kernel:
 *
 * ```ts
 * // kernels/elementwise.ts (the `fill` kernel, as it is)
 * import type { KernelFamily } from '../engine/webgpu/kernel-api.ts';
 * import { WG, WGSL_LINEAR, WGSL_MAIN_ARGS } from './prelude.ts';
 *
 * const FILL = `${WGSL_LINEAR}
 * struct U { n: u32, value: f32 }                           // sizes and scalars in one uniform struct
 * @group(0) @binding(0) var<uniform> u: U;
 * @group(0) @binding(1) var<storage, read_write> out: array<f32>;
 * override WG: u32 = 256;                                   // workgroup / tile sizes as overrides
 * @compute @workgroup_size(WG)
 * fn main(${WGSL_MAIN_ARGS}) {
 *   let i = linear_index(wid, nwg, lid, WG);
 *   if (i < u.n) { out[i] = u.value; }
 * }`;
 *
 * export const elementwiseKernels = {
 *   fill(ctx, _inputs, p) {
 *     const out = ctx.output(p.size, [p.size]);            // checks limits; poisoned with NaN in tests
 *     if (p.size === 0) return out;
 *     ctx.dispatch({
 *       code: FILL,                                         // built once: the string is the cache key
 *       constants: { WG },                                  // `override` values; part of the cache key
 *       uniforms: { n: p.size, value: p.value },            // by struct MEMBER name (offsets from reflection)
 *       bindings: { out },                                  // by WGSL variable NAME, never by index
 *       workgroups: Math.ceil(p.size / WG),                 // a linear count (folded into 2-D past 65535),
 *     });                                                   //   or an explicit [x, y, z] grid
 *     return out;
 *   },
 *   // unary, binary, where …
 * } satisfies KernelFamily;
 * ```
 *
 * then add it to the list in `kernels/index.ts` (a kernel name defined by two families is an error at
 * start-up; a kernel no family defines is a compile error there). Rules:
 *
 * - The implementation is synchronous: it allocates outputs (`ctx.output`) and scratch buffers
 *   (`ctx.scratch`, freed automatically after the call), then records dispatches. Dispatches are queued
 *   and encoded later, many per command encoder, in order; a kernel may record several (multi-pass).
 * - Every resource the entry point uses must be given in `bindings` (a binding the entry point does not
 *   use is an error, as is a missing one); the uniform struct (at most one per entry point) is filled from
 *   `uniforms`; members whose names start with `_` are padding and may be omitted.
 * - Outputs start as garbage (NaN in tests: the backend's `debug.poisonOutputs`): write every element.
 * - Pipelines are cached by (source, entry point, constants): keep the set of distinct sources small (build
 *   variants through `cachedShader`) and put sizes in uniforms; only tile / workgroup sizes belong in
 *   override constants.
 * - WGSL portability (Dawn/Tint and wgpu/naga): NaN/∞ are not constant expressions (take them from
 *   `nan_f32()` / `inf_f32()` of the prelude's WGSL_MATH), test NaN by bits, not `x != x`.
 * - Size `var<workgroup>` arrays with a literal or a single override name (wgsl_reflect's emulator and
 *   naga do not evaluate override expressions there). Every kernel using workgroup memory is race-checked
 *   by test/webgpu-kernels.test.ts automatically (it records dispatches), provided some test runs it.
 */

import type { KernelName, KernelParams, Storage } from '../backend.ts';
import type { TuneRequest } from './autotune.ts';
export type { TuneRequest } from './autotune.ts';
export { DeviceLimitError } from './errors.ts';
import type { Shape } from '../shape.ts';

/** A float32 tensor in a GPU buffer. `buffer` is null once freed. */
export interface GpuStorage extends Storage {
  readonly buffer: GPUBuffer | null;
  /** Bytes bound to a shader: the tensor's bytes (≥ 4, so zero-size tensors bind too). */
  readonly bindingSize: number;
}

/**
 * Elements [offset, offset + size) of a storage, bound to a shader as one binding: how a kernel reaches a
 * tensor larger than one binding (maxStorageBufferBindingSize). Shaders index a window with the tensor's
 * own element indices minus `offset` (a uniform), so the arithmetic is the same as on the whole tensor.
 */
export interface BufferWindow {
  readonly storage: GpuStorage;
  /** First element bound: a multiple of the context's `bindingAlign`. */
  readonly offset: number;
  /** Elements bound (at most the context's `bindingLimit`). */
  readonly size: number;
}

/** What a dispatch binds to a storage variable: a whole storage, or a window of one. */
export type Binding = GpuStorage | BufferWindow;

export function isWindow(b: Binding): b is BufferWindow {
  return 'storage' in b;
}

/** Values of a pipeline's `override` declarations, by name. */
export type OverrideConstants = Record<string, number>;

/** Values of the uniform struct's members, by name (an array member takes a flat list of its scalars). */
export type UniformValues = Record<string, number | readonly number[]>;

/**
 * One compute dispatch, described by name. `B` is what a binding names: a storage when a kernel hands the
 * dispatch to `ctx.dispatch`, or, in a `DispatchPlan` made before any storage exists, an input index or
 * the output.
 */
export interface Dispatch<B = Binding> {
  /** WGSL source. Build it once per variant (`cachedShader`): the same string is the cache key. */
  code: string;
  /** Default 'main'. */
  entryPoint?: string;
  constants?: OverrideConstants;
  uniforms?: UniformValues;
  /** Storage buffers (whole, or windows of them) by WGSL variable name. */
  bindings: Record<string, B>;
  /** Workgroup grid, or a linear workgroup count the backend lays out 1-D (2-D past the per-dimension
   *  limit; shaders recover the index with the prelude's `linear_index`). */
  workgroups: number | readonly [number, number?, number?];
  /** Shown in errors; defaults to the kernel and its parameters. */
  label?: string;
}

/** What a planned binding refers to: input `i` of the kernel, or the output the plan writes. */
export type PlannedBinding = number | 'output';

/** A dispatch worked out from shapes alone (testable without a device); `runPlan` binds and queues it. */
export interface DispatchPlan extends Dispatch<PlannedBinding> {
  label: string;
  /** The output the dispatch writes (its element count sizes the storage; the shape labels errors). */
  outShape: Shape;
}

export interface KernelContext {
  readonly kernel: KernelName;
  readonly limits: GPUSupportedLimits;
  /** The adapter is a software rasteriser on the CPU (lavapipe, SwiftShader): some tile shapes differ there. */
  readonly softwareAdapter: boolean;
  /**
   * The most float elements one binding holds: maxStorageBufferBindingSize / 4, or less when a test forces
   * a smaller limit (`debug.maxBindingBytes`). A storage larger than this is bound through windows
   * (`windowOf`); kernels split their work so that every window fits (kernels/blocks.ts).
   */
  readonly bindingLimit: number;
  /** Window offsets are multiples of this many elements (minStorageBufferOffsetAlignment / 4). */
  readonly bindingAlign: number;
  /**
   * A new output of `size` float elements. It may exceed `bindingLimit` (up to maxBufferSize, beyond which a
   * DeviceLimitError names the kernel, shape and limit); a kernel then writes it through windows.
   */
  output(size: number, shape?: Shape): GpuStorage;
  /** A temporary buffer, freed automatically when the kernel returns (after its dispatches). */
  scratch(size: number, shape?: Shape): GpuStorage;
  /** Queues one dispatch. */
  dispatch(dispatch: Dispatch): void;
  /**
   * Which of a request's candidate variants to run (engine/webgpu/autotune.ts): the adapter's remembered
   * choice for the request's shape class, else its default, the first (queued for measuring when tuning
   * is on). Offer only variants that compute the same values within float32 rounding.
   */
  tuned(request: TuneRequest): string;
  /** Runs another kernel of this backend (e.g. `fill` to zero an accumulator) and returns its output. */
  call<K extends KernelName>(kernel: K, inputs: readonly GpuStorage[], params: KernelParams[K]): GpuStorage;
}

export type KernelImpl<K extends KernelName> = (ctx: KernelContext, inputs: readonly GpuStorage[], params: KernelParams[K]) => GpuStorage;

/** Some kernels: what one family module provides. */
export type KernelFamily = { [K in KernelName]?: KernelImpl<K> };

/** Every kernel: what the backend runs. */
export type KernelTable = { [K in KernelName]: KernelImpl<K> };

/** Whether a storage can be bound whole. */
export function fitsBinding(ctx: KernelContext, s: GpuStorage): boolean {
  return s.size <= ctx.bindingLimit;
}

/**
 * The window of `storage` holding its elements lo…hi (inclusive): the offset is lo aligned down to
 * `bindingAlign`, the size rounded up to whole vec4s. Throws, naming `what`, when that exceeds one binding
 * (a kernel's splitter should have made the range smaller).
 */
export function windowOf(ctx: KernelContext, storage: GpuStorage, lo: number, hi: number, what: string): BufferWindow {
  const offset = Math.floor(Math.max(0, lo) / ctx.bindingAlign) * ctx.bindingAlign;
  const end = Math.min(Math.max(hi + 1, offset + 1), Math.max(storage.size, 1));
  const size = Math.ceil((end - offset) / 4) * 4;
  if (size > ctx.bindingLimit) {
    throw new Error(`webgpu ${ctx.kernel}: ${what} needs elements ${lo}…${hi} in one binding, more than the ${ctx.bindingLimit} a binding holds`);
  }
  return { storage, offset, size };
}

/** Allocates the plan's output, binds its inputs and output by name, and queues it. */
export function runPlan(ctx: KernelContext, plan: DispatchPlan, inputs: readonly GpuStorage[]): GpuStorage {
  const size = plan.outShape.reduce((a, b) => a * b, 1);
  const out = ctx.output(size, plan.outShape);
  if (size === 0) return out;
  const bindings: Record<string, GpuStorage> = {};
  for (const [name, from] of Object.entries(plan.bindings)) bindings[name] = from === 'output' ? out : inputs[from];
  ctx.dispatch({ ...plan, bindings });
  return out;
}

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

/**
 * The kernels of several families in one table, typed as the intersection of the families (so assigning
 * it to a `KernelTable` fails to compile when a kernel is missing). A kernel name defined by two families
 * is refused when the table is built, naming both (as tfjs's registerKernel refuses duplicates).
 */
export function mergeFamilies<F extends Record<string, KernelFamily>>(families: F): UnionToIntersection<F[keyof F]> {
  const table: Record<string, unknown> = {};
  const owner = new Map<string, string>();
  for (const [family, kernels] of Object.entries(families)) {
    for (const [name, impl] of Object.entries(kernels)) {
      const first = owner.get(name);
      if (first) throw new Error(`WebGPU kernel "${name}" is defined by two families: ${first} and ${family}`);
      owner.set(name, family);
      table[name] = impl;
    }
  }
  return table as UnionToIntersection<F[keyof F]>;
}

const shaders = new Map<string, string>();

/** Builds a shader variant once; equal keys return the identical string (the pipeline cache key). */
export function cachedShader(key: string, build: () => string): string {
  let code = shaders.get(key);
  if (code === undefined) {
    code = build();
    shaders.set(key, code);
  }
  return code;
}
