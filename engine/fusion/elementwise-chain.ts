// Elementwise chains in one kernel: a small expression over N tensors (numpy broadcasting), evaluated by
// one backend call when nothing is being differentiated, e.g.
//
//   elementwiseChain([G, HA], (g, ha) => g.sub(ha.mul(0.5)))          // ShapleyCAM's weight, 1 dispatch
//
// where the unfused ops would dispatch once per operation, each reading and writing a whole tensor.
//
// The fused kernel has no derivative rules. When any input is a tracer (forward or reverse mode, any
// level), the same program is expanded into the ordinary engine ops instead, so derivatives of every order
// stay exactly those of the composition; the traced head uses the fused primitives with their own rules
// (scaleShift, logsumexpLast) for that. `setChainFusion(false)` (or ENGINE_CHAIN_FUSION=off) expands
// always: the benchmarks' "before", and a way to rule the kernels out when hunting a bug.

import type { ChainProgram, ChainStep } from '../backend.ts';
import { definePrimitive } from '../primitive.ts';
import { env } from '../platform.ts';
import { broadcastShapes, fmt, ShapeError, type Shape } from '../shape.ts';
import { bind } from '../trace.ts';
import { Tensor } from '../tensor.ts';
import * as ops from '../ops.ts';
import { relu as plainRelu } from '../primitives/elementwise.ts';
import { compileChain, type ChainExpr } from './elementwise-chain-program.ts';

export { ChainExpr, MAX_CHAIN_INPUTS, type ChainOperand } from './elementwise-chain-program.ts';

let fusion: boolean | null = null;

/** Turns the one-kernel path on or off for concrete inputs; null: the default (on unless ENGINE_CHAIN_FUSION=off). */
export function setChainFusion(on: boolean | null): void {
  fusion = on;
}

function fusionOn(): boolean {
  return fusion ?? !/^(0|off|false|no)$/i.test(env('ENGINE_CHAIN_FUSION') ?? '');
}

/** The shape every input broadcasts to; a clear error naming the input that does not. */
function chainShape(shapes: readonly Shape[]): number[] {
  let out: number[] = [];
  shapes.forEach((s, k) => {
    try {
      out = broadcastShapes('elementwiseChain', out, s);
    } catch {
      throw new ShapeError(`elementwiseChain: input ${k} of shape ${fmt(s)} does not broadcast against ${fmt(out)} (the inputs before it)`);
    }
  });
  return out;
}

export const elementwiseChainPrimitive = definePrimitive<{ program: ChainProgram }>({
  name: 'elementwiseChain',
  shape: (shapes, { program }) => {
    if (shapes.length !== program.inputs) throw new Error(`elementwiseChain: the program takes ${program.inputs} inputs, got ${shapes.length}`);
    return chainShape(shapes);
  },
  impl: (backend, inputs, shapes, { program }, outShape) => backend.run('elementwiseChain', inputs, { program, shapes, outShape }),
});

/** The program as ordinary engine ops (differentiable at every order). */
function expand(program: ChainProgram, inputs: readonly Tensor[], outShape: Shape): Tensor {
  const values: (Tensor | number)[] = [];
  const tensorOf = (v: Tensor | number) => (typeof v === 'number' ? ops.full([], v, inputs[0].backend) : v);
  const apply = (s: ChainStep): Tensor | number => {
    switch (s.op) {
      case 'input': return inputs[s.input];
      case 'const': return s.value;
      case 'unary': return UNARY_OPS[s.fn](tensorOf(values[s.a]));
      case 'binary': return BINARY_OPS[s.fn](values[s.a], values[s.b]);
      case 'where': return ops.where(values[s.cond], values[s.a], values[s.b]);
    }
  };
  for (const s of program.steps) values.push(apply(s));
  const result = tensorOf(values[values.length - 1]);
  return result.shape.join() === outShape.join() ? result : ops.broadcastTo(result, outShape);
}

// `relu` here is always the plain one (never guided backpropagation's: chains are not model layers).
const UNARY_OPS: Record<string, (x: Tensor) => Tensor> = {
  neg: ops.neg, exp: ops.exp, log: ops.log, log1p: ops.log1p, sqrt: ops.sqrt, rsqrt: ops.rsqrt, abs: ops.abs, sign: ops.sign,
  tanh: ops.tanh, sigmoid: ops.sigmoid, erf: ops.erf, relu: (x) => bind(plainRelu, [x], null), sin: ops.sin, cos: ops.cos, reciprocal: ops.reciprocal,
};
const BINARY_OPS: Record<string, (a: Tensor | number, b: Tensor | number) => Tensor> = {
  add: ops.add, sub: ops.sub, mul: ops.mul, div: ops.div, pow: ops.pow, maximum: ops.maximum, minimum: ops.minimum,
  greater: ops.greater, greaterEqual: ops.greaterEqual, less: ops.less, lessEqual: ops.lessEqual, equal: ops.equal, notEqual: ops.notEqual,
};

/**
 * Evaluates `build` over `inputs` elementwise, broadcasting the inputs against each other (numpy rules):
 * one kernel call when no input is traced, the same expression as engine ops when one is. `build` gets
 * one `ChainExpr` per input and returns the result; numbers are constants. At most MAX_CHAIN_INPUTS inputs.
 */
export function elementwiseChain(inputs: readonly Tensor[], build: (...xs: ChainExpr[]) => ChainExpr): Tensor {
  inputs.forEach((x, k) => {
    if (!(x instanceof Tensor)) throw new TypeError(`elementwiseChain: input ${k} is not a Tensor`);
  });
  const program = compileChain(inputs.length, build);
  return runChainProgram(program, inputs);
}

/** Runs a compiled program (compileChain) over `inputs`, as elementwiseChain does. */
export function runChainProgram(program: ChainProgram, inputs: readonly Tensor[]): Tensor {
  const outShape = chainShape(inputs.map((x) => x.shape));
  if (!fusionOn() || inputs.some((x) => x.level > 0)) return expand(program, inputs, outShape);
  return bind(elementwiseChainPrimitive, inputs, { program });
}
