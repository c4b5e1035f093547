// Plans the in-place epilogue pass that follows a convolution's GEMM (see assembly/epilogue.ts).

import type { ConvEpilogue, ConvGeometry, EpilogueActivation } from '../../engine/backend.ts';
import { A_GELU, A_HARDSWISH, A_NONE, A_RELU, A_RELU6, A_SILU, K_EPILOGUE } from './assembly/ids.ts';
import type { WasmContext } from './context.ts';

/** The kernels' activation numbers (assembly/ids.ts A_*). */
export const ACTIVATION: Record<EpilogueActivation, number> = { none: A_NONE, relu: A_RELU, relu6: A_RELU6, silu: A_SILU, hardswish: A_HARDSWISH, gelu: A_GELU };
/** Activations evaluated through exp or erf cost more per element: smaller tasks. */
const COSTLY = new Set<EpilogueActivation>(['silu', 'gelu']);
const TASK_ELEMENTS = 1 << 15;

/** y = act(y + bias[o] + residual) over y [N, O, oh, ow] at `y`; `extra` holds the bias and residual pointers. */
export function epilogueInPlace(ctx: WasmContext, y: number, extra: readonly number[], g: ConvGeometry, e: ConvEpilogue): void {
  const [N, O, OH, OW] = g.yShape;
  const P = OH * OW;
  const planes = N * O;
  if (planes * P === 0) return;
  const bias = e.bias ? extra[0] : 0;
  const residual = e.residual ? extra[e.bias ? 1 : 0] : 0;
  const weight = COSTLY.has(e.activation) ? 8 : 1;
  const per = Math.max(1, Math.floor(TASK_ELEMENTS / weight / Math.max(1, P)));
  ctx.run(K_EPILOGUE, [y, bias, residual, ACTIVATION[e.activation], P, O, per, planes], Math.ceil(planes / per), planes * P * weight);
}
