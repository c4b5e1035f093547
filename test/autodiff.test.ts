// First- and second-order derivative checks of every op against float64 central finite differences,
// in forward and reverse mode (and forward-over-reverse / reverse-over-reverse for order 2).

import { describe, it } from 'vitest';
import * as E from '../engine/index.ts';
import { checkGrads } from './helpers/gradcheck.ts';
import { distinct, uniform, uniformAvoiding } from './helpers/random.ts';

const t = (shape: number[], seed: number, lo = -1, hi = 1) => E.tensor(uniform(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
const away = (shape: number[], seed: number, kinks: number[], lo = -1, hi = 1) =>
  E.tensor(uniformAvoiding(shape.reduce((a, b) => a * b, 1), seed, kinks, 0.05, lo, hi), shape);
const ties = (shape: number[], seed: number) => E.tensor(distinct(shape.reduce((a, b) => a * b, 1), seed), shape);

describe('unary ops', () => {
  const cases: [string, (x: E.Tensor) => E.Tensor, E.Tensor][] = [
    ['neg', E.neg, t([3, 4], 1)],
    ['exp', E.exp, t([3, 4], 2)],
    ['log', E.log, t([3, 4], 3, 0.5, 2)],
    ['log1p', E.log1p, t([5], 4, -0.5, 2)],
    ['sqrt', E.sqrt, t([3, 4], 5, 0.5, 2)],
    ['rsqrt', E.rsqrt, t([3, 4], 6, 0.5, 2)],
    ['abs', E.abs, away([7], 7, [0])],
    ['tanh', E.tanh, t([2, 3, 2], 8, -2, 2)],
    ['sigmoid', E.sigmoid, t([2, 3], 9, -3, 3)],
    ['erf', E.erf, t([9], 10, -2.8, 2.8)],
    ['relu', E.relu, away([3, 5], 11, [0])],
    ['relu6', E.relu6, away([17], 12, [0, 6], -2, 8)],
    ['leakyRelu', (x) => E.leakyRelu(x, 0.1), away([3, 3], 13, [0])],
    ['gelu', (x) => E.gelu(x), t([3, 4], 14, -3, 3)],
    ['gelu tanh', (x) => E.gelu(x, { approximate: 'tanh' }), t([3, 4], 15, -3, 3)],
    ['silu', E.silu, t([3, 4], 16, -3, 3)],
    ['hardswish', E.hardswish, away([11], 17, [-3, 3], -5, 5)],
    ['hardsigmoid', E.hardsigmoid, away([11], 18, [-3, 3], -5, 5)],
    ['softplus', E.softplus, t([3, 4], 19, -4, 4)],
    ['sin', E.sin, t([4], 20, -3, 3)],
    ['cos', E.cos, t([4], 21, -3, 3)],
    ['reciprocal', E.reciprocal, t([4], 22, 0.5, 2)],
  ];
  for (const [name, f, x] of cases) it(name, () => checkGrads(f, [x]));
});

describe('binary ops with broadcasting', () => {
  const shapes: [number[], number[]][] = [
    [[3, 4], [3, 4]],
    [[3, 4], [4]],
    [[2, 1, 3], [4, 1]],
    [[1], [2, 3]],
    [[], [2, 2]],
  ];
  for (const [sa, sb] of shapes) {
    const tag = `${JSON.stringify(sa)}×${JSON.stringify(sb)}`;
    it(`add sub mul div ${tag}`, () => {
      checkGrads(E.add, [t(sa, 1), t(sb, 2)]);
      checkGrads(E.sub, [t(sa, 3), t(sb, 4)]);
      checkGrads(E.mul, [t(sa, 5), t(sb, 6)]);
      checkGrads(E.div, [t(sa, 7), t(sb, 8, 0.5, 2)]);
    });
    it(`pow maximum minimum ${tag}`, () => {
      checkGrads(E.pow, [t(sa, 9, 0.5, 2), t(sb, 10, -2, 2)]);
      checkGrads(E.maximum, [ties(sa, 11), E.add(ties(sb, 12), 0.033)]);
      checkGrads(E.minimum, [ties(sa, 13), E.add(ties(sb, 14), 0.033)]);
    });
  }
  it('numbers as operands', () => {
    checkGrads((x) => E.add(E.mul(2, x), E.div(1, E.add(x, 3))), [t([2, 2], 15)]);
    checkGrads((x) => E.pow(x, 3), [t([5], 16)]);
  });
  it('where', () => {
    const cond = E.greater(t([3, 4], 17), 0);
    checkGrads((a, b) => E.where(cond, a, b), [t([3, 4], 18), t([4], 19)]);
  });
});

describe('reductions', () => {
  const x = () => ties([2, 3, 4], 1);
  for (const axis of [undefined, 0, 1, -1, [0, 2]] as const) {
    for (const keepDims of [false, true]) {
      const tag = `axis ${JSON.stringify(axis)} keepDims ${keepDims}`;
      it(`sum mean max ${tag}`, () => {
        checkGrads((v) => E.sum(v, axis, keepDims), [x()]);
        checkGrads((v) => E.mean(v, axis, keepDims), [x()]);
        checkGrads((v) => E.max(v, axis, keepDims), [x()]);
        checkGrads((v) => E.min(v, axis, keepDims), [x()]);
      });
      it(`var logsumexp ${tag}`, () => {
        checkGrads((v) => E.var(v, axis, keepDims), [x()]);
        checkGrads((v) => E.logsumexp(v, axis, keepDims), [x()]);
      });
    }
  }
  it('softmax and logSoftmax', () => {
    checkGrads((v) => E.softmax(v, 1), [t([2, 5], 3, -3, 3)]);
    checkGrads((v) => E.logSoftmax(v), [t([3, 4], 4, -3, 3)]);
  });
});

describe('structure', () => {
  it('reshape flatten transpose permute expand', () => {
    checkGrads((v) => E.reshape(v, [4, -1]), [t([2, 3, 2], 1)]);
    checkGrads((v) => E.flatten(v, 1), [t([2, 3, 2], 2)]);
    checkGrads((v) => E.transpose(v), [t([2, 3, 4], 3)]);
    checkGrads((v) => E.permute(v, [2, 0, 1]), [t([2, 3, 4], 4)]);
    checkGrads((v) => E.mul(E.expand(v, [2, 3, 4]), t([2, 3, 4], 6)), [t([3, 1], 5)]);
  });
  it('slice with steps and negatives, pad, concat', () => {
    checkGrads((v) => E.slice(v, [1, 0, -3], [3, null, 5], [1, 2, 2]), [t([4, 5, 6], 1)]);
    checkGrads((v) => E.slice(v, [0, 0, 0, 0], [null, null, null, null], [1, 1, 2, 2]), [t([1, 2, 5, 5], 2)]);
    checkGrads((v) => E.pad(v, [[1, 0], [2, 3]], 0.5), [t([2, 3], 3)]);
    checkGrads((a, b) => E.concat([a, b, a], 1), [t([2, 3], 4), t([2, 1], 5)]);
  });
  it('gather', () => {
    const idx = E.tensor([[2, 0, 2], [1, 1, 0]], [2, 3]);
    checkGrads((v) => E.gather(v, idx, 1), [t([2, 4], 1)]);
    checkGrads((v) => E.mul(E.gather(v, idx, 1), E.gather(v, idx, 1)), [t([2, 4], 2)]);
  });
});

describe('linear algebra', () => {
  it('matmul 2-D, batched, broadcast batch, vector', () => {
    checkGrads(E.matmul, [t([3, 4], 1), t([4, 5], 2)]);
    checkGrads(E.matmul, [t([2, 3, 4], 3), t([2, 4, 2], 4)]);
    checkGrads(E.matmul, [t([2, 1, 3, 4], 5), t([3, 4, 2], 6)]);
    checkGrads(E.matmul, [t([4], 7), t([4, 3], 8)]);
    checkGrads(E.matmul, [t([3, 4], 9), t([4], 10)]);
  });
  it('linear with bias', () => checkGrads(E.linear, [t([2, 5], 1), t([3, 5], 2), t([3], 3)]));
});

describe('convolution and pooling', () => {
  const convCases: [string, number[], number[], E.Conv2dOptions][] = [
    ['plain 3×3', [2, 3, 5, 5], [4, 3, 3, 3], {}],
    ['stride 2 padding 1', [1, 2, 7, 6], [3, 2, 3, 3], { stride: 2, padding: 1 }],
    ['dilation 2, non-square', [1, 2, 7, 8], [2, 2, 3, 2], { dilation: [2, 1], padding: [2, 1] }],
    ['groups 2', [2, 4, 5, 5], [6, 2, 3, 3], { groups: 2, padding: 1 }],
    ['depthwise stride 2', [1, 3, 6, 6], [3, 1, 3, 3], { groups: 3, stride: 2, padding: 1 }],
    ['1×1', [2, 4, 3, 3], [5, 4, 1, 1], {}],
    ['odd stride 3 padding [0, 2]', [1, 1, 8, 7], [2, 1, 2, 3], { stride: [3, 2], padding: [0, 2] }],
  ];
  for (const [name, xs, ws, o] of convCases) {
    it(`conv2d ${name}`, () => checkGrads((x, w) => E.conv2d(x, w, null, o), [t(xs, 1), t(ws, 2)]));
  }
  it('conv2d with bias', () => checkGrads((x, w, b) => E.conv2d(x, w, b, { padding: 1 }), [t([1, 2, 4, 4], 1), t([3, 2, 3, 3], 2), t([3], 3)]));
  it('maxPool2d (kernel 3 stride 2 padding 1, and 2×2)', () => {
    checkGrads((x) => E.maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }), [ties([2, 2, 7, 7], 1)]);
    checkGrads((x) => E.maxPool2d(x, { kernel: 2 }), [ties([1, 3, 4, 6], 2)]);
  });
  it('avgPool2d (with and without counting padding) and adaptiveAvgPool2d', () => {
    checkGrads((x) => E.avgPool2d(x, { kernel: 3, stride: 2, padding: 1 }), [t([1, 2, 5, 5], 1)]);
    checkGrads((x) => E.avgPool2d(x, { kernel: 3, stride: 2, padding: 1, countIncludePad: false }), [t([1, 2, 5, 5], 2)]);
    checkGrads((x) => E.adaptiveAvgPool2d(x, 1), [t([2, 3, 4, 4], 3)]);
    checkGrads((x) => E.adaptiveAvgPool2d(x, [3, 2]), [t([1, 2, 7, 5], 4)]);
  });
  it('batchNorm and layerNorm', () => {
    const C = 3;
    const bn = { mean: t([C], 5), var: t([C], 6, 0.5, 2), weight: t([C], 7), bias: t([C], 8), eps: 1e-5 };
    checkGrads((x) => E.batchNorm(x, bn), [t([2, C, 3, 3], 9)]);
    checkGrads((x, w, b) => E.layerNorm(x, w, b, 1e-5), [t([2, 3, 4], 10), t([4], 11), t([4], 12)]);
    checkGrads((x, w, b) => E.layerNorm(x, w, b, 1e-5), [t([2, 3, 4], 13), t([3, 4], 14), t([3, 4], 15)]);
  });
});

describe('composite networks', () => {
  it('a small CNN with a ReST utility, derivatives with respect to the input', () => {
    const w1 = t([4, 2, 3, 3], 1);
    const w2 = t([5, 4], 2);
    const net = (x: E.Tensor) => {
      const h = E.maxPool2d(E.gelu(E.conv2d(x, w1, null, { padding: 1 })), { kernel: 2 });
      const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(h, 1), 1), w2);
      return E.sum(E.sub(E.mul(E.slice(logits, [0, 2], [null, 3]), 2), E.logsumexp(logits, 1, true)));
    };
    checkGrads(net, [ties([2, 2, 6, 6], 3)], { order: 2 });
  });
  it('third order through nested transforms', () => {
    checkGrads((x) => E.sum(E.mul(E.tanh(x), E.exp(E.mul(x, 0.5)))), [t([4], 1)], { order: 3 });
  });
});
