// What `explain` writes (maps.safetensors, terms.safetensors, overlays, the comparison sheet and
// summary.json) and what `dff` writes (dff.safetensors, pictures with a legend, a sheet, summary.json).
// File and tensor names are a contract (code outside the project reads them).

import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../models/safetensors.ts';
import { showCamOnImage } from '../rendering/colormap.ts';
import type { Explanation, LayerReport, MethodReport } from '../algorithm/explain.ts';
import type { ConceptLabels, DeepFeatures } from '../algorithm/methods/factorization.ts';
import { deprocessImage } from '../rendering/deprocess.ts';
import { factorizationOverlay, factorizationPicture } from '../rendering/factorization.ts';
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

/** The parts one after another, in a new array of their type. */
function concat<T extends Float64Array | Uint8Array>(parts: readonly T[], make: (length: number) => T): T {
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const concatFloat = (parts: readonly Float64Array[]) => concat(parts, (n) => new Float64Array(n));

const f32 = (shape: number[], data: ArrayLike<number>): TensorToWrite => ({ dtype: 'F32', shape, data });

/** A file-name-safe stem for an image source. */
function stem(source: string, index: number): string {
  const s = basename(source, extname(source)).replace(/[^A-Za-z0-9._-]+/g, '_');
  return `${String(index).padStart(3, '0')}_${s || 'image'}`;
}

/** What summary.json says of a method over all batches. */
function methodSummary(reports: MethodReport[]) {
  const r = reports[0];
  return {
    ms: reports.reduce((a, x) => a + x.ms, 0),
    channels: r.channels,
    smoothed: r.smoothed,
    ...(r.base ? { base: r.base } : {}),
    ...(r.biasLayers ? { layers_ignored: true, bias_layers: r.biasLayers } : {}),
  };
}

export async function writeExplainOutputs(dir: string, run: ExplainRun): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const B = run.sources.length;
  const [H, W] = run.explanations[0].inputSize;

  const maps: Record<string, TensorToWrite> = {};
  for (const m of run.methods) {
    // Input-space maps (guided backpropagation and Guided Grad-CAM) keep their 3 channels: (B, 3, H, W).
    const shape = run.explanations[0].methods.get(m)!.channels === 3 ? [B, 3, H, W] : [B, H, W];
    maps[`cam/${m}`] = f32(shape, concatFloat(run.explanations.flatMap((e) => e.methods.get(m)!.maps)));
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
  if (masks.length === B) terms.mask = { dtype: 'U8', shape: [B, H, W], data: concat(masks, (n) => new Uint8Array(n)) };
  const addTerms = (prefix: string, layersOf: (e: Explanation) => LayerReport[]) => {
    run.layers.forEach((layer, li) => {
      const shape = layersOf(run.explanations[0])[li].shape;
      const full = [B, ...shape.slice(1)];
      const parts = run.explanations.map((e) => layersOf(e)[li].terms!);
      terms[`${prefix}activations/${layer}`] = f32(full, concatFloat(parts.map((p) => p.A)));
      terms[`${prefix}gradients/${layer}`] = f32(full, concatFloat(parts.map((p) => p.G!)));
      terms[`${prefix}hvp/${layer}`] = f32(full, concatFloat(parts.map((p) => p.HA!)));
    });
  };
  addTerms('', (e) => e.layers);
  // With --aug-smooth, the terms of every augmented input, as computed on it (a flipped input's are flipped).
  const augmentations = run.explanations[0].augmentations ?? [];
  augmentations.forEach((a, ai) => addTerms(`aug/${a.label}/`, (e) => e.augmentations![ai].layers));
  const termsMeta: Record<string, string> = { target: String(run.meta.target) };
  if (augmentations.length) {
    termsMeta.augmentations = augmentations.map((a) => `${a.label}: ${a.flip ? 'horizontal flip, ' : ''}input × ${a.factor}`).join('; ');
  }
  await writeSafetensors(join(dir, 'terms.safetensors'), terms, termsMeta);
  written.push('terms.safetensors');

  const perImage = run.explanations.flatMap((e) => e.classes.map((c, b) => ({ e, b, c })));
  const rows = [];
  for (let i = 0; i < B; i++) {
    const { e, b, c } = perImage[i];
    const cells = [];
    for (const m of run.methods) {
      const report = e.methods.get(m)!;
      // A CAM is a jet overlay; an input-space map is shown as upstream's deprocess_image shows it.
      const overlay = report.channels === 3 ? deprocessImage(report.maps[b], H, W) : showCamOnImage(run.pictures[i], report.maps[b]);
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
      const finer = e.finer ? { finer: { main: e.finer.main[b], comparisons: e.finer.comparisons[b], alpha: e.finer.alpha } } : {};
      return { ...base, predicted: classOf(row.indexOf(Math.max(...row))), class: classOf(c), probability: e.probabilities[b], utility: e.utilities[b], ...finer };
    }),
    ...(augmentations.length ? { augmentations: augmentations.map(({ label, flip, factor }) => ({ label, flip, factor })) } : {}),
    methods: Object.fromEntries(run.methods.map((m) => [m, methodSummary(run.explanations.map((e) => e.methods.get(m)!))])),
    terms_ms: run.explanations.reduce((a, e) => a + e.layers.reduce((x, l) => x + l.termsMs, 0), 0),
    files: [...written, 'summary.json'],
  };
  await writeFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  written.push('summary.json');
  return written;
}

