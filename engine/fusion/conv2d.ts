// The fused convolution primitive of the compiled inference prefix: conv2d whose store adds a per-channel
// bias and a residual and applies an activation, in one backend call (one dispatch where the backend can).
// It exists only for concrete inference: the prefix before a CAM's target layer is never differentiated,
// so the primitive has no derivative rules and refuses tracers with a clear error rather than a wrong
// derivative. Everything that is differentiated keeps conv2d, add and the activations' own rules.

import type { ConvEpilogue, EpilogueActivation } from '../backend.ts';
import { definePrimitive } from '../primitive.ts';
import { convGeometry, type ConvParams } from '../primitives/linalg.ts';
import { fmt, pair, sameShape, ShapeError } from '../shape.ts';
import { bind } from '../trace.ts';
import type { Tensor } from '../tensor.ts';

type FusedParams = ConvParams & { epilogue: ConvEpilogue };

const notDifferentiable = (): never => {
  throw new Error('conv2dFused: an inference-only primitive (the compiled prefix before the target layer) was differentiated; use conv2d');
};

export const conv2dFused = definePrimitive<FusedParams>({
  name: 'conv2dFused',
  shape: ([x, w, ...extra], p) => {
    const g = convGeometry('conv2dFused', x, w, p);
    const O = g.yShape[1];
    if (p.epilogue.bias && (extra[0]?.length !== 1 || extra[0][0] !== O)) throw new ShapeError(`conv2dFused: bias ${fmt(extra[0] ?? [])} does not match ${O} output channels`);
    const residual = p.epilogue.residual ? extra[p.epilogue.bias ? 1 : 0] : null;
    if (residual && !sameShape(residual, g.yShape)) throw new ShapeError(`conv2dFused: residual ${fmt(residual)} does not match output ${fmt(g.yShape)}`);
    return [...g.yShape];
  },
  impl: (backend, inputs, [x, w], p) => {
    const { epilogue, ...conv } = p;
    const g = convGeometry('conv2dFused', x, w, conv);
    const trivial = !epilogue.bias && !epilogue.residual && epilogue.activation === 'none';
    return backend.run('conv2d', inputs, trivial ? g : { ...g, epilogue });
  },
  jvp: notDifferentiable,
  vjp: notDifferentiable,
});

export interface FusedConvOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
  bias?: Tensor | null;
  residual?: Tensor | null;
  activation?: EpilogueActivation;
}

/** act(conv2d(x, w) + bias + residual) as one fused backend call (concrete tensors only). */
export function conv2dWithEpilogue(x: Tensor, w: Tensor, o: FusedConvOptions = {}): Tensor {
  const params: FusedParams = {
    stride: pair(o.stride ?? 1, 'conv2dFused', 'stride'),
    padding: pair(o.padding ?? 0, 'conv2dFused', 'padding'),
    dilation: pair(o.dilation ?? 1, 'conv2dFused', 'dilation'),
    groups: o.groups ?? 1,
    epilogue: { bias: !!o.bias, residual: !!o.residual, activation: o.activation ?? 'none' },
  };
  const inputs = [x, w, ...(o.bias ? [o.bias] : []), ...(o.residual ? [o.residual] : [])];
  return bind(conv2dFused, inputs, params);
}
