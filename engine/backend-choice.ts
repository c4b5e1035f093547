// Choosing a backend by name or by `auto`. The rule of `auto` is one function, `autoBackend`; everything
// else here only gathers what it needs (the adapter WebGPU offers, read without creating a device) and
// applies its answer.

import type { Backend } from './backend.ts';
import { useBackend, type BackendName } from './runtime.ts';
import type { GpuAdapterInfo } from './webgpu/device.ts';

export type BackendChoice = BackendName | 'auto';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'cpu', 'webgpu', 'wasm'];

export interface AutoDecision {
  backend: BackendName;
  /** Why, in a few words (for the one line a command prints). */
  reason: string;
}

/**
 * The rule of `auto`: given the adapter WebGPU offers (null when there is none), which backend to use.
 * WebGPU on a hardware adapter; the WebAssembly backend (float32 SIMD on every core) when the only
 * adapter is a software one (lavapipe, SwiftShader: WebGPU emulated on the CPU, several times slower than
 * our wasm kernels on the same cores) or when there is none. The float64 CPU backend is the reference and
 * is never chosen by `auto`.
 */
export function autoBackend(adapter: GpuAdapterInfo | null): AutoDecision {
  if (!adapter) return { backend: 'wasm', reason: 'no WebGPU adapter' };
  const name = adapter.description || [adapter.vendor, adapter.architecture].filter(Boolean).join(' ') || 'unnamed';
  if (adapter.software) return { backend: 'wasm', reason: `only a software WebGPU adapter, "${name}"` };
  return { backend: 'webgpu', reason: `WebGPU adapter "${name}"` };
}

export interface ChosenBackend {
  backend: Backend;
  /** What was asked for. */
  choice: BackendChoice;
  /** How `auto` decided (null when a backend was named). */
  reason: string | null;
}

/**
 * Where `auto` goes when the backend it picked cannot start: a WebGPU adapter that gives no device falls
 * back to wasm; wasm without SharedArrayBuffer (a browser page that is not cross-origin isolated) falls
 * back to the CPU reference, the one backend that always starts.
 */
const FALLBACK: Record<BackendName, BackendName | null> = { webgpu: 'wasm', wasm: 'cpu', cpu: null };

/**
 * Selects (useBackend) the backend named, or the one `autoBackend` picks. Under `auto`, a backend that
 * cannot start hands over to its fallback (above) and the reason says so; a backend named explicitly that
 * cannot start is an error.
 */
export async function chooseBackend(choice: BackendChoice): Promise<ChosenBackend> {
  if (choice !== 'auto') return { backend: await useBackend(choice), choice, reason: null };
  const { probeAdapter } = await import('./webgpu/device.ts');
  return startDecision(autoBackend(await probeAdapter()));
}

/** Starts what `auto` decided, going down the fallbacks while a backend fails to start. */
export async function startDecision(decision: AutoDecision, start: (name: BackendName) => Promise<Backend> = useBackend): Promise<ChosenBackend> {
  let { backend: name, reason } = decision;
  for (;;) {
    try {
      return { backend: await start(name), choice: 'auto', reason };
    } catch (e) {
      const next = FALLBACK[name];
      if (next === null) throw e;
      reason = `${reason}; ${name} did not start (${(e as Error).message.split('\n')[0]})`;
      name = next;
    }
  }
}

/** The line a program prints on stderr about its backend, e.g. `backend: wasm (auto: no WebGPU adapter)`. */
export function describeChoice(chosen: ChosenBackend): string {
  return `backend: ${chosen.backend.name} (${chosen.reason === null ? 'as asked' : `auto: ${chosen.reason}`})`;
}
