// The CAM CLI end to end on the shipped model and sample images: files written, their contents, the
// summary, and the error paths with their exit codes.

import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cam/cli.ts';
import { parseSafetensors, serializeSafetensors } from '../models/safetensors.ts';
import { FIXTURES, fixture } from './helpers/fixtures.ts';
import { probeAdapter } from '../engine/webgpu/device.ts';
import { autoBackend } from '../engine/backend-choice.ts';
import { writeFileSync } from 'node:fs';

const images = ['cat_0000', 'dog_0000', 'ship_0000'].map((n) => join(FIXTURES, 'images', `${n}.png`));
let stderr: string[];

beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

const tmp = () => mkdtempSync(join(tmpdir(), 'cam-cli-'));

describe('explain', () => {
  it('writes maps, terms, overlays, a sheet and a summary for sample images', async () => {
    const out = tmp();
    const code = await main(['explain', '--image', ...images, '--method', 'shapleycam,gradcam', '--backend', 'cpu', '--out', out]);
    expect(code, stderr.join('')).toBe(0);
    for (const f of ['maps.safetensors', 'terms.safetensors', 'sheet.png', 'summary.json', '000_cat_0000_shapleycam.png', '002_ship_0000_gradcam.png']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const maps = parseSafetensors(new Uint8Array(readFileSync(join(out, 'maps.safetensors'))));
    expect(maps.entry('cam/shapleycam').shape).toEqual([3, 32, 32]);
    const m = maps.float32('cam/shapleycam');
    expect(Math.min(...m)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...m)).toBeLessThanOrEqual(1);
    expect(maps.entry('second_order/layer3').shape).toEqual([3, 8, 8]);
    const terms = parseSafetensors(new Uint8Array(readFileSync(join(out, 'terms.safetensors'))));
    expect(terms.entry('logits').shape).toEqual([3, 10]);
    for (const k of ['activations', 'gradients', 'hvp']) expect(terms.entry(`${k}/layer3`).shape).toEqual([3, 64, 8, 8]);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.images.map((i: any) => i.predicted.name)).toEqual(['cat', 'dog', 'ship']);
    expect(summary.images[0].probability).toBeGreaterThan(0.5);
    expect(summary.layers[0]).toMatchObject({ layer: 'layer3', hvp_structurally_zero: false });
    expect(Object.keys(summary.methods)).toEqual(['shapleycam', 'gradcam']);
  });

  it('writes gradients and H·A to terms.safetensors even when no method needs them', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam,eigencam', '--backend', 'cpu', '--out', out]), stderr.join('')).toBe(0);
    const terms = parseSafetensors(new Uint8Array(readFileSync(join(out, 'terms.safetensors'))));
    expect(terms.entry('hvp/layer3').shape).toEqual([1, 64, 8, 8]);
    expect(Array.from(terms.float32('hvp/layer3')).some((v) => v !== 0)).toBe(true);
  });

  it('reports a structurally zero H·A under the logit utility, and ShapleyCAM then equals GradCAM', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'shapleycam,gradcam', '--target', 'logit', '--backend', 'cpu', '--out', out])).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.layers[0].hvp_structurally_zero).toBe(true);
    const maps = parseSafetensors(new Uint8Array(readFileSync(join(out, 'maps.safetensors'))));
    expect(Array.from(maps.float32('cam/shapleycam'))).toEqual(Array.from(maps.float32('cam/gradcam')));
  });

  it('takes a preprocessed input tensor, several layers and a fixed class', async () => {
    const f = fixture('case1_resnet20_cifar10_public').file;
    const dir = tmp();
    const inputPath = join(dir, 'input.safetensors');
    writeFileSync(inputPath, serializeSafetensors({ input: { dtype: 'F32', shape: [2, 3, 32, 32], data: f.float32('input').subarray(0, 2 * 3 * 32 * 32) } }));
    const out = join(dir, 'out');
    expect(await main(['explain', '--input', inputPath, '--layer', 'layer3', '--layer', 'layer2', '--class', '4', '--backend', 'cpu', '--out', out])).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.images.map((i: any) => i.class.index)).toEqual([4, 4]);
    expect(summary.layers.map((l: any) => l.layer)).toEqual(['layer3', 'layer2']);
    const terms = parseSafetensors(new Uint8Array(readFileSync(join(out, 'terms.safetensors'))));
    expect(terms.entry('hvp/layer2').shape).toEqual([2, 32, 16, 16]);
  });
});

