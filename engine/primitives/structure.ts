// Primitives that move data without arithmetic: reshape, broadcast, transpose, slice, pad, concat,
// gather and its transpose scatter-add. Each one's derivative is another of them.

import { definePrimitive } from '../primitive.ts';
import { broadcastShapes, fmt, sameShape, ShapeError, sizeOf } from '../shape.ts';
import * as ops from '../ops.ts';

export const reshape = definePrimitive<{ shape: readonly number[] }>({
  name: 'reshape',
  view: true,
  shape: ([s], p) => {
    if (sizeOf(s) !== sizeOf(p.shape)) throw new ShapeError(`reshape: cannot reshape ${fmt(s)} (${sizeOf(s)} elements) to ${fmt(p.shape)}`);
    return [...p.shape];
  },
  impl: (_b, [x]) => x,
  jvp: (_x, [t], _y, p) => ops.reshape(t!, p.shape),
  vjp: (ct, [x]) => [ops.reshape(ct, x.shape)],
});

export const expand = definePrimitive<{ shape: readonly number[] }>({
  name: 'expand',
  shape: ([s], p) => {
    const b = s.length <= p.shape.length ? broadcastShapes('expand', s, p.shape) : null;
    if (!b || !sameShape(b, p.shape)) throw new ShapeError(`expand: cannot broadcast ${fmt(s)} to ${fmt(p.shape)}`);
    return [...p.shape];
  },
  impl: (backend, [x], [shape], p) => backend.run('expand', [x], { shape, outShape: p.shape }),
  jvp: (_x, [t], _y, p) => ops.broadcastTo(t!, p.shape),
  vjp: (ct, [x]) => [ops.unbroadcast(ct, x.shape)],
});

export const transpose = definePrimitive<{ perm: readonly number[] }>({
  name: 'transpose',
  shape: ([s], p) => {
    const ok = p.perm.length === s.length && [...p.perm].sort((a, b) => a - b).every((v, i) => v === i);
    if (!ok) throw new ShapeError(`transpose: [${p.perm.join(',')}] is not a permutation of the axes of ${fmt(s)}`);
    return p.perm.map((a) => s[a]);
  },
  impl: (backend, [x], [shape], p) => backend.run('transpose', [x], { shape, perm: p.perm }),
  jvp: (_x, [t], _y, p) => ops.permute(t!, p.perm),
  vjp: (ct, _x, _y, p) => {
    const inverse = new Array<number>(p.perm.length);
    p.perm.forEach((a, i) => (inverse[a] = i));
    return [ops.permute(ct, inverse)];
  },
});

export interface SliceParams {
  begin: readonly number[];
  end: readonly number[];
  step: readonly number[];
}

export const slice = definePrimitive<SliceParams>({
  name: 'slice',
  shape: ([s], p) =>
    s.map((n, d) => {
      const [b, e, st] = [p.begin[d], p.end[d], p.step[d]];
      if (!(0 <= b && b <= e && e <= n && st >= 1)) {
        throw new ShapeError(`slice: axis ${d} of ${fmt(s)}: begin ${b}, end ${e}, step ${st} is out of range`);
      }
      return Math.ceil((e - b) / st);
    }),
  impl: (backend, [x], [shape], p, outShape) => backend.run('slice', [x], { shape, begin: p.begin, step: p.step, outShape }),
  jvp: (_x, [t], _y, p) => ops.sliceRaw(t!, p),
  vjp: (ct, [x], y, p) => {
    // Scatter back: edge padding up to begin, and step − 1 zeros between kept elements.
    const before = p.begin;
    const interior = p.step.map((st) => st - 1);
    const after = x.shape.map((n, d) => n - (before[d] + (y.shape[d] === 0 ? 0 : (y.shape[d] - 1) * p.step[d] + 1)));
    return [ops.padRaw(ct, { before, after, interior, value: 0 })];
  },
});

export interface PadParams {
  before: readonly number[];
  after: readonly number[];
  interior: readonly number[];
  value: number;
}

