// The browser inspector in a real browser: the site is built (vite), served on a loopback port with the
// COOP/COEP headers, and driven in Debian's headless Chromium (playwright-core, the system executable, a
// fresh profile) on its WebGPU adapter (SwiftShader). The maps the page offers for download are compared
// with the CLI's on the same inputs within the CLI's own WebGPU-vs-CPU tolerances; the layer picker, a
// utility change, the structural-zero badge and bad input (weights, a non-image, a missing layer) are
// exercised; any console error fails the run. Screenshots go to test-results/web/.
//
// Without Chromium (scripts/install-chromium.sh installs it) the suite is skipped with a loud warning,
// except under CI=true, where that is a failure.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../cam/cli.ts';
import { decodeImageBytes } from '../cam/rendering/codec.ts';
import { parseSafetensors, type SafetensorsFile } from '../models/safetensors.ts';
import { FIXTURES, absErr, relErr } from './helpers/fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const repo = fileURLToPath(new URL('..', import.meta.url));
const samples = ['cat_0001', 'dog_0001'].map((n) => join(repo, 'samples', 'cifar10', `${n}.png`));
const wrongWeights = join(FIXTURES, 'arch_resnet18_1ch.weights.safetensors');
const shots = join(repo, 'test-results', 'web');
/** A SwiftShader run compiles every pipeline first: generous bounds, the machine is shared. */
const RUN_TIMEOUT = 240_000;

const chromiumFlags = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

