// Reading an architecture's hyper-parameters (input channels, widths, classes, depths) from the shapes of
// the tensors in a weights file. Every read has the named architecture's value as its fallback: a tensor
// that is absent or of another rank leaves the default, and strict loading then names that tensor as
// missing or mis-shaped, so a wrong file still fails with the loader's one-line error.

import type { WeightShapes } from '../registry.ts';

export class ShapeReader {
  constructor(private readonly weights: WeightShapes | undefined, private readonly prefix = '') {}

  /** A reader whose names are relative to `prefix` (e.g. "backbone."). */
  under(prefix: string): ShapeReader {
    return new ShapeReader(this.weights, this.prefix + prefix);
  }

  has(name: string): boolean {
    return this.weights?.has(this.prefix + name) ?? false;
  }

  /** The shape of `name` if the file has it with the given rank. */
  shape(name: string, rank: number): readonly number[] | null {
    const full = this.prefix + name;
    if (!this.weights?.has(full)) return null;
    const s = this.weights.shape(full);
    return s.length === rank ? s : null;
  }

  /** Axis `axis` of the rank-`rank` tensor `name`, or the fallback. */
  dim(name: string, rank: number, axis: number, fallback: number): number {
    return this.shape(name, rank)?.[axis] ?? fallback;
  }

  /** Whether any tensor's name starts with `start` (relative to the prefix). */
  hasAny(start: string): boolean {
    const full = this.prefix + start;
    return this.weights?.names().some((n) => n.startsWith(full)) ?? false;
  }

  /** The number of consecutive indices i = 0, 1, … for which `name(i)` is in the file, or the fallback if none is. */
  count(name: (i: number) => string, fallback: number): number {
    let n = 0;
    while (this.has(name(n))) n++;
    return n || fallback;
  }
}