describe('errors: one line, no stack, the contract exit codes', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['unknown flag', ['explain', '--bogus'], 2, /Unknown option '--bogus'/],
    ['unknown method', ['explain', '--image', images[0], '--method', 'nocam', '--out', '/tmp/x'], 2, /unknown method "nocam"/],
    ['bad target', ['explain', '--image', images[0], '--target', 'prob', '--out', '/tmp/x'], 2, /--target/],
    ['missing --out', ['explain', '--image', images[0]], 2, /--out DIR is required/],
    ['no inputs', ['explain', '--out', '/tmp/x'], 2, /at least one --image/],
    ['unknown model', ['explain', '--model', 'resnet99', '--image', images[0], '--out', '/tmp/x'], 2, /unknown model "resnet99"/],
    ['missing image', ['explain', '--image', '/nonexistent/cat.png', '--out', '/tmp/x'], 1, /\/nonexistent\/cat.png: image not found/],
    ['unknown layer lists close ones', ['explain', '--image', images[0], '--layer', 'layer3.2.conv', '--out', '/tmp/x'], 1, /unknown layer "layer3.2.conv"; closest valid layers: layer3.2.conv1/],
    ['bad weights', ['explain', '--arch', 'resnet20', '--weights', join(FIXTURES, 'case3_tinycnn_public.weights.safetensors'), '--image', images[0], '--out', '/tmp/x'], 1, /missing \d+ .*unexpected/],
    ['unreadable image', ['explain', '--image', join(FIXTURES, 'case1_resnet20_cifar10_public.json'), '--out', '/tmp/x'], 1, /case1_resnet20_cifar10_public.json/],
  ];
  for (const [name, argv, code, message] of cases) {
    it(name, async () => {
      expect(await main(argv)).toBe(code);
      const text = stderr.join('');
      expect(text).toMatch(message);
      expect(text).not.toMatch(/\n\s+at /);
      expect(text.split('\n')[0].startsWith('error: ')).toBe(true);
    });
  }

  it('as a process: exit status and stderr', () => {
    const r = spawnSync('npx', ['tsx', 'cam/cli.ts', 'explain', '--image', '/nonexistent.png', '--out', '/tmp/x'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')[0]).toBe('error: /nonexistent.png: image not found');
  });
});

describe('images over the pixel limit', () => {
  /** A PNG header declaring width × height pixels (a decompression bomb needs nothing more to be refused). */
  const pngHeader = (width: number, height: number) => {
    const b = Buffer.alloc(33);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
    b.writeUInt32BE(13, 8);
    b.write('IHDR', 12, 'latin1');
    b.writeUInt32BE(width, 16);
    b.writeUInt32BE(height, 20);
    b[24] = 8; // bit depth
    b[25] = 2; // RGB
    return b;
  };

  it('refuses a 14,000 × 14,000 PNG before decoding: one line naming the file and its size, exit 1', async () => {
    const bomb = join(tmp(), 'bomb.png');
    writeFileSync(bomb, pngHeader(14000, 14000));
    const t0 = performance.now();
    expect(await main(['explain', '--image', bomb, '--backend', 'cpu', '--out', tmp()])).toBe(1);
    expect(performance.now() - t0).toBeLessThan(20_000); // refused, not decoded (it took 40 s and 9.8 GB)
    const text = stderr.join('');
    expect(text.split('\n')[0]).toBe(`error: ${bomb}: 14000×14000 = 196,000,000 pixels, over the limit of 89,478,485 (--max-pixels N raises the limit)`);
    expect(text).not.toMatch(/unexpected error|\n\s+at /);
  });

  it('--max-pixels sets the limit: a 32 × 32 image passes at 1024 and is refused at 1023', async () => {
    expect(await main(['explain', '--image', images[0], '--max-pixels', '1023', '--backend', 'cpu', '--out', tmp()])).toBe(1);
    expect(stderr.join('')).toMatch(/cat_0000\.png: 32×32 = 1,024 pixels, over the limit of 1,023/);
    stderr.length = 0;
    expect(await main(['explain', '--image', images[0], '--max-pixels', '1024', '--method', 'gradcam', '--backend', 'cpu', '--out', tmp()]), stderr.join('')).toBe(0);
    expect(await main(['explain', '--image', images[0], '--max-pixels', '0', '--out', tmp()])).toBe(2);
  });
});