export const pad = definePrimitive<PadParams>({
  name: 'pad',
  shape: ([s], p) => {
    if ([p.before, p.after, p.interior].some((v) => v.length !== s.length || v.some((x) => !Number.isInteger(x) || x < 0))) {
      throw new ShapeError(`pad: padding must give a non-negative integer per axis of ${fmt(s)}`);
    }
    return s.map((n, d) => p.before[d] + n + Math.max(0, n - 1) * p.interior[d] + p.after[d]);
  },
  impl: (backend, [x], [shape], p, outShape) => backend.run('pad', [x], { shape, ...p, outShape }),
  // The padding constant has no derivative: tangents are padded with zeros.
  jvp: (_x, [t], _y, p) => ops.padRaw(t!, { ...p, value: 0 }),
  vjp: (ct, [x], _y, p) => [
    ops.sliceRaw(ct, {
      begin: p.before,
      end: x.shape.map((n, d) => p.before[d] + n + Math.max(0, n - 1) * p.interior[d]),
      step: p.interior.map((i) => i + 1),
    }),
  ],
});

export const concat = definePrimitive<{ axis: number }>({
  name: 'concat',
  shape: (shapes, p) => {
    const first = shapes[0];
    for (const s of shapes) {
      if (s.length !== first.length || s.some((d, i) => i !== p.axis && d !== first[i])) {
        throw new ShapeError(`concat: shapes ${shapes.map(fmt).join(', ')} differ outside axis ${p.axis}`);
      }
    }
    const out = [...first];
    out[p.axis] = shapes.reduce((acc, s) => acc + s[p.axis], 0);
    return out;
  },
  impl: (backend, inputs, shapes, p, outShape) => backend.run('concat', inputs, { shapes, axis: p.axis, outShape }),
  jvp: (xs, ts, _y, p) => ops.concat(xs.map((x, i) => ts[i] ?? ops.zerosLike(x)), p.axis),
  vjp: (ct, xs, _y, p, needs) => {
    let offset = 0;
    return xs.map((x, i) => {
      const start = offset;
      offset += x.shape[p.axis];
      if (!needs[i]) return null;
      const begin = x.shape.map((_, d) => (d === p.axis ? start : 0));
      const end = x.shape.map((n, d) => (d === p.axis ? start + n : ct.shape[d]));
      return ops.sliceRaw(ct, { begin, end, step: x.shape.map(() => 1) });
    });
  },
});

function checkIndexShape(op: string, base: readonly number[], idx: readonly number[], axis: number): void {
  if (idx.length !== base.length || idx.some((d, i) => i !== axis && d !== base[i])) {
    throw new ShapeError(`${op}: indices ${fmt(idx)} must match ${fmt(base)} on every axis but ${axis}`);
  }
}

/** take_along_axis(x, idx, axis). Indices are stored as floats; they carry no derivative. */
export const gather = definePrimitive<{ axis: number }>({
  name: 'gather',
  shape: ([x, idx], p) => {
    checkIndexShape('gather', x, idx, p.axis);
    return [...idx];
  },
  impl: (backend, inputs, [shape], p, outShape) => backend.run('gather', inputs, { shape, axis: p.axis, outShape }),
  jvp: ([, idx], [t], _y, p) => ops.gather(t!, idx, p.axis),
  vjp: (ct, [x, idx], _y, p) => [ops.scatterAdd(ct, idx, p.axis, x.shape), null],
});

/** zeros(shape) with updates added at idx along axis; the transpose of gather. */
export const scatterAdd = definePrimitive<{ axis: number; shape: readonly number[] }>({
  name: 'scatterAdd',
  shape: ([upd, idx], p) => {
    if (!sameShape(upd, idx)) throw new ShapeError(`scatterAdd: updates ${fmt(upd)} and indices ${fmt(idx)} differ`);
    checkIndexShape('scatterAdd', p.shape, idx, p.axis);
    return [...p.shape];
  },
  impl: (backend, inputs, [updShape], p) => backend.run('scatterAdd', inputs, { updShape, axis: p.axis, outShape: p.shape }),
  jvp: ([, idx], [t], _y, p) => ops.scatterAdd(t!, idx, p.axis, p.shape),
  vjp: (ct, [, idx], _y, p) => [ops.gather(ct, idx, p.axis), null],
});
