// What the wasm kernel plans see of the backend: output allocation, temporary buffers, per-thread
// scratch, and dispatch of a kernel with its argument words. Pointers are byte addresses in the
// backend's shared memory.

import { sizeOf, stridesOf, type Shape } from '../../engine/shape.ts';

export interface WasmContext {
  /** Byte address of a storage's first element. */
  address(s: unknown): number;
  /** A new output storage of `size` floats (NaN-poisoned first when the backend debugs). */
  output(size: number): { storage: unknown; ptr: number };
  /** A temporary block of `bytes` bytes, released by `release`. */
  temp(bytes: number): number;
  release(ptr: number, bytes: number): void;
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
 * Removes size-1 axes and merges neighbours that every stride set walks contiguously (s[d] = s[d+1]·n[d+1]),
 * so most walks have one to three axes. Always returns at least one axis.
 */
export function collapse(shape: Shape, strideSets: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const out: number[][] = strideSets.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strideSets.every((s, k) => out[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strideSets.forEach((s, k) => (out[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strideSets.forEach((s, k) => out[k].push(s[d]));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strideSets.map(() => [0]) };
  if (outShape.length > MAX_RANK) throw new Error(`wasm backend: a strided walk over ${outShape.length} axes after merging (at most ${MAX_RANK}): ${JSON.stringify(shape)}`);
  return { shape: outShape, strides: out };
}

/** `values` padded with zeros to MAX_RANK words. */
export function padded(values: readonly number[]): number[] {
  return [...values, ...new Array<number>(MAX_RANK - values.length).fill(0)];
}

export { sizeOf, stridesOf };
