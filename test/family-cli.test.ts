// The CLI end to end for the family's methods, smoothing options and the `dff` command: the files and
// tensors written, what summary.json says, and bad usage (one line naming the flag, exit 2, nothing
// written).

import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cam/cli.ts';
import { parseSafetensors } from '../models/safetensors.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const images = ['cat_0000', 'dog_0000'].map((n) => join(FIXTURES, 'images', `${n}.png`));
let stderr: string[];

beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

const tmp = () => mkdtempSync(join(tmpdir(), 'cam-family-'));
const read = (path: string) => parseSafetensors(new Uint8Array(readFileSync(path)));
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('explain with the family’s methods', () => {
  it('writes every map (guided ones with 3 channels), overlays, and says what each method did', async () => {
    const out = tmp();
    const methods = 'fullgrad,guided-backprop,guided-gradcam,kpca-cam,fem,finer-cam,seg-eigencam,refine-cam';
    const code = await main(['explain', '--image', ...images, '--method', methods, '--layer', 'layer2', '--layer', 'layer3', '--base', 'shapleycam', '--backend', 'cpu', '--out', out]);
    expect(code, stderr.join('')).toBe(0);
    const maps = read(join(out, 'maps.safetensors'));
    for (const m of methods.split(',')) {
      const guided = m.startsWith('guided');
      expect(maps.entry(`cam/${m}`).shape, m).toEqual(guided ? [2, 3, 32, 32] : [2, 32, 32]);
      if (!guided) expect(Math.max(...maps.float32(`cam/${m}`)), m).toBeLessThanOrEqual(1);
      expect(existsSync(join(out, `000_cat_0000_${m}.png`)), m).toBe(true);
    }
    const s = json(join(out, 'summary.json'));
    expect(s.methods.fullgrad).toMatchObject({ layers_ignored: true, channels: 1 });
    expect(s.methods.fullgrad.bias_layers).toHaveLength(19);
    expect(s.methods['finer-cam'].base).toBe('shapleycam');
    expect(s.methods['refine-cam'].base).toBe('shapleycam');
    expect(s.methods['guided-backprop'].channels).toBe(3);
    expect(s.images[0].finer).toMatchObject({ main: 3, alpha: 1 });
    expect(s.images[0].finer.comparisons).toHaveLength(3);
    expect(stderr.join('')).toMatch(/fullgrad: ignores --layer/);
  });

  it('--aug-smooth keeps A, G and H·A of every augmentation in terms.safetensors; --eigen-smooth says where it does not apply', async () => {
    const out = tmp();
    const code = await main(['explain', '--image', images[0], '--method', 'shapleycam,eigencam', '--aug-smooth', '--eigen-smooth', '--backend', 'cpu', '--out', out]);
    expect(code, stderr.join('')).toBe(0);
    const terms = read(join(out, 'terms.safetensors'));
    const labels = ['noflip-x0.9', 'noflip-x1', 'noflip-x1.1', 'flip-x0.9', 'flip-x1', 'flip-x1.1'];
    for (const a of labels) for (const k of ['activations', 'gradients', 'hvp']) expect(terms.entry(`aug/${a}/${k}/layer3`).shape).toEqual([1, 64, 8, 8]);
    expect(Array.from(terms.float32('aug/noflip-x1/hvp/layer3'))).toEqual(Array.from(terms.float32('hvp/layer3')));
    expect(Array.from(terms.float32('aug/flip-x1.1/hvp/layer3'))).not.toEqual(Array.from(terms.float32('hvp/layer3')));
    expect(terms.metadata.augmentations).toMatch(/flip-x0.9: horizontal flip, input × 0.9/);
    const s = json(join(out, 'summary.json'));
    expect(s.aug_smooth).toBe(true);
    expect(s.augmentations.map((a: any) => a.label)).toEqual(labels);
    expect(s.methods.shapleycam.smoothed).toEqual({ aug: true, eigen: true });
    expect(s.methods.eigencam.smoothed).toEqual({ aug: true, eigen: false });
    expect(stderr.join('')).toMatch(/--eigen-smooth: not applied to eigencam/);
  });

  it('--kernel, --compare and --alpha reach the methods and the summary', async () => {
    const out = tmp();
    const code = await main(['explain', '--image', images[0], '--method', 'kpca-cam,finer-cam', '--kernel', 'rbf', '--compare', '2,4', '--alpha', '0.5', '--backend', 'cpu', '--out', out]);
    expect(code, stderr.join('')).toBe(0);
    const s = json(join(out, 'summary.json'));
    expect(s.method_options).toEqual({ kernel: 'rbf', compare: [2, 4], alpha: 0.5 });
    expect(s.images[0].finer.comparisons).toHaveLength(2);
    expect(s.images[0].finer.alpha).toBe(0.5);
  });
});

