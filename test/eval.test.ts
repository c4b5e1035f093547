// The `eval` runner end to end on test/fixtures/eval-sample (6 CIFAR-10 test images copied from
// shared/data/cifar10-sample, ImageFolder layout by class name; automobile_0001 and frog_0002 are
// misclassified by the shipped ResNet-20): written files, numbers in range, accuracy, the progress bar,
// and interrupted runs — stopped by --limit, or with per_image.jsonl torn mid-line — resuming to exactly
// the results of an uninterrupted run. Plus the dataset layouts and the error paths.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as E from '../engine/index.ts';
import { main } from '../cam/cli.ts';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import type { EvalResults, ImageRecord } from '../cam/evaluation/report.ts';
import { DatasetError, readDataset } from '../cam/evaluation/dataset.ts';
import { DEFAULT_MAX_PIXELS, decodeImage } from '../cam/rendering/codec.ts';
import { loadInputs } from '../cam/cli/inputs.ts';
import { loadZooModel } from '../models/zoo.ts';
import { CIFAR10_CLASSES } from '../models/labels.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const SAMPLE = join(FIXTURES, 'eval-sample');
const FILES = ['airplane/airplane_0000.png', 'automobile/automobile_0001.png', 'cat/cat_0000.png', 'dog/dog_0000.png', 'frog/frog_0002.png', 'ship/ship_0002.png'];
const tmp = (name = 'cam-eval-') => mkdtempSync(join(tmpdir(), name));
// Steps 4 and ROAD keep the run short while exercising every code path.
// On the CPU backend: the resumed-equals-uninterrupted checks compare numbers bit for bit.
const ARGS = ['--model', 'resnet20_cifar10', '--methods', 'gradcam,shapleycam', '--steps', '4', '--road', '--seed', '3', '--quiet', '--backend', 'cpu'];
const SLOW = 600_000;

const logs: string[] = [];
const log = (l: string) => logs.push(l);
afterEach(() => vi.restoreAllMocks());

