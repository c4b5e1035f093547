// The program of an elementwise chain: a small expression over N inputs, written with `ChainExpr`
// methods, compiled into a list of steps (engine/backend.ts `ChainProgram`) that every backend evaluates
// in one pass over memory. Building hash-conses equal subexpressions, folds operations on constants in
// float64 and drops steps the result does not read, so the same expression always compiles to the same
// program text (`key`), which is what the kernels cache their code by.

import type { BinaryOp, ChainProgram, ChainStep, UnaryOp } from '../backend.ts';
import { binaryFns, unaryFns } from '../cpu/elementwise-fns.ts';

/** Inputs one chain may take: WebGPU binds each as a storage buffer, and 8 per shader stage is the floor. */
export const MAX_CHAIN_INPUTS = 6;
/** Steps one chain may have after simplification (the wasm interpreter's registers live in L1). */
export const MAX_CHAIN_STEPS = 48;

/** What a chain operation takes: another expression of the same chain, or a number. */
export type ChainOperand = ChainExpr | number;

/** Collects the steps of one chain while the user's expression is built. */
class ChainBuilder {
  readonly steps: ChainStep[] = [];
  private readonly index = new Map<string, number>();

  add(step: ChainStep): number {
    const text = stepText(step);
    let at = this.index.get(text);
    if (at === undefined) {
      at = this.steps.length;
      this.steps.push(step);
      this.index.set(text, at);
    }
    return at;
  }
}

function stepText(s: ChainStep, constName?: string): string {
  switch (s.op) {
    case 'input': return `in${s.input}`;
    case 'const': return constName ?? `=${Object.is(s.value, -0) ? '-0' : String(s.value)}`;
    case 'unary': return `${s.fn}(${s.a})`;
    case 'binary': return `${s.fn}(${s.a},${s.b})`;
    case 'where': return `where(${s.cond},${s.a},${s.b})`;
  }
}

/**
 * A value of an elementwise chain: an input, a constant, or an operation on such values. Every method
 * returns a new expression; numbers are constants. Semantics are those of the engine op of the same
 * name (maximum/minimum propagate NaN, relu(NaN) = 0, comparisons give 0 or 1, `where` picks `a` where
 * the condition is not 0).
 */
export class ChainExpr {
  /** @internal */
  constructor(readonly builder: ChainBuilder, readonly step: number) {}

  /** The constant this expression is, or undefined. */
  private get constant(): number | undefined {
    const s = this.builder.steps[this.step];
    return s.op === 'const' ? s.value : undefined;
  }

  private operand(x: ChainOperand, op: string): ChainExpr {
    if (typeof x === 'number') return new ChainExpr(this.builder, this.builder.add({ op: 'const', value: x }));
    if (!(x instanceof ChainExpr)) throw new TypeError(`elementwiseChain ${op}: expected a chain expression or a number, got ${typeof x}`);
    if (x.builder !== this.builder) throw new Error(`elementwiseChain ${op}: an expression of another chain was used`);
    return x;
  }

  private unary(fn: UnaryOp): ChainExpr {
    const c = this.constant;
    const step: ChainStep = c !== undefined ? { op: 'const', value: unaryFns[fn](c) } : { op: 'unary', fn, a: this.step };
    return new ChainExpr(this.builder, this.builder.add(step));
  }

  private binary(fn: BinaryOp, other: ChainOperand): ChainExpr {
    const b = this.operand(other, fn);
    const ca = this.constant;
    const cb = b.constant;
    const step: ChainStep =
      ca !== undefined && cb !== undefined ? { op: 'const', value: binaryFns[fn](ca, cb) } : { op: 'binary', fn, a: this.step, b: b.step };
    return new ChainExpr(this.builder, this.builder.add(step));
  }

  add(b: ChainOperand): ChainExpr { return this.binary('add', b); }
  sub(b: ChainOperand): ChainExpr { return this.binary('sub', b); }
  mul(b: ChainOperand): ChainExpr { return this.binary('mul', b); }
  div(b: ChainOperand): ChainExpr { return this.binary('div', b); }
  pow(b: ChainOperand): ChainExpr { return this.binary('pow', b); }
  /** NaN-propagating maximum (the engine's `maximum`). */
  max(b: ChainOperand): ChainExpr { return this.binary('maximum', b); }
  /** NaN-propagating minimum (the engine's `minimum`). */
  min(b: ChainOperand): ChainExpr { return this.binary('minimum', b); }
  greater(b: ChainOperand): ChainExpr { return this.binary('greater', b); }
  greaterEqual(b: ChainOperand): ChainExpr { return this.binary('greaterEqual', b); }
  less(b: ChainOperand): ChainExpr { return this.binary('less', b); }
  lessEqual(b: ChainOperand): ChainExpr { return this.binary('lessEqual', b); }
  equal(b: ChainOperand): ChainExpr { return this.binary('equal', b); }
  notEqual(b: ChainOperand): ChainExpr { return this.binary('notEqual', b); }

