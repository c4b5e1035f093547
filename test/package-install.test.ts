// The package as a user gets it. `npm pack` (its prepack script builds dist/) makes the tarball; it is
// installed into an empty temporary project with `npm ci --offline` from npm's cache, which this
// repository's own `npm ci` filled: the project's lockfile is made from this repository's (the tarball
// plus every entry that is not dev-only), so npm never asks the registry for metadata. There, with no dev
// tools: the `shapleycam` command, the README's example, an ESM script and a TypeScript file type-checked
// against the shipped declarations (high-level API and the engine's hvp), `npm:shapleycam-webgpu` under
// Deno (resolved from that node_modules folder: --node-modules-dir=manual, --cached-only), the benchmarks,
// and the tarball's contents and size.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExplainer } from '../api/index.ts';
import { parseSafetensors } from '../models/safetensors.ts';
import { absErr } from './helpers/fixtures.ts';
import { isCI, webgpuProbe } from './helpers/webgpu.ts';
import { autoBackend } from '../engine/backend-choice.ts';
import { probeAdapter } from '../engine/webgpu/device.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
const SAMPLE = 'node_modules/shapleycam-webgpu/samples/cifar10/cat_0001.png';
/** The packed tarball may grow with code, not with data: today 4.5 MB, of which 4.4 MB are the two models. */
const MAX_TARBALL_BYTES = 6_000_000;

/** The environment without npm's script variables (`npm test` sets them; they would point npm back here). */
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const env = { ...cleanEnv, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function run(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}, timeout = 180_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
}

function ok(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.status !== 0) throw new Error(`${what} failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The fenced block that follows `<!-- name -->` in the README: the examples users copy run as written. */
function readmeBlock(name: string): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const m = readme.match(new RegExp(`<!-- ${name} -->\\s*\`\`\`\\w*\\n([\\s\\S]*?)\`\`\``));
  if (!m) throw new Error(`README.md has no code block marked <!-- ${name} -->`);
  return m[1];
}

