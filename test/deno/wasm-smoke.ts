// Deno smoke test of the wasm backend (Web Workers over a shared WebAssembly.Memory): a small conv net's
// forward pass and an HVP, printed as JSON for test/wasm-deno.test.ts to compare with Node's results.
//   deno run -A test/deno/wasm-smoke.ts

import * as E from '../../engine/index.ts';
import type { WasmBackend } from '../../engine/wasm/backend.ts';

const backend = (await E.useBackend('wasm')) as WasmBackend;
const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
const x = E.tensor(values(2 * 3 * 16 * 16, 0.37), [2, 3, 16, 16]);
const w1 = E.tensor(values(8 * 3 * 3 * 3, 0.11), [8, 3, 3, 3]);
const w2 = E.tensor(values(5 * 8, 0.23), [5, 8]);
const classes = E.tensor([[1], [3]], [2, 1]);

const a = E.relu(E.conv2d(x, w1, null, { padding: 1 }));
const head = (t: E.Tensor) => {
  const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.silu(t), { kernel: 2 }), 1), 1), w2);
  return E.sum(E.sub(E.mul(E.gather(logits, classes, 1), 2), E.logsumexp(logits, 1, true)));
};
const r = E.gradAndHvp(head, a, a);
console.log(JSON.stringify({
  backend: backend.describe(),
  shared: backend.dispatchStats.shared,
  forward: await a.data(),
  grad: await r.grad.data(),
  hvp: await r.hvp.data(),
}));
backend.close();
