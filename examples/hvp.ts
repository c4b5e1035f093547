// The Hessian-vector product of a small CNN's ReST utility (2·o_c − logsumexp(o)) with respect to an
// intermediate activation A, by forward-over-reverse: exact, no finite differences.
//   npx tsx examples/hvp.ts

import * as E from '../engine/index.ts';

const randn = (shape: number[], seed: number) => {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return E.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), shape);
};

const x = randn([1, 3, 8, 8], 1);
const w1 = randn([8, 3, 3, 3], 2);
const w2 = randn([10, 8], 3);
const c = 4; // the class explained

// The network up to A, computed once and not differentiated.
const A = E.relu(E.conv2d(x, w1, null, { padding: 1 }));

// The rest of the network as a function of A, ending in the ReST utility.
const head = (a: E.Tensor) => {
  const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.silu(a), 1), 1), w2);
  const oc = E.slice(logits, [0, c], [1, c + 1]);
  return E.sum(E.sub(E.mul(oc, 2), E.logsumexp(logits, 1, true)));
};

const { value, grad, hvp, hvpIsStructurallyZero } = E.gradAndHvp(head, A, A); // G = ∂U/∂A, H·A
const shapley = E.mul(A, E.sub(grad, E.mul(hvp, 0.5))); // A ⊙ (G − ½·H·A): ShapleyCAM's per-element values

console.log('U =', (await value.data())[0].toFixed(6));
console.log('G[0:4]   =', (await grad.data()).slice(0, 4).map((v) => v.toFixed(6)));
console.log('H·A[0:4] =', (await hvp.data()).slice(0, 4).map((v) => v.toFixed(6)));
console.log('H·A structurally zero:', hvpIsStructurallyZero);
console.log('Σ A⊙(G − ½H·A) =', (await E.sum(shapley).data())[0].toFixed(6));

// With a logit utility and a piecewise-linear head, the engine reports H·A as structurally zero.
const linearHead = (a: E.Tensor) => E.sum(E.slice(E.linear(E.flatten(E.adaptiveAvgPool2d(E.relu(a), 1), 1), w2), [0, c], [1, c + 1]));
console.log('logit utility, ReLU head: H·A structurally zero:', E.gradAndHvp(linearHead, A, A).hvpIsStructurallyZero);