interface Packed {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

let project: string;
let packed: Packed;
/** What the auto backend will be in the project: WebGPU on a hardware adapter, else wasm (the rule of `auto`). */
const autoName = autoBackend(await probeAdapter()).backend;
const noGpuEnv = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'package-test-'));
  const pack = ok(run('npm', ['pack', '--json', '--pack-destination', project], REPO, {}, 300_000), 'npm pack');
  packed = JSON.parse(pack.stdout)[0];

  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
  const spec = `file:${packed.filename}`;
  const packages: Record<string, unknown> = {
    '': { name: 'package-test', dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: { version: pkg.version, resolved: spec, license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(lock.packages as Record<string, { dev?: boolean; link?: boolean }>)) {
    if (path !== '' && !entry.dev && !entry.link) packages[path] = entry;
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'package-test', private: true, type: 'module', dependencies: { [pkg.name]: spec } }, null, 2));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({ name: 'package-test', lockfileVersion: 3, requires: true, packages }, null, 2));
  ok(run('npm', ['ci', '--offline', '--ignore-scripts'], project), 'npm ci --offline of the tarball');
}, 480_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('ships the compiled code, types, the command, the two models with their licence and the samples; no sources, tests, fixtures, benches results or web app', () => {
    const paths = packed.files.map((f) => f.path);
    for (const p of ['package.json', 'README.md', 'CHANGELOG.md', 'bin/shapleycam.mjs', 'samples/cifar10/README.md', 'models/weights/resnet20_cifar10.safetensors', 'models/weights/resnet56_cifar10.safetensors', 'models/weights/LICENSE-resnet-cifar10.txt'].map((p) => (p.startsWith('models') ? `dist/${p}` : p))) {
      expect(paths, p).toContain(p);
    }
    for (const entry of Object.values(pkg.exports as Record<string, string | { types: string; default: string }>)) {
      for (const file of typeof entry === 'string' ? [entry] : [entry.types, entry.default]) expect(paths, file).toContain(file.replace(/^\.\//, ''));
    }
    for (const bench of ['matmul', 'conv', 'shapleycam']) expect(paths).toContain(`dist/bench/${bench}.js`);
    expect(paths.filter((p) => p.startsWith('samples/cifar10/') && p.endsWith('.png'))).toHaveLength(10);
    const allowed = /^(package\.json|README\.md|CHANGELOG\.md|LICENSE|bin\/shapleycam\.mjs|samples\/cifar10\/[\w.-]+|dist\/.+\.(js|d\.ts)|dist\/models\/weights\/[\w.-]+|dist\/kernels\/wasm\/build\/[\w-]+\.wasm|dist\/engine\/wasm\/worker\.mjs)$/;
    expect(paths.filter((p) => !allowed.test(p))).toEqual([]);
    expect(paths.filter((p) => /(^|\/)(test|fixtures|web|docs|scripts|examples)\/|\.test\.|\.py$|RESULTS|(?<!\.d)\.ts$/.test(p))).toEqual([]);
    expect(paths.filter((p) => p.startsWith('dist/bench/') && !/^dist\/bench\/(common|matmul|conv|shapleycam)\.js$/.test(p))).toEqual([]);
    expect(packed.size).toBeLessThan(MAX_TARBALL_BYTES);
  });

  it('passes publint (strict) and @arethetypeswrong/cli (ESM-only profile)', () => {
    const bin = (name: string) => join(REPO, 'node_modules', '.bin', name);
    ok(run(bin('publint'), [join(project, 'node_modules', pkg.name), '--pack', 'false', '--strict'], project), 'publint');
    ok(run(bin('attw'), [join(project, packed.filename), '--profile', 'esm-only'], project), 'attw');
  });

  it('sideEffects lists every module that does something when imported (so bundlers keep the architecture registry)', () => {
    const globs = (pkg.sideEffects as string[]).map((g) => new RegExp(`^${g.replace(/^\.\//, '').replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`));
    const packageDir = join(project, 'node_modules', pkg.name);
    const doing: string[] = [];
    for (const file of packed.files.map((f) => f.path).filter((p) => p.endsWith('.js'))) {
      const source = ts.createSourceFile(file, readFileSync(join(packageDir, file), 'utf8'), ts.ScriptTarget.ES2022);
      const acts = source.statements.some((st) => ts.isExpressionStatement(st) || ts.isIfStatement(st) || ts.isIterationStatement(st, false) || (ts.isImportDeclaration(st) && !st.importClause));
      if (acts) doing.push(file);
    }
    expect(doing).toEqual(expect.arrayContaining(['dist/engine/ops.js', 'dist/models/archs/resnet.js', 'dist/cam/cli.js']));
    expect(doing.filter((file) => !globs.some((g) => g.test(file)))).toEqual([]);
  });

  it('installs offline with its runtime dependencies only (no TypeScript, tsx, vitest or Deno)', () => {
    const modules = join(project, 'node_modules');
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(modules, dep, 'package.json')), dep).toBe(true);
    for (const dev of ['typescript', 'tsx', 'vitest', 'deno', 'publint']) expect(existsSync(join(modules, dev)), dev).toBe(false);
  });
});

