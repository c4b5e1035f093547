// VGG-11 and VGG-16 through the command line on WebGPU (issue 17): their first classifier weight,
// [4096, 25088] = 411 MB, is larger than one storage binding on lavapipe (128 MiB), so every linear layer,
// transpose and matrix product touching it runs split (kernels/range-split.ts). The weights are seeded
// random values written to a temporary safetensors file by the engine's own writer (nothing large is
// committed); explain's maps must match the float64 CPU backend's, and eval must run to its tables.
//
// The binding limit is forced to 128 MiB in the subprocesses (ENGINE_WEBGPU_MAX_BINDING_BYTES), so the split
// runs on an adapter with larger bindings too. A tensor beyond the buffer limit is refused in one line.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import '../models/archs/index.ts';
import { getArchitecture } from '../models/registry.ts';
import { parseSafetensors, writeSafetensors, type TensorToWrite } from '../models/safetensors.ts';
import { FIXTURES } from './helpers/fixtures.ts';
import { rng } from './helpers/random.ts';
import { describeWebGpu } from './helpers/webgpu.ts';

const BINDING = 128 * 1024 * 1024;
const LAST_POOL: Record<string, string> = { vgg11: 'features.20', vgg16: 'features.30' };
const METHODS = ['gradcam', 'gradcam++', 'xgradcam', 'layercam', 'shapleycam'];
let dir: string;

/**
 * Seeded He-uniform weights (U(±√(6/fan_in)), biases 0) for every parameter of `arch`, written as F32. A
 * xorshift generator keeps 138 million values to a second or two.
 */
async function writeWeights(arch: string, path: string, seed: number): Promise<number> {
  const module = getArchitecture(arch).build();
  let s = seed >>> 0 || 1;
  const tensors: Record<string, TensorToWrite> = {};
  let largest = 0;
  for (const [name, spec] of module.tensors()) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (name.endsWith('weight')) {
      const bound = Math.sqrt(6 / (size / spec.shape[0]));
      for (let i = 0; i < size; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        data[i] = bound * (2 * ((s >>> 0) / 4294967296) - 1);
      }
    }
    tensors[name] = { dtype: 'F32', shape: [...spec.shape], data };
    largest = Math.max(largest, size * 4);
  }
  await writeSafetensors(path, tensors);
  return largest;
}

function cli(args: string[], env: Record<string, string> = {}): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cam/cli.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ENGINE_WEBGPU_MAX_BINDING_BYTES: String(BINDING), ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stderr: r.stderr };
}

const read = (path: string) => parseSafetensors(new Uint8Array(readFileSync(path)));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

describeWebGpu('VGG-11 and VGG-16 on WebGPU with the classifier weight larger than one binding', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vgg-webgpu-'));
    const r = rng(64);
    const x = Float32Array.from({ length: 3 * 64 * 64 }, () => 2 * r() - 1);
    await writeSafetensors(join(dir, 'input.safetensors'), { input: { dtype: 'F32', shape: [1, 3, 64, 64], data: x } });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const [arch, seed] of [['vgg11', 11], ['vgg16', 16]] as const) {
    it(`${arch}: explain on WebGPU matches the float64 CPU backend (maps, logits), and eval runs`, async () => {
      const weights = join(dir, `${arch}.safetensors`);
      const largest = await writeWeights(arch, weights, seed);
      expect(largest, 'the classifier weight exceeds the binding limit').toBeGreaterThan(BINDING);
      const explain = (backend: string) =>
        cli(['explain', '--arch', arch, '--weights', weights, '--input', join(dir, 'input.safetensors'), '--layer', LAST_POOL[arch],
          '--method', METHODS.join(','), '--backend', backend, '--out', join(dir, `${arch}-${backend}`)]);
      for (const backend of ['cpu', 'webgpu']) {
        const r = explain(backend);
        expect(r.code, `${arch} explain --backend ${backend}: ${r.stderr}`).toBe(0);
      }
      const [cpu, gpu] = ['cpu', 'webgpu'].map((b) => read(join(dir, `${arch}-${b}`, 'maps.safetensors')));
      const [cpuTerms, gpuTerms] = ['cpu', 'webgpu'].map((b) => read(join(dir, `${arch}-${b}`, 'terms.safetensors')));
      const logits = cpuTerms.float32('logits');
      const scale = Math.max(...Array.from(logits, Math.abs));
      expect(maxAbsDiff(gpuTerms.float32('logits'), logits), 'logits').toBeLessThan(1e-4 * scale);
      const diffs: string[] = [];
      for (const m of METHODS) {
        const d = maxAbsDiff(gpu.float32(`cam/${m}`), cpu.float32(`cam/${m}`));
        diffs.push(`${m} ${d.toExponential(2)}`);
        // Maps in [0, 1]: the fixture README's float32 tolerance.
        expect(d, `${arch} ${m}: max |map webgpu − cpu|`).toBeLessThan(1e-4);
      }
      console.log(`${arch} at 1×3×64×64, ${LAST_POOL[arch]}: max |map webgpu − cpu|: ${diffs.join(', ')}`);
      const summary = JSON.parse(readFileSync(join(dir, `${arch}-webgpu`, 'summary.json'), 'utf8'));
      expect(summary.adapter_limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
      expect(summary.adapter_limits.maxBufferSize).toBeGreaterThanOrEqual(largest);

      // eval on one sample image (224×224 after VGG's preprocessing), the shortest curves.
      const out = join(dir, `${arch}-eval`);
      const e = cli(['eval', '--arch', arch, '--weights', weights, '--data', join(FIXTURES, 'cifar10-sample'), '--methods', 'gradcam',
        '--limit', '1', '--steps', '2', '--backend', 'webgpu', '--out', out]);
      expect(e.code, `${arch} eval: ${e.stderr}`).toBe(0);
      const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      expect(JSON.stringify(results)).not.toMatch(/NaN|null/);
      rmSync(weights);
    }, 900_000);
  }

  it('a tensor beyond the buffer limit: one line naming it, its size and the limit, exit 1', () => {
    const r = cli(['explain', '--model', 'resnet20_cifar10', '--image', join(FIXTURES, 'images', 'cat_0000.png'), '--backend', 'webgpu', '--out', join(dir, 'limit')], {
      ENGINE_WEBGPU_MAX_BUFFER_BYTES: '100000',
    });
    expect(r.code).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: layer\d\.\d\.conv\d\.weight \[\d+,\d+,3,3\]: webgpu: upload of \[\d+\] needs \d+ bytes \(\d+ float32\), more than this device's maxBufferSize of 100000 bytes$/);
    expect(r.stderr).not.toMatch(/unexpected error/);
  });
});
