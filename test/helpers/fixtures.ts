// Access to the PyTorch-made reference fixtures copied into test/fixtures (see ../shared/fixtures/README.md).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSafetensors, type SafetensorsFile } from '../../models/safetensors.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

export interface Fixture {
  file: SafetensorsFile;
  meta: any;
}

const cache = new Map<string, Fixture>();

export function fixture(name: string): Fixture {
  let f = cache.get(name);
  if (!f) {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}${name}.safetensors`));
    f = { file: parseSafetensors(bytes, `${name}.safetensors`), meta: JSON.parse(readFileSync(`${FIXTURES}${name}.json`, 'utf8')) };
    cache.set(name, f);
  }
  return f;
}

export function weightsFile(name: string): SafetensorsFile {
  return parseSafetensors(new Uint8Array(readFileSync(`${FIXTURES}${name}`)), name);
}

/**
 * Refuses comparisons that would prove nothing: an empty reference (every error bound would pass) or
 * results of another length (extra or missing values would go unchecked).
 */
function checkComparable(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (b.length === 0) throw new Error(`${what}: the reference is empty`);
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} values compared with a reference of ${b.length}`);
}

/** max |a − b| / max |b| (max |a − b| when the reference is all zeros). NaN anywhere gives NaN (Math.max), which fails any bound. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkComparable(a, b, 'relErr');
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

/** max |a − b|. NaN anywhere gives NaN (Math.max), which fails any bound. */
export function absErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkComparable(a, b, 'absErr');
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
