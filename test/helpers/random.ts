// Seeded random data for tests (mulberry32), so every failure reproduces.

export { rngFor as rng } from '../../cam/algorithm/random.ts';
import { rngFor as rng } from '../../cam/algorithm/random.ts';

/** n uniform values in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Values in [lo, hi) kept at least `gap` away from every point in `avoid` (kinks of relu, max ties…). */
export function uniformAvoiding(n: number, seed: number, avoid: number[], gap = 0.05, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = lo + (hi - lo) * r();
    while (avoid.some((a) => Math.abs(v - a) < gap));
    out[i] = v;
  }
  return out;
}

/** A permutation of distinct, well-separated values: no ties for max-type ops. */
export function distinct(n: number, seed: number, spacing = 0.1): Float64Array {
  const r = rng(seed);
  const vals = Array.from({ length: n }, (_, i) => (i - n / 2) * spacing);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [vals[i], vals[j]] = [vals[j], vals[i]];
  }
  return Float64Array.from(vals);
}
