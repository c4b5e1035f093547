// The browser page's engine side (web/src/session.ts) under Node, on the CPU backend: what the page offers
// comes from the registries, the page's backend rule, and bad input that changes nothing (a model that
// does not load, a file that is not an image, a missing layer, an unknown class). The same code runs in the
// page's worker; test/web-browser.test.ts drives it there.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { METHODS, METHOD_NAMES } from '../cam/algorithm/methods/index.ts';
import { TARGETS } from '../cam/algorithm/targets.ts';
import { encodePng } from '../cam/rendering/codec.ts';
import { createImage } from '../cam/rendering/image.ts';
import { parseSafetensors } from '../models/safetensors.ts';
import { setFusion } from '../models/fusion-switch.ts';
import { architectureNames } from '../models/registry.ts';
import { backendOptions, pageBackend } from '../web/src/backend-rule.ts';
import { Session } from '../web/src/session.ts';
import type { RunRequest } from '../web/src/protocol.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const cat = new Uint8Array(readFileSync(join(FIXTURES, 'images', 'cat_0000.png')));
const wrongWeights = new Uint8Array(readFileSync(join(FIXTURES, 'arch_resnet18_1ch.weights.safetensors')));

describe("the page's backend rule", () => {
  it('WebGPU whenever there is an adapter, else wasm when cross-origin isolated, else the CPU', () => {
    const gpu = { adapter: 'google swiftshader (software)', crossOriginIsolated: true };
    expect(pageBackend('auto', gpu).backend).toBe('webgpu');
    expect(pageBackend('auto', { adapter: null, crossOriginIsolated: true }).backend).toBe('wasm');
    expect(pageBackend('auto', { adapter: null, crossOriginIsolated: false }).backend).toBe('cpu');
    expect(pageBackend('cpu', gpu)).toEqual({ backend: 'cpu', reason: null });
    const options = backendOptions({ adapter: null, crossOriginIsolated: false });
    expect(options.filter((o) => !o.available).map((o) => o.name)).toEqual(['webgpu', 'wasm']);
  });
});

describe('a page session (CPU backend)', () => {
  const session = new Session();
  let imageId: number;
  const request = (over: Partial<RunRequest> = {}): RunRequest => ({
    images: [imageId],
    methods: ['shapleycam', 'gradcam'],
    layer: 'layer3',
    target: 'rest',
    className: null,
    fitToInput: true,
    ...over,
  });
  const quiet = () => undefined;

  beforeAll(async () => {
    await session.load({ zoo: 'resnet20_cifar10' }, 'cpu');
    imageId = session.addImage('cat_0000.png', cat).id;
  });

  it('offers every method, architecture and utility of the registries, the ShapleyCAM family marked', async () => {
    const catalog = await session.catalog();
    expect(catalog.methods.map((m) => m.name)).toEqual(METHOD_NAMES);
    expect(catalog.methods.filter((m) => m.family).map((m) => m.name)).toEqual(METHODS.filter((m) => m.needsHvp).map((m) => m.name));
    expect(catalog.architectures).toEqual(architectureNames());
    expect(catalog.targets).toEqual([...TARGETS]);
    expect(catalog.zoo.map((z) => z.name)).toEqual(['resnet20_cifar10', 'resnet56_cifar10']);
  });

  it('a run gives overlays per method, the terms picture, and the files the CLI writes', async () => {
    const steps: string[] = [];
    const outcome = await session.run(request(), (done, total, what) => steps.push(`${done}/${total} ${what}`));
    expect(steps).toEqual(['1/4 layer3: forward, G, H·A', '2/4 layer3: shapleycam', '3/4 layer3: gradcam']);
    const [image] = outcome.images;
    expect(image.overlays.map((o) => o.method)).toEqual(['shapleycam', 'gradcam']);
    expect(image.top5.map((c) => c.label)[0]).toBe('cat');
    expect(image.terms).not.toBeNull();
    const maps = parseSafetensors(outcome.files.maps);
    expect(maps.names).toEqual(expect.arrayContaining(['cam/shapleycam', 'cam/gradcam', 'first_order/layer3', 'second_order/layer3']));
    expect(parseSafetensors(outcome.files.terms).entry('hvp/layer3').shape).toEqual([1, 64, 8, 8]);
    expect(outcome.steps.map((s) => s.what)).toContain('layer3: forward, G, H·A');
    expect(outcome.fused).toBe(true);
    expect(outcome.dispatches, 'the CPU backend counts no dispatches').toBeNull();
    expect((await session.run(request({ methods: ['gradcam'] }), quiet)).images[0].terms).toBeNull();
  });

  it('reports whether the run was fused, as the fusion switch says', async () => {
    setFusion(false);
    try {
      expect((await session.run(request({ methods: ['gradcam'] }), quiet)).fused).toBe(false);
    } finally {
      setFusion(null);
    }
    expect((await session.run(request({ methods: ['gradcam'] }), quiet)).fused).toBe(true);
  });

  it('fits a photo to a CIFAR model\'s 32×32 input (shorter side, centre crop), or runs it at its own size', async () => {
    const photo = createImage(96, 64);
    for (let i = 0; i < photo.data.length; i++) photo.data[i] = (i * 37) % 251;
    const id = session.addImage('photo.png', encodePng(photo)).id;
    const fitted = await session.run(request({ images: [id], methods: ['gradcam'] }), quiet);
    expect([fitted.images[0].picture.width, fitted.images[0].picture.height]).toEqual([32, 32]);
    const full = await session.run(request({ images: [id], methods: ['gradcam'], fitToInput: false }), quiet);
    expect([full.images[0].picture.width, full.images[0].picture.height]).toEqual([96, 64]);
    session.removeImage(id);
    await expect(session.run(request({ images: [id] }), quiet)).rejects.toThrow(`image ${id} was removed`);
  });

  it('bad input is a one-line error and changes nothing', async () => {
    const before = await session.run(request(), quiet);
    // On another backend: the engine switches to it before the weights fail; the kept model stays on the CPU.
    await expect(session.load({ arch: 'resnet20', weights: { name: 'wrong.safetensors', bytes: wrongWeights } }, 'wasm')).rejects.toThrow(/^wrong\.safetensors: missing/);
    expect(() => session.addImage('notes.txt', new TextEncoder().encode('notes'))).toThrow('notes.txt: unsupported image format (expected PNG or JPEG signature)');
    await expect(session.run(request({ layer: 'layer4' }), quiet)).rejects.toThrow(/^unknown layer "layer4"; closest valid layers: /);
    await expect(session.run(request({ className: 'unicorn' }), quiet)).rejects.toThrow(/"unicorn" is not one of the model's labels/);
    const after = await session.run(request(), quiet);
    expect(Array.from(parseSafetensors(after.files.maps).float32('cam/shapleycam'))).toEqual(Array.from(parseSafetensors(before.files.maps).float32('cam/shapleycam')));
  });

  it('a class by name, another layer (on the model\'s backend, after a load on another failed)', async () => {
    const outcome = await session.run(request({ className: 'dog', layer: 'layer2' }), quiet);
    expect(outcome.images[0].explained.label).toBe('dog');
    expect(outcome.backend.name).toBe('cpu');
    expect(outcome.layers[0]).toMatchObject({ layer: 'layer2', shape: [1, 32, 16, 16], hvpStructurallyZero: false });
  });
});
