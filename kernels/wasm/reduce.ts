// Plan for sum/max over sorted axes. Size-1 axes are dropped and neighbouring axes of the same kind
// (kept or reduced) merged; the last remaining axis decides the kernel (see assembly/reduce.ts).

import type { KernelParams } from '../../engine/backend.ts';
import { sizeOf, stridesOf } from '../../engine/shape.ts';
import { K_COPY, K_REDUCE_INNER, K_REDUCE_OUTER } from './assembly/ids.ts';
import { MAX_RANK, padded, type WasmContext } from './context.ts';
import { fillAt } from './elementwise.ts';

const TASK_WORK = 1 << 15;

export function reduce(ctx: WasmContext, [x]: number[], p: KernelParams['reduce']): unknown {
  const reduced = new Set(p.axes);
  const outSize = sizeOf(p.shape.filter((_, d) => !reduced.has(d)));
  const out = ctx.output(outSize);
  if (outSize === 0) return out.storage;
  const inSize = sizeOf(p.shape);
  if (inSize === 0) {
    fillAt(ctx, out.ptr, outSize, p.op === 'sum' ? 0 : -Infinity);
    return out.storage;
  }
  // Axes of the same kind next to each other merge (the input is contiguous).
  const dims: { n: number; reduced: boolean }[] = [];
  p.shape.forEach((n, d) => {
    if (n === 1) return;
    const last = dims[dims.length - 1];
    if (last && last.reduced === reduced.has(d)) last.n *= n;
    else dims.push({ n, reduced: reduced.has(d) });
  });
  const op = p.op === 'sum' ? 0 : 1;
  if (!dims.some((d) => d.reduced)) {
    // Nothing (or only size-1 axes) reduced: a copy.
    ctx.run(K_COPY, [x, out.ptr, 1, inSize, 1, ...padded([inSize]), ...padded([1]), ...padded([1])], 1, inSize);
    return out.storage;
  }
  const strides = stridesOf(dims.map((d) => d.n));
  const kept = dims.map((d, i) => ({ ...d, stride: strides[i] })).filter((d) => !d.reduced);
  const red = dims.map((d, i) => ({ ...d, stride: strides[i] })).filter((d) => d.reduced);
  const last = dims[dims.length - 1];
  if (kept.length > MAX_RANK || red.length > MAX_RANK) throw new Error(`wasm backend: reduce over ${JSON.stringify(p.shape)} axes ${JSON.stringify(p.axes)} alternates too often`);
  const shapeWords = (ds: typeof kept) => [...padded(ds.map((d) => d.n)), ...padded(ds.map((d) => d.stride))];
  if (last.reduced) {
    const runs = red.slice(0, -1);
    const perOut = inSize / outSize;
    const per = Math.max(1, Math.floor(TASK_WORK / perOut));
    const words = [op, x, out.ptr, outSize, per, kept.length, runs.length, sizeOf(runs.map((d) => d.n)), last.n, ...shapeWords(kept), ...shapeWords(runs)];
    ctx.run(K_REDUCE_INNER, words, Math.ceil(outSize / per), inSize);
  } else {
    const rowsKept = kept.slice(0, -1);
    const L = last.n;
    const rows = outSize / L;
    const runs = sizeOf(red.map((d) => d.n));
    const cols = Math.min(L, Math.max(256, Math.ceil(TASK_WORK / runs / 4) * 4));
    const perRow = runs * Math.min(L, cols);
    const rowsPer = cols < L ? 1 : Math.max(1, Math.floor(TASK_WORK / perRow));
    const words = [op, x, out.ptr, rows, L, cols, rowsKept.length, red.length, runs, ...shapeWords(rowsKept), ...shapeWords(red), rowsPer];
    ctx.run(K_REDUCE_OUTER, words, Math.ceil(rows / rowsPer) * Math.ceil(L / cols), inSize);
  }
  return out.storage;
}
