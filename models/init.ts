// Random parameters for benchmarks and tests of architectures without shipped weights: He-normal
// convolution and linear weights, identity batch norm, zero biases. Seeded, so runs are repeatable.

import type { Module, StateDictSource } from './module.ts';

function gaussian(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** A state dict of random values for every tensor the module declares. */
export function randomStateDict(module: Module, seed = 1): StateDictSource {
  const specs = new Map([...module.tensors()].map(([name, spec]) => [name, spec.shape]));
  const randn = gaussian(seed);
  return {
    names: () => [...specs.keys()],
    has: (n) => specs.has(n),
    shape: (n) => specs.get(n)!,
    values: (n) => {
      const shape = specs.get(n)!;
      const size = shape.reduce((a, b) => a * b, 1);
      const leaf = n.split('.').pop()!;
      if (leaf === 'running_var') return new Float32Array(size).fill(1);
      if (leaf === 'running_mean' || leaf === 'bias') return new Float32Array(size);
      if (leaf === 'weight' && shape.length === 1) return new Float32Array(size).fill(1);
      const fanIn = shape.length > 1 ? size / shape[0] : size;
      const std = Math.sqrt(2 / fanIn);
      return Float32Array.from({ length: size }, () => randn() * std);
    },
  };
}

/** Loads random parameters (randomStateDict) on the current backend. */
export function initializeRandom(module: Module, seed = 1): void {
  module.loadStateDict(randomStateDict(module, seed), { sourceName: 'random initialisation' });
}