describe('npx shapleycam', () => {
  it('explain on a sample image writes the contract files; with no GPU, auto picks wasm and the maps are the sources\' own', async () => {
    const out = join(project, 'out-cli');
    const r = ok(run('npx', ['--no-install', 'shapleycam', 'explain', '--image', SAMPLE, '--method', 'shapleycam,gradcam', '--out', out], project, noGpuEnv), 'shapleycam explain');
    expect(r.stderr).toMatch(/backend: wasm \(auto: no WebGPU adapter\)/);
    for (const f of ['maps.safetensors', 'terms.safetensors', 'sheet.png', 'summary.json', '000_cat_0001_shapleycam.png', '000_cat_0001_gradcam.png']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ model: 'resnet20_cifar10', backend: 'wasm', backend_choice: 'auto' });
    expect(summary.images[0].predicted.name).toBe('cat');
    const maps = parseSafetensors(new Uint8Array(readFileSync(join(out, 'maps.safetensors'))));
    expect(maps.entry('cam/shapleycam').shape).toEqual([1, 32, 32]);
    const terms = parseSafetensors(new Uint8Array(readFileSync(join(out, 'terms.safetensors'))));
    expect(terms.entry('hvp/layer3').shape).toEqual([1, 64, 8, 8]);

    const sources = await createExplainer({ backend: 'wasm' });
    const ref = (await sources.explain(join(project, SAMPLE), { methods: ['shapleycam', 'gradcam'] })).images[0];
    sources.dispose();
    expect(absErr(maps.float32('cam/shapleycam'), ref.maps.shapleycam.data)).toBeLessThan(1e-6);
    expect(absErr(maps.float32('cam/gradcam'), ref.maps.gradcam.data)).toBeLessThan(1e-6);
  });

  it('keeps the exit codes: unknown method → 2, missing image → 1, one line on stderr', () => {
    const usage = run('npx', ['--no-install', 'shapleycam', 'explain', '--image', SAMPLE, '--method', 'nocam', '--out', 'x'], project);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^error: --method: unknown method "nocam"/);
    const input = run('npx', ['--no-install', 'shapleycam', 'explain', '--image', 'missing.png', '--out', 'x'], project);
    expect(input.status).toBe(1);
    expect(input.stderr.trim()).toBe('error: missing.png: image not found');
  });

  it('bench shapleycam prints its table and JSON lines; bench with an unknown name is bad usage', () => {
    const r = ok(run('npx', ['--no-install', 'shapleycam', 'bench', 'shapleycam', '--backend', 'cpu', '--models', 'resnet20', '--batches', '1', '--repeat', '1'], project), 'bench shapleycam');
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ bench: 'shapleycam', model: 'resnet20', batch: 1, backend: 'cpu' });
    expect(lines[0].ms_per_image).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^\s*model\s+batch\s+backend .*\n\s*resnet20\s+1\s+cpu\s/m);
    const bad = run('npx', ['--no-install', 'shapleycam', 'bench', 'gemm'], project);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown benchmark "gemm"/);
    expect(ok(run('npx', ['--no-install', 'shapleycam', '--help'], project), 'help').stdout).toMatch(/bench .*matmul\|conv\|shapleycam/);
  });

  it.runIf(webgpuProbe.available || isCI)('bench matmul times the WGSL kernels on the adapter (JSON lines per kernel)', () => {
    const r = ok(run('npx', ['--no-install', 'shapleycam', 'bench', 'matmul', '--sizes', '64', '--runs', '1', '--warmup', '0', '--cpu-max', '64'], project), 'bench matmul');
    const kernels = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).kernel);
    expect(kernels).toEqual(expect.arrayContaining(['tiled', 'naive', 'cpu']));
  });
});

