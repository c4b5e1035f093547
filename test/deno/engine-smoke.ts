// Deno smoke test of the engine: a small conv net's forward pass and an HVP (test/helpers/smoke-net.ts),
// printed as JSON for test/deno-engine.test.ts (WebGPU) and test/wasm-deno.test.ts (wasm) to compare with
// Node's results.
//   deno run -A test/deno/engine-smoke.ts [webgpu|wasm] [size] [channels]

import * as E from '../../engine/index.ts';
import { smokeNet } from '../helpers/smoke-net.ts';

const { args } = (globalThis as unknown as { Deno: { args: string[] } }).Deno;
const [name = 'webgpu', size = '8', channels = '4'] = args;
const backend = await E.useBackend(name as E.BackendName);
const result = await smokeNet(backend, Number(size), Number(channels));
const stats = (backend as { dispatchStats?: { shared: number } }).dispatchStats;
console.log(JSON.stringify({ adapter: backend.describe(), shared: stats?.shared, ...result }));
(backend as { close?: () => void }).close?.(); // the wasm backend's workers would keep Deno running
