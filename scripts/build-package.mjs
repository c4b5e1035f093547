#!/usr/bin/env node
// Builds the package into dist/: the TypeScript sources compiled to ESM JavaScript with .d.ts types
// (tsc -p tsconfig.build.json; `rewriteRelativeImportExtensions` turns the sources' relative `.ts` imports
// into `.js`), then the files the code loads at run time that are not TypeScript, copied to the same place
// under dist/. dist/ is not committed; `npm pack` runs this (the `prepack` script). It prints on stderr
// only, so `npm pack --json` stays parseable.
//
//   node scripts/build-package.mjs

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Non-TypeScript files shipped beside the compiled code, as paths from the repository root (`*` allowed in
 * the file name). Each pattern must match at least one file. The WebAssembly backend's modules and worker
 * go here when it lands: one line each, e.g. 'kernels/wasm/build/*.wasm'.
 */
const ASSETS = [
  'models/weights/resnet20_cifar10.safetensors',
  'models/weights/resnet56_cifar10.safetensors',
  'models/weights/LICENSE-resnet-cifar10.txt',
  'models/weights/README.md',
  // The wasm backend: its built kernels and the worker script its pool starts.
  'kernels/wasm/build/*.wasm',
  'engine/wasm/worker.mjs',
];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

function matching(pattern) {
  const dir = dirname(pattern);
  const re = new RegExp(`^${basename(pattern).split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
  let names;
  try {
    names = readdirSync(join(root, dir));
  } catch {
    names = [];
  }
  const found = names.filter((n) => re.test(n)).map((n) => join(dir, n));
  if (found.length === 0) throw new Error(`build-package: asset pattern "${pattern}" matches no file`);
  return found;
}

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: ['ignore', 2, 2] });
if (compiled.status !== 0) {
  console.error('build-package: tsc failed');
  process.exit(1);
}
let copied = 0;
for (const file of ASSETS.flatMap(matching)) {
  mkdirSync(join(dist, dirname(file)), { recursive: true });
  copyFileSync(join(root, file), join(dist, file));
  copied++;
}
console.error(`build-package: dist/ built (${copied} assets copied)`);