describe('backend choice', () => {
  const backendLines = () => stderr.join('').split('\n').filter((l) => l.startsWith('backend: '));

  it('auto by default: WebGPU on a hardware adapter, else wasm; one stderr line says which, summary.json records it', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam', '--out', out]), stderr.join('')).toBe(0);
    const lines = backendLines();
    expect(lines).toHaveLength(1);
    const m = /^backend: (wasm|webgpu) \(auto: (.+)\)$/.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    expect(m![1]).toBe(autoBackend(await probeAdapter()).backend);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ backend: m![1], backend_choice: 'auto', backend_reason: m![2] });
  });

  it('--backend (or ENGINE_BACKEND) names one; anything else is bad usage', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam', '--backend', 'cpu', '--out', out])).toBe(0);
    expect(backendLines()).toEqual(['backend: cpu (as asked)']);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toMatchObject({ backend: 'cpu', backend_choice: 'cpu' });
    stderr.length = 0;
    vi.stubEnv('ENGINE_BACKEND', 'cpu');
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam', '--out', tmp()])).toBe(0);
    expect(backendLines()).toEqual(['backend: cpu (as asked)']);
    stderr.length = 0;
    vi.stubEnv('ENGINE_BACKEND', 'wasm');
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam', '--out', tmp()])).toBe(0);
    expect(backendLines()).toEqual(['backend: wasm (as asked)']);
    vi.stubEnv('ENGINE_BACKEND', 'tpu');
    expect(await main(['explain', '--image', images[0], '--out', tmp()])).toBe(2);
    expect(stderr.join('')).toMatch(/ENGINE_BACKEND: expected auto, cpu, webgpu, wasm, got "tpu"/);
    vi.unstubAllEnvs();
    expect(await main(['explain', '--image', images[0], '--backend', 'tpu', '--out', tmp()])).toBe(2);
    expect(stderr.join('')).toMatch(/--backend: expected auto, cpu, webgpu, wasm, got "tpu"/);
  });
});

describe('under Deno', () => {
  it('deno run -A cam/cli.ts explain gives the same maps as Node', async () => {
    const dir = tmp();
    // Both on the CPU backend (auto would pick Dawn under Node and wgpu under Deno: not bit-identical).
    const args = ['explain', '--image', images[0], images[1], '--method', 'shapleycam,gradcam++', '--backend', 'cpu', '--out'];
    const r = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'cam/cli.ts', ...args, join(dir, 'deno')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(await main([...args, join(dir, 'node')])).toBe(0);
    const read = (sub: string) => parseSafetensors(new Uint8Array(readFileSync(join(dir, sub, 'maps.safetensors'))));
    for (const key of ['cam/shapleycam', 'cam/gradcam++']) {
      expect(Array.from(read('deno').float32(key))).toEqual(Array.from(read('node').float32(key)));
    }
  });
});

