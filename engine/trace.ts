// Applying primitives: `bind` sends a primitive to the highest-level transform among its inputs, or to
// the backend when all inputs are concrete. Each transform (trace) gets a fresh level number; a newer,
// inner transform has the higher level and is processed first, and whatever it computes on the values
// one level down is in turn seen by the outer transforms. This is the JAX design in eager form.

import type { Backend } from './backend.ts';
import type { MaybeZero, Primitive } from './primitive.ts';
import { DataRef, Tensor, type TapeNode } from './tensor.ts';

abstract class Trace {
  active = true;
  constructor(readonly level: number) {}
  abstract process(prim: Primitive, inputs: readonly Tensor[], params: unknown): Tensor;
  /** The value of x one level below this trace. */
  lower(x: Tensor): Tensor {
    return x.level === this.level ? x.primal! : x;
  }
}

let nextLevel = 1;
const activeTraces = new Map<number, Trace>();

function openTrace<T extends Trace>(make: (level: number) => T): T {
  const trace = make(nextLevel++);
  activeTraces.set(trace.level, trace);
  return trace;
}

function closeTrace(trace: Trace): void {
  trace.active = false;
  activeTraces.delete(trace.level);
}

/** Applies a primitive to tensors at any level. */
export function bind<P>(prim: Primitive<P>, inputs: readonly Tensor[], params: P): Tensor {
  let top = 0;
  for (const x of inputs) if (x.level > top) top = x.level;
  if (top === 0) return evalConcrete(prim, inputs, params);
  const trace = activeTraces.get(top);
  if (!trace) {
    throw new Error(`${prim.name}: a tensor traced by a transform that has already returned was used outside it (level ${top})`);
  }
  return trace.process(prim, inputs, params);
}

function evalConcrete<P>(prim: Primitive<P>, inputs: readonly Tensor[], params: P): Tensor {
  const shapes = inputs.map((x) => x.shape);
  const outShape = prim.shape(shapes, params);
  const storages = inputs.map((x) => x.storage());
  const backend: Backend = storages[0].backend;
  for (const s of storages) {
    if (s.backend !== backend) {
      throw new Error(`${prim.name}: inputs live on different backends (${backend.name} and ${s.backend.name}); move them first`);
    }
  }
  if (prim.view) return Tensor.concrete(outShape, inputs[0].ref!.retain());
  return Tensor.concrete(outShape, new DataRef(prim.impl(backend, storages, shapes, params, outShape)));
}

// ---------------------------------------------------------------------------------------------------
// Forward mode

export class JvpTrace extends Trace {
  process(prim: Primitive, inputs: readonly Tensor[], params: unknown): Tensor {
    const primals = inputs.map((x) => this.lower(x));
    const out = bind(prim, primals, params);
    if (prim.nondiff) return out;
    const tangents: MaybeZero[] = inputs.map((x) => (x.level === this.level ? x.tangent : null));
    if (tangents.every((t) => t === null)) return out;
    if (!prim.jvp) throw new Error(`${prim.name}: no forward-mode rule`);
    const t = prim.jvp(primals, tangents, out, params);
    return t === null ? out : Tensor.jvpTracer(this.level, out, t);
  }

  /** Wraps a value with its tangent at this level. */
  dual(primal: Tensor, tangent: Tensor): Tensor {
    if (tangent.shape.join() !== primal.shape.join()) {
      throw new Error(`jvp: tangent shape [${tangent.shape}] does not match primal shape [${primal.shape}]`);
    }
    return Tensor.jvpTracer(this.level, primal, tangent);
  }

  /** Splits an output into (primal, tangent or null when structurally zero). */
  split(out: Tensor): [Tensor, MaybeZero] {
    return out.level === this.level ? [out.primal!, out.tangent] : [out, null];
  }
}

export function beginJvp(): JvpTrace {
  return openTrace((l) => new JvpTrace(l));
}

// ---------------------------------------------------------------------------------------------------
// Reverse mode

interface Node extends TapeNode {
  readonly prim: Primitive | null; // null for a watched input (leaf)
  readonly primals: readonly Tensor[];
  readonly out: Tensor | null;
  readonly params: unknown;
  readonly parents: readonly (Node | null)[];
}

export class ReverseTrace extends Trace {
  private readonly tape: Node[] = [];
  private nodeCount = 0;

  process(prim: Primitive, inputs: readonly Tensor[], params: unknown): Tensor {
    const primals = inputs.map((x) => this.lower(x));
    const out = bind(prim, primals, params);
    if (prim.nondiff) return out;
    const parents = inputs.map((x) => (x.level === this.level ? (x.node as Node) : null));
    if (parents.every((p) => p === null)) return out;
    if (!prim.vjp) throw new Error(`${prim.name}: no reverse-mode rule`);
    const node: Node = { id: this.nodeCount++, prim, primals, out, params, parents };
    this.tape.push(node);
    return Tensor.reverseTracer(this.level, out, node);
  }

  /** Starts recording everything computed from x. */
  watch(x: Tensor): Tensor {
    const node: Node = { id: this.nodeCount++, prim: null, primals: [], out: null, params: null, parents: [] };
    return Tensor.reverseTracer(this.level, x, node);
  }

  primalOf(out: Tensor): Tensor {
    return this.lower(out);
  }

  /**
   * Propagates the cotangent `ct` of `out` back to the watched tensors. Run after the trace is closed,
   * so the rules' own ops are seen only by the outer transforms. Returns null for a watched tensor that
   * `out` does not depend on (a structural zero).
   */
  backward(out: Tensor, ct: Tensor, watched: readonly Tensor[]): MaybeZero[] {
    if (out.level !== this.level) return watched.map(() => null);
    const cts = new Map<Node, Tensor>();
    cts.set(out.node as Node, ct);
    for (let i = this.tape.length - 1; i >= 0; i--) {
      const node = this.tape[i];
      const g = cts.get(node);
      if (!g) continue;
      cts.delete(node);
      const needs = node.parents.map((p) => p !== null);
      const grads = node.prim!.vjp!(g, node.primals, node.out!, node.params, needs);
      node.parents.forEach((parent, j) => {
        const gj = grads[j];
        if (!parent || !gj) return;
        const prev = cts.get(parent);
        cts.set(parent, prev ? accumulate(prev, gj) : gj);
      });
    }
    return watched.map((w) => cts.get(w.node as Node) ?? null);
  }
}

/** Sums two cotangents; set by ops.ts to avoid an import cycle at load time. */
let accumulate: (a: Tensor, b: Tensor) => Tensor = () => {
  throw new Error('internal: ops not loaded');
};
export function setAccumulate(f: (a: Tensor, b: Tensor) => Tensor): void {
  accumulate = f;
}

export function beginReverse(): ReverseTrace {
  return openTrace((l) => new ReverseTrace(l));
}

export function endTrace(trace: Trace): void {
  closeTrace(trace);
}
