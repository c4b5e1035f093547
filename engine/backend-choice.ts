// Choosing a backend by name or by `auto`. The rule of `auto` is one function, `autoBackend`; everything
// else here only gathers what it needs (the adapter WebGPU offers, read without creating a device) and
// applies its answer.

import type { Backend } from './backend.ts';
import { useBackend, type BackendName } from './runtime.ts';
import type { GpuAdapterInfo } from './webgpu/device.ts';

export type BackendChoice = BackendName | 'auto';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'cpu', 'webgpu'];

export interface AutoDecision {
  backend: BackendName;
  /** Why, in a few words (for the one line a command prints). */
  reason: string;
}

/**
 * The rule of `auto`: given the adapter WebGPU offers (null when there is none), which backend to use.
 * WebGPU on any adapter, the CPU without one. A software adapter (lavapipe, SwiftShader: WebGPU emulated on
 * the CPU) is recognised and named, but still chosen: it runs our kernels faster than the float64 CPU
 * backend. When the WebAssembly backend lands, the software-adapter and no-adapter cases go to it.
 */
export function autoBackend(adapter: GpuAdapterInfo | null): AutoDecision {
  if (!adapter) return { backend: 'cpu', reason: 'no WebGPU adapter' };
  const name = adapter.description || [adapter.vendor, adapter.architecture].filter(Boolean).join(' ') || 'unnamed';
  if (adapter.software) return { backend: 'webgpu', reason: `software WebGPU adapter "${name}"` };
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
 * Selects (useBackend) the backend named, or the one `autoBackend` picks. Under `auto`, a WebGPU adapter
 * that then fails to give a device falls back to the CPU, and the reason says so; a backend named
 * explicitly that cannot start is an error.
 */
export async function chooseBackend(choice: BackendChoice): Promise<ChosenBackend> {
  if (choice !== 'auto') return { backend: await useBackend(choice), choice, reason: null };
  const { probeAdapter } = await import('./webgpu/device.ts');
  const decision = autoBackend(await probeAdapter());
  try {
    return { backend: await useBackend(decision.backend), choice, reason: decision.reason };
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    return { backend: await useBackend('cpu'), choice, reason: `${decision.reason} gave no device (${why})` };
  }
}

/** The line a program prints on stderr about its backend, e.g. `backend: webgpu (auto: WebGPU adapter "…")`. */
export function describeChoice(chosen: ChosenBackend): string {
  return `backend: ${chosen.backend.name} (${chosen.reason === null ? 'as asked' : `auto: ${chosen.reason}`})`;
}
