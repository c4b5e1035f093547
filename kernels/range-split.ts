// Splitting a tiled kernel (the GEMMs, the depthwise convolution) so that every operand it binds fits one
// binding, with results identical to one dispatch.
//
// A plan describes its work as ranges along a few named dimensions (a GEMM: batch or group z, rows m,
// columns n, depth k) and can say, for any box of those ranges, which elements of each binding the box
// touches (`reach`). When a bound tensor exceeds a binding, `runSplitPlan` halves the box edge that most
// shrinks the widest window, in multiples of the dimension's granule (whole tiles of rows and columns;
// K ranges in multiples of 4 for the vec4 loads) and within periods (images), until every window of every
// box fits; then it
// dispatches the plan once per box, binding windows and passing the box and the windows' starts as
// uniforms (`boxUniforms`). The kernels index with whole-tensor coordinates minus the window start, and
// K ranges after the first accumulate onto C in order, so the arithmetic per output is unchanged.

import { fmt, sizeOf } from '../engine/shape.ts';
import { DeviceLimitError, windowOf, type Binding, type DispatchPlan, type GpuStorage, type KernelContext, type UniformValues } from '../engine/webgpu/kernel-api.ts';

/** A box: [start[d], end[d]) along each dimension. */
export interface RangeBox {
  start: number[];
  end: number[];
}

export interface SplitPlan extends DispatchPlan {
  /**
   * Extent of each dimension of the work. Boxes are dispatched with the last dimension innermost, in
   * increasing order: a GEMM puts K last, so the K ranges of one output block accumulate in order.
   */
  sizes: number[];
  /** Box edges along each dimension are multiples of this (the last box may end early). */
  granules: number[];
  /**
   * Per dimension, a period boxes never straddle once they are shorter than it (0: none): a convolution's
   * columns are (image, pixel), and a window that crosses an image boundary spans every channel of both
   * images, so its column boxes hold whole images or lie within one.
   */
  periods?: number[];
  /** Elements [lo, hi] each binding (by WGSL name) touches for a box; conservative is fine. */
  reach(box: RangeBox): Record<string, [number, number]>;
  /** Uniform values for a box (ranges, accumulate) given each binding's window start (0 when whole). */
  boxUniforms(box: RangeBox, bases: Record<string, number>): UniformValues;
  /** The workgroup grid of a box. */
  boxGrid(box: RangeBox): [number, number, number];
}

/** The [start, end) ranges of one dimension cut into blocks (restarting at every period when shorter). */
function rangesOf(size: number, block: number, period: number): [number, number][] {
  const out: [number, number][] = [];
  const span = period > 0 && block < period ? period : size;
  for (let p = 0; p < size; p += span) {
    const stop = Math.min(size, p + span);
    for (let s = p; s < stop; s += block) out.push([s, Math.min(stop, s + block)]);
  }
  return out;
}

/** Every box of the grid, the last dimension innermost. */
function boxesOf(plan: SplitPlan, block: readonly number[]): RangeBox[] {
  const perDim = plan.sizes.map((n, d) => rangesOf(n, block[d], plan.periods?.[d] ?? 0));
  let boxes: RangeBox[] = [{ start: [], end: [] }];
  for (const ranges of perDim) {
    boxes = boxes.flatMap((b) => ranges.map(([s, e]) => ({ start: [...b.start, s], end: [...b.end, e] })));
  }
  return boxes;
}

/** Cutting a plan along its ranges could not make a window fit one binding (a limit that cannot be met). */
export class SplitError extends DeviceLimitError {
  override name = 'SplitError';
}

/**
 * Boxes (in dispatch order) whose windows of the `oversized` bindings all hold at most `cap` elements.
 * Throws, naming `what`, when no split along the granules gets there.
 */
export function splitRanges(plan: SplitPlan, oversized: ReadonlySet<string>, cap: number, what: string): RangeBox[] {
  const block = [...plan.sizes];
  const widest = (blk: readonly number[]): { name: string; extent: number } => {
    let name = '';
    let extent = 0;
    for (const box of boxesOf(plan, blk)) {
      for (const [n, [lo, hi]] of Object.entries(plan.reach(box))) {
        if (oversized.has(n) && hi - lo + 1 > extent) {
          extent = hi - lo + 1;
          name = n;
        }
      }
    }
    return { name, extent };
  };
  for (let worst = widest(block); worst.extent > cap; ) {
    // Halve the edge that shrinks the widest window most (ties: the outermost dimension).
    let best: { d: number; edge: number; next: { name: string; extent: number } } | null = null;
    for (let d = 0; d < block.length; d++) {
      const edge = halved(block[d], plan.granules[d], plan.periods?.[d] ?? 0);
      if (edge >= block[d]) continue;
      const trial = [...block];
      trial[d] = edge;
      const next = widest(trial);
      if (!best || next.extent < best.next.extent) best = { d, edge, next };
    }
    if (!best || best.next.extent >= worst.extent) {
      throw new SplitError(
        `webgpu: ${what}: tensor "${worst.name}" needs ${worst.extent * 4} bytes in one binding even when split, more than this device's maxStorageBufferBindingSize allows (${cap * 4} usable bytes)`,
      );
    }
    block[best.d] = best.edge;
    worst = best.next;
  }
  return boxesOf(plan, block);
}

