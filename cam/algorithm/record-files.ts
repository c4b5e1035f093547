// The explanation record as the two safetensors files of the `explain` contract: maps.safetensors (the
// map of each method, and per layer the first- and second-order maps) and terms.safetensors (the output,
// a segmentation mask, and per layer A, G and H·A), and how per-image files are named. File, tensor and
// metadata names are the contract; the CLI writes these files into its --out folder and the browser page
// offers the same for download.

import type { TensorToWrite } from '../../models/safetensors.ts';
import type { Explanation, LayerReport } from './explain.ts';

export interface RecordFile {
  tensors: Record<string, TensorToWrite>;
  metadata: Record<string, string>;
}

/** The parts one after another, in a new array of their type (batches of one run: the CLI explains in chunks). */
export function concat<T extends Float64Array | Uint8Array>(parts: readonly T[], make: (length: number) => T): T {
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const concatFloat = (parts: readonly Float64Array[]) => concat(parts, (n) => new Float64Array(n));

export const f32 = (shape: number[], data: ArrayLike<number>): TensorToWrite => ({ dtype: 'F32', shape, data });

const batchSize = (explanations: readonly Explanation[]) => explanations.reduce((a, e) => a + e.classes.length, 0);

/**
 * `cam/<method>`: B×H×W in [0, 1] (input-space maps — guided backpropagation, Guided Grad-CAM — keep their
 * 3 channels: B×3×H×W); per layer `first_order/<layer>` = Σ_k A⊙G and `second_order/<layer>` = Σ_k −½ A⊙H·A
 * (B×h×w, before ReLU) where they were computed.
 */
export function mapsFile(explanations: readonly Explanation[], methods: readonly string[], layers: readonly string[]): RecordFile {
  const B = batchSize(explanations);
  const [H, W] = explanations[0].inputSize;
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of methods) {
    const shape = explanations[0].methods.get(m)!.channels === 3 ? [B, 3, H, W] : [B, H, W];
    tensors[`cam/${m}`] = f32(shape, concatFloat(explanations.flatMap((e) => e.methods.get(m)!.maps)));
  }
  layers.forEach((layer, li) => {
    const [, , h, w] = explanations[0].layers[li].shape;
    const first = explanations.map((e) => e.layers[li].firstOrder);
    const second = explanations.map((e) => e.layers[li].secondOrder);
    if (first.every(Boolean)) tensors[`first_order/${layer}`] = f32([B, h, w], concatFloat(first as Float64Array[]));
    if (second.every(Boolean)) tensors[`second_order/${layer}`] = f32([B, h, w], concatFloat(second as Float64Array[]));
  });
  return { tensors, metadata: { methods: methods.join(','), layers: layers.join(',') } };
}

/**
 * `logits` (the model's output, B×C or a segmentation model's B×C×H×W); `mask` (U8 B×H×W) under the
 * segmentation target; per layer `activations/<layer>`, `gradients/<layer>`, `hvp/<layer>` (B×K×h×w), and
 * with augmentation smoothing the same under `aug/<label>/` for every augmented input, as computed on it.
 * Needs `keepTerms`.
 */
export function termsFile(explanations: readonly Explanation[], layers: readonly string[]): RecordFile {
  const B = batchSize(explanations);
  const [H, W] = explanations[0].inputSize;
  const outputShape = [B, ...explanations[0].outputShape.slice(1)];
  const tensors: Record<string, TensorToWrite> = { logits: f32(outputShape, concatFloat(explanations.map((e) => e.logits))) };
  // Segmentation: the constant mask of each image's class (argmax of the model's own output == class).
  const masks = explanations.flatMap((e) => e.masks ?? []);
  if (masks.length === B) tensors.mask = { dtype: 'U8', shape: [B, H, W], data: concat(masks, (n) => new Uint8Array(n)) };
  const addTerms = (prefix: string, layersOf: (e: Explanation) => LayerReport[]) => {
    layers.forEach((layer, li) => {
      const shape = layersOf(explanations[0])[li].shape;
      const full = [B, ...shape.slice(1)];
      const parts = explanations.map((e) => layersOf(e)[li].terms);
      if (!parts.every((p) => p?.G && p.HA)) throw new Error(`terms.safetensors: layer ${layer} was explained without keepTerms`);
      tensors[`${prefix}activations/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.A)));
      tensors[`${prefix}gradients/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.G!)));
      tensors[`${prefix}hvp/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.HA!)));
    });
  };
  addTerms('', (e) => e.layers);
  const augmentations = explanations[0].augmentations ?? [];
  augmentations.forEach((a, ai) => addTerms(`aug/${a.label}/`, (e) => e.augmentations![ai].layers));
  const metadata: Record<string, string> = { target: explanations[0].target };
  if (augmentations.length) {
    metadata.augmentations = augmentations.map((a) => `${a.label}: ${a.flip ? 'horizontal flip, ' : ''}input × ${a.factor}`).join('; ');
  }
  return { tensors, metadata };
}

/** `<NNN>_<name>`: the stem of an image's files (`000_cat_0001` for `images/cat_0001.png`, the first). */
export function imageStem(source: string, index: number): string {
  const base = source.slice(source.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const name = (dot > 0 ? base.slice(0, dot) : base).replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${String(index).padStart(3, '0')}_${name || 'image'}`;
}
