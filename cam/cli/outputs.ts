// What `explain` writes (maps.safetensors, terms.safetensors, overlays, the comparison sheet, for the
// ShapleyCAM family a terms picture per image, and summary.json) and what `dff` writes (dff.safetensors,
// pictures with a legend, a sheet, summary.json). File and tensor names are a contract (code outside the
// project reads them).

import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../models/safetensors.ts';
import { showCamOnImage } from '../rendering/colormap.ts';
import type { Explanation, MethodReport } from '../algorithm/explain.ts';
import type { ConceptLabels, DeepFeatures } from '../algorithm/methods/factorization.ts';
import { getMethod } from '../algorithm/methods/index.ts';
import { concatFloat, f32, imageStem, mapsFile, termsFile } from '../algorithm/record-files.ts';
import { deprocessImage } from '../rendering/deprocess.ts';
import { factorizationOverlay, factorizationPicture } from '../rendering/factorization.ts';
import { writePng } from '../rendering/codec.ts';
import type { RgbImage } from '../rendering/image.ts';
import { comparisonSheet } from '../rendering/sheet.ts';
import { outlineMask } from '../rendering/mask-outline.ts';
import { explanationTermsPicture } from '../rendering/terms-picture.ts';

export interface ExplainRun {
  explanations: Explanation[];
  sources: string[];
  pictures: RgbImage[];
  labels: readonly string[];
  methods: string[];
  layers: string[];
  meta: Record<string, unknown>;
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
  const maps = mapsFile(run.explanations, run.methods, run.layers);
  await writeSafetensors(join(dir, 'maps.safetensors'), maps.tensors, maps.metadata);
  written.push('maps.safetensors');
  const terms = termsFile(run.explanations, run.layers);
  await writeSafetensors(join(dir, 'terms.safetensors'), terms.tensors, terms.metadata);
  written.push('terms.safetensors');
  const C = run.explanations[0].numClasses;

  const perImage = run.explanations.flatMap((e) => e.classes.map((c, b) => ({ e, b, c })));
  const rows = [];
  for (let i = 0; i < B; i++) {
    const { e, b, c } = perImage[i];
    const cells = [];
    for (const m of run.methods) {
      const report = e.methods.get(m)!;
      // A CAM is a jet overlay; an input-space map is shown as upstream's deprocess_image shows it.
      const overlay = report.channels === 3 ? deprocessImage(report.maps[b], H, W) : showCamOnImage(run.pictures[i], report.maps[b]);
      const name = `${imageStem(run.sources[i], i)}_${m}.png`;
      await writePng(join(dir, name), overlay);
      written.push(name);
      cells.push({ image: overlay });
    }
    const picture = e.masks ? outlineMask(run.pictures[i], e.masks[b]) : run.pictures[i];
    rows.push({ image: picture, label: `${run.labels[c] ?? c} ${e.probabilities[b].toFixed(2)}`, cells });
    // The ShapleyCAM family's second-order inspection: the same picture the browser page shows.
    if (run.methods.some((m) => getMethod(m).needsHvp)) {
      const name = `terms_${imageStem(run.sources[i], i)}.png`;
      await writePng(join(dir, name), explanationTermsPicture(e, b, run.pictures[i], basename(run.sources[i]), run.labels));
      written.push(name);
    }
  }
  await writePng(join(dir, 'sheet.png'), comparisonSheet(rows, ['input', ...run.methods]));
  written.push('sheet.png');

  const augmentations = run.explanations[0].augmentations ?? [];
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
    const file = `${imageStem(run.sources[b], b)}_dff.png`;
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