  neg(): ChainExpr { return this.unary('neg'); }
  abs(): ChainExpr { return this.unary('abs'); }
  exp(): ChainExpr { return this.unary('exp'); }
  log(): ChainExpr { return this.unary('log'); }
  log1p(): ChainExpr { return this.unary('log1p'); }
  sqrt(): ChainExpr { return this.unary('sqrt'); }
  rsqrt(): ChainExpr { return this.unary('rsqrt'); }
  sign(): ChainExpr { return this.unary('sign'); }
  tanh(): ChainExpr { return this.unary('tanh'); }
  sigmoid(): ChainExpr { return this.unary('sigmoid'); }
  erf(): ChainExpr { return this.unary('erf'); }
  relu(): ChainExpr { return this.unary('relu'); }
  sin(): ChainExpr { return this.unary('sin'); }
  cos(): ChainExpr { return this.unary('cos'); }
  reciprocal(): ChainExpr { return this.unary('reciprocal'); }
  /** x · x. */
  square(): ChainExpr { return this.mul(this); }
  /** min(max(x, lo), hi), NaN propagating as in the engine's maximum/minimum. */
  clamp(lo: ChainOperand, hi: ChainOperand): ChainExpr { return this.max(lo).min(hi); }

  /** `a` where this expression is not 0 (NaN counts as not 0), else `b`. */
  select(a: ChainOperand, b: ChainOperand): ChainExpr {
    const ea = this.operand(a, 'select');
    const eb = this.operand(b, 'select');
    const c = this.constant;
    if (c !== undefined) return c !== 0 ? ea : eb;
    return new ChainExpr(this.builder, this.builder.add({ op: 'where', cond: this.step, a: ea.step, b: eb.step }));
  }
}

/** The steps an operation reads. */
export function operandsOf(s: ChainStep): number[] {
  switch (s.op) {
    case 'input':
    case 'const': return [];
    case 'unary': return [s.a];
    case 'binary': return [s.a, s.b];
    case 'where': return [s.cond, s.a, s.b];
  }
}

/** The steps renumbered after dropping those the result does not read (inputs are always kept). */
function pruned(steps: readonly ChainStep[], result: number, inputs: number): ChainStep[] {
  const live = new Array<boolean>(steps.length).fill(false);
  live[result] = true;
  for (let i = result; i >= 0; i--) if (live[i]) for (const o of operandsOf(steps[i])) live[o] = true;
  for (let k = 0; k < inputs; k++) live[k] = true;
  const renumber = new Array<number>(steps.length).fill(-1);
  const out: ChainStep[] = [];
  for (let i = 0; i <= Math.max(result, inputs - 1); i++) {
    if (!live[i]) continue;
    const s = steps[i];
    const r = (j: number) => renumber[j];
    renumber[i] = out.length;
    if (s.op === 'unary') out.push({ ...s, a: r(s.a) });
    else if (s.op === 'binary') out.push({ ...s, a: r(s.a), b: r(s.b) });
    else if (s.op === 'where') out.push({ ...s, cond: r(s.cond), a: r(s.a), b: r(s.b) });
    else out.push(s);
  }
  // The result must be the last step: a result that is an input or an earlier step gets copied.
  if (renumber[result] !== out.length - 1) out.push({ op: 'binary', fn: 'add', a: renumber[result], b: constantStep(out, 0) });
  return out;
}

/** Index of a constant step of `value` in `steps`, appended when missing. */
function constantStep(steps: ChainStep[], value: number): number {
  const at = steps.findIndex((s) => s.op === 'const' && Object.is(s.value, value));
  if (at >= 0) return at;
  steps.push({ op: 'const', value });
  return steps.length - 1;
}

/** Compiles `build` over `inputs` inputs into a program (throws a clear error for bad expressions). */
export function compileChain(inputs: number, build: (...xs: ChainExpr[]) => ChainExpr): ChainProgram {
  if (!Number.isInteger(inputs) || inputs < 1 || inputs > MAX_CHAIN_INPUTS) {
    throw new RangeError(`elementwiseChain: takes 1 to ${MAX_CHAIN_INPUTS} input tensors, got ${inputs}`);
  }
  const builder = new ChainBuilder();
  const xs = Array.from({ length: inputs }, (_, k) => new ChainExpr(builder, builder.add({ op: 'input', input: k })));
  const result = build(...xs);
  if (!(result instanceof ChainExpr) || result.builder !== builder) {
    throw new TypeError('elementwiseChain: the expression must return a chain expression built from its arguments');
  }
  const steps = pruned(builder.steps, result.step, inputs);
  if (steps.length > MAX_CHAIN_STEPS) {
    throw new RangeError(`elementwiseChain: the expression has ${steps.length} steps, more than the ${MAX_CHAIN_STEPS} one kernel runs; split it`);
  }
  const constants: number[] = [];
  const key = steps.map((s, i) => `${i}:${stepText(s, s.op === 'const' ? `c${constants.push(s.value) - 1}` : undefined)}`).join(';');
  return { steps, inputs, key, constants };
}

/**
 * Registers for an interpreter that keeps every live value in a slot: the slot each step writes, reusing
 * a slot once the last step reading its value has run (the result's slot is never reused).
 */
export function allocateSlots(program: ChainProgram): { slots: number[]; count: number } {
  const { steps } = program;
  const lastUse = steps.map((_, i) => i);
  steps.forEach((s, i) => operandsOf(s).forEach((o) => (lastUse[o] = Math.max(lastUse[o], i))));
  lastUse[steps.length - 1] = steps.length;
  const free: number[] = [];
  const slots: number[] = [];
  let count = 0;
  steps.forEach((s, i) => {
    // Operands dying here free their slots first, so a step may write over its own operand.
    for (const o of new Set(operandsOf(s))) if (lastUse[o] === i) free.push(slots[o]);
    slots[i] = free.length > 0 ? free.pop()! : count++;
  });
  return { slots, count };
}