describe('dff', () => {
  it('writes the concepts, their heat maps and classes, a picture per image and a sheet', async () => {
    const out = tmp();
    const code = await main(['dff', '--image', ...images, '--layer', 'layer3', '--concepts', '3', '--top', '3', '--backend', 'cpu', '--out', out]);
    expect(code, stderr.join('')).toBe(0);
    const d = read(join(out, 'dff.safetensors'));
    expect(d.entry('concepts').shape).toEqual([64, 3]);
    expect(d.entry('explanations').shape).toEqual([2, 3, 8, 8]);
    expect(d.entry('maps').shape).toEqual([2, 3, 32, 32]);
    expect(d.entry('concept_scores').shape).toEqual([3, 10]);
    expect(d.entry('concept_top').shape).toEqual([3, 3]);
    expect(Math.min(...d.float32('explanations'))).toBeGreaterThanOrEqual(0);
    for (const f of ['000_cat_0000_dff.png', '001_dog_0000_dff.png', 'sheet.png']) expect(existsSync(join(out, f)), f).toBe(true);
    const s = json(join(out, 'summary.json'));
    expect(s).toMatchObject({ layer: 'layer3', head: 'linear', channels: 64 });
    expect(s.concepts[0].top).toHaveLength(3);
    expect(s.concepts[0].top[0].score).toBeGreaterThanOrEqual(s.concepts[0].top[1].score);
    expect(s.relative_error).toBeGreaterThan(0);
    expect(s.relative_error).toBeLessThan(1);
    expect(stderr.join('')).toMatch(/dff: 3 concepts of "layer3"/);
  });
});

describe('bad usage: one line naming the flag, exit 2, nothing written', () => {
  const explainWith = (...flags: string[]) => ['explain', '--image', images[0], '--backend', 'cpu', ...flags];
  const cases: [string, string[], RegExp][] = [
    ['refine-cam with one layer', explainWith('--method', 'refine-cam', '--layer', 'layer3'), /^error: --layer: refine-cam needs two or more target layers, got only "layer3"/m],
    ['refine-cam with the default layer', explainWith('--method', 'refine-cam'), /^error: --layer: refine-cam needs two or more target layers, got only the default one/m],
    ['unknown kernel', explainWith('--method', 'kpca-cam', '--kernel', 'laplace'), /^error: --kernel: expected one of sigmoid, rbf, poly, linear, cosine, got "laplace"/m],
    ['kernel without kpca-cam', explainWith('--method', 'gradcam', '--kernel', 'rbf'), /^error: --kernel: only kpca-cam uses it/m],
    ['compare rank 0', explainWith('--method', 'finer-cam', '--compare', '0,1'), /^error: --compare: expected distinct ranks ≥ 1/m],
    ['compare not numbers', explainWith('--method', 'finer-cam', '--compare', 'cat'), /^error: --compare: expected distinct ranks/m],
    ['compare repeated', explainWith('--method', 'finer-cam', '--compare', '1,1'), /^error: --compare: expected distinct ranks/m],
    ['compare beyond the classes', explainWith('--method', 'finer-cam', '--compare', '1,10'), /^error: --compare: rank 10 is beyond this model's 10 classes/m],
    ['negative alpha', explainWith('--method', 'finer-cam', '--alpha=-1'), /^error: --alpha: expected a number ≥ 0, got "-1"/m],
    ['alpha not a number', explainWith('--method', 'finer-cam', '--alpha', 'big'), /^error: --alpha: expected a number ≥ 0, got "big"/m],
    ['a base Finer-CAM cannot use', explainWith('--method', 'finer-cam', '--base', 'scorecam'), /^error: --base: finer-cam cannot run on "scorecam"/m],
    ['a base Refine-CAM cannot use', explainWith('--method', 'refine-cam', '--layer', 'layer2', '--layer', 'layer3', '--base', 'random'), /^error: --base: refine-cam cannot run on "random"/m],
    ['base without a meta-method', explainWith('--method', 'gradcam', '--base', 'gradcam'), /^error: --base: only finer-cam and refine-cam use it/m],
    ['dff: more concepts than channels', ['dff', '--image', images[0], '--layer', 'layer3', '--concepts', '65', '--backend', 'cpu'], /^error: --concepts: 65 concepts for layer "layer3", which has only 64 channels/m],
    ['dff: two layers', ['dff', '--image', images[0], '--layer', 'layer2', '--layer', 'layer3', '--concepts', '2'], /^error: --layer: dff factorises one layer, got 2/m],
    ['dff: no --concepts', ['dff', '--image', images[0]], /^error: --concepts N is required/m],
    ['dff: zero concepts', ['dff', '--image', images[0], '--concepts', '0'], /^error: --concepts: expected an integer ≥ 1, got "0"/m],
    ['eval: a 3-channel method', ['eval', '--data', FIXTURES, '--methods', 'gradcam,guided-backprop'], /^error: --methods: guided-backprop gives a 3-channel input-space map/m],
    ['eval: refine-cam with one layer', ['eval', '--data', FIXTURES, '--methods', 'refine-cam', '--layer', 'layer3'], /^error: --layer: refine-cam needs two or more target layers/m],
  ];
  for (const [name, argv, message] of cases) {
    it(name, async () => {
      const out = join(tmp(), 'out');
      expect(await main([...argv, '--out', out])).toBe(2);
      const text = stderr.join('');
      expect(text).toMatch(message);
      expect(text).not.toMatch(/\n\s+at /);
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }

  it('dff: an unknown --head is bad input (exit 1)', async () => {
    const out = join(tmp(), 'out');
    expect(await main(['dff', '--image', images[0], '--concepts', '2', '--head', 'classifier', '--backend', 'cpu', '--out', out])).toBe(1);
    expect(stderr.join('')).toMatch(/^error: --head: unknown layer "classifier"/m);
    expect(existsSync(out)).toBe(false);
  });
});
