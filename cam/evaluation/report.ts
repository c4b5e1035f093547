// The results of an eval run: per-image records (one JSON line per image and method), the dataset
// summary in percent as the paper's tables, and its markdown, CSV and PNG renderings.

import { join } from 'node:path';
import type { TargetName } from '../algorithm/targets.ts';
import { writePng } from '../rendering/codec.ts';
import type { DatasetItem } from './dataset.ts';
import { datasetAdcc, type AdccMetrics, type ArccMetrics, type ConfidenceMetrics } from './metrics.ts';
import { ROAD_PERCENTAGES } from './road.ts';
import { barChart, lineChart } from './plots.ts';

/** Settings that change the numbers: a run can only be resumed with the same ones. */
export interface EvalSettings {
  model: string;
  methods: string[];
  target: TargetName;
  layers: string[];
  data: string;
  seed: number;
  steps: number;
  road: boolean;
  /** Metric families computed on top of the default set (eval --metrics); absent when none. */
  metrics?: ExtraMetric[];
}

/**
 * The families `eval --metrics` adds to the default set (the ADCC family and the insertion/deletion
 * curves, plus ROAD with --road): pytorch-grad-cam's confidence metrics, and its ARCC with its Complexity
 * and Coherency parts (metrics.ts).
 */
export const EXTRA_METRICS = ['confidence', 'arcc'] as const;
export type ExtraMetric = (typeof EXTRA_METRICS)[number];

/** The table columns each extra family adds (also the per-image record fields). */
export const EXTRA_COLUMNS: Record<ExtraMetric, readonly string[]> = {
  confidence: ['ConfChange', 'DropInConf', 'IncreaseInConf'],
  arcc: ['Complexity', 'Coherency', 'ARCC'],
};

/** The ROAD that ARCC uses: pytorch-grad-cam's threshold selection at 20/40/60/80% (road.ts). */
export interface RoadRecord {
  percentages: number[];
  morf: number[];
  lerf: number[];
  combined: number;
  residual: number;
}

interface BaseImageRecord extends AdccMetrics {
  file: string;
  label: number;
  pred: number;
  method: string;
  /** Softmax probability of the predicted class on x, x ⊙ m, x ⊙ (1 − m). */
  Y: number;
  O: number;
  D: number;
  /** Class probability at fractions k/S of pixels inserted into the zero baseline / deleted, k = 0…S. */
  insertion: number[];
  deletion: number[];
  insertion_auc: number;
  deletion_auc: number;
  /** Class probability after MoRF/LeRF imputation at each of `percentages` % removed. */
  road?: RoadRecord;
  /** With --metrics arcc: the ROAD behind ARCC (pytorch-grad-cam's percentile threshold selection). */
  arcc_road?: RoadRecord;
}

/** The extra metrics of one record, when computed (--metrics). */
export type ImageRecord = BaseImageRecord & Partial<ConfidenceMetrics> & Partial<ArccMetrics>;

const METRIC_KEYS = ['AD', 'IC', 'ADD', 'Com', 'Coh', 'ADCC'] as const;
const ARROWS: Record<string, string> = {
  AD: '↓', IC: '↑', ADD: '↑', Com: '↓', Coh: '↑', ADCC: '↑', Insertion: '↑', Deletion: '↓', ROAD: '↑',
  ConfChange: '↑', DropInConf: '↓', IncreaseInConf: '↑', Complexity: '↓', Coherency: '↑', ARCC: '↑',
};

/** Columns where lower is better (the plots say so under the group). */
export const LOWER_IS_BETTER: ReadonlySet<string> = new Set(Object.entries(ARROWS).filter(([, a]) => a === '↓').map(([k]) => k));

export interface EvalResults {
  n: number;
  correct: number;
  /** Top-1 accuracy in percent. */
  accuracy: number;
  model: string;
  target: string;
  layers: string[];
  seed: number;
  /**
   * Per method, in percent: AD, IC, ADD, Com, Coh, ADCC (from the means, as the paper), Insertion and
   * Deletion AUC, ROAD; with --metrics the means of ConfChange, DropInConf, IncreaseInConf, Complexity,
   * Coherency and ARCC (each the mean of its per-image values, as pytorch-grad-cam reports them).
   */
  methods: Record<string, Record<string, number>>;
  /** The extra metric families of the run (eval --metrics). */
  metrics?: ExtraMetric[];
  curves: { fractions: number[]; insertion: Record<string, number[]>; deletion: Record<string, number[]> };
  road?: { percentages: number[]; drop: Record<string, { MoRF: number[]; LeRF: number[] }> };
}

