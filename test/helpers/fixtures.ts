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

/** max |a − b| / max |b|. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / (den || 1);
}

export function absErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
