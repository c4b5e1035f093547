// What a primitive is: a forward that dispatches to the backend, plus JVP and VJP rules written with the
// engine's own differentiable ops. Because the rules are ordinary engine code, applying them under an
// outer transform differentiates them too: forward-over-reverse and higher orders need no extra rules.

import type { Backend, Storage } from './backend.ts';
import type { Shape } from './shape.ts';
import type { Tensor } from './tensor.ts';

/** A tangent or cotangent that is null is a symbolic zero. */
export type MaybeZero = Tensor | null;

export interface Primitive<P = any> {
  readonly name: string;
  /** Validates the input shapes and parameters (clear errors naming the op) and returns the output shape. */
  shape(shapes: readonly Shape[], params: P): number[];
  /** Computes the output storage. A `view` primitive returns its first input's storage unchanged. */
  impl(backend: Backend, inputs: readonly Storage[], shapes: readonly Shape[], params: P, outShape: Shape): Storage;
  readonly view?: boolean;
  /** Output carries no derivative (comparisons, argmax, stopGradient). */
  readonly nondiff?: boolean;
  /** Output tangent given input tangents (null = zero); returns null for a structural zero. */
  jvp?(primals: readonly Tensor[], tangents: readonly MaybeZero[], out: Tensor, params: P): MaybeZero;
  /** Input cotangents given the output cotangent; entries not in `needs` may be null. */
  vjp?(ct: Tensor, primals: readonly Tensor[], out: Tensor, params: P, needs: readonly boolean[]): MaybeZero[];
}

export function definePrimitive<P>(p: Primitive<P>): Primitive<P> {
  return p;
}
