// The elementwise-chain interpreter (engine/fusion/elementwise-chain.ts). A module generated per chain is
// out of reach (the kernels are one precompiled module shared by the worker threads), so the chain's
// program travels as bytecode and is interpreted over blocks of CHAIN_BLOCK elements: each step fills one
// register (a block of floats in the thread's scratch, which stays in L1) from its operands' registers
// with v128 SIMD, and only the input steps and the final store touch memory. One pass over memory, as a
// generated kernel makes, at the price of a switch per step and block.
//
// Arguments: [inputs, steps, out, rank, rowsPerTask, rows, scratch, scratchStride, resultSlot, shape[R]],
// then in the extra area (args word EXTRA): per input [ptr, strides[R]], then per step
// [kind, fn, dst, a, b, c] (a const step's value as f32 bits in `a`). R = MAX_RANK; the walk's last axis
// is contiguous (stride 1) or broadcast (stride 0) in every input.

import { MAX_RANK, arg, argf, at, imin, load4, ptr, rowOffset, storeTail } from './common';
import { binaryVector, isVectorUnary, unaryScalar, unaryVector } from './elementwise';
import { B_ADD, B_DIV, B_MUL, B_SUB, CHAIN_BLOCK, C_BINARY, C_CONST, C_INPUT, C_UNARY } from './ids';

const INPUTS = 0, STEPS = 1, OUT = 2, RANK = 3, PER = 4, ROWS = 5, SCRATCH = 6, SCRATCH_STRIDE = 7, RESULT = 8, SHAPE = 9;
/** Where the extra words start, in argument words (kernels/wasm/context.ts EXTRA_ADDRESS). */
const EXTRA = 64;
const INPUT_WORDS = 1 + MAX_RANK;
const STEP_WORDS = 6;

@inline function reg(regs: usize, slot: i32): usize {
  return regs + <usize>(slot * CHAIN_BLOCK * 4);
}

/** A block of input k: `len` contiguous floats of the row from element b, or its one value repeated. */
function loadInput(args: usize, k: i32, row: i32, rank: i32, b: i32, len: i32, dst: usize): void {
  const base = EXTRA + k * INPUT_WORDS;
  const off = rowOffset(args, row, rank, SHAPE, base + 1);
  if (arg(args, base + 1 + rank - 1) != 0) {
    const src = at(ptr(args, base), off + b);
    for (let i = 0; i < len; i += 4) {
      const o = (<usize>i) << 2;
      v128.store(dst + o, load4(src + o, len - i));
    }
  } else {
    const v = f32x4.splat(load<f32>(at(ptr(args, base), off)));
    for (let i = 0; i < len; i += 4) v128.store(dst + ((<usize>i) << 2), v);
  }
}

@inline function binaryLoop(op: i32, a: usize, b: usize, dst: usize, len: i32): void {
  for (let i = 0; i < len; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(dst + o, binaryVector(op, v128.load(a + o), v128.load(b + o)));
  }
}

function binaryBlock(op: i32, a: usize, b: usize, dst: usize, len: i32): void {
  // The common arithmetic gets loops of its own (the op's switch folds away after inlining).
  switch (op) {
    case B_ADD: binaryLoop(B_ADD, a, b, dst, len); break;
    case B_SUB: binaryLoop(B_SUB, a, b, dst, len); break;
    case B_MUL: binaryLoop(B_MUL, a, b, dst, len); break;
    case B_DIV: binaryLoop(B_DIV, a, b, dst, len); break;
    default: binaryLoop(op, a, b, dst, len);
  }
}

function unaryBlock(op: i32, a: usize, dst: usize, len: i32): void {
  if (isVectorUnary(op)) {
    for (let i = 0; i < len; i += 4) {
      const o = (<usize>i) << 2;
      v128.store(dst + o, unaryVector(op, v128.load(a + o)));
    }
    return;
  }
  for (let i = 0; i < len; i++) {
    const o = (<usize>i) << 2;
    store<f32>(dst + o, unaryScalar(op, load<f32>(a + o)));
  }
}

/** select(a, b, cond != 0): a NaN condition picks a, −0 picks b, as the CPU's `where`. */
function whereBlock(c: usize, a: usize, b: usize, dst: usize, len: i32): void {
  const zero = f32x4.splat(0);
  for (let i = 0; i < len; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(dst + o, v128.bitselect(v128.load(a + o), v128.load(b + o), f32x4.ne(v128.load(c + o), zero)));
  }
}

/** Runs every step over one block; the result is in its register. */
function runBlock(args: usize, regs: usize, row: i32, rank: i32, b: i32, len: i32): void {
  const steps = arg(args, STEPS);
  let w = EXTRA + arg(args, INPUTS) * INPUT_WORDS;
  for (let s = 0; s < steps; s++, w += STEP_WORDS) {
    const kind = arg(args, w);
    const fn = arg(args, w + 1);
    const dst = reg(regs, arg(args, w + 2));
    if (kind == C_INPUT) loadInput(args, fn, row, rank, b, len, dst);
    else if (kind == C_CONST) {
      const v = f32x4.splat(argf(args, w + 3));
      for (let i = 0; i < len; i += 4) v128.store(dst + ((<usize>i) << 2), v);
    } else if (kind == C_UNARY) unaryBlock(fn, reg(regs, arg(args, w + 3)), dst, len);
    else if (kind == C_BINARY) binaryBlock(fn, reg(regs, arg(args, w + 3)), reg(regs, arg(args, w + 4)), dst, len);
    else whereBlock(reg(regs, arg(args, w + 3)), reg(regs, arg(args, w + 4)), reg(regs, arg(args, w + 5)), dst, len);
  }
}

export function elementwiseChainTask(args: usize, t: i32, tid: i32): void {
  const rank = arg(args, RANK);
  const per = arg(args, PER);
  const r0 = t * per;
  const r1 = imin(arg(args, ROWS), r0 + per);
  const n = arg(args, SHAPE + rank - 1);
  const regs = ptr(args, SCRATCH) + <usize>(tid * arg(args, SCRATCH_STRIDE));
  const result = reg(regs, arg(args, RESULT));
  const out = ptr(args, OUT);
  for (let r = r0; r < r1; r++) {
    for (let b = 0; b < n; b += CHAIN_BLOCK) {
      const len = imin(CHAIN_BLOCK, n - b);
      runBlock(args, regs, r, rank, b, len);
      const po = at(out, r * n + b);
      let i = 0;
      for (; i + 4 <= len; i += 4) v128.store(po + ((<usize>i) << 2), v128.load(result + ((<usize>i) << 2)));
      if (i < len) storeTail(po + ((<usize>i) << 2), v128.load(result + ((<usize>i) << 2)), len - i);
    }
  }
}
