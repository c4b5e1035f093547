// The derivative terms of a CAM at one target layer: A (the layer's output), G = ∂U/∂A and, when a
// method needs it, H·A (the Hessian of U with respect to A applied to A), by forward-over-reverse.
//
// Only the network after the layer is differentiated: a first forward pass runs concrete (nothing is
// recorded) and memoises every module output finished before the layer; the second pass substitutes the
// watched A for the layer's output and replays only what follows it. No weight gradients are formed.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { ForwardReplay, ModelError, withForwardHooks, type Module } from '../../models/module.ts';
import { compilePrefix } from '../../models/inference-prefix.ts';
import type { ActivationLayout } from '../../models/registry.ts';
import type { HeadTarget } from './targets.ts';

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

/** The identity layout: the layer's output is (B, K, h, w) already. */
export const NCHW_LAYOUT: ActivationLayout = { kind: 'NCHW', toNCHW: (t) => t, toNative: (t) => t };

/** Per-image utility of the network's output for the batch's target, as a function of the layer's output. */
export function headUtility(module: Module, input: Tensor, capture: ForwardCapture, target: HeadTarget) {
  const images = Array.from({ length: input.shape[0] }, (_, b) => b);
  return (a: Tensor): Tensor => target.rowUtility(forwardFrom(module, input, capture, a), target.classes, images);
}

/**
 * The layer's output brought to (B, K, h, w) by its layout (a token sequence loses its class token and
 * becomes the patch grid), or a clear error (bad input: the layer was named by the user) when it has none.
 */
export function toCamLayout(capture: ForwardCapture, layout: ActivationLayout, t: Tensor): Tensor {
  const A = capture.activation;
  if (layout.kind === 'NCHW' && A.rank !== 4) {
    throw new ModelError(`layer "${capture.replay.targetPath}" gives a rank-${A.rank} output ${JSON.stringify(A.shape)}; CAM needs (B, K, h, w), NHWC or a token sequence the architecture declares`);
  }
  return layout.toNCHW(t);
}

/**
 * G and optionally H·A at the captured layer, for the batch utility Σ_b u_b. They are taken on the native
 * layout and then brought to (B, K, h, w) like A: the methods are elementwise over that grid, so this is
 * exact (the class token's G and H·A are dropped with it).
 */
export function layerTerms(
  module: Module,
  input: Tensor,
  capture: ForwardCapture,
  target: HeadTarget,
  withHvp: boolean,
  layout: ActivationLayout = NCHW_LAYOUT,
): LayerTerms & { G: Tensor } {
  const head = headUtility(module, input, capture, target);
  const total = (a: Tensor) => E.sum(head(a));
  const A = capture.activation;
  const toNCHW = (t: Tensor) => toCamLayout(capture, layout, t);
  const gridA = toNCHW(A); // checks the layout before any derivative is taken
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
  return { layer: capture.replay.targetPath, A: gridA, G: toNCHW(G), HA: HA && toNCHW(HA), hvpStructurallyZero: zero };
}
