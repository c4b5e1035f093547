// The derivative terms of a CAM at one target layer: A (the layer's output), G = ∂U/∂A and, when a
// method needs it, H·A (the Hessian of U with respect to A applied to A), by forward-over-reverse.
//
// Only the network after the layer is differentiated: a first forward pass runs concrete (nothing is
// recorded) and memoises every module output finished before the layer; the second pass substitutes the
// watched A for the layer's output and replays only what follows it. No weight gradients are formed.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { ForwardReplay, withForwardHooks, type Module } from '../../models/module.ts';
import { compilePrefix } from '../../models/inference-prefix.ts';
import { utility, type TargetName } from './targets.ts';

export interface ForwardCapture {
  logits: Tensor;
  /** The layer output as the network produces it (native layout). */
  activation: Tensor;
  replay: ForwardReplay;
}

/** Runs the model once, capturing the output of `layer` and memoising everything before it. */
export function captureForward(module: Module, input: Tensor, layer: string): ForwardCapture {
  module.get(layer); // a clear error for an unknown path
  const replay = new ForwardReplay(layer);
  if (input.level === 0) replay.compiled = compilePrefix(module, layer);
  const logits = withForwardHooks(new Map(), () => module.call(input), replay);
  replay.finishRecording();
  return { logits, activation: replay.captured!, replay };
}

/** The logits of the network with the layer's output replaced by `a` (memoised prefix, not recomputed). */
export function forwardFrom(module: Module, input: Tensor, capture: ForwardCapture, a: Tensor): Tensor {
  capture.replay.replacement = a;
  try {
    return withForwardHooks(new Map(), () => module.call(input), capture.replay);
  } finally {
    capture.replay.replacement = null;
  }
}

export interface LayerTerms {
  layer: string;
  /** [B, K, h, w], NCHW. */
  A: Tensor;
  /** Present when some method needs it (or the terms are kept). */
  G: Tensor | null;
  /** Present when asked for. */
  HA: Tensor | null;
  /** True when H·A is zero by the structure of the head (e.g. piecewise-linear head, logit utility). */
  hvpStructurallyZero: boolean;
}

/** A per-image utility of the logits, shape [B], other than a named target (Finer-CAM's). */
export type Utility = (logits: Tensor) => Tensor;

/** Per-image utility of the network's logits for the given classes, as a function of the layer's output. */
export function headUtility(module: Module, input: Tensor, capture: ForwardCapture, target: TargetName | Utility, classes: readonly number[]) {
  const u: Utility = typeof target === 'function' ? target : (logits) => utility(target, logits, classes);
  return (a: Tensor): Tensor => u(forwardFrom(module, input, capture, a));
}

/** G and optionally H·A at the captured layer, for the batch utility Σ_b u_b. */
export function layerTerms(
  module: Module,
  input: Tensor,
  capture: ForwardCapture,
  target: TargetName | Utility,
  classes: readonly number[],
  withHvp: boolean,
  layout: 'NCHW' | 'NHWC' = 'NCHW',
): LayerTerms & { G: Tensor } {
  const head = headUtility(module, input, capture, target, classes);
  const total = (a: Tensor) => E.sum(head(a));
  const A = capture.activation;
  let G: Tensor;
  let HA: Tensor | null = null;
  let zero = false;
  if (withHvp) {
    const r = E.gradAndHvp(total, A, A);
    G = r.grad;
    HA = r.hvp;
    zero = r.hvpIsStructurallyZero;
  } else {
    G = E.grad(total)(A);
  }
  const toNCHW = (t: Tensor) => (layout === 'NHWC' ? E.permute(t, [0, 3, 1, 2]) : t);
  if (A.rank !== 4) throw new Error(`layer "${capture.replay.targetPath}" gives a rank-${A.rank} output ${JSON.stringify(A.shape)}; CAM needs NCHW (or an NHWC layout declared by the architecture)`);
  return { layer: capture.replay.targetPath, A: toNCHW(A), G: toNCHW(G), HA: HA && toNCHW(HA), hvpStructurallyZero: zero };
}