const results = (dir: string): EvalResults => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
const records = (dir: string): ImageRecord[] =>
  readFileSync(join(dir, 'per_image.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('eval on the sample folder', () => {
  let full: string;
  let stderr = '';

  beforeAll(async () => {
    full = tmp();
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    });
    const args = ARGS.filter((a) => a !== '--quiet');
    const code = await runEvalCommand([...args, '--data', SAMPLE, '--batch', '4', '--out', full], log);
    spy.mockRestore();
    expect(code, logs.join('\n')).toBe(0);
  }, SLOW);

  it('writes the per-image lines, results, tables and plots', async () => {
    for (const f of ['per_image.jsonl', 'settings.json', 'results.json', 'results.md', 'results.csv', 'metrics.png', 'insertion.png', 'deletion.png']) {
      expect(existsSync(join(full, f)), f).toBe(true);
    }
    const recs = records(full);
    expect(recs).toHaveLength(12);
    expect(recs.map((r) => `${r.file}|${r.method}`)).toEqual(FILES.flatMap((f) => [`${f}|gradcam`, `${f}|shapleycam`]));
    for (const r of recs) {
      for (const k of ['AD', 'IC', 'ADD', 'Com', 'Coh', 'ADCC', 'Y', 'O', 'D', 'insertion_auc', 'deletion_auc'] as const) {
        expect(r[k], `${r.file} ${k}`).toBeGreaterThanOrEqual(0);
        expect(r[k], `${r.file} ${k}`).toBeLessThanOrEqual(1);
      }
      expect([0, 1]).toContain(r.IC);
      expect(r.insertion).toHaveLength(5);
      expect(r.deletion[0]).toBe(r.Y);
      expect(r.insertion[4]).toBe(r.Y);
      expect(r.road!.morf).toHaveLength(4);
      expect(r.road!.residual).toBeLessThan(1e-9);
      expect(Math.abs(r.road!.combined)).toBeLessThanOrEqual(0.5);
    }
    const res = results(full);
    expect(res.n).toBe(6);
    expect(Object.keys(res.methods)).toEqual(['gradcam', 'shapleycam']);
    for (const m of Object.values(res.methods)) {
      expect(Object.keys(m)).toEqual(['AD', 'IC', 'ADD', 'Com', 'Coh', 'ADCC', 'Insertion', 'Deletion', 'ROAD']);
      for (const [k, v] of Object.entries(m)) {
        expect(v, k).toBeGreaterThanOrEqual(k === 'ROAD' ? -50 : 0);
        expect(v, k).toBeLessThanOrEqual(k === 'ROAD' ? 50 : 100);
      }
    }
    // Percent, dataset ADCC from the means (as the paper).
    const g = recs.filter((r) => r.method === 'gradcam');
    const mean = (k: 'AD' | 'Coh' | 'Com') => g.reduce((s, r) => s + r[k], 0) / g.length;
    expect(res.methods.gradcam.AD).toBeCloseTo(100 * mean('AD'), 10);
    expect(res.methods.gradcam.ADCC).toBeCloseTo(300 / (1 / mean('Coh') + 1 / (1 - mean('Com')) + 1 / (1 - mean('AD'))), 10);
    expect(res.road!.percentages).toEqual([20, 40, 60, 80]);
    expect(res.curves.insertion.gradcam).toHaveLength(5);

    const md = readFileSync(join(full, 'results.md'), 'utf8');
    expect(md).toContain('Top-1 accuracy: 66.67% (4/6)');
    expect(md).toMatch(/\| gradcam \| [\d.]+ \|/);
    const csv = readFileSync(join(full, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('method,n,accuracy,AD,IC,ADD,Com,Coh,ADCC,Insertion,Deletion,ROAD');
    expect(csv).toHaveLength(3);

    for (const png of ['metrics.png', 'insertion.png', 'deletion.png']) {
      const img = await decodeImage(join(full, png));
      expect(img.width).toBeGreaterThan(300);
      // Both series colours (tab10 blue, orange) and black text/axes are drawn.
      const has = (r: number, gg: number, b: number) => {
        for (let i = 0; i < img.data.length; i += 3) if (img.data[i] === r && img.data[i + 1] === gg && img.data[i + 2] === b) return true;
        return false;
      };
      expect(has(31, 119, 180), png).toBe(true);
      expect(has(255, 127, 14), png).toBe(true);
      expect(has(0, 0, 0), png).toBe(true);
    }
  });

  it('reports the model\'s top-1 accuracy on the folder', async () => {
    E.setBackend(E.cpuBackend()); // the eval runs above chose theirs
    const model = await loadZooModel('resnet20_cifar10');
    const batch = await loadInputs(model.arch.preprocessing, FILES.map((f) => join(SAMPLE, f)), undefined, DEFAULT_MAX_PIXELS);
    const logits = await model.module.call(E.tensor(batch.data, batch.shape)).values();
    const labels = FILES.map((f) => CIFAR10_CLASSES.indexOf(f.split('/')[0]));
    let correct = 0;
    FILES.forEach((_, i) => {
      const row = Array.from(logits.subarray(i * 10, (i + 1) * 10));
      if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
    });
    expect(correct).toBe(4);
    const res = results(full);
    expect(res.correct).toBe(correct);
    expect(res.accuracy).toBeCloseTo((100 * correct) / 6, 12);
    expect(records(full).map((r) => r.label)).toEqual(labels.flatMap((l) => [l, l]));
  });

  it('shows a progress bar with rate and ETA on stderr', () => {
    expect(stderr).toMatch(/eval \[[#-]+\] 100% 6\/6 images \| [\d.]+ img\/s \| elapsed \d+:\d\d \| ETA \d+:\d\d/);
  });

  it('resumes a run stopped by --limit to exactly the uninterrupted results', async () => {
    const out = tmp();
    const base = [...ARGS, '--data', SAMPLE, '--batch', '4', '--out', out];
    expect(await runEvalCommand([...base, '--limit', '2'], log)).toBe(0);
    expect(results(out).n).toBe(2);
    const before = readFileSync(join(out, 'per_image.jsonl'), 'utf8');
    logs.length = 0;
    expect(await runEvalCommand([...base, '--resume'], log)).toBe(0);
    expect(logs.join('\n')).toContain('resume: 2 of 6 images already done');
    const after = readFileSync(join(out, 'per_image.jsonl'), 'utf8');
    expect(after.startsWith(before)).toBe(true); // finished images kept, not recomputed
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(readFileSync(join(full, 'results.json'), 'utf8'));
    expect(after).toBe(readFileSync(join(full, 'per_image.jsonl'), 'utf8'));
  }, SLOW);

  it('resumes a run whose per_image.jsonl was torn mid-line to exactly the uninterrupted results', async () => {
    const out = tmp();
    cpSync(full, out, { recursive: true });
    const path = join(out, 'per_image.jsonl');
    const text = readFileSync(path, 'utf8');
    // Keep images 0–3 whole, then the gradcam line of image 4 and half of its shapleycam line.
    const lines = text.split('\n');
    const cut = lines.slice(0, 9).join('\n').length + 1 + Math.floor(lines[9].length / 2);
    truncateSync(path, cut);
    logs.length = 0;
    expect(await runEvalCommand([...ARGS, '--data', SAMPLE, '--batch', '3', '--out', out, '--resume'], log)).toBe(0);
    const msg = logs.join('\n');
    expect(msg).toContain('torn last line');
    expect(msg).toContain('redoing 1 image(s) with only some methods written');
    expect(msg).toContain('resume: 4 of 6 images already done');
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(readFileSync(join(full, 'results.json'), 'utf8'));
  }, SLOW);

  it('refuses to resume with other settings, and to overwrite a run without --resume', async () => {
    const out = tmp();
    cpSync(full, out, { recursive: true });
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });
    const base = ['eval', '--model', 'resnet20_cifar10', '--steps', '4', '--road', '--seed', '3', '--quiet', '--backend', 'cpu', '--data', SAMPLE, '--out', out];
    expect(await main([...base, '--methods', 'gradcam', '--resume'])).toBe(1);
    expect(errors.join('')).toMatch(/settings differ .*methods: recorded \["gradcam","shapleycam"\], now \["gradcam"\]/);
    errors.length = 0;
    expect(await main([...base.map((a) => (a === '3' ? '4' : a)), '--methods', 'gradcam,shapleycam', '--resume'])).toBe(1);
    expect(errors.join('')).toMatch(/seed: recorded 3, now 4/);
    errors.length = 0;
    expect(await main([...base, '--methods', 'gradcam,shapleycam', '--target', 'logit', '--resume'])).toBe(1);
    expect(errors.join('')).toMatch(/target: recorded "rest", now "logit"/);
    errors.length = 0;
    expect(await main([...base, '--methods', 'gradcam,shapleycam'])).toBe(2);
    expect(errors.join('')).toMatch(/already holds results .*--resume/);
    // Nothing was lost.
    expect(readFileSync(join(out, 'per_image.jsonl'), 'utf8')).toBe(readFileSync(join(full, 'per_image.jsonl'), 'utf8'));
  });
});

describe('eval with a seeded method', () => {
  it('gives each image its own seed, so the batch size does not change the results', async () => {
    const a = tmp();
    const b = tmp();
    const args = ['--model', 'resnet20_cifar10', '--methods', 'random', '--steps', '2', '--quiet', '--backend', 'cpu', '--data', SAMPLE];
    expect(await runEvalCommand([...args, '--limit', '2', '--batch', '2', '--out', a], log)).toBe(0);
    expect(await runEvalCommand([...args, '--limit', '2', '--batch', '1', '--out', b], log)).toBe(0);
    expect(readFileSync(join(b, 'per_image.jsonl'), 'utf8')).toBe(readFileSync(join(a, 'per_image.jsonl'), 'utf8'));
    const c = tmp();
    expect(await runEvalCommand([...args, '--limit', '1', '--seed', '1', '--out', c], log)).toBe(0);
    expect(records(c)[0].Com).not.toBe(records(a)[0].Com);
  }, SLOW);
});

describe('eval usage and input errors', () => {
  const run = async (args: string[]) => {
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });
    const code = await main(['eval', ...args]);
    vi.restoreAllMocks();
    return { code, text: errors.join('') };
  };

  it('exits 2 on bad usage and 1 on bad input', async () => {
    expect((await run(['--out', tmp()])).code).toBe(2); // no --data
    expect((await run(['--data', SAMPLE])).code).toBe(2); // no --out
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--methods', 'nope'])).text).toMatch(/unknown method "nope"/);
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--limit', '0'])).code).toBe(2);
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--steps', '1'])).code).toBe(2);
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--bogus'])).code).toBe(2);
    const missing = await run(['--data', join(tmp(), 'nowhere'), '--out', tmp()]);
    expect(missing.code).toBe(1);
    expect(missing.text).toMatch(/data folder not found/);
    const empty = await run(['--data', tmp(), '--out', tmp()]);
    expect(empty.code).toBe(1);
    expect(empty.text).toMatch(/no class sub-folders/);
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--layer', 'layer9'])).code).toBe(1);
    expect((await run(['--data', SAMPLE, '--out', tmp(), '--max-pixels', 'many'])).code).toBe(2);
    const large = await run(['--data', SAMPLE, '--out', tmp(), '--max-pixels', '1000', '--backend', 'cpu']);
    expect(large.code).toBe(1);
    expect(large.text).toMatch(/airplane_0000\.png: 32×32 = 1,024 pixels, over the limit of 1,000 \(--max-pixels N raises the limit\)/);
  });
});

