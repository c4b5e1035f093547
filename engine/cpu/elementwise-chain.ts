// The float64 elementwise chain: the reference the WGSL and wasm chain kernels are checked against. The
// output is walked row by row (the last axis of the coalesced broadcast walk) in blocks; each step of the
// program fills one block-sized register from its operands' registers, so every input is read once.

import type { ChainProgram, KernelParams } from '../backend.ts';
import { broadcastStrides, coalesce, sizeOf } from '../shape.ts';
import { allocateSlots } from '../fusion/elementwise-chain-program.ts';
import { binaryFns, unaryFns } from './elementwise-fns.ts';

const BLOCK = 256;

/** Evaluates the program over one block of `len` elements; input k's elements start at `offsets[k]`. */
function runBlock(program: ChainProgram, slots: readonly number[], regs: Float64Array[], inputs: readonly Float64Array[], offsets: readonly number[], steps: readonly number[], len: number): Float64Array {
  program.steps.forEach((s, i) => {
    const r = regs[slots[i]];
    switch (s.op) {
      case 'input': {
        const x = inputs[s.input];
        const o = offsets[s.input];
        const d = steps[s.input];
        for (let j = 0; j < len; j++) r[j] = x[o + j * d];
        break;
      }
      case 'const':
        r.fill(s.value, 0, len);
        break;
      case 'unary': {
        const f = unaryFns[s.fn];
        const a = regs[slots[s.a]];
        for (let j = 0; j < len; j++) r[j] = f(a[j]);
        break;
      }
      case 'binary': {
        const a = regs[slots[s.a]];
        const b = regs[slots[s.b]];
        // The four common ops get their own loops: a call per element through `f` costs several times more.
        if (s.fn === 'add') for (let j = 0; j < len; j++) r[j] = a[j] + b[j];
        else if (s.fn === 'mul') for (let j = 0; j < len; j++) r[j] = a[j] * b[j];
        else if (s.fn === 'sub') for (let j = 0; j < len; j++) r[j] = a[j] - b[j];
        else if (s.fn === 'div') for (let j = 0; j < len; j++) r[j] = a[j] / b[j];
        else {
          const f = binaryFns[s.fn];
          for (let j = 0; j < len; j++) r[j] = f(a[j], b[j]);
        }
        break;
      }
      case 'where': {
        const c = regs[slots[s.cond]];
        const a = regs[slots[s.a]];
        const b = regs[slots[s.b]];
        for (let j = 0; j < len; j++) r[j] = c[j] !== 0 ? a[j] : b[j];
        break;
      }
    }
  });
  return regs[slots[program.steps.length - 1]];
}

export function elementwiseChain(inputs: Float64Array[], p: KernelParams['elementwiseChain']): Float64Array {
  const out = new Float64Array(sizeOf(p.outShape));
  if (out.length === 0) return out;
  const walk = coalesce(p.outShape, p.shapes.map((s) => broadcastStrides(s, p.outShape)));
  const shape = walk.shape.length > 0 ? walk.shape : [1];
  const strides = walk.shape.length > 0 ? walk.strides : walk.strides.map(() => [0]);
  const rank = shape.length;
  const n = shape[rank - 1];
  const inner = strides.map((s) => s[rank - 1]);
  const { slots, count } = allocateSlots(p.program);
  const regs = Array.from({ length: count }, () => new Float64Array(BLOCK));
  const idx = new Array<number>(rank - 1).fill(0);
  const rowStart = strides.map(() => 0);
  for (let row = 0; row < out.length / n; row++) {
    for (let b = 0; b < n; b += BLOCK) {
      const len = Math.min(BLOCK, n - b);
      const value = runBlock(p.program, slots, regs, inputs, rowStart.map((o, k) => o + b * inner[k]), inner, len);
      out.set(value.subarray(0, len), row * n + b);
    }
    // Next row: an odometer over the outer axes.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      strides.forEach((s, k) => (rowStart[k] += s[d]));
      if (idx[d] < shape[d]) break;
      strides.forEach((s, k) => (rowStart[k] -= s[d] * shape[d]));
      idx[d] = 0;
    }
  }
  return out;
}
