// The explanation record as the two safetensors files of the `explain` contract: maps.safetensors (the
// map of each method, and per layer the first- and second-order maps) and terms.safetensors (logits, and
// per layer A, G and H·A), and how per-image files are named. File, tensor and metadata names are the
// contract; the CLI writes these files into its --out folder and the browser page offers the same for
// download.

import type { TensorToWrite } from '../../models/safetensors.ts';
import type { Explanation } from './explain.ts';

export interface RecordFile {
  tensors: Record<string, TensorToWrite>;
  metadata: Record<string, string>;
}

/** Batches of one run (the CLI explains in chunks), concatenated along the batch. */
function concatFloat(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const f32 = (shape: number[], data: ArrayLike<number>): TensorToWrite => ({ dtype: 'F32', shape, data });

const batchSize = (explanations: readonly Explanation[]) => explanations.reduce((a, e) => a + e.classes.length, 0);

/**
 * `cam/<method>`: B×H×W in [0, 1]; per layer `first_order/<layer>` = Σ_k A⊙G and `second_order/<layer>` =
 * Σ_k −½ A⊙H·A (B×h×w, before ReLU) where they were computed.
 */
export function mapsFile(explanations: readonly Explanation[], methods: readonly string[], layers: readonly string[]): RecordFile {
  const B = batchSize(explanations);
  const [H, W] = explanations[0].inputSize;
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of methods) tensors[`cam/${m}`] = f32([B, H, W], concatFloat(explanations.flatMap((e) => e.methods.get(m)!.maps)));
  layers.forEach((layer, li) => {
    const [, , h, w] = explanations[0].layers[li].shape;
    const first = explanations.map((e) => e.layers[li].firstOrder);
    const second = explanations.map((e) => e.layers[li].secondOrder);
    if (first.every(Boolean)) tensors[`first_order/${layer}`] = f32([B, h, w], concatFloat(first as Float64Array[]));
    if (second.every(Boolean)) tensors[`second_order/${layer}`] = f32([B, h, w], concatFloat(second as Float64Array[]));
  });
  return { tensors, metadata: { methods: methods.join(','), layers: layers.join(',') } };
}

/** `logits` (B×C); per layer `activations/<layer>`, `gradients/<layer>`, `hvp/<layer>` (B×K×h×w). Needs `keepTerms`. */
export function termsFile(explanations: readonly Explanation[], layers: readonly string[]): RecordFile {
  const B = batchSize(explanations);
  const C = explanations[0].numClasses;
  const tensors: Record<string, TensorToWrite> = { logits: f32([B, C], concatFloat(explanations.map((e) => e.logits))) };
  layers.forEach((layer, li) => {
    const shape = explanations[0].layers[li].shape;
    const full = [B, ...shape.slice(1)];
    const parts = explanations.map((e) => e.layers[li].terms);
    if (!parts.every((p) => p?.G && p.HA)) throw new Error(`terms.safetensors: layer ${layer} was explained without keepTerms`);
    tensors[`activations/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.A)));
    tensors[`gradients/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.G!)));
    tensors[`hvp/${layer}`] = f32(full, concatFloat(parts.map((p) => p!.HA!)));
  });
  return { tensors, metadata: { target: explanations[0].target } };
}

/** `<NNN>_<name>`: the stem of an image's files (`000_cat_0001` for `images/cat_0001.png`, the first). */
export function imageStem(source: string, index: number): string {
  const base = source.slice(source.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const name = (dot > 0 ? base.slice(0, dot) : base).replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${String(index).padStart(3, '0')}_${name || 'image'}`;
}
