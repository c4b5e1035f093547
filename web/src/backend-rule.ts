// Which backend the page computes on. The page's rule (not the engine's `auto`, which serves the CLI):
// WebGPU whenever the browser offers an adapter — the visitor's own GPU is the point of the page — else
// the WebAssembly backend when the page is cross-origin isolated (its threads share memory through a
// SharedArrayBuffer), else the float64 CPU backend.

import type { BackendName } from '../../engine/index.ts';
import type { BackendOption, BackendRequest } from './protocol.ts';

export interface Environment {
  /** The adapter navigator.gpu gave, by name (null: no WebGPU, or no adapter). */
  adapter: string | null;
  crossOriginIsolated: boolean;
}

export function backendOptions(env: Environment): BackendOption[] {
  return [
    { name: 'auto', available: true, note: `now: ${pageBackend('auto', env).backend}` },
    { name: 'webgpu', available: env.adapter !== null, note: env.adapter ?? 'the browser offers no WebGPU adapter' },
    {
      name: 'wasm',
      available: env.crossOriginIsolated,
      note: env.crossOriginIsolated ? 'WebAssembly SIMD on every core (often faster than a software WebGPU adapter)' : 'needs a cross-origin isolated page (COOP/COEP headers) for shared memory',
    },
    { name: 'cpu', available: true, note: 'float64 reference, one thread' },
  ];
}

export function pageBackend(requested: BackendRequest, env: Environment): { backend: BackendName; reason: string | null } {
  if (requested !== 'auto') return { backend: requested, reason: null };
  if (env.adapter !== null) return { backend: 'webgpu', reason: `the browser offers WebGPU (${env.adapter})` };
  if (env.crossOriginIsolated) return { backend: 'wasm', reason: 'no WebGPU adapter; the page is cross-origin isolated, so WebAssembly threads' };
  return { backend: 'cpu', reason: 'no WebGPU adapter, and the page is not cross-origin isolated (no shared memory for WebAssembly threads)' };
}
