// Errors the CLI maps to exit codes: bad usage exits 2, bad input (files, weights, layers) exits 1.

export class UsageError extends Error {
  override name = 'UsageError';
}

export class InputError extends Error {
  override name = 'InputError';
}
