// What a CAM method is. Most methods are *layer methods*: small functions from the layer terms (A, G, H·A)
// and, for score-based methods, access to the model, to a raw (pre-ReLU) map per image, which the pipeline
// post-processes and averages over the target layers. The others are *model methods*, which need the
// whole network (FullGrad, guided backpropagation), and *meta-methods* built on a layer method (Finer-CAM,
// Refine-CAM, Guided Grad-CAM); explain.ts composes them.

import type { Tensor } from '../../../engine/index.ts';
import type { LayerTerms } from '../terms.ts';
import type { TargetName } from '../targets.ts';

/**
 * A method asked for with settings it cannot run with (a meta-method's base, Refine-CAM with one layer,
 * Finer-CAM's comparison ranks, a layer without gradient for a gradient method). The message starts with
 * the flag to change; the CLI reports it as bad usage.
 */
export class MethodSettingError extends Error {
  override name = 'MethodSettingError';
}

/** Settings of particular methods (the CLI's --kernel, --base, --compare, --alpha). */
export interface MethodOptions {
  /** KPCA-CAM's kernel (default sigmoid). */
  kernel?: string;
  /** The layer method Finer-CAM and Refine-CAM run on (default gradcam / gradcam++). */
  base?: string;
  /** Finer-CAM: ranks of the comparison classes among the classes sorted by logit distance (default 1,2,3). */
  compare?: readonly number[];
  /** Finer-CAM: the comparison strength α (default 1). */
  alpha?: number;
}

/** Rows for the model to score, written on demand: row i stands for image `images[i]` of the batch. */
export interface ScoreRows {
  readonly images: readonly number[];
  /** Writes row i into `out` (its length is one row's). */
  write(i: number, out: Float64Array): void;
}

export interface MethodContext {
  terms: LayerTerms;
  /** The normalised input [B, C, H, W]. */
  input: Tensor;
  /** Per image, the class of the target this method runs under (for a Finer-CAM base: the main class). */
  classes: readonly number[];
  /** The target named for the run; the scores below are those of the target the method runs under. */
  target: TargetName;
  /**
   * Target scores (one per row) of inputs C×H×W, each scored for its image's class under the method's
   * target (which may fix something per image: the segmentation mask, Finer-CAM's comparisons). The rows
   * are written only as their pass needs them and go through the model in passes of up to the run's max
   * batch, across images: a row's score does not depend on the batching.
   */
  scoreInputs(rows: ScoreRows): Promise<Float64Array>;
  /**
   * Target scores (one per row) with the layer's output replaced by K×h×w activations (the CAM layout);
   * the rest of each row's network input is its image's. Passes as for `scoreInputs`.
   */
  scoreActivations(rows: ScoreRows): Promise<Float64Array>;
  /** Seed for methods with randomness. */
  seed: number;
  options: MethodOptions;
}

export interface MethodResult {
  /** [B, h, w]: the map before ReLU, normalisation and resize. */
  raw: Tensor;
  /** [B, K] channel weights, for methods defined by them. */
  weights?: Tensor;
  /**
   * [B, K, h, w]: the per-channel terms whose sum over channels is `raw` (w_k·A_k, G⊙A, …). Eigen
   * smoothing projects them on their first principal component instead of summing them.
   */
  perChannel?: Tensor;
}

interface MethodBase {
  /** CLI name (a contract). */
  readonly name: string;
  /** The name used in the reference implementation and the fixtures. */
  readonly referenceName: string;
  /** Needs G (the pipeline computes it only when some method does). */
  readonly needsGradient: boolean;
  /** Needs H·A (forward-over-reverse; only then is it computed). */
  readonly needsHvp: boolean;
  /** The map depends on the seed: evaluation computes it per image, with a seed of that image's own. */
  readonly randomised: boolean;
  /** 1: a saliency map (B, H, W); 3: an input-space map (B, 3, H, W) such as guided backpropagation's. */
  readonly channels: 1 | 3;
  /** Whether --aug-smooth / --eigen-smooth change this method (pytorch-grad-cam's rules, see index.ts). */
  readonly smoothing: { readonly aug: boolean; readonly eigen: boolean };
  /** Reads no target layer (FullGrad): the --layer list is ignored. */
  readonly ignoresLayers?: boolean;
  /** Needs a classifier's row of class logits (Finer-CAM sorts the classes by them): not for the segmentation target. */
  readonly classifierOnly?: boolean;
}

export interface CamMethod extends MethodBase {
  readonly kind: 'layer';
  compute(ctx: MethodContext): Promise<MethodResult> | MethodResult;
}

/** Methods explain.ts composes from the network or from a layer method; their work is described there. */
export interface ComposedMethod extends MethodBase {
  readonly kind: 'fullgrad' | 'guided-backprop' | 'guided-gradcam' | 'finer' | 'refine';
}

export type Method = CamMethod | ComposedMethod;
