// The comparison helpers the other suites rely on must be able to fail.

import { describe, expect, it } from 'vitest';
import { absErr, relErr } from './helpers/fixtures.ts';

describe('relErr and absErr', () => {
  it('measure the largest difference (relative to the largest reference value)', () => {
    expect(relErr([1, 2.5, -4], [1, 2, -4])).toBeCloseTo(0.5 / 4, 15);
    expect(absErr([1, 2.5, -4], [1, 2, -4])).toBe(0.5);
    expect(relErr([0.5, 0], [0, 0])).toBe(0.5); // an all-zero reference: absolute error
  });

  it('an empty reference or a length mismatch fails instead of passing', () => {
    expect(() => relErr([], [])).toThrow(/reference is empty/);
    expect(() => relErr([1, 2], [])).toThrow(/reference is empty/);
    expect(() => absErr(new Float64Array(0), new Float64Array(0))).toThrow(/reference is empty/);
    expect(() => relErr([1], [1, 2])).toThrow(/1 values compared with a reference of 2/);
    expect(() => absErr([1, 2, 3], [1, 2])).toThrow(/3 values compared with a reference of 2/);
  });

  it('a NaN in the result fails every bound', () => {
    expect(relErr([1, NaN], [1, 2]) < 1).toBe(false);
    expect(absErr([NaN, 1], [1, 1]) < 1).toBe(false);
  });
});
