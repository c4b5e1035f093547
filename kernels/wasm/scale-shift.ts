// Plans the per-channel scale-shift (see assembly/scale-shift.ts): whole planes per task.

import type { KernelParams } from '../../engine/backend.ts';
import { K_SCALE_SHIFT } from './assembly/ids.ts';
import type { WasmContext } from './context.ts';

const TASK_ELEMENTS = 1 << 15;

export function scaleShift(ctx: WasmContext, [x, scale, shift]: number[], p: KernelParams['scaleShift']): unknown {
  const out = ctx.output(p.size);
  if (p.size === 0) return out.storage;
  const planes = p.size / p.inner;
  const per = Math.max(1, Math.floor(TASK_ELEMENTS / p.inner));
  ctx.run(K_SCALE_SHIFT, [x, scale, shift, out.ptr, p.inner, p.channels, per, planes], Math.ceil(planes / per), p.size);
  return out.storage;
}
