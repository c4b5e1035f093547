// Plans for fill, unary, binary and where: split the output into tasks of rows and describe the
// broadcast operands as strided walks (an operand repeated along the last axis has stride 0 there).

import type { BinaryOp, KernelParams, UnaryOp } from '../../engine/backend.ts';
import { sizeOf } from '../../engine/shape.ts';
import { B_ADD, B_DIV, B_EQUAL, B_GREATER, B_GREATER_EQUAL, B_LESS, B_LESS_EQUAL, B_MAXIMUM, B_MINIMUM, B_MUL, B_NOT_EQUAL, B_POW, B_SUB, K_BINARY, K_FILL, K_UNARY, K_WHERE } from './assembly/ids.ts';
import { broadcastWalk, f32Bits, walkWords, type WasmContext } from './context.ts';

export const UNARY_OPS: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, log1p: 3, sqrt: 4, rsqrt: 5, abs: 6, sign: 7, tanh: 8, sigmoid: 9, erf: 10, relu: 11, sin: 12, cos: 13, reciprocal: 14,
};
/** Ops evaluated lane by lane through scalar maths: smaller tasks (each element costs more). */
const SCALAR_UNARY = new Set<UnaryOp>(['exp', 'log', 'log1p', 'tanh', 'sigmoid', 'erf', 'sin', 'cos']);

export const BINARY_OPS: Record<BinaryOp, number> = {
  add: B_ADD, sub: B_SUB, mul: B_MUL, div: B_DIV, pow: B_POW, maximum: B_MAXIMUM, minimum: B_MINIMUM,
  greater: B_GREATER, greaterEqual: B_GREATER_EQUAL, less: B_LESS, lessEqual: B_LESS_EQUAL, equal: B_EQUAL, notEqual: B_NOT_EQUAL,
};

/** Elements per task of a streaming kernel. */
const CHUNK = 1 << 16;

export function fill(ctx: WasmContext, p: KernelParams['fill']): unknown {
  const out = ctx.output(p.size);
  fillAt(ctx, out.ptr, p.size, p.value);
  return out.storage;
}

export function fillAt(ctx: WasmContext, ptr: number, size: number, value: number): void {
  if (size > 0) ctx.run(K_FILL, [ptr, size, f32Bits(value), CHUNK], Math.ceil(size / CHUNK), size);
}

export function unary(ctx: WasmContext, [x]: number[], p: KernelParams['unary']): unknown {
  const out = ctx.output(p.size);
  const chunk = SCALAR_UNARY.has(p.op) ? CHUNK / 8 : CHUNK;
  const work = SCALAR_UNARY.has(p.op) ? 16 * p.size : p.size;
  if (p.size > 0) ctx.run(K_UNARY, [UNARY_OPS[p.op], x, out.ptr, p.size, chunk], Math.ceil(p.size / chunk), work);
  return out.storage;
}

/** Rows per task for rows of n elements. */
function rowsPerTask(n: number): number {
  return Math.max(1, Math.floor(CHUNK / 2 / n));
}

export function binary(ctx: WasmContext, [a, b]: number[], p: KernelParams['binary']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const walk = broadcastWalk(p.outShape, [p.aShape, p.bShape]);
  const rank = walk.shape.length;
  const n = walk.shape[rank - 1];
  const rows = size / n;
  const per = rowsPerTask(n);
  const work = p.op === 'pow' ? 16 * size : size;
  ctx.run(K_BINARY, walkWords([BINARY_OPS[p.op], a, b, out.ptr, rank, per, rows], walk), Math.ceil(rows / per), work);
  return out.storage;
}

export function where(ctx: WasmContext, [c, a, b]: number[], p: KernelParams['where']): unknown {
  const size = sizeOf(p.outShape);
  const out = ctx.output(size);
  if (size === 0) return out.storage;
  const walk = broadcastWalk(p.outShape, [p.condShape, p.aShape, p.bShape]);
  const rank = walk.shape.length;
  const n = walk.shape[rank - 1];
  const rows = size / n;
  const per = rowsPerTask(n);
  ctx.run(K_WHERE, walkWords([c, a, b, out.ptr, rank, per, rows], walk), Math.ceil(rows / per), size);
  return out.storage;
}

