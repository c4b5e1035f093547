// Op values against closed-form or hand-computed results, and clear errors for bad input.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';

const v = (t: E.Tensor) => Array.from(t.valuesSync());
const close = (a: number[], b: number[], tol = 1e-12) => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Math.abs(x - b[i]), `index ${i}: ${x} vs ${b[i]}`).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]))));
};

describe('values', () => {
  it('creation from nested arrays, flat values and numbers', async () => {
    const a = E.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(await a.data()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(E.tensor(7).shape).toEqual([]);
    expect(E.tensor([1, 2, 3, 4], [2, 2]).shape).toEqual([2, 2]);
  });

  it('elementwise maths', () => {
    const x = E.tensor([-2, -0.5, 0, 0.5, 2]);
    close(v(E.relu(x)), [0, 0, 0, 0.5, 2]);
    close(v(E.relu6(E.mul(x, 4))), [0, 0, 0, 2, 6]);
    close(v(E.leakyRelu(x, 0.1)), [-0.2, -0.05, 0, 0.5, 2]);
    close(v(E.sigmoid(x)), [-2, -0.5, 0, 0.5, 2].map((z) => 1 / (1 + Math.exp(-z))));
    close(v(E.silu(x)), [-2, -0.5, 0, 0.5, 2].map((z) => z / (1 + Math.exp(-z))));
    close(v(E.softplus(E.tensor([-800, 0, 800]))), [0, Math.log(2), 800]);
    close(v(E.hardswish(x)), [-2, -0.5, 0, 0.5, 2].map((z) => (z * Math.min(Math.max(z + 3, 0), 6)) / 6));
    close(v(E.hardsigmoid(E.tensor([-4, 0, 4]))), [0, 0.5, 1]);
    // erf reference values (Abramowitz & Stegun table 7.1).
    close(v(E.erf(E.tensor([0, 0.5, 1, 2, 3, -1]))), [0, 0.5204998778130465, 0.8427007929497149, 0.9953222650189527, 0.9999779095030014, -0.8427007929497149], 1e-15);
    close(v(E.gelu(E.tensor([1]))), [0.8413447460685429], 1e-15);
    close(v(E.gelu(E.tensor([1]), { approximate: 'tanh' })), [0.8411919906082768], 1e-15);
    close(v(E.pow(E.tensor([2, 3]), E.tensor([3, 0.5]))), [8, Math.sqrt(3)]);
    close(v(E.maximum(E.tensor([1, 5]), 3)), [3, 5]);
    close(v(E.where(E.tensor([1, 0]), E.tensor([1, 2]), -1)), [1, -1]);
  });

  it('broadcasting', () => {
    const a = E.tensor([[1], [2]]);
    const b = E.tensor([10, 20, 30]);
    expect(E.add(a, b).shape).toEqual([2, 3]);
    close(v(E.add(a, b)), [11, 21, 31, 12, 22, 32]);
    close(v(E.sub(1, b)), [-9, -19, -29]);
  });

  it('reductions with axes, negatives and keepDims', () => {
    const x = E.tensor([[1, 5, 3], [4, 2, 6]]);
    close(v(E.sum(x)), [21]);
    close(v(E.sum(x, 0)), [5, 7, 9]);
    expect(E.sum(x, -1, true).shape).toEqual([2, 1]);
    close(v(E.max(x, 1)), [5, 6]);
    close(v(E.min(x, [0, 1])), [1]);
    close(v(E.mean(x, 1)), [3, 4]);
    close(v(E.var(x, 1)), [8 / 3, 8 / 3]);
    close(v(E.var(x, 1, false, 1)), [4, 4]);
    close(v(E.logsumexp(E.tensor([1000, 1000]))), [1000 + Math.log(2)]);
    close(v(E.softmax(E.tensor([1, 2, 3]))), [1, 2, 3].map((z) => Math.exp(z) / (Math.exp(1) + Math.exp(2) + Math.exp(3))));
    close(v(E.logSoftmax(E.tensor([0, 0]))), [-Math.log(2), -Math.log(2)]);
  });

  it('structure: transpose, permute, slice, pad, concat, gather, flatten', () => {
    const x = E.tensor([[1, 2, 3], [4, 5, 6]]);
    close(v(E.transpose(x)), [1, 4, 2, 5, 3, 6]);
    expect(E.permute(E.zeros([2, 3, 4]), [2, 0, 1]).shape).toEqual([4, 2, 3]);
    close(v(E.slice(x, [0, 1])), [2, 3, 5, 6]);
    close(v(E.slice(x, [0, -1])), [3, 6]);
    close(v(E.slice(x, [0, 0], [null, null], [1, 2])), [1, 3, 4, 6]);
    close(v(E.pad(E.tensor([1, 2]), [[1, 2]], 9)), [9, 1, 2, 9, 9]);
    close(v(E.concat([x, E.tensor([[7], [8]])], 1)), [1, 2, 3, 7, 4, 5, 6, 8]);
    close(v(E.gather(x, [[2, 0], [1, 1]], 1)), [3, 1, 5, 5]);
    expect(E.flatten(E.zeros([2, 3, 4]), 1).shape).toEqual([2, 12]);
    expect(E.expand(E.tensor([1, 2]), [3, 2]).shape).toEqual([3, 2]);
  });

  it('matmul and linear', () => {
    const a = E.tensor([[1, 2], [3, 4]]);
    const b = E.tensor([[5, 6], [7, 8]]);
    close(v(E.matmul(a, b)), [19, 22, 43, 50]);
    close(v(E.matmul(a, E.tensor([1, 1]))), [3, 7]);
    close(v(E.linear(E.tensor([[1, 1]]), a, E.tensor([10, 20]))), [13, 27]);
    expect(E.matmul(E.zeros([3, 1, 2, 4]), E.zeros([5, 4, 6])).shape).toEqual([3, 5, 2, 6]);
  });

  it('conv2d against a hand computation (padding, stride, groups)', () => {
    const x = E.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const w = E.tensor([1, 0, 0, -1], [1, 1, 2, 2]);
    close(v(E.conv2d(x, w)), [1 - 5, 2 - 6, 4 - 8, 5 - 9]);
    const y = E.conv2d(x, E.ones([1, 1, 3, 3]), E.tensor([100]), { padding: 1, stride: 2 });
    close(v(y), [100 + 12, 100 + 16, 100 + 24, 100 + 28]);
    const two = E.concat([x, E.mul(x, 10)], 1);
    const dw = E.conv2d(two, E.ones([2, 1, 1, 1]), null, { groups: 2 });
    close(v(dw), [...[1, 2, 3, 4, 5, 6, 7, 8, 9], ...[10, 20, 30, 40, 50, 60, 70, 80, 90]]);
    const dil = E.conv2d(x, E.tensor([1, 1, 1, 1], [1, 1, 2, 2]), null, { dilation: 2 });
    close(v(dil), [1 + 3 + 7 + 9]);
  });

  it('pooling', () => {
    const x = E.tensor([1, 5, 2, 0, 3, 4, 9, 8, 7, 6, 2, 1, 0, 3, 4, 5], [1, 1, 4, 4]);
    close(v(E.maxPool2d(x, { kernel: 2 })), [5, 9, 7, 5]);
    close(v(E.maxPool2d(x, { kernel: 3, stride: 2, padding: 1 })), [5, 9, 7, 9]);
    close(v(E.avgPool2d(x, { kernel: 2 })), [13 / 4, 19 / 4, 16 / 4, 12 / 4]);
    // Padding counts as zeros in the divisor by default (torch count_include_pad=True).
    close(v(E.avgPool2d(E.ones([1, 1, 2, 2]), { kernel: 3, stride: 1, padding: 1 })), [4 / 9, 4 / 9, 4 / 9, 4 / 9]);
    close(v(E.avgPool2d(E.ones([1, 1, 2, 2]), { kernel: 3, stride: 1, padding: 1, countIncludePad: false })), [1, 1, 1, 1]);
    close(v(E.adaptiveAvgPool2d(x, 1)), [60 / 16]);
    // torch.nn.functional.adaptive_avg_pool2d(arange(25).view(1,1,5,5), 2) = [[6, 8], [16, 18]]
    close(v(E.adaptiveAvgPool2d(E.tensor(Array.from({ length: 25 }, (_, i) => i), [1, 1, 5, 5]), 2)), [6, 8, 16, 18]);
  });

  it('batchNorm and layerNorm', () => {
    const x = E.tensor([1, 2, 3, 4], [1, 2, 2, 1]);
    const y = E.batchNorm(x, { mean: E.tensor([1, 2]), var: E.tensor([4, 1]), weight: E.tensor([2, 1]), bias: E.tensor([0, 1]), eps: 0 });
    close(v(y), [0, 1, 2, 3]);
    const ln = E.layerNorm(E.tensor([[1, 3], [2, 2]]), E.tensor([2, 1]), E.tensor([0, 5]), 1e-5);
    const s = 1 / Math.sqrt(1 + 1e-5);
    close(v(ln), [-2 * s, s + 5, 0, 5]);
  });
});

describe('bad input gets a clear error', () => {
  it('shape mismatches name the op and both shapes', () => {
    expect(() => E.add(E.zeros([2, 3]), E.zeros([4]))).toThrow('add: shapes [2,3] and [4] cannot be broadcast together');
    expect(() => E.matmul(E.zeros([2, 3]), E.zeros([4, 5]))).toThrow('matmul: inner dimensions differ: [2,3] @ [4,5]');
    expect(() => E.reshape(E.zeros([2, 3]), [4, 2])).toThrow(/reshape: cannot reshape \[2,3\]/);
    expect(() => E.conv2d(E.zeros([1, 3, 5, 5]), E.zeros([4, 2, 3, 3]))).toThrow(/conv2d: .*3 input channels|conv2d: weight \[4,2,3,3\]/);
    expect(() => E.concat([E.zeros([2, 3]), E.zeros([3, 3])], 1)).toThrow(/concat: shapes \[2,3\], \[3,3\]/);
  });
  it('an unknown axis says which', () => {
    expect(() => E.sum(E.zeros([2, 3]), 2)).toThrow('sum: axis 2 is out of range for a tensor of rank 2');
    expect(() => E.softmax(E.zeros([2]), -2)).toThrow('softmax: axis -2 is out of range for a tensor of rank 1');
  });
  it('grad of a non-scalar function and mismatched tangents are refused', () => {
    expect(() => E.grad((x) => E.mul(x, 2))(E.zeros([3]))).toThrow(/grad: the function must return a single value, got shape \[3\]/);
    expect(() => E.jvp((x) => x, [E.zeros([3])], [E.zeros([2])])).toThrow(/tangent shape \[2\] does not match primal shape \[3\]/);
  });
  it('a disposed tensor is reported as such', () => {
    const x = E.tensor([1, 2]);
    x.dispose();
    expect(() => E.exp(x)).toThrow(/used after dispose/);
  });
});