export interface DffRun {
  factorization: DeepFeatures;
  /** Per image, per concept: the H×W heat map in [0, 1]. */
  maps: Float64Array[][];
  labels: ConceptLabels | null;
  classNames: readonly string[];
  sources: string[];
  pictures: RgbImage[];
  meta: Record<string, unknown>;
}

/** What `dff` writes: dff.safetensors, one picture per image with a legend, a sheet and summary.json. */
export async function writeDffOutputs(dir: string, run: DffRun): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const d = run.factorization;
  const { B, K, h, w, concepts } = d.shape;
  const { height: H, width: W } = run.pictures[0];
  const tensors: Record<string, TensorToWrite> = {
    concepts: f32([K, concepts], d.concepts),
    offset: f32([K], d.offset),
    explanations: f32([B, concepts, h, w], d.explanations),
    maps: f32([B, concepts, H, W], concatFloat(run.maps.flat())),
  };
  const labels = run.labels;
  const C = labels ? labels.outputs.length / concepts : 0;
  if (labels) {
    tensors.concept_outputs = f32([concepts, C], labels.outputs);
    tensors.concept_scores = f32([concepts, C], labels.scores);
    tensors.concept_top = { dtype: 'I64', shape: [concepts, labels.top[0].length], data: labels.top.flat() };
  }
  await writeSafetensors(join(dir, 'dff.safetensors'), tensors, { layer: String(run.meta.layer), relative_error: String(d.relativeError) });
  written.push('dff.safetensors');

  const name = (c: number) => run.classNames[c] ?? String(c);
  const legend = Array.from({ length: concepts }, (_, c) => [
    `concept ${c + 1}`,
    ...(labels ? labels.top[c].map((k) => `${name(k)}:${labels.scores[c * C + k].toFixed(2)}`) : []),
  ]);
  const rows = [];
  for (let b = 0; b < B; b++) {
    const overlay = factorizationOverlay(run.pictures[b], run.maps[b]);
    const file = `${stem(run.sources[b], b)}_dff.png`;
    await writePng(join(dir, file), factorizationPicture(overlay, legend));
    written.push(file);
    rows.push({
      image: run.pictures[b],
      label: '',
      cells: [...run.maps[b].map((m) => ({ image: showCamOnImage(run.pictures[b], m) })), { image: overlay }],
    });
  }
  const titles = legend.map((lines) => (labels ? `${lines[0]}: ${lines[1].split(':')[0]}` : lines[0]));
  await writePng(join(dir, 'sheet.png'), comparisonSheet(rows, ['input', ...titles, 'concepts']));
  written.push('sheet.png');

  const summary = {
    ...run.meta,
    channels: K,
    concepts: Array.from({ length: concepts }, (_, c) => ({
      index: c,
      ...(labels ? { top: labels.top[c].map((k) => ({ index: k, name: name(k), score: labels.scores[c * C + k] })) } : {}),
    })),
    relative_error: d.relativeError,
    nmf_iterations: d.iterations,
    images: run.sources,
    files: [...written, 'summary.json'],
  };
  await writeFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  written.push('summary.json');
  return written;
}
