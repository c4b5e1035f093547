// The CAM pipeline on the wasm backend (float32 WebAssembly SIMD on every core) against the PyTorch
// fixtures at float32 tolerances and the CPU reference, and the CLI with --backend wasm under Node and Deno
// (test/helpers/cam-suite.ts, shared with test/cam-webgpu.test.ts); plus `eval` on wasm.

import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { runEvalCommand } from '../cam/cli/commands/eval.ts';
import type { ImageRecord } from '../cam/evaluation/report.ts';
import type { WasmBackend } from '../engine/wasm/backend.ts';
import { camCliSuite, camFixtureSuite, type BackendUnderTest } from './helpers/cam-suite.ts';
import { FIXTURES, absErr } from './helpers/fixtures.ts';
import { wasmBackend } from './helpers/wasm.ts';

const wasm: BackendUnderTest = {
  name: 'wasm',
  describe,
  start: () => wasmBackend(2),
  reservedBytes: (b) => (b as WasmBackend).memorySize,
  // Node and Deno run the same module, and every sum runs in a fixed order whatever the thread count.
  denoBitwise: true,
};

camFixtureSuite(wasm);
camCliSuite(wasm);

describe("the README's first command without a GPU", () => {
  it('runs on wasm when WebGPU finds no adapter, and says so on stderr and in summary.json', () => {
    const out = mkdtempSync(join(tmpdir(), 'cam-readme-'));
    const images = readdirSync('samples/cifar10').filter((f) => f.endsWith('.png')).map((f) => join('samples/cifar10', f));
    // No Vulkan driver for Dawn to find: what a machine without a GPU (and without lavapipe) offers.
    const r = spawnSync('npx', ['--no-install', 'tsx', 'cam/cli.ts', 'explain', '--image', ...images, '--method', 'shapleycam,gradcam,hirescam', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, VK_ICD_FILENAMES: join(out, 'no-such-driver.json'), ENGINE_BACKEND: '' },
      timeout: 300_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('backend: wasm (auto: no WebGPU adapter)');
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ backend: 'wasm', backend_choice: 'auto', backend_reason: 'no WebGPU adapter' });
    expect(summary.images).toHaveLength(10);
    expect(existsSync(join(out, 'sheet.png'))).toBe(true);
  }, 300_000);
});

describe('eval with --backend wasm', () => {
  const records = (dir: string): ImageRecord[] => readFileSync(join(dir, 'per_image.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('gives the per-image scores of the CPU reference within float32 rounding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cam-eval-wasm-'));
    const args = ['--model', 'resnet20_cifar10', '--data', join(FIXTURES, 'eval-sample'), '--methods', 'gradcam,shapleycam', '--steps', '4', '--limit', '3', '--quiet'];
    const quiet = () => {};
    expect(await runEvalCommand([...args, '--backend', 'cpu', '--out', join(dir, 'cpu')], quiet)).toBe(0);
    expect(await runEvalCommand([...args, '--backend', 'wasm', '--out', join(dir, 'wasm')], quiet)).toBe(0);
    E.setBackend(E.cpuBackend());
    const ref = records(join(dir, 'cpu'));
    const got = records(join(dir, 'wasm'));
    expect(got.map((r) => `${r.file}|${r.method}`)).toEqual(ref.map((r) => `${r.file}|${r.method}`));
    for (let i = 0; i < ref.length; i++) {
      const what = `${ref[i].file} ${ref[i].method}`;
      expect(got[i].IC, `${what} IC`).toBe(ref[i].IC);
      // Probabilities, scores and curve areas in [0, 1] from maps equal within 1e-4: within 1e-4 too.
      for (const k of ['Y', 'O', 'D', 'AD', 'ADD', 'Com', 'Coh', 'ADCC', 'insertion_auc', 'deletion_auc'] as const) {
        expect(Math.abs(got[i][k] - ref[i][k]), `${what} ${k}`).toBeLessThan(1e-4);
      }
      expect(absErr(got[i].insertion, ref[i].insertion), `${what} insertion`).toBeLessThan(1e-4);
      expect(absErr(got[i].deletion, ref[i].deletion), `${what} deletion`).toBeLessThan(1e-4);
    }
  }, 300_000);
});
