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
afterEach(() => vi.restoreAllMocks());

const tmp = () => mkdtempSync(join(tmpdir(), 'cam-cli-'));

describe('explain', () => {
  it('writes maps, terms, overlays, a sheet and a summary for sample images', async () => {
    const out = tmp();
    const code = await main(['explain', '--image', ...images, '--method', 'shapleycam,gradcam', '--out', out]);
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
    expect(await main(['explain', '--image', images[0], '--method', 'gradcam,eigencam', '--out', out]), stderr.join('')).toBe(0);
    const terms = parseSafetensors(new Uint8Array(readFileSync(join(out, 'terms.safetensors'))));
    expect(terms.entry('hvp/layer3').shape).toEqual([1, 64, 8, 8]);
    expect(Array.from(terms.float32('hvp/layer3')).some((v) => v !== 0)).toBe(true);
  });

  it('reports a structurally zero H·A under the logit utility, and ShapleyCAM then equals GradCAM', async () => {
    const out = tmp();
    expect(await main(['explain', '--image', images[0], '--method', 'shapleycam,gradcam', '--target', 'logit', '--out', out])).toBe(0);
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
    expect(await main(['explain', '--input', inputPath, '--layer', 'layer3', '--layer', 'layer2', '--class', '4', '--out', out])).toBe(0);
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

describe('under Deno', () => {
  it('deno run -A cam/cli.ts explain gives the same maps as Node', async () => {
    const dir = tmp();
    const args = ['explain', '--image', images[0], images[1], '--method', 'shapleycam,gradcam++', '--out'];
    const r = spawnSync('npx', ['--no-install', 'deno', 'run', '-A', 'cam/cli.ts', ...args, join(dir, 'deno')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(await main([...args, join(dir, 'node')])).toBe(0);
    const read = (sub: string) => parseSafetensors(new Uint8Array(readFileSync(join(dir, sub, 'maps.safetensors'))));
    for (const key of ['cam/shapleycam', 'cam/gradcam++']) {
      expect(Array.from(read('deno').float32(key))).toEqual(Array.from(read('node').float32(key)));
    }
  });
});

