// What `explain` writes: maps.safetensors, terms.safetensors, overlays, the comparison sheet, for the
// ShapleyCAM family a terms picture per image, and summary.json. File and tensor names are a contract
// (code outside the project reads them).

import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeSafetensors } from '../../models/safetensors.ts';
import { showCamOnImage } from '../rendering/colormap.ts';
import type { Explanation } from '../algorithm/explain.ts';
import { getMethod } from '../algorithm/methods/index.ts';
import { imageStem, mapsFile, termsFile } from '../algorithm/record-files.ts';
import { writePng } from '../rendering/codec.ts';
import type { RgbImage } from '../rendering/image.ts';
import { comparisonSheet } from '../rendering/sheet.ts';
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

export async function writeExplainOutputs(dir: string, run: ExplainRun): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const B = run.sources.length;

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
      const overlay = showCamOnImage(run.pictures[i], e.methods.get(m)!.maps[b]);
      const name = `${imageStem(run.sources[i], i)}_${m}.png`;
      await writePng(join(dir, name), overlay);
      written.push(name);
      cells.push({ image: overlay });
    }
    rows.push({ image: run.pictures[i], label: `${run.labels[c] ?? c} ${e.probabilities[b].toFixed(2)}`, cells });
    // The ShapleyCAM family's second-order inspection: the same picture the browser page shows.
    if (run.methods.some((m) => getMethod(m).needsHvp)) {
      const name = `terms_${imageStem(run.sources[i], i)}.png`;
      await writePng(join(dir, name), explanationTermsPicture(e, b, run.pictures[i], basename(run.sources[i]), run.labels));
      written.push(name);
    }
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
      const row = Array.from(e.logits.subarray(b * C, (b + 1) * C));
      const predicted = row.indexOf(Math.max(...row));
      return {
        index: i,
        source: run.sources[i],
        predicted: { index: predicted, name: run.labels[predicted] ?? String(predicted) },
        class: { index: c, name: run.labels[c] ?? String(c) },
        probability: e.probabilities[b],
        utility: e.utilities[b],
      };
    }),
    methods: Object.fromEntries(run.methods.map((m) => [m, { ms: run.explanations.reduce((a, e) => a + e.methods.get(m)!.ms, 0) }])),
    terms_ms: run.explanations.reduce((a, e) => a + e.layers.reduce((x, l) => x + l.termsMs, 0), 0),
    files: [...written, 'summary.json'],
  };
  await writeFile(join(dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  written.push('summary.json');
  return written;
}
