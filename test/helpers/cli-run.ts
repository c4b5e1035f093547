// Running the CAM CLI in-process in tests: stderr captured, outputs read back.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { main } from '../../cam/cli.ts';
import { parseSafetensors, serializeSafetensors, type SafetensorsFile } from '../../models/safetensors.ts';

export const tmp = (prefix = 'cam-test-') => mkdtempSync(join(tmpdir(), prefix));

/** Runs `cam/cli.ts argv…` in this process; returns its exit code and what it wrote on stderr. */
export async function runCli(argv: string[]): Promise<{ code: number; stderr: string }> {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  try {
    const code = await main(argv);
    return { code, stderr: chunks.join('') };
  } finally {
    spy.mockRestore();
  }
}

export function readOutput(dir: string, file: string): SafetensorsFile {
  return parseSafetensors(new Uint8Array(readFileSync(join(dir, file))), file);
}

export function readJson(dir: string, file: string): any {
  return JSON.parse(readFileSync(join(dir, file), 'utf8'));
}

/** Writes an --input file (tensor `input`, F32) and returns its path. */
export function writeInput(dir: string, data: ArrayLike<number>, shape: number[], name = 'input.safetensors'): string {
  const path = join(dir, name);
  writeFileSync(path, serializeSafetensors({ input: { dtype: 'F32', shape, data } }));
  return path;
}

/** ‖a − b‖₂ / ‖b‖₂ (the segmentation checker's measure for terms). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (b.length === 0 || a.length !== b.length) throw new Error(`relL2: ${a.length} values against a reference of ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
