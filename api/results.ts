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
  /** The model's top class. */
  readonly predicted: ClassScore;
  /** The class explained (the predicted one unless `classes` was given) and the utility's value for it. */
  readonly explained: ClassScore & { readonly utility: number };
  readonly logits: Float64Array;
  /** Per method: the map, [H, W] at the input's resolution, in [0, 1] (layers averaged). */
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

export function toResult(raw: Explanation, sources: readonly string[], pictures: readonly (RgbImage | null)[], labels: readonly string[]): ExplainResult {
  const B = raw.classes.length;
  const C = raw.numClasses;
  const [H, W] = raw.inputSize;
  const label = (c: number) => labels[c] ?? `class ${c}`;
  const predicted = argmaxRows(raw.logits, B, C);
  const methods = [...raw.methods.keys()];
  const images = raw.classes.map((c, b): ImageResult => {
    const logits = raw.logits.slice(b * C, (b + 1) * C);
    const probabilities = softmaxRow(logits);
    const p = predicted[b];
    return {
      source: sources[b],
      predicted: { index: p, label: label(p), probability: probabilities[p] },
      explained: { index: c, label: label(c), probability: raw.probabilities[b], utility: raw.utilities[b] },
      logits,
      maps: Object.fromEntries(methods.map((m) => [m, { shape: [H, W], data: raw.methods.get(m)!.maps[b] }])),
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
