// Plans an elementwise chain for the wasm interpreter (assembly/elementwise-chain.ts): the program as
// bytecode with a register slot per live value (reused once dead, so a chain of dozens of steps needs a
// handful of 1 KiB registers per thread), the inputs as strided walks, whole rows per task.

import type { KernelParams, UnaryOp, BinaryOp } from '../../engine/backend.ts';
import { sizeOf } from '../../engine/shape.ts';
import { allocateSlots } from '../../engine/fusion/elementwise-chain-program.ts';
import { CHAIN_BLOCK, C_BINARY, C_CONST, C_INPUT, C_UNARY, C_WHERE, K_ELEMENTWISE_CHAIN } from './assembly/ids.ts';
import { broadcastWalk, f32Bits, padded, type WasmContext } from './context.ts';
import { BINARY_OPS, UNARY_OPS } from './elementwise.ts';

/** Elements per task. */
const TASK_ELEMENTS = 1 << 15;

export function elementwiseChain(ctx: WasmContext, inputs: number[], p: KernelParams['elementwiseChain']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const { steps } = p.program;
  const walk = broadcastWalk(p.outShape, p.shapes);
  const rank = walk.shape.length;
  const n = walk.shape[rank - 1];
  const rows = size / n;
  const per = Math.max(1, Math.floor(TASK_ELEMENTS / n));
  const { slots, count } = allocateSlots(p.program);
  const scratch = ctx.scratch(count * CHAIN_BLOCK * 4);
  const code = steps.flatMap((s, i): number[] => {
    switch (s.op) {
      case 'input': return [C_INPUT, s.input, slots[i], 0, 0, 0];
      case 'const': return [C_CONST, 0, slots[i], f32Bits(s.value), 0, 0];
      case 'unary': return [C_UNARY, UNARY_OPS[s.fn as UnaryOp], slots[i], slots[s.a], 0, 0];
      case 'binary': return [C_BINARY, BINARY_OPS[s.fn as BinaryOp], slots[i], slots[s.a], slots[s.b], 0];
      case 'where': return [C_WHERE, 0, slots[i], slots[s.cond], slots[s.a], slots[s.b]];
    }
  });
  const extra = [...inputs.flatMap((ptr, k) => [ptr, ...padded(walk.strides[k])]), ...code];
  const words = [inputs.length, steps.length, out.ptr, rank, per, rows, scratch.ptr, scratch.stride, slots[steps.length - 1], ...padded(walk.shape)];
  ctx.run(K_ELEMENTWISE_CHAIN, words, Math.ceil(rows / per), size * steps.length, extra);
  return out.storage;
}
