// Errors the CLI maps to exit codes: bad usage exits 2, bad input (files, weights, layers) exits 1.

export class UsageError extends Error {
  override name = 'UsageError';
}

export class InputError extends Error {
  override name = 'InputError';
}

/** A non-negative integer flag value ≥ min, or a UsageError naming the flag. */
export function parseIntFlag(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer ≥ ${min}, got "${value}"`);
  return n;
}
