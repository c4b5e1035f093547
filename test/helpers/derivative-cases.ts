// The derivative suites every float32 backend runs against the float64 CPU reference (itself checked
// against finite differences in autodiff.test.ts): for every op family, the value, the JVP, the VJP and
// the second-order forward-over-reverse product.

import * as E from '../../engine/index.ts';
import type { Backend, Tensor } from '../../engine/index.ts';
import { distinct, uniform, uniformAvoiding } from './random.ts';

type Data = { values: Float64Array; shape: number[] };
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const u = (shape: number[], seed: number, lo = -1, hi = 1): Data => ({ values: uniform(size(shape), seed, lo, hi), shape });
const away = (shape: number[], seed: number, kinks: number[], lo = -1, hi = 1): Data => ({ values: uniformAvoiding(size(shape), seed, kinks, 0.05, lo, hi), shape });
const ties = (shape: number[], seed: number): Data => ({ values: distinct(size(shape), seed), shape });

export interface Case {
  name: string;
  f: (...xs: Tensor[]) => Tensor;
  inputs: Data[];
}

export const cases: Case[] = [
  ...(
    [
      ['exp', E.exp, u([3, 4], 2)], ['log', E.log, u([3, 4], 3, 0.5, 2)], ['sqrt', E.sqrt, u([5], 5, 0.5, 2)],
      ['rsqrt', E.rsqrt, u([5], 6, 0.5, 2)], ['abs', E.abs, away([7], 7, [0])], ['tanh', E.tanh, u([6], 8, -2, 2)],
      ['sigmoid', E.sigmoid, u([6], 9, -3, 3)], ['erf', E.erf, u([9], 10, -2.5, 2.5)], ['relu', E.relu, away([3, 5], 11, [0])],
      ['relu6', E.relu6, away([17], 12, [0, 6], -2, 8)], ['leakyRelu', (x: Tensor) => E.leakyRelu(x, 0.1), away([9], 13, [0])],
      ['gelu', (x: Tensor) => E.gelu(x), u([8], 14, -3, 3)], ['gelu tanh', (x: Tensor) => E.gelu(x, { approximate: 'tanh' }), u([8], 15, -3, 3)],
      ['silu', E.silu, u([8], 16, -3, 3)], ['hardswish', E.hardswish, away([11], 17, [-3, 3], -5, 5)],
      ['softplus', E.softplus, u([8], 19, -4, 4)], ['log1p', E.log1p, u([6], 20, -0.5, 2)],
    ] as [string, (x: Tensor) => Tensor, Data][]
  ).map(([name, f, x]) => ({ name, f, inputs: [x] })),
  { name: 'add/sub/mul/div broadcast', f: (a, b) => E.div(E.mul(E.add(a, b), E.sub(a, b)), E.add(E.mul(b, b), 1)), inputs: [u([2, 1, 3], 1), u([4, 1], 2)] },
  { name: 'pow', f: E.pow, inputs: [u([3, 4], 3, 0.5, 2), u([4], 4, -2, 2)] },
  { name: 'maximum/minimum', f: (a, b) => E.mul(E.maximum(a, b), E.minimum(a, E.add(b, 0.033))), inputs: [ties([3, 4], 5), ties([3, 4], 6)] },
  { name: 'where', f: (a, b) => E.where(E.greater(a, 0), E.mul(a, b), E.exp(b)), inputs: [away([3, 4], 7, [0]), u([4], 8)] },
  { name: 'sum/mean/max axes', f: (x) => E.add(E.sum(E.mul(x, x), [0, 2]), E.mul(E.max(x, -1, false), E.mean(x, 2))), inputs: [ties([2, 3, 4], 9)] },
  { name: 'var/logsumexp/softmax/logSoftmax', f: (x) => E.add(E.mul(E.var(x, 1, true), E.softmax(x, 1)), E.logSoftmax(E.mul(x, E.logsumexp(x, 0, true)), 1)), inputs: [u([3, 5], 10, -2, 2)] },
  { name: 'reshape/transpose/permute/expand', f: (x) => E.mul(E.permute(E.reshape(x, [2, 3, 4]), [2, 0, 1]), E.expand(E.reshape(E.slice(E.transpose(E.reshape(x, [4, 6])), [0, 0], [1, 4]), [4, 1, 1]), [4, 2, 3])), inputs: [u([24], 11)] },
  { name: 'slice/pad/concat', f: (x) => E.concat([E.slice(x, [1, 0, 1], [null, null, null], [1, 2, 2]), E.pad(E.slice(x, [0, 0, 0], [1, 2, 2]), [[0, 1], [0, 0], [0, 0]], 0.5)], 1), inputs: [u([3, 5, 4], 12)] },
  { name: 'gather', f: (x) => E.mul(E.gather(x, [[2, 0, 2], [1, 1, 0]], 1), E.gather(x, [[0, 3, 1], [2, 2, 3]], 1)), inputs: [u([2, 4], 13)] },
  { name: 'matmul batched broadcast', f: E.matmul, inputs: [u([2, 1, 17, 9], 14), u([3, 9, 5], 15)] },
  { name: 'linear', f: E.linear, inputs: [u([3, 7], 16), u([5, 7], 17), u([5], 18)] },
  { name: 'conv2d stride 2 padding 1 bias', f: (x, w, b) => E.conv2d(x, w, b, { stride: 2, padding: 1 }), inputs: [u([2, 3, 9, 9], 19), u([4, 3, 3, 3], 20), u([4], 21)] },
  { name: 'conv2d dilation 2 non-square', f: (x, w) => E.conv2d(x, w, null, { dilation: [2, 1], padding: [2, 1] }), inputs: [u([1, 2, 7, 8], 22), u([3, 2, 3, 2], 23)] },
  { name: 'conv2d groups 2', f: (x, w) => E.conv2d(x, w, null, { groups: 2, padding: 1 }), inputs: [u([2, 4, 5, 5], 24), u([6, 2, 3, 3], 25)] },
  { name: 'conv2d depthwise', f: (x, w) => E.conv2d(x, w, null, { groups: 3, stride: 2, padding: 1 }), inputs: [u([1, 3, 8, 8], 26), u([3, 1, 3, 3], 27)] },
  { name: 'conv2d 1×1', f: (x, w) => E.conv2d(x, w), inputs: [u([2, 8, 4, 4], 28), u([5, 8, 1, 1], 29)] },
  { name: 'maxPool2d', f: (x) => E.maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }), inputs: [ties([2, 2, 7, 7], 30)] },
  { name: 'avgPool2d and adaptive', f: (x) => E.add(E.avgPool2d(x, { kernel: 2 }), E.adaptiveAvgPool2d(x, [3, 3])), inputs: [u([1, 2, 6, 6], 31)] },
  { name: 'batchNorm and layerNorm', f: (x, w, b) => E.layerNorm(E.batchNorm(x, { mean: w, var: E.add(E.mul(b, b), 0.5), weight: b, bias: w, eps: 1e-5 }), null, null, 1e-5, [3, 3]), inputs: [u([2, 3, 3, 3], 32), u([3], 33), u([3], 34)] },
  {
    name: 'small CNN with a ReST utility',
    f: (x, w1, w2) => {
      const h = E.maxPool2d(E.silu(E.conv2d(x, w1, null, { padding: 1 })), { kernel: 2 });
      const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(h, 1), 1), w2);
      return E.sum(E.sub(E.mul(E.slice(logits, [0, 2], [null, 3]), 2), E.logsumexp(logits, 1, true)));
    },
    inputs: [ties([2, 2, 6, 6], 35), u([4, 2, 3, 3], 36), u([5, 4], 37)],
  },
];

/** Value, J·v, Jᵀ·w and the second-order product ∂/∂ε [Jᵀ(x + εv)·w] for fixed random v, w. */
export async function derivatives(c: Case, backend: Backend) {
  const xs = c.inputs.map((d) => E.tensor(d.values, d.shape, backend));
  const vs = c.inputs.map((d, i) => E.tensor(uniform(size(d.shape), 100 + i), d.shape, backend));
  const [value, jv] = E.jvp(c.f, xs, vs);
  const w = E.tensor(uniform(value.size, 200), value.shape, backend);
  const vjpAt = (...ys: Tensor[]) => E.concat(E.vjp(c.f, ys)[1](w).map((g) => E.reshape(g, [g.size])), 0);
  const [jtw, second] = E.jvp(vjpAt, xs, vs);
  return Promise.all([value, jv, jtw, second].map((t) => t.values()));
}

/** Labels of the four results of `derivatives`. */
export const DERIVATIVE_LABELS = ['value', 'jvp', 'vjp', 'forward-over-reverse'];
