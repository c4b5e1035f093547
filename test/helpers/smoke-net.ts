// The small conv net of the Deno smoke tests, run the same way under Node (the tests) and Deno
// (test/deno/engine-smoke.ts): forward pass to a ReLU activation, then G and H·A of a ReST head there.

import * as E from '../../engine/index.ts';

export interface SmokeResult {
  forward: number[];
  value: number;
  grad: number[];
  hvp: number[];
}

/** `size`: the input's height and width; `channels`: the activation's channels. */
export async function smokeNet(backend: E.Backend, size = 8, channels = 4): Promise<SmokeResult> {
  const values = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  const x = E.tensor(values(2 * 3 * size * size, 0.37), [2, 3, size, size], backend);
  const w1 = E.tensor(values(channels * 3 * 3 * 3, 0.11), [channels, 3, 3, 3], backend);
  const w2 = E.tensor(values(5 * channels, 0.23), [5, channels], backend);
  const classes = E.tensor([[1], [3]], [2, 1], backend);
  const a = E.relu(E.conv2d(x, w1, null, { padding: 1 }));
  const head = (t: E.Tensor) => {
    const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.silu(t), { kernel: 2 }), 1), 1), w2);
    return E.sum(E.sub(E.mul(E.gather(logits, classes, 1), 2), E.logsumexp(logits, 1, true)));
  };
  const r = E.gradAndHvp(head, a, a);
  return { forward: await a.data(), value: (await r.value.data())[0], grad: await r.grad.data(), hvp: await r.hvp.data() };
}
