// Plans the row-wise logsumexp (see assembly/logsumexp.ts): whole rows per task.

import type { KernelParams } from '../../engine/backend.ts';
import { K_LOGSUMEXP } from './assembly/ids.ts';
import type { WasmContext } from './context.ts';

/** Elements per task; each costs an exponential. */
const TASK_ELEMENTS = 1 << 13;

export function logsumexp(ctx: WasmContext, [x]: number[], p: KernelParams['logsumexp']): unknown {
  const out = ctx.output(p.rows);
  if (p.rows === 0) return out.storage;
  const per = Math.max(1, Math.floor(TASK_ELEMENTS / p.n));
  ctx.run(K_LOGSUMEXP, [x, out.ptr, p.n, per, p.rows], Math.ceil(p.rows / per), 16 * p.rows * p.n);
  return out.storage;
}
