// The wasm backend for tests: one per thread count per process (workers are started once), with
// output poisoning on so an element a kernel fails to write is NaN and fails the comparison.

import { createWasmBackend, type WasmBackend } from '../../engine/wasm/backend.ts';

const backends = new Map<number, Promise<WasmBackend>>();

export async function wasmBackend(threads = 2): Promise<WasmBackend> {
  let b = backends.get(threads);
  if (!b) backends.set(threads, (b = createWasmBackend({ threads })));
  const backend = await b;
  backend.debug.poisonOutputs = true;
  return backend;
}
