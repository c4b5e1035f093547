// A convolution's epilogue — bias, residual add, activation — applied to outputs as they are stored. This
// module holds the float64 reference (the CPU backend's) and the names every backend shares; the WGSL
// lives in kernels/epilogue.ts and the WebAssembly in kernels/wasm/assembly/epilogue.ts.

import type { ConvEpilogue, ConvGeometry, EpilogueActivation } from '../backend.ts';
import { erf } from '../cpu/math.ts';

export type { ConvEpilogue, EpilogueActivation };

export const EPILOGUE_ACTIVATIONS: readonly EpilogueActivation[] = ['none', 'relu', 'relu6', 'silu', 'hardswish', 'gelu'];

/** The activation in float64, as the engine's own ops define it (relu6 = min(max(x, 0), 6), exact GELU). */
export function activate(v: number, act: EpilogueActivation): number {
  switch (act) {
    case 'none': return v;
    case 'relu': return v > 0 ? v : 0;
    case 'relu6': return v >= 6 ? 6 : v > 0 ? v : 0;
    case 'silu': return v / (1 + Math.exp(-v));
    case 'hardswish': return (v * Math.min(Math.max(v + 3, 0), 6)) / 6;
    case 'gelu': return 0.5 * v * (1 + erf(v * Math.SQRT1_2));
  }
}

/** How many inputs follow x and w. */
export function epilogueInputCount(e: ConvEpilogue | undefined): number {
  return e ? Number(e.bias) + Number(e.residual) : 0;
}

/** Applies the epilogue in place to a float64 convolution output y [N, O, oh, ow]. */
export function applyEpilogue(y: Float64Array, g: ConvGeometry, e: ConvEpilogue, extra: readonly Float64Array[]): Float64Array {
  const [N, O, OH, OW] = g.yShape;
  const P = OH * OW;
  const bias = e.bias ? extra[0] : null;
  const residual = e.residual ? extra[e.bias ? 1 : 0] : null;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const b = bias ? bias[o] : 0;
      const base = (n * O + o) * P;
      for (let i = base; i < base + P; i++) y[i] = activate(y[i] + b + (residual ? residual[i] : 0), e.activation);
    }
  }
  return y;
}
