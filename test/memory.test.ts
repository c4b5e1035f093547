// Memory is released deterministically: tidy scopes free what a computation allocated, and 1,000 HVPs
// do not grow the number of live buffers.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { uniform } from './helpers/random.ts';

describe('memory', () => {
  it('tidy frees intermediates and keeps the result; views share storage', () => {
    const backend = E.getBackend();
    E.tidy(() => E.add(E.tensor([0]), 1)); // the scalar constant 1 is cached for the process
    const before = backend.memory().buffers;
    const out = E.tidy(() => E.reshape(E.exp(E.add(E.tensor([1, 2, 3]), 1)), [3, 1]));
    expect(backend.memory().buffers).toBe(before + 1);
    out.dispose();
    expect(backend.memory().buffers).toBe(before);
  });

  it('1,000 forward + HVP iterations on a small CNN leave live buffers and bytes unchanged', () => {
    const backend = E.getBackend();
    const w1 = E.tensor(uniform(4 * 3 * 3 * 3, 1), [4, 3, 3, 3]);
    const w2 = E.tensor(uniform(5 * 4, 2), [5, 4]);
    const x = E.tensor(uniform(2 * 3 * 6 * 6, 3), [2, 3, 6, 6]);
    const idx = E.tensor([[1], [2]], [2, 1]);
    const head = (a: E.Tensor) => {
      const logits = E.linear(E.flatten(E.adaptiveAvgPool2d(E.maxPool2d(E.relu(a), { kernel: 2 }), 1), 1), w2);
      return E.sum(E.sub(E.mul(E.gather(logits, idx, 1), 2), E.logsumexp(logits, 1, true)));
    };
    const step = () =>
      E.tidy(() => {
        const a = E.conv2d(x, w1, null, { padding: 1 });
        const r = E.gradAndHvp(head, a, a);
        return E.sum(r.hvp);
      });
    step().dispose(); // warm the constant cache
    const start = backend.memory();
    for (let i = 0; i < 1000; i++) step().dispose();
    expect(backend.memory()).toEqual(start);
  });

  it('a throwing computation inside tidy still releases its intermediates', () => {
    const backend = E.getBackend();
    const before = backend.memory().buffers;
    expect(() =>
      E.tidy(() => {
        E.exp(E.tensor([1, 2]));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(backend.memory().buffers).toBe(before);
  });

  it('tidy and keep recognise tensors when a minifier has renamed the Tensor class (as the page\'s build does)', () => {
    const original = Object.getOwnPropertyDescriptor(E.Tensor, 'name')!;
    Object.defineProperty(E.Tensor, 'name', { ...original, value: 'Lf' });
    try {
      const { weight, bias } = E.tidy(() => ({ weight: E.mul(E.tensor([1, 2]), 2), bias: E.exp(E.tensor([0])) }));
      expect(weight.isDisposed || bias.isDisposed).toBe(false);
      let kept: E.Tensor | null = null;
      E.tidy(() => {
        kept = E.keep(E.add(E.tensor([1]), 1));
      });
      expect(kept!.isDisposed).toBe(false);
      E.dispose([weight, bias, kept]);
      expect(weight.isDisposed && bias.isDisposed && kept!.isDisposed).toBe(true);
    } finally {
      Object.defineProperty(E.Tensor, 'name', original);
    }
  });
});
