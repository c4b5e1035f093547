// What `explain` writes: maps.safetensors, terms.safetensors, overlays, the comparison sheet and
// summary.json. File and tensor names are a contract (code outside the project reads them).

import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../models/safetensors.ts';
import { showCamOnImage } from '../rendering/colormap.ts';
import type { Explanation } from '../algorithm/explain.ts';
import { writePng } from '../rendering/codec.ts';
import type { RgbImage } from '../rendering/image.ts';
import { comparisonSheet } from '../rendering/sheet.ts';
import { outlineMask } from '../rendering/mask-outline.ts';

export interface ExplainRun {
  explanations: Explanation[];
  sources: string[];
  pictures: RgbImage[];
  labels: readonly string[];
  methods: string[];
  layers: string[];
  meta: Record<string, unknown>;
}

function concatFloat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const f32 = (shape: number[], data: ArrayLike<number>): TensorToWrite => ({ dtype: 'F32', shape, data });

/** A file-name-safe stem for an image source. */
function stem(source: string, index: number): string {
  const s = basename(source, extname(source)).replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${String(index).padStart(3, '0')}_${s || 'image'}`;
}

export async function writeExplainOutputs(dir: string, run: ExplainRun): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const B = run.sources.length;
  const [H, W] = run.explanations[0].inputSize;

  const maps: Record<string, TensorToWrite> = {};
  for (const m of run.methods) {
    maps[`cam/${m}`] = f32([B, H, W], concatFloat(run.explanations.flatMap((e) => e.methods.get(m)!.maps)));
  }
  // Second-order inspection: per layer, Σ_k A⊙G and Σ_k −½ A⊙H·A at layer resolution (pre-ReLU).
  run.layers.forEach((layer, li) => {
    const [, , h, w] = run.explanations[0].layers[li].shape;
    const first = run.explanations.map((e) => e.layers[li].firstOrder);
    const second = run.explanations.map((e) => e.layers[li].secondOrder);
    if (first.every(Boolean)) maps[`first_order/${layer}`] = f32([B, h, w], concatFloat(first as Float64Array[]));
    if (second.every(Boolean)) maps[`second_order/${layer}`] = f32([B, h, w], concatFloat(second as Float64Array[]));
  });
  await writeSafetensors(join(dir, 'maps.safetensors'), maps, { methods: run.methods.join(','), layers: run.layers.join(',') });
  written.push('maps.safetensors');

  const C = run.explanations[0].numClasses;
  const outputShape = [B, ...run.explanations[0].outputShape.slice(1)];
  const terms: Record<string, TensorToWrite> = { logits: f32(outputShape, concatFloat(run.explanations.map((e) => e.logits))) };
  // Segmentation: the constant mask of each image's class (argmax of the model's own output == class).
  const masks = run.explanations.flatMap((e) => e.masks ?? []);
  if (masks.length === B) terms.mask = { dtype: 'U8', shape: [B, H, W], data: concatBytes(masks) };
  run.layers.forEach((layer, li) => {
    const shape = run.explanations[0].layers[li].shape;
    const full = [B, ...shape.slice(1)];
    const parts = run.explanations.map((e) => e.layers[li].terms!);
    terms[`activations/${layer}`] = f32(full, concatFloat(parts.map((p) => p.A)));
    terms[`gradients/${layer}`] = f32(full, concatFloat(parts.map((p) => p.G!)));
    terms[`hvp/${layer}`] = f32(full, concatFloat(parts.map((p) => p.HA!)));
  });
  await writeSafetensors(join(dir, 'terms.safetensors'), terms, { target: String(run.meta.target) });
  written.push('terms.safetensors');

  const perImage = run.explanations.flatMap((e) => e.classes.map((c, b) => ({ e, b, c })));
  const rows = [];
  for (let i = 0; i < B; i++) {
    const { e, b, c } = perImage[i];
    const cells = [];
    for (const m of run.methods) {
      const overlay = showCamOnImage(run.pictures[i], e.methods.get(m)!.maps[b]);
      const name = `${stem(run.sources[i], i)}_${m}.png`;
      await writePng(join(dir, name), overlay);
      written.push(name);
      cells.push({ image: overlay });
    }
    const picture = e.masks ? outlineMask(run.pictures[i], e.masks[b]) : run.pictures[i];
    rows.push({ image: picture, label: `${run.labels[c] ?? c} ${e.probabilities[b].toFixed(2)}`, cells });
  }
  await writePng(join(dir, 'sheet.png'), comparisonSheet(rows, ['input', ...run.methods]));
  written.push('sheet.png');

  const summary = {
    ...run.meta,
    layers: run.layers.map((layer, li) => ({
      layer,
      shape: [B, ...run.explanations[0].layers[li].shape.slice(1)],
      hvp_computed: run.explanations.every((e) => e.layers[li].hvpComputed),
      hvp_structurally_zero: run.explanations.every((e) => e.layers[li].hvpStructurallyZero),
    })),
    images: perImage.map(({ e, b, c }, i) => {
      const classOf = (k: number) => ({ index: k, name: run.labels[k] ?? String(k) });
      const base = { index: i, source: run.sources[i] };
      if (e.masks) {
        // Segmentation: the class explained, its mean probability over its mask, and the mask's size.
        const maskPixels = e.masks[b].reduce((n, v) => n + v, 0);
        return { ...base, class: classOf(c), mean_probability_in_mask: e.probabilities[b], mask_pixels: maskPixels, utility: e.utilities[b] };
      }
      const row = Array.from(e.logits.subarray(b * C, (b + 1) * C));
      return { ...base, predicted: classOf(row.indexOf(Math.max(...row))), class: classOf(c), probability: e.probabilities[b], utility: e.utilities[b] };
    }),
    methods: Object.fromEntries(run.methods.map((m) => [m, { ms: run.explanations.reduce((a, e) => a + e.methods.get(m)!.ms, 0) }])),
    terms_ms: run.explanations.reduce((a, e) => a + e.layers.reduce((x, l) => x + l.termsMs, 0), 0),
    files: [...written, 'summary.json'],
  };
  await writeFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  written.push('summary.json');
  return written;
}
