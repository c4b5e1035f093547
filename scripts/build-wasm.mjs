#!/usr/bin/env node
// Builds the WebAssembly kernels (kernels/wasm/assembly/*.ts, AssemblyScript) into
// kernels/wasm/build/kernels.wasm. The built file is committed, so the engine runs after `npm ci`
// with no build step; test/wasm-build.test.ts rebuilds into a temporary folder and fails if the
// committed file differs (the compiler is pinned in package.json and its output is deterministic).
//
//   npm run build:wasm                 # rebuild the committed module
//   node scripts/build-wasm.mjs --out DIR   # build into DIR (the staleness test)

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outFlag = process.argv.indexOf('--out');
const outDir = outFlag >= 0 ? resolve(process.argv[outFlag + 1]) : join(root, 'kernels/wasm/build');
mkdirSync(outDir, { recursive: true });

/** The compiler flags; the memory is imported, shared between threads, and may grow to 4 GiB. */
export const ASC_FLAGS = [
  'kernels/wasm/assembly/index.ts',
  '-O3',
  '--runtime', 'stub',
  '--noAssert',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory', '4',
  '--maximumMemory', '65536',
  '--enable', 'simd',
  '--enable', 'threads',
];

const { error, stderr } = await asc.main([...ASC_FLAGS, '--outFile', join(outDir, 'kernels.wasm')], { baseDir: root });
if (error) {
  console.error(stderr.toString());
  console.error(`build-wasm: ${error.message}`);
  process.exit(1);
}
console.log(`built ${join(outDir, 'kernels.wasm')}`);
