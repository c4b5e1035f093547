// What a CAM method sees and returns. Methods are small functions from the layer terms (A, G, H·A) and,
// for score-based methods, access to the model, to a raw (pre-ReLU) map per image.

import type { Tensor } from '../../../engine/index.ts';
import type { LayerTerms } from '../terms.ts';
import type { TargetName } from '../targets.ts';

export interface MethodContext {
  terms: LayerTerms;
  /** The normalised input [B, 3, H, W]. */
  input: Tensor;
  classes: readonly number[];
  target: TargetName;
  /**
   * Target scores (one per row) of a batch of inputs for the given classes; `images` says which image each
   * row stands for (the segmentation target needs it: it scores with that image's mask).
   */
  scoreInputs(x: Tensor, classes: readonly number[], images?: readonly number[]): Promise<Float64Array>;
  /** Target scores of image b with the layer's output replaced by each of a batch of activations [M, K, h, w]. */
  scoreWithActivations(b: number, a: Tensor): Promise<Float64Array>;
  /** Seed for methods with randomness. */
  seed: number;
}

export interface MethodResult {
  /** [B, h, w]: the map before ReLU, normalisation and resize. */
  raw: Tensor;
  /** [B, K] channel weights, for methods defined by them. */
  weights?: Tensor;
}

export interface CamMethod {
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
  compute(ctx: MethodContext): Promise<MethodResult> | MethodResult;
}