function describeWithChromium(name: string, body: () => void): void {
  if (existsSync(CHROMIUM)) {
    describe(name, body);
    return;
  }
  if (isCI) {
    describe(name, () => it('needs Chromium', () => expect.fail(`${CHROMIUM} missing: run scripts/install-chromium.sh`)));
    return;
  }
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n!! ${name} SKIPPED: no ${CHROMIUM}\n!! Install it: sudo bash scripts/install-chromium.sh. Under CI=true this is a failure.\n${bar}\n`);
  describe.skip(name, body);
}

const read = (path: string) => parseSafetensors(new Uint8Array(readFileSync(path)), basename(path));

/** The CLI on the CPU backend (the float64 reference), quietly; returns its output folder. */
async function cli(args: string[]): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'web-cli-'));
  const stderr: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (stderr.push(String(chunk)), true));
  try {
    const code = await main(['explain', '--image', ...samples, '--backend', 'cpu', '--out', out, ...args]);
    expect(code, stderr.join('')).toBe(0);
  } finally {
    spy.mockRestore();
  }
  return out;
}

describeWithChromium('the browser inspector (headless Chromium, WebGPU on SwiftShader)', () => {
  let site: string;
  let server: PreviewServer;
  let profile: string;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];
  let runs = 0;

  beforeAll(async () => {
    site = mkdtempSync(join(tmpdir(), 'web-site-'));
    await build({ configFile: join(repo, 'web', 'vite.config.ts'), logLevel: 'warn', build: { outDir: site, emptyOutDir: true } });
    server = await preview({ configFile: join(repo, 'web', 'vite.config.ts'), logLevel: 'warn', build: { outDir: site }, preview: { host: '127.0.0.1', port: 0 } });
    profile = mkdtempSync(join(tmpdir(), 'web-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: chromiumFlags, viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    page = context.pages()[0] ?? (await context.newPage());
    const onConsole = (where: string) => (m: { type(): string; text(): string }) => {
      if (m.type() === 'error') consoleErrors.push(`${where}: ${m.text()}`);
    };
    page.on('console', onConsole('page'));
    page.on('worker', (w) => w.on('console', onConsole(`worker ${w.url()}`)));
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    mkdirSync(shots, { recursive: true });
    await page.goto(server.resolvedUrls!.local[0]);
    await page.waitForSelector('body[data-ready="true"]', { timeout: RUN_TIMEOUT });
  }, RUN_TIMEOUT);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    for (const dir of [profile, site]) if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`web test screenshots: ${shots}`);
  });

  const message = () => page.textContent('#message');
  const shot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  /**
   * Waits until the run started by the last click has ended, and fails at once with the page's message if it
   * failed (a failed run sets no data-runs: waiting for that alone turns an error into a long timeout).
   */
  async function runEnded(): Promise<void> {
    runs++;
    await page.waitForFunction(() => !document.body.classList.contains('busy'), null, { timeout: RUN_TIMEOUT });
    expect(await message(), 'the run failed').toBe('');
    expect(await page.getAttribute('body', 'data-runs')).toBe(String(runs));
  }

  async function explain(): Promise<void> {
    await page.click('#run');
    await runEnded();
  }

  /** The run's fusion report: fused as the CLI and the API run, and the GPU dispatches it issued. */
  async function fusion(): Promise<{ fused: string | null; dispatches: string | null }> {
    return { fused: await page.getAttribute('#run-fusion', 'data-fused'), dispatches: await page.getAttribute('#run-fusion', 'data-dispatches') };
  }

  async function download(selector: string): Promise<Uint8Array> {
    const [file] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    return new Uint8Array(readFileSync((await file.path())!));
  }

  const downloaded = async (name: string) => parseSafetensors(await download(`a[download="${name}"]`), name);

  function sameMaps(pageMaps: SafetensorsFile, cliMaps: SafetensorsFile, keys: string[]): void {
    for (const key of keys) {
      expect(pageMaps.entry(key).shape, key).toEqual(cliMaps.entry(key).shape);
      // The CLI's own WebGPU-vs-CPU tolerance for maps in [0, 1] (test/cam-webgpu.test.ts).
      if (key.startsWith('cam/')) expect(absErr(pageMaps.float32(key), cliMaps.float32(key)), key).toBeLessThan(1e-4);
      // The fixture README's float32 tolerance for G and H·A, for maps built from them.
      else expect(relErr(pageMaps.float32(key), cliMaps.float32(key)), key).toBeLessThan(2e-4);
    }
  }

  it('runs the shipped ResNet-20 on WebGPU (SwiftShader), not a silent fallback', async () => {
    expect(await page.getAttribute('#backend-name', 'data-backend')).toBe('webgpu');
    expect(await page.textContent('#adapter')).toMatch(/swiftshader/i);
    expect(await page.textContent('#model-status')).toMatch(/^loaded resnet20_cifar10/);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  });

  it('ShapleyCAM and GradCAM on two sample images: the CLI\'s maps, terms and pictures', async () => {
    await page.setInputFiles('#image-input', samples);
    await page.waitForFunction(() => document.querySelectorAll('#image-list li').length === 2);
    expect(await page.isChecked('#method-list input[value="shapleycam"]')).toBe(true);
    expect(await page.isChecked('#method-list input[value="gradcam"]')).toBe(true);
    await page.click('#run');
    // The engine works in a worker: meanwhile the page shows progress and its clock keeps ticking (the
    // first SwiftShader run compiles every pipeline, so it lasts long enough to see it).
    await page.waitForSelector('#progress:not([hidden])');
    const before = await page.textContent('#progress-text');
    await page.waitForFunction((text) => document.getElementById('progress-text')!.textContent !== text || !document.body.classList.contains('busy'), before);
    expect(await message(), 'the run failed').toBe('');
    expect(await page.getAttribute('body', 'data-runs'), 'the run ended before the page could be watched working').toBeNull();
    expect(await page.textContent('#progress-text')).not.toBe(before);
    await runEnded();
    await shot('1-shapleycam-gradcam');
    expect(await page.getAttribute('#run-backend', 'data-backend')).toBe('webgpu');
    expect(await page.textContent('#run-adapter')).toMatch(/swiftshader/i);
    // Fused like the CLI: the compiled inference prefix and the head's fused primitives, and the GPU's
    // dispatch counter read (the maps below are then the fused path's, compared with the CLI's float64 ones).
    const { fused, dispatches } = await fusion();
    expect(fused, 'the page must run models fused').toBe('true');
    expect(Number(dispatches)).toBeGreaterThan(0);
    expect(await page.locator('.badge.zero').count()).toBe(0);
    for (const name of ['cat_0001.png', 'dog_0001.png']) {
      const card = page.locator(`article[data-image="${name}"]`);
      expect(await card.locator('ol.top5 li').count()).toBe(5);
      expect(await card.locator('figure[data-method]').evaluateAll((fs) => fs.map((f) => f.getAttribute('data-method')))).toEqual(['shapleycam', 'gradcam']);
      expect(await card.locator('canvas.terms-picture').count()).toBe(1);
    }
    expect(await page.textContent('article[data-image="cat_0001.png"] ol.top5 button.explained')).toMatch(/^cat /);

    const reference = await cli(['--method', 'shapleycam,gradcam']);
    sameMaps(await downloaded('maps.safetensors'), read(join(reference, 'maps.safetensors')), ['cam/shapleycam', 'cam/gradcam', 'first_order/layer3', 'second_order/layer3']);
    const terms = await downloaded('terms.safetensors');
    const cliTerms = read(join(reference, 'terms.safetensors'));
    expect(relErr(terms.float32('logits'), cliTerms.float32('logits'))).toBeLessThan(1e-4);
    for (const key of ['activations/layer3', 'gradients/layer3', 'hvp/layer3']) expect(relErr(terms.float32(key), cliTerms.float32(key)), key).toBeLessThan(2e-4);
    expect(terms.metadata).toEqual(cliTerms.metadata);

    // The terms picture: the CLI's terms_000_cat_0001.png drawn by the same renderer, from float32 terms
    // here and float64 there, so colours may differ by a rounding step where a value sits on a boundary.
    const picture = decodeImageBytes(await download('article[data-image="cat_0001.png"] button.save-terms'), 'page terms picture');
    const cliPicture = decodeImageBytes(new Uint8Array(readFileSync(join(reference, 'terms_000_cat_0001.png'))), 'terms_000_cat_0001.png');
    expect([picture.width, picture.height]).toEqual([cliPicture.width, cliPicture.height]);
    let far = 0;
    for (let i = 0; i < picture.data.length; i++) if (Math.abs(picture.data[i] - cliPicture.data[i]) > 2) far++;
    expect(far / picture.data.length).toBeLessThan(1e-3);
  }, RUN_TIMEOUT);

  it('a weights file that does not fit the architecture: the CLI\'s one-line message, the model kept', async () => {
    const cliError: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (cliError.push(String(chunk)), true));
    const code = await main(['explain', '--arch', 'resnet20', '--weights', wrongWeights, '--image', samples[0], '--backend', 'cpu', '--out', join(tmpdir(), 'never-written')]).finally(() => spy.mockRestore());
    expect(code).toBe(1);
    const cliLine = cliError.join('').trim().replace(/^error: /, '').replace(wrongWeights, basename(wrongWeights));

    await page.selectOption('#model-select', '(architecture + weights file)');
    await page.selectOption('#arch-select', 'resnet20');
    await page.setInputFiles('#weights-input', wrongWeights);
    await page.click('#load-model');
    await page.waitForFunction(() => !document.getElementById('message')!.hidden);
    expect(await message()).toBe(`model: ${cliLine}`);
    expect(await message()).not.toContain('\n');
    expect(await page.textContent('#model-status')).toBe('still loaded: resnet20_cifar10');
    expect(await page.locator('article.image-result').count()).toBe(2);
    await shot('2-bad-weights');
  }, RUN_TIMEOUT);

  it('a dropped file that is not an image: a one-line message, the images kept', async () => {
    await page.evaluate(() => {
      const files = new DataTransfer();
      files.items.add(new File(['just some notes'], 'notes.txt', { type: 'text/plain' }));
      document.getElementById('drop-zone')!.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
    });
    await page.waitForFunction(() => document.getElementById('message')!.textContent!.includes('notes.txt'));
    expect(await message()).toBe('image: notes.txt: unsupported image format (expected PNG or JPEG signature)');
    expect(await page.locator('#image-list li').count()).toBe(2);
    await shot('3-not-an-image');
  });

  it('a layer that does not exist: the nearest ones named, the last results kept', async () => {
    await page.fill('#layer-input', 'layer4');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('message')!.textContent!.startsWith('explain:'), null, { timeout: RUN_TIMEOUT });
    expect(await message()).toMatch(/^explain: unknown layer "layer4"; closest valid layers: layer1, /);
    expect(await page.locator('article.image-result').count()).toBe(2);
    await shot('4-missing-layer');
  }, RUN_TIMEOUT);

  it('the layer picker and the logit utility: the CLI\'s maps, and the structural-zero badge', async () => {
    await page.click('#layer-tree button.layer[data-path="layer2"]');
    expect(await page.inputValue('#layer-input')).toBe('layer2');
    await page.selectOption('#target-select', 'logit');
    await explain();
    await shot('5-layer2-logit');
    expect((await fusion()).fused).toBe('true');
    const badge = page.locator('.badge.zero');
    expect(await badge.count()).toBe(1);
    expect(await badge.getAttribute('data-layer')).toBe('layer2');
    expect(await badge.textContent()).toMatch(/piecewise linear/);
    const maps = await downloaded('maps.safetensors');
    const reference = read(join(await cli(['--method', 'shapleycam,gradcam', '--layer', 'layer2', '--target', 'logit']), 'maps.safetensors'));
    sameMaps(maps, reference, ['cam/shapleycam', 'cam/gradcam', 'first_order/layer2']);
    // H·A ≡ 0: ShapleyCAM is GradCAM, and the second-order map is zero.
    expect(absErr(maps.float32('cam/shapleycam'), maps.float32('cam/gradcam'))).toBe(0);
    expect(Array.from(maps.float32('second_order/layer2')).every((v) => v === 0)).toBe(true);
  }, RUN_TIMEOUT);

  it('on the wasm backend (the page is cross-origin isolated): the CLI\'s maps too', async () => {
    await page.selectOption('#model-select', 'resnet20_cifar10');
    await page.selectOption('#backend-select', 'wasm');
    await page.click('#load-model');
    await page.waitForSelector('#backend-name[data-backend="wasm"]', { timeout: RUN_TIMEOUT });
    expect(await page.textContent('#model-status')).toMatch(/^loaded resnet20_cifar10/);
    expect(await page.inputValue('#layer-input')).toBe('layer3');
    await page.selectOption('#target-select', 'rest');
    await explain();
    expect(await page.getAttribute('#run-backend', 'data-backend')).toBe('wasm');
    expect(await fusion(), 'fused; wasm counts no dispatches').toEqual({ fused: 'true', dispatches: '' });
    const reference = read(join(await cli(['--method', 'shapleycam,gradcam']), 'maps.safetensors'));
    sameMaps(await downloaded('maps.safetensors'), reference, ['cam/shapleycam', 'cam/gradcam', 'first_order/layer3', 'second_order/layer3']);
    await shot('6-wasm');

    // A class from an image's top 5 is explained for every image.
    await page.click('article[data-image="cat_0001.png"] ol.top5 button[data-class="dog"]');
    await runEnded();
    expect(await page.inputValue('#class-input')).toBe('dog');
    for (const name of ['cat_0001.png', 'dog_0001.png']) {
      expect(await page.textContent(`article[data-image="${name}"] ol.top5 button.explained`)).toMatch(/^dog /);
    }
  }, RUN_TIMEOUT);

  it('logs no console error, in the page or its workers', () => {
    expect(consoleErrors).toEqual([]);
  });
});
