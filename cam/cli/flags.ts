// Backend selection for the commands: --backend, else ENGINE_BACKEND, else the CPU.

import * as E from '../../engine/index.ts';
import type { Backend } from '../../engine/index.ts';
import { InputError, UsageError } from './errors.ts';

export interface CommonFlags {
  backend?: string;
  verbose?: boolean;
}

export async function selectBackend(flags: CommonFlags): Promise<Backend> {
  let name = flags.backend;
  if (name === undefined) name = E.backendFromEnv() ?? 'cpu';
  if (name !== 'cpu' && name !== 'webgpu') throw new UsageError(`--backend: expected webgpu or cpu, got "${name}"`);
  try {
    const backend = await E.useBackend(name);
    if (flags.verbose) process.stderr.write(`backend: ${backend.describe()}\n`);
    return backend;
  } catch (e) {
    throw new InputError(`--backend webgpu: no usable WebGPU adapter (${(e as Error).message.split('\n')[0]})`);
  }
}
