// A small CNN for backend tests: conv → GELU → max-pool → conv (stride 2) → SiLU → global average →
// linear → ReST utility of class 1. `features` is the network up to its last activation, `head` the rest.

import * as E from '../../engine/index.ts';

export function smallCnn(w1: E.Tensor, w2: E.Tensor, w3: E.Tensor) {
  const features = (x: E.Tensor) => E.silu(E.conv2d(E.maxPool2d(E.gelu(E.conv2d(x, w1, null, { padding: 1 })), { kernel: 2 }), w2, null, { stride: 2, padding: 1 }));
  const head = (a: E.Tensor) => {
    const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(a, 1), 1), w3);
    return E.sum(E.sub(E.mul(E.slice(logits, [0, 1], [2, 2]), 2), E.logsumexp(logits, 1, true)));
  };
  return { features, head };
}
