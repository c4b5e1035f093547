// The typed result of an explainer call: per image its classes, logits and maps; per target layer the
// derivative terms and whether H·A is structurally zero. Views of the algorithm's record (which stays
// available as `raw`, with whatever new methods and options add to it).

import type { Explanation } from '../cam/algorithm/explain.ts';
import { argmaxRows, softmaxRow, type TargetName } from '../cam/algorithm/targets.ts';
import type { RgbImage } from '../cam/rendering/image.ts';

/** A row-major array in host memory with its shape. */
export interface HostArray {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export interface ClassScore {
  /** Class index into the model's outputs. */
  readonly index: number;
  /** The model's name for it (`class N` when the model has no names for its classes). */
  readonly label: string;
  /** Softmax probability of the class. */
  readonly probability: number;
}

export interface ImageResult {
  /** What the image came from: a file name, `bytes[i]`, `picture[i]` or `tensor[i]`. */
  readonly source: string;
  /**
   * The model's top class. For a segmentation model, which predicts a class per pixel: the class explained,
   * with the mean of its probability over its mask (the pixels predicted as it).
   */
  readonly predicted: ClassScore;
  /**
   * The class explained (the predicted one unless `classes` was given; segmentation: the most frequent
   * predicted class other than 0) and the utility's value for it. Its probability is the softmax
   * probability (segmentation: the mean over its mask).
   */
  readonly explained: ClassScore & { readonly utility: number };
  /** The model's output for this image: C logits, or a segmentation model's [C, H, W] map (row-major). */
  readonly logits: Float64Array;
  /** Segmentation: the H×W 0/1 mask of the pixels predicted as the explained class (the target's constant); null for classifiers. */
  readonly mask: Uint8Array | null;
  /**
   * Per method: the map at the input's resolution, [H, W] in [0, 1] (layers averaged), or [3, H, W]
   * unnormalised for the input-space methods (guided-backprop, guided-gradcam).
   */
  readonly maps: Readonly<Record<string, HostArray>>;
  /** The model-sized 8-bit picture the maps lie on (null for tensor inputs). */
  readonly picture: RgbImage | null;
}

export interface LayerResult {
  readonly layer: string;
  /** [B, K, h, w] of the layer's activations A. */
  readonly shape: readonly number[];
  /** H·A was computed (a method needed it, or `keepTerms`). */
  readonly hvpComputed: boolean;
  /**
   * H·A is zero by the structure of the network after the layer under this utility (a piecewise-linear
   * head under the logit), known from symbolic zeros rather than arithmetic: ShapleyCAM then equals GradCAM.
   */
  readonly hvpStructurallyZero: boolean;
  /** Σ_k A ⊙ G, [B, h, w] before ReLU (HiResCAM's map); null when G was not computed. */
  readonly firstOrder: HostArray | null;
  /** Σ_k −½ A ⊙ H·A, [B, h, w] before ReLU (what ShapleyCAM adds); null when H·A was not computed. */
  readonly secondOrder: HostArray | null;
  /** A, G = ∂U/∂A and H·A, each [B, K, h, w]: only with `keepTerms: true` (null otherwise). */
  readonly activations: HostArray | null;
  readonly gradients: HostArray | null;
  readonly hvp: HostArray | null;
  /** Milliseconds of this layer's forward pass and derivatives. */
  readonly ms: number;
}

export interface ExplainResult {
  readonly target: TargetName;
  readonly methods: readonly string[];
  /** One per input image, in order. */
  readonly images: readonly ImageResult[];
  /** One per target layer, in order. */
  readonly layers: readonly LayerResult[];
  /** Per method: milliseconds of the method itself (the shared terms are in `layers[i].ms`). */
  readonly timings: Readonly<Record<string, number>>;
  /** The algorithm's own record (cam/algorithm/explain.ts): raw per-layer maps, channel weights and more. */
  readonly raw: Explanation;
}

const hostArray = (shape: readonly number[], data: Float64Array | null | undefined): HostArray | null => (data ? { shape, data } : null);

/** The top class of a classifier's logits and its softmax probability. */
function topClass(logits: Float64Array): { index: number; probability: number } {
  const [index] = argmaxRows(logits, 1, logits.length);
  return { index, probability: softmaxRow(logits)[index] };
}

export function toResult(raw: Explanation, sources: readonly string[], pictures: readonly (RgbImage | null)[], labels: readonly string[]): ExplainResult {
  const B = raw.classes.length;
  const perImage = raw.logits.length / B;
  const [H, W] = raw.inputSize;
  const label = (c: number) => labels[c] ?? `class ${c}`;
  const methods = [...raw.methods.keys()];
  const images = raw.classes.map((c, b): ImageResult => {
    const logits = raw.logits.slice(b * perImage, (b + 1) * perImage);
    const explained = { index: c, probability: raw.probabilities[b] };
    // A segmentation's prediction is per pixel: the explained class is the one its mask was predicted as.
    const predicted = raw.masks ? explained : topClass(logits);
    return {
      source: sources[b],
      predicted: { ...predicted, label: label(predicted.index) },
      explained: { ...explained, label: label(c), utility: raw.utilities[b] },
      logits,
      mask: raw.masks?.[b] ?? null,
      maps: Object.fromEntries(methods.map((m) => {
        const report = raw.methods.get(m)!;
        return [m, { shape: report.channels === 3 ? [3, H, W] : [H, W], data: report.maps[b] }];
      })),
      picture: pictures[b],
    };
  });
  const layers = raw.layers.map((l): LayerResult => {
    const [, , h, w] = l.shape;
    return {
      layer: l.layer,
      shape: l.shape,
      hvpComputed: l.hvpComputed,
      hvpStructurallyZero: l.hvpStructurallyZero,
      firstOrder: hostArray([B, h, w], l.firstOrder),
      secondOrder: hostArray([B, h, w], l.secondOrder),
      activations: hostArray(l.shape, l.terms?.A),
      gradients: hostArray(l.shape, l.terms?.G),
      hvp: hostArray(l.shape, l.terms?.HA),
      ms: l.termsMs,
    };
  });
  const timings = Object.fromEntries(methods.map((m) => [m, raw.methods.get(m)!.ms]));
  return { target: raw.target, methods, images, layers, timings, raw };
}