/** Half a box edge, in whole granules (and whole periods while it spans several). */
function halved(edge: number, granule: number, period: number): number {
  const unit = period > 0 && edge > period ? period : granule;
  return Math.max(granule, Math.ceil(edge / 2 / unit) * unit);
}

/**
 * Allocates the plan's output, and queues the plan as one dispatch when every bound tensor fits a binding,
 * else once per box of `splitRanges` with windows.
 */
export function runSplitPlan(ctx: KernelContext, plan: SplitPlan, inputs: readonly GpuStorage[]): GpuStorage {
  return runFirstSplittable(ctx, [plan], inputs);
}

/** Whether `runSplitPlan` can run the plan here: everything fits, or a split makes every window fit. */
export function splittable(ctx: KernelContext, plan: SplitPlan, inputs: readonly GpuStorage[]): boolean {
  const size = sizeOf(plan.outShape);
  const oversized = new Set(
    Object.entries(plan.bindings)
      .filter(([, from]) => (from === 'output' ? size : inputs[from].size) > ctx.bindingLimit)
      .map(([name]) => name),
  );
  if (oversized.size === 0) return true;
  try {
    splitRanges(plan, oversized, ctx.bindingLimit - (ctx.bindingAlign - 1) - 3, plan.label);
    return true;
  } catch (err) {
    if (err instanceof SplitError) return false;
    throw err;
  }
}

/** Whether a kernel's inputs or its output (of `outSize` elements) exceed one binding. */
export function needsSplit(ctx: KernelContext, inputs: readonly GpuStorage[], outSize: number): boolean {
  return outSize > ctx.bindingLimit || inputs.some((s) => s.size > ctx.bindingLimit);
}

/**
 * Like runSplitPlan, for alternative plans of the same computation (tile configurations, which give the
 * same results): the first whose split works runs. A smaller tile makes smaller windows.
 */
export function runFirstSplittable(ctx: KernelContext, plans: readonly SplitPlan[], inputs: readonly GpuStorage[]): GpuStorage {
  // The output first: one that exceeds the device's buffer limit is refused before any planning.
  const out = ctx.output(sizeOf(plans[0].outShape), plans[0].outShape);
  if (out.size === 0) return out;
  const storagesOf = (plan: SplitPlan) => {
    const storages: Record<string, GpuStorage> = {};
    for (const [name, from] of Object.entries(plan.bindings)) storages[name] = from === 'output' ? out : inputs[from];
    return storages;
  };
  const oversized = new Set(Object.entries(storagesOf(plans[0])).filter(([, s]) => s.size > ctx.bindingLimit).map(([name]) => name));
  if (oversized.size === 0) {
    ctx.dispatch({ ...plans[0], bindings: storagesOf(plans[0]) });
    return out;
  }
  const what = `${plans[0].label} (output ${fmt(plans[0].outShape)})`;
  const cap = ctx.bindingLimit - (ctx.bindingAlign - 1) - 3;
  let chosen: { plan: SplitPlan; boxes: RangeBox[] } | null = null;
  let failure: unknown = null;
  for (const plan of plans) {
    try {
      chosen = { plan, boxes: splitRanges(plan, oversized, cap, what) };
      break;
    } catch (err) {
      if (!(err instanceof SplitError)) throw err;
      failure ??= err;
    }
  }
  if (!chosen) throw failure;
  const { plan, boxes } = chosen;
  const storages = storagesOf(plan);
  for (const box of boxes) {
    const reach = plan.reach(box);
    const bindings: Record<string, Binding> = {};
    const bases: Record<string, number> = {};
    for (const [name, s] of Object.entries(storages)) {
      if (oversized.has(name)) {
        const w = windowOf(ctx, s, reach[name][0], reach[name][1], `${what} binding ${name}`);
        bindings[name] = w;
        bases[name] = w.offset;
      } else {
        bindings[name] = s;
        bases[name] = 0;
      }
    }
    ctx.dispatch({ ...plan, bindings, uniforms: { ...plan.uniforms, ...plan.boxUniforms(box, bases) }, workgroups: plan.boxGrid(box) });
  }
  return out;
}
