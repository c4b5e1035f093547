// ScoreCAM's masked inputs and AblationCAM's ablated activations are scored across the batch's images in
// passes of up to `maxBatch` rows (cam/algorithm/row-scoring.ts). A row's score must not depend on the rows
// batched with it: maps, raw maps and weights are identical with max batch 1 (one row per pass), 7 (passes
// cut across images and across AblationCAM's chunks of 32 channels) and the default (all of a batch's rows
// in one pass on wasm), on the float64 CPU backend and on wasm; at a layer inside a residual block (the replay reads the block's input from the
// capture pass, taken per row for its image) and on a ViT (class token and residual stream read the same
// way); and eval's per-image records with both methods do not depend on --max-batch. The maps themselves are
// checked against PyTorch's in test/cam-fixtures.test.ts and test/cam-vit.test.ts.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as E from '../engine/index.ts';
import { createExplainer, type Explainer } from '../api/index.ts';
import { explain, type Explanation } from '../cam/algorithm/explain.ts';
import { main } from '../cam/cli.ts';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import { activationLayout } from '../models/registry.ts';
import { loadModel } from '../models/zoo.ts';
import { FIXTURES, fixture } from './helpers/fixtures.ts';

const SLOW = 600_000;
const METHODS = ['scorecam', 'ablationcam'];
const images = ['bird_0006', 'dog_0000', 'frog_0002'].map((n) => join(FIXTURES, 'cifar10-sample', `${n}.png`));
const tmp = () => mkdtempSync(join(tmpdir(), 'cam-score-batching-'));

/** Every number of the methods' results: final maps, and per layer the raw maps and channel weights. */
function results(e: Explanation): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const m of METHODS) {
    const r = e.methods.get(m)!;
    out[`${m} maps`] = r.maps.flatMap((map) => Array.from(map));
    for (const [layer, raw] of r.raw) out[`${m} ${layer} raw`] = Array.from(raw);
    for (const [layer, w] of r.weights) out[`${m} ${layer} weights`] = Array.from(w);
  }
  return out;
}

// The float64 CPU backend is slow at ScoreCAM (a full forward per channel and image): fewer images and one layer there.
const EXPLAIN_CASES = [
  { backend: 'cpu', images: 2, layers: ['layer3.2.conv1'] },
  { backend: 'wasm', images: 3, layers: ['layer3', 'layer3.2.conv1'] },
] as const;

describe.each(EXPLAIN_CASES)('ScoreCAM and AblationCAM in passes of maxBatch rows on $backend', ({ backend, images: count, layers }) => {
  let explainer: Explainer;
  beforeAll(async () => {
    explainer = await createExplainer({ model: 'resnet20_cifar10', backend, layers });
  });
  afterAll(() => explainer.dispose());

  it('gives the same maps, raw maps and weights with max batch 1, 7 and the default', async () => {
    const run = async (maxBatch?: number) => results((await explainer.explain(images.slice(0, count), { methods: METHODS, ...(maxBatch ? { maxBatch } : {}) })).raw);
    const byDefault = await run();
    for (const layer of layers) {
      expect(byDefault[`ablationcam ${layer} weights`]).toHaveLength(count * 64);
      expect(byDefault[`scorecam ${layer} weights`]).toHaveLength(count * 64);
    }
    expect(await run(7)).toEqual(byDefault);
    expect(await run(1)).toEqual(byDefault);
  }, SLOW);
});

describe('ScoreCAM and AblationCAM on a ViT in passes of maxBatch rows', () => {
  it('gives the same results with max batch 1, 7 and the default (class token and residual stream per row)', async () => {
    const arch = fixture('arch_vit_b16');
    const layers: string[] = fixture('cam_vit_b16').meta.layers;
    const model = await loadModel('vit_b_16', join(FIXTURES, 'arch_vit_b16.weights.safetensors'));
    const input = E.tensor(arch.file.float32('input'), arch.file.entry('input').shape);
    expect(input.shape[0]).toBeGreaterThan(1);
    const run = async (maxBatch?: number) =>
      results(await explain({ module: model.module, input, layers, methods: METHODS, target: 'rest', layout: (l) => activationLayout(model.arch, l), maxBatch }));
    const byDefault = await run();
    expect(await run(7)).toEqual(byDefault);
    expect(await run(1)).toEqual(byDefault);
    input.dispose();
    model.module.disposeParameters();
  }, SLOW);
});

const EVAL_CASES = [
  { backend: 'cpu', limit: 2 },
  { backend: 'wasm', limit: 3 },
] as const;

describe.each(EVAL_CASES)('eval --methods scorecam,ablationcam --max-batch on $backend', ({ backend, limit }) => {
  async function perImage(maxBatch: string | null): Promise<string> {
    const out = tmp();
    const args = ['--model', 'resnet20_cifar10', '--data', join(FIXTURES, 'eval-sample'), '--methods', METHODS.join(','), '--steps', '2',
      '--limit', String(limit), '--batch', '2', '--quiet', '--backend', backend, '--out', out];
    if (maxBatch) args.push('--max-batch', maxBatch);
    expect(await runEvalCommand(args, () => {})).toBe(0);
    return readFileSync(join(out, 'per_image.jsonl'), 'utf8');
  }

  it('gives the same per-image records with --max-batch 1, 7 and the default', async () => {
    const byDefault = await perImage(null);
    expect(byDefault.trim().split('\n')).toHaveLength(limit * 2);
    expect(await perImage('7')).toBe(byDefault);
    expect(await perImage('1')).toBe(byDefault);
  }, SLOW);
});

describe('max batch: bad values', () => {
  it('explain --max-batch 0 is bad usage (exit 2, one line naming the flag)', async () => {
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });
    const code = await main(['explain', '--image', images[0], '--method', 'scorecam', '--max-batch', '0', '--backend', 'cpu', '--out', tmp()]);
    vi.restoreAllMocks();
    expect(code).toBe(2);
    expect(errors.join('')).toMatch(/--max-batch/);
  });

  it('the API refuses maxBatch 0 or 2.5 with a RangeError', async () => {
    const explainer = await createExplainer({ model: 'resnet20_cifar10', backend: 'cpu' });
    await expect(explainer.explain(images[0], { methods: ['scorecam'], maxBatch: 0 })).rejects.toThrow(/maxBatch must be an integer ≥ 1, got 0/);
    await expect(explainer.explain(images[0], { methods: ['scorecam'], maxBatch: 2.5 })).rejects.toThrow(RangeError);
    explainer.dispose();
  });
});
