// Which backend new tensors live on. The default comes from ENGINE_BACKEND (cpu | webgpu); `setBackend`
// chooses by API. The WebGPU backend needs an asynchronous device request, so it is created by
// `await useBackend('webgpu')` (or `await ready()` when the environment asks for it).

import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { env } from './platform.ts';

export type BackendName = 'cpu' | 'webgpu';

const cpu = new CpuBackend();
let current: Backend = cpu;
let webgpu: Backend | null = null;

export function cpuBackend(): Backend {
  return cpu;
}

export function getBackend(): Backend {
  return current;
}

/** Makes `backend` the one new tensors are created on. */
export function setBackend(backend: Backend): void {
  current = backend;
}

/** Reads ENGINE_BACKEND; undefined when unset. */
export function backendFromEnv(): BackendName | undefined {
  const value = env('ENGINE_BACKEND');
  if (value === undefined || value === '') return undefined;
  if (value !== 'cpu' && value !== 'webgpu') throw new Error(`ENGINE_BACKEND must be "cpu" or "webgpu", got "${value}"`);
  return value;
}

/** Creates (once) and selects a backend by name. */
export async function useBackend(name: BackendName): Promise<Backend> {
  if (name === 'cpu') {
    current = cpu;
    return cpu;
  }
  if (!webgpu || (webgpu as { isLost?: boolean }).isLost) {
    // First use, or the previous device was lost: a lost device never comes back, so make a new one.
    const mod = await import('./webgpu/backend.ts');
    webgpu = await mod.createWebGpuBackend();
  }
  current = webgpu;
  return webgpu;
}

/** Selects the backend named by ENGINE_BACKEND (CPU when unset). */
export async function ready(): Promise<Backend> {
  return useBackend(backendFromEnv() ?? 'cpu');
}
