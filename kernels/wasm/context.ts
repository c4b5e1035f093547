// What the wasm kernel plans see of the backend: output allocation, temporary buffers, per-thread
// scratch, and dispatch of a kernel with its argument words. Pointers are byte addresses in the
// backend's shared memory.

import { broadcastStrides, coalesce, sameShape, sizeOf, type Shape } from '../../engine/shape.ts';

export interface WasmContext {
  /** A new output storage of `size` floats (NaN-poisoned first when the backend debugs). */
  output(size: number): { storage: unknown; ptr: number };
  /** A temporary block of `bytes` bytes, released by `release`. */
  temp(bytes: number): number;
  release(ptr: number, bytes: number): void;
  /**
   * A derived copy of input `input` of the kernel being run (a packed weight matrix), kept with that
   * storage until it is freed: `bytes` bytes that `fill(dst)` writes the first time `key` (what was
   * derived, and how) is asked for, found again on later calls. Storages never change after their kernel
   * wrote them, so the copy stays valid for the storage's life.
   */
  cached(input: number, key: string, bytes: number, fill: (dst: number) => void): number;
  /** A scratch block per thread of `bytesPerThread` each (valid until the next call): its base and stride. */
  scratch(bytesPerThread: number): { ptr: number; stride: number };
  /**
   * Runs `tasks` tasks of kernel `id`. `words` (≤ 64 i32 words; use f32Bits for floats) go to the
   * argument area, `extra` after them at `EXTRA_ADDRESS`. `work` estimates the operations: small
   * problems run on the calling thread alone.
   */
  run(id: number, words: readonly number[], tasks: number, work: number, extra?: readonly number[]): void;
}

/** Where the argument area's extra words (tables) start; set by the backend. */
export const ARGS_ADDRESS = 65536 + 256;
export const ARGS_WORDS = 64;
export const EXTRA_ADDRESS = ARGS_ADDRESS + ARGS_WORDS * 4;
/** Extra words that fit before the heap. */
export const EXTRA_CAPACITY = (131072 - EXTRA_ADDRESS) / 4;
/** Below this many operations a dispatch runs on the calling thread alone. */
export const SMALL_WORK = 1 << 15;

const bits = new DataView(new ArrayBuffer(4));
export function f32Bits(v: number): number {
  bits.setFloat32(0, v, true);
  return bits.getInt32(0, true);
}

/** Most axes a strided walk may have after merging (kernels/wasm/assembly/common.ts MAX_RANK). */
export const MAX_RANK = 12;

/**
 * The walk over `shape` with size-1 axes dropped and neighbours merged where every stride set allows
 * (engine/shape.ts `coalesce`); at least one axis, at most MAX_RANK.
 */
export function collapse(shape: Shape, strideSets: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const c = coalesce(shape, strideSets);
  if (c.shape.length === 0) return { shape: [1], strides: strideSets.map(() => [0]) };
  if (c.shape.length > MAX_RANK) throw new Error(`wasm backend: a strided walk over ${c.shape.length} axes after merging (at most ${MAX_RANK}): ${JSON.stringify(shape)}`);
  return c;
}

/**
 * The walk of an elementwise kernel over `outShape` with operands of the given shapes (broadcast to it):
 * collapse() of their broadcast strides, or, when every operand has the output's shape (the common case
 * in a network), one contiguous axis without computing any strides.
 */
export function broadcastWalk(outShape: Shape, shapes: readonly Shape[]): { shape: number[]; strides: number[][] } {
  if (shapes.every((s) => sameShape(s, outShape))) return { shape: [Math.max(1, sizeOf(outShape))], strides: shapes.map(() => [1]) };
  return collapse(outShape, shapes.map((s) => broadcastStrides(s, outShape)));
}

/** `values` padded with zeros to MAX_RANK words. */
export function padded(values: readonly number[]): number[] {
  return [...values, ...new Array<number>(MAX_RANK - values.length).fill(0)];
}

/** Argument words: `head`, then the walk's shape and each of its stride sets, each padded to MAX_RANK. */
export function walkWords(head: readonly number[], walk: { shape: readonly number[]; strides: readonly (readonly number[])[] }): number[] {
  const words = new Array<number>(head.length + MAX_RANK * (1 + walk.strides.length)).fill(0);
  for (let i = 0; i < head.length; i++) words[i] = head[i];
  let at = head.length;
  for (const list of [walk.shape, ...walk.strides]) {
    for (let i = 0; i < list.length; i++) words[at + i] = list[i];
    at += MAX_RANK;
  }
  return words;
}