describe('dataset layouts', () => {
  const labels = CIFAR10_CLASSES;

  it('ImageFolder whose folder names are the model\'s labels: label indices', async () => {
    const d = await readDataset(SAMPLE, labels, 10);
    expect(d.layout).toBe('imagefolder');
    expect(d.items.map((i) => i.file)).toEqual(FILES);
    expect(d.items.map((i) => i.label)).toEqual([0, 1, 3, 5, 6, 8]);
  });

  it('ImageFolder with other names: sorted folder order', async () => {
    const dir = tmp();
    for (const [cls, f] of [['zebra', 'cat/cat_0000.png'], ['ant', 'dog/dog_0000.png'], ['ant', 'ship/ship_0002.png']]) {
      mkdirSync(join(dir, cls, 'sub'), { recursive: true });
      cpSync(join(SAMPLE, f), join(dir, cls, 'sub', f.split('/')[1]));
    }
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const d = await readDataset(dir, labels, 10);
    expect(d.items.map((i) => [i.file, i.label])).toEqual([
      ['ant/sub/dog_0000.png', 0],
      ['ant/sub/ship_0002.png', 0],
      ['zebra/sub/cat_0000.png', 1],
    ]);
    expect(d.classNames).toEqual(['ant', 'zebra']);
    await expect(readDataset(dir, labels, 1)).rejects.toThrow(/2 class folders but the model has 1/);
  });

  it('labels.json and index.json (the layout of shared/data/cifar10-sample)', async () => {
    const dir = tmp();
    cpSync(join(SAMPLE, FILES[2]), join(dir, 'cat_0000.png'));
    cpSync(join(SAMPLE, FILES[3]), join(dir, 'dog_0000.png'));
    writeFileSync(join(dir, 'labels.json'), JSON.stringify({ 'dog_0000.png': 5, 'cat_0000.png': 3 }));
    const a = await readDataset(dir, labels, 10);
    expect(a.layout).toBe('labels.json');
    expect(a.items.map((i) => [i.file, i.label])).toEqual([['cat_0000.png', 3], ['dog_0000.png', 5]]);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ classes: labels, images: [{ file: 'dog_0000.png', label: 5, class: 'dog' }] }));
    const b = await readDataset(dir, labels, 10);
    expect(b.layout).toBe('index.json');
    expect(b.items.map((i) => [i.file, i.label])).toEqual([['dog_0000.png', 5]]);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ images: [{ file: 'dog_0000.png', label: 12 }] }));
    await expect(readDataset(dir, labels, 10)).rejects.toThrow(DatasetError);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ images: [{ file: '../x.png', label: 1 }] }));
    await expect(readDataset(dir, labels, 10)).rejects.toThrow(/outside the folder/);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ images: [{ file: 'gone.png', label: 1 }] }));
    await expect(readDataset(dir, labels, 10)).rejects.toThrow(/not found/);
  });

  it('reads the team sample (test/fixtures/cifar10-sample: a copy of shared/data/cifar10-sample, index.json layout)', async () => {
    const d = await readDataset(join(FIXTURES, 'cifar10-sample'), labels, 10);
    expect(d.layout).toBe('index.json');
    expect(d.items).toHaveLength(100);
    expect(d.items[0]).toMatchObject({ file: 'airplane_0000.png', label: 0 });
  });
});
