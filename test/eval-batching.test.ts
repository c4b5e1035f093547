// eval's scoring passes gather the perturbed inputs, curve steps and ROAD imputations of every image and
// method into forward passes of up to --max-batch rows. A row's score must not depend on the rows batched
// with it: the per-image records of --max-batch 1, a middle value (7: batches cut across images, methods
// and curves) and the default are identical, on the float64 CPU backend and on wasm (4 images in explain batches of 3), with every kind of pass
// (ADCC perturbations, curves, ROAD, ARCC's ROAD and the recomputed maps; a randomised method per image).

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../cam/cli.ts';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import { defaultMaxBatch } from '../cam/evaluation/scoring.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const SAMPLE = join(FIXTURES, 'eval-sample');
const SLOW = 600_000;
const tmp = () => mkdtempSync(join(tmpdir(), 'cam-eval-batching-'));
const log = () => {};

async function perImage(backend: string, maxBatch: string | null): Promise<string> {
  const out = tmp();
  const args = ['--model', 'resnet20_cifar10', '--data', SAMPLE, '--methods', 'gradcam,shapleycam,random', '--steps', '4', '--road', '--metrics', 'confidence,arcc',
    '--seed', '5', '--limit', '4', '--batch', '3', '--quiet', '--backend', backend, '--out', out];
  if (maxBatch) args.push('--max-batch', maxBatch);
  expect(await runEvalCommand(args, log)).toBe(0);
  return readFileSync(join(out, 'per_image.jsonl'), 'utf8');
}

describe.each(['cpu', 'wasm'])('eval --max-batch on %s', (backend) => {
  it('gives the same per-image records with --max-batch 1, 7 and the default', async () => {
    const byDefault = await perImage(backend, null);
    expect(byDefault.trim().split('\n')).toHaveLength(4 * 3);
    expect(await perImage(backend, '7')).toBe(byDefault);
    expect(await perImage(backend, '1')).toBe(byDefault);
  }, SLOW);
});

describe('the default --max-batch', () => {
  it('scales with the backend and the input size', () => {
    expect(defaultMaxBatch('wasm', 32, 32)).toBe(256);
    expect(defaultMaxBatch('cpu', 32, 32)).toBe(64);
    expect(defaultMaxBatch('wasm', 224, 224)).toBe(5);
    expect(defaultMaxBatch('cpu', 1024, 1024)).toBe(1);
  });
});

describe('eval --max-batch usage', () => {
  it('refuses a bad value, and the flag with --queue', async () => {
    const errors: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    });
    const zero = await main(['eval', '--data', SAMPLE, '--out', tmp(), '--max-batch', '0', '--backend', 'cpu']);
    const queued = await main(['eval', '--data', SAMPLE, '--out', tmp(), '--max-batch', '8', '--queue', 'redis://127.0.0.1:1', '--run', 'x']);
    vi.restoreAllMocks();
    expect(zero).toBe(2);
    expect(queued).toBe(2);
    expect(errors.join('')).toMatch(/--max-batch/);
    expect(errors.join('')).toMatch(/--max-batch is for local runs/);
  });
});