describe('the API from the installed package', () => {
  it('the README example runs as written', () => {
    writeFileSync(join(project, 'readme-example.mjs'), readmeBlock('example: node'));
    const r = ok(run('node', ['readme-example.mjs'], project), 'README example');
    expect(r.stdout.trim().split('\n').pop()).toMatch(/^cat 0\.\d{3} false$/);
  });

  it('an ESM script: explain with terms on the auto backend, and the engine\'s hvp', () => {
    writeFileSync(
      join(project, 'script.mjs'),
      `import { createExplainer } from 'shapleycam-webgpu';
import * as E from 'shapleycam-webgpu/engine';
import { zooNames } from 'shapleycam-webgpu/models';
import { METHOD_NAMES } from 'shapleycam-webgpu/cam';

const explainer = await createExplainer();
const r = await explainer.explain(['${SAMPLE}', '${SAMPLE.replace('cat_0001', 'ship_0001')}'], { methods: ['shapleycam', 'hirescam'], target: 'logit', keepTerms: true });
const x = E.tensor([[1, 2], [3, 4]]);
const hvp = await E.hvp((t) => E.sum(E.mul(E.mul(t, t), t)), x, E.onesLike(x)).data();
console.log(JSON.stringify({
  backend: explainer.backend, labels: r.images.map((i) => i.predicted.label), zero: r.layers[0].hvpStructurallyZero,
  hvpShape: r.layers[0].hvp.shape, mapMax: Math.max(...r.images[0].maps.shapleycam.data), hvp, zoo: zooNames(), methods: METHOD_NAMES.length,
}));
explainer.dispose();
`,
    );
    const r = ok(run('node', ['script.mjs'], project), 'ESM script');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.backend).toMatchObject({ name: autoName, choice: 'auto' });
    expect(out.labels).toEqual(['cat', 'ship']);
    expect(out.zero).toBe(true);
    expect(out.hvpShape).toEqual([2, 64, 8, 8]);
    expect(out.mapMax).toBeCloseTo(1, 5);
    expect(out.hvp).toEqual([6, 12, 18, 24]);
    expect(out.zoo).toEqual(['resnet20_cifar10', 'resnet56_cifar10']);
    expect(out.methods).toBeGreaterThan(10);
  });

  it('a TypeScript file type-checks against the shipped declarations (tsc --noEmit, skipLibCheck off), and type errors are caught', () => {
    writeFileSync(
      join(project, 'check.ts'),
      `import { createExplainer, type ExplainResult, type LayerResult, type HostArray } from 'shapleycam-webgpu';
import * as E from 'shapleycam-webgpu/engine';
import { loadZooModel, type LoadedModel } from 'shapleycam-webgpu/models';
import { explain, type Explanation } from 'shapleycam-webgpu/cam';

const explainer = await createExplainer({ model: 'resnet20_cifar10', layers: ['layer3'], backend: 'auto' });
const result: ExplainResult = await explainer.explain('cat.png', { methods: ['shapleycam'], target: 'rest', classes: 'cat', keepTerms: true, seed: 1 });
const layer: LayerResult = result.layers[0];
const zero: boolean = layer.hvpStructurallyZero;
const hvp: HostArray | null = layer.hvp;
const map: Float64Array = result.images[0].maps.shapleycam.data;
const x = E.tensor([1, 2, 3]);
const h: Promise<number[]> = E.hvp((t: E.Tensor) => E.sum(E.mul(E.mul(t, t), t)), x, E.onesLike(x)).data();
const model: Promise<LoadedModel> = loadZooModel('resnet56_cifar10');
const raw: Explanation = result.raw;
void [zero, hvp, map, h, model, raw, explain];
// @ts-expect-error: the utility is one of the targets
await explainer.explain('cat.png', { target: 'rst' });
// @ts-expect-error: a map is a HostArray, not a number
const wrong: number = result.images[0].maps.shapleycam;
// @ts-expect-error: hvp takes tensors
E.hvp((t: E.Tensor) => t, [1, 2], x);
void wrong;
explainer.dispose();
`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: ['check.ts'] }),
    );
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = run('node', [tsc, '-p', '.'], project);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The same file with one line more that is wrong: tsc must say so (the types are not `any`).
    writeFileSync(join(project, 'check.ts'), `${readFileSync(join(project, 'check.ts'), 'utf8')}const bad: string = result.layers[0].hvpStructurallyZero;\n`);
    const bad = run('node', [tsc, '-p', '.'], project);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/check\.ts\(\d+,7\): error TS2322: Type 'boolean' is not assignable to type 'string'/);
  });

  it('Deno: import from "npm:shapleycam-webgpu" type-checks and explains on the auto backend, as the README says', () => {
    writeFileSync(join(project, 'deno-example.ts'), readmeBlock('example: deno'));
    const deno = join(REPO, 'node_modules', '.bin', 'deno');
    // Deno type-checks the example against the shipped declarations, and catches a wrong line.
    ok(run(deno, ['check', '--cached-only', '--node-modules-dir=manual', 'deno-example.ts'], project, { NO_COLOR: '1' }), 'deno check');
    writeFileSync(join(project, 'deno-bad.ts'), `${readmeBlock('example: deno')}const bad: string = images[0].predicted.probability;\n`);
    const bad = run(deno, ['check', '--cached-only', '--node-modules-dir=manual', 'deno-bad.ts'], project, { NO_COLOR: '1' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/TS2322.*Type 'number' is not assignable to type 'string'/);
    const r = ok(run(deno, ['run', '-A', '--cached-only', '--node-modules-dir=manual', 'deno-example.ts'], project, { DENO_WEBGPU_BACKEND: 'vulkan', NO_COLOR: '1' }), 'deno run');
    const [label, probability, backend] = r.stdout.trim().split('\n').pop()!.split(' ');
    expect(label).toBe('cat');
    expect(Number(probability)).toBeGreaterThan(0.5);
    expect(backend).toBe(autoName);
  });
});
