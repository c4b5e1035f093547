// Which backend new tensors live on. The default comes from ENGINE_BACKEND (cpu | webgpu | wasm);
// `setBackend` chooses by API. The WebGPU and wasm backends start asynchronously (a device request;
// compiling the kernels and starting worker threads), so they are created by `await useBackend(name)`
// (or `await ready()` when the environment asks for it).

import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { env } from './platform.ts';

export type BackendName = 'cpu' | 'webgpu' | 'wasm';

const cpu = new CpuBackend();
let current: Backend = cpu;
let webgpu: Backend | null = null;
let wasm: Promise<Backend> | null = null;

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
  if (value !== 'cpu' && value !== 'webgpu' && value !== 'wasm') throw new Error(`ENGINE_BACKEND must be "cpu", "webgpu" or "wasm", got "${value}"`);
  return value;
}

/** Creates (once) and selects a backend by name. */
export async function useBackend(name: BackendName): Promise<Backend> {
  if (name === 'cpu') {
    current = cpu;
    return cpu;
  }
  if (name === 'wasm') {
    // One backend (one thread pool) per process; ENGINE_WASM_THREADS sets its size.
    wasm ??= import('./wasm/backend.ts')
      .then((m) => m.createWasmBackend())
      .catch((err) => {
        wasm = null; // let a later call try again
        throw err;
      });
    current = await wasm;
    return current;
  }
  if (!webgpu || (webgpu as { isLost?: boolean }).isLost) {
    // First use, or the previous device was lost: a lost device never comes back, so make a new one.
    const mod = await import('./webgpu/backend.ts');
    webgpu = await mod.createWebGpuBackend();
  }
  current = webgpu;
  return webgpu;
}

/**
 * Stops the wasm backend's worker threads and releases the WebGPU device; the CPU backend is current
 * afterwards and a later `useBackend` starts a fresh one. A program under Deno calls this when it is done:
 * Deno's Workers keep it running (Node's are unreferenced, and its device is released before exit).
 */
export async function closeBackends(): Promise<void> {
  current = cpu;
  const started = wasm;
  wasm = null;
  if (started) await started.then((b) => (b as Backend & { close(): void }).close(), () => {});
  if (webgpu) {
    webgpu = null;
    (await import('./webgpu/device.ts')).releaseDevice();
  }
}

/** Selects the backend named by ENGINE_BACKEND (CPU when unset). */
export async function ready(): Promise<Backend> {
  return useBackend(backendFromEnv() ?? 'cpu');
}