/** Dataset results from the per-image records (in dataset order), in percent. */
export function summarise(settings: EvalSettings, items: DatasetItem[], done: Map<string, ImageRecord[]>): EvalResults {
  const recs = items.map((it) => done.get(it.file)!);
  const n = recs.length;
  const correct = recs.filter((r) => r[0].pred === r[0].label).length;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const results: EvalResults = {
    n,
    correct,
    accuracy: (100 * correct) / n,
    model: settings.model,
    target: settings.target,
    layers: settings.layers,
    seed: settings.seed,
    methods: {},
    curves: { fractions: Array.from({ length: settings.steps + 1 }, (_, k) => k / settings.steps), insertion: {}, deletion: {} },
  };
  if (settings.road) results.road = { percentages: [...ROAD_PERCENTAGES], drop: {} };
  if (settings.metrics?.length) results.metrics = [...settings.metrics];
  settings.methods.forEach((m, mi) => {
    const rows = recs.map((r) => r[mi]);
    const avg = datasetAdcc(rows);
    const out: Record<string, number> = {};
    for (const k of METRIC_KEYS) out[k] = 100 * avg[k];
    out.Insertion = 100 * mean(rows.map((r) => r.insertion_auc));
    out.Deletion = 100 * mean(rows.map((r) => r.deletion_auc));
    const curve = (key: 'insertion' | 'deletion') => results.curves.fractions.map((_, k) => mean(rows.map((r) => r[key][k])));
    results.curves.insertion[m] = curve('insertion');
    results.curves.deletion[m] = curve('deletion');
    if (settings.road) {
      out.ROAD = 100 * mean(rows.map((r) => r.road!.combined));
      const drop = (key: 'morf' | 'lerf') => ROAD_PERCENTAGES.map((_, q) => 100 * mean(rows.map((r) => r.Y - r.road![key][q])));
      results.road!.drop[m] = { MoRF: drop('morf'), LeRF: drop('lerf') };
    }
    for (const family of settings.metrics ?? []) {
      for (const k of EXTRA_COLUMNS[family]) out[k] = 100 * mean(rows.map((r) => r[k as keyof ImageRecord] as number));
    }
    results.methods[m] = out;
  });
  return results;
}

function columns(r: EvalResults): string[] {
  return [...METRIC_KEYS, 'Insertion', 'Deletion', ...(r.road ? ['ROAD'] : []), ...(r.metrics ?? []).flatMap((f) => EXTRA_COLUMNS[f])];
}

export function resultsMarkdown(r: EvalResults): string {
  const cols = columns(r);
  const lines = [
    `# eval: ${r.model}, ${r.n} images`,
    '',
    `Top-1 accuracy: ${r.accuracy.toFixed(2)}% (${r.correct}/${r.n}). Explanation target: ${r.target} of the predicted class at ${r.layers.join(', ')}; metrics score its softmax probability. All values in percent.`,
    '',
    `| method | ${cols.map((c) => `${c} ${ARROWS[c]}`).join(' | ')} |`,
    `|---|${cols.map(() => '---:').join('|')}|`,
    ...Object.entries(r.methods).map(([m, v]) => `| ${m} | ${cols.map((c) => v[c].toFixed(2)).join(' | ')} |`),
  ];
  if (r.road) {
    lines.push('', 'ROAD: drop of the class probability (percentage points) with q% of the pixels removed (by rank) and imputed; ROAD = mean over q of (MoRF drop − LeRF drop)/2.', '');
    const qs = r.road.percentages;
    lines.push(`| method | ${qs.map((q) => `MoRF ${q}%`).join(' | ')} | ${qs.map((q) => `LeRF ${q}%`).join(' | ')} |`);
    lines.push(`|---|${[...qs, ...qs].map(() => '---:').join('|')}|`);
    for (const [m, d] of Object.entries(r.road.drop)) lines.push(`| ${m} | ${[...d.MoRF, ...d.LeRF].map((v) => v.toFixed(2)).join(' | ')} |`);
  }
  if (r.metrics?.length) {
    lines.push('', "pytorch-grad-cam's metrics: ConfChange = s(x⊙m) − s(x), DropInConf = max(s(x) − s(x⊙m), 0), IncreaseInConf = [s(x⊙m) > s(x)]; Complexity = mean |m|, Coherency = (ρ(GradCAM++ of x⊙m, m) + 1)/2, ARCC = harmonic mean of Coherency, 1 − Complexity and clip(2·ROAD, 0, 1) with ROAD over 20/40/60/80% by pytorch-grad-cam's percentile threshold; means of the per-image values.");
  }
  return `${lines.join('\n')}\n`;
}

export function resultsCsv(r: EvalResults): string {
  const cols = columns(r);
  const rows = Object.entries(r.methods).map(([m, v]) => [m, r.n, r.accuracy, ...cols.map((c) => v[c])].join(','));
  return `${['method', 'n', 'accuracy', ...cols].join(',')}\n${rows.join('\n')}\n`;
}

export async function writePlots(dir: string, r: EvalResults): Promise<void> {
  const cols = columns(r);
  const methods = Object.keys(r.methods);
  await writePng(
    join(dir, 'metrics.png'),
    barChart({
      title: `${r.model}: faithfulness metrics (n=${r.n}, top-1 ${r.accuracy.toFixed(1)}%)`,
      groups: cols.map((c) => `${c}\n${LOWER_IS_BETTER.has(c) ? 'lower better' : 'higher better'}`),
      series: methods.map((m) => ({ name: m, values: cols.map((c) => r.methods[m][c]) })),
      yLabel: 'percent',
    }),
  );
  for (const key of ['insertion', 'deletion'] as const) {
    const field = key === 'insertion' ? 'Insertion' : 'Deletion';
    await writePng(
      join(dir, `${key}.png`),
      lineChart({
        title: `${key[0].toUpperCase()}${key.slice(1)} curves (${r.model}, n=${r.n})`,
        xLabel: `fraction of pixels ${key === 'insertion' ? 'inserted into the zero baseline' : 'deleted (set to 0)'}, most relevant first`,
        yLabel: 'mean probability of the predicted class',
        series: methods.map((m) => ({ name: `${m} (AUC ${(r.methods[m][field] / 100).toFixed(3)})`, xs: r.curves.fractions, ys: r.curves[key][m] })),
        xRange: [0, 1],
        yRange: [0, 1],
      }),
    );
  }
}


