// The committed kernels/wasm/build/kernels.wasm is what its AssemblyScript sources compile to: the
// build (scripts/build-wasm.mjs, compiler pinned in package.json) runs into a temporary folder and the
// bytes must match. A stale module fails here, in CI, on a fresh clone.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('the committed wasm module is up to date with its sources (rebuild: npm run build:wasm)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wasm-build-'));
  try {
    execFileSync(process.execPath, ['scripts/build-wasm.mjs', '--out', dir], { stdio: 'pipe' });
    const rebuilt = readFileSync(join(dir, 'kernels.wasm'));
    const committed = readFileSync('kernels/wasm/build/kernels.wasm');
    expect(rebuilt.length, 'size of the rebuilt module vs the committed one').toBe(committed.length);
    expect(rebuilt.equals(committed), 'kernels/wasm/build/kernels.wasm is stale: run npm run build:wasm and commit it').toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
