// The float64 CPU backend: the reference every other backend and every derivative is checked against,
// and the fallback where no GPU adapter exists. Plain loops, written for clarity first.

import type { Backend, ConvGeometry, KernelName, KernelParams, MemoryStats, Storage } from '../backend.ts';
import { broadcastStrides, sizeOf, stridesOf, type Shape } from '../shape.ts';
import { binaryFns, unaryFns } from './elementwise-fns.ts';
import { elementwiseChain } from './elementwise-chain.ts';
import { applyEpilogue } from '../fusion/epilogue.ts';

class CpuStorage implements Storage {
  constructor(readonly backend: CpuBackend, public values: Float64Array | null) {}
  get size(): number {
    return this.values?.length ?? 0;
  }
}

/** Visits every multi-index of `shape` in row-major order, giving the flat offsets under several stride sets. */
function forEachIndex(shape: Shape, strideSets: number[][], visit: (offsets: number[], flat: number) => void): void {
  const rank = shape.length;
  const total = sizeOf(shape);
  const idx = new Array<number>(rank).fill(0);
  const offsets = strideSets.map(() => 0);
  for (let flat = 0; flat < total; flat++) {
    visit(offsets, flat);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      for (let s = 0; s < strideSets.length; s++) offsets[s] += strideSets[s][d];
      if (idx[d] < shape[d]) break;
      for (let s = 0; s < strideSets.length; s++) offsets[s] -= strideSets[s][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/**
 * Like forEachIndex, but visits whole rows of the last axis: one callback per row with the row's start
 * offsets and the per-element stride of each stride set, so inner loops run without a call per element.
 */
function forEachRow(
  shape: Shape,
  strideSets: number[][],
  visitRow: (offsets: number[], start: number, len: number, inner: number[]) => void,
): void {
  if (shape.length === 0) {
    visitRow(strideSets.map(() => 0), 0, 1, strideSets.map(() => 0));
    return;
  }
  const last = shape.length - 1;
  const len = shape[last];
  const inner = strideSets.map((s) => s[last]);
  forEachIndex(shape.slice(0, last), strideSets.map((s) => s.slice(0, last)), (offsets, row) => visitRow(offsets, row * len, len, inner));
}

type Kernel<K extends KernelName> = (inputs: Float64Array[], p: KernelParams[K]) => Float64Array;

const kernels: { [K in KernelName]: Kernel<K> } = {
  fill: (_, p) => new Float64Array(p.size).fill(p.value),

  unary: ([x], p) => {
    const f = unaryFns[p.op];
    const out = new Float64Array(p.size);
    for (let i = 0; i < out.length; i++) out[i] = f(x[i]);
    return out;
  },

  binary: ([a, b], p) => {
    const f = binaryFns[p.op];
    const out = new Float64Array(sizeOf(p.outShape));
    const sa = broadcastStrides(p.aShape, p.outShape);
    const sb = broadcastStrides(p.bShape, p.outShape);
    // The four common ops get their own loops: a call per element through `f` costs several times more.
    const op = p.op;
    forEachRow(p.outShape, [sa, sb], ([ia, ib], start, len, [da, db]) => {
      if (op === 'add') for (let j = 0; j < len; j++) out[start + j] = a[ia + j * da] + b[ib + j * db];
      else if (op === 'mul') for (let j = 0; j < len; j++) out[start + j] = a[ia + j * da] * b[ib + j * db];
      else if (op === 'sub') for (let j = 0; j < len; j++) out[start + j] = a[ia + j * da] - b[ib + j * db];
      else if (op === 'div') for (let j = 0; j < len; j++) out[start + j] = a[ia + j * da] / b[ib + j * db];
      else for (let j = 0; j < len; j++) out[start + j] = f(a[ia + j * da], b[ib + j * db]);
    });
    return out;
  },

  where: ([c, a, b], p) => {
    const out = new Float64Array(sizeOf(p.outShape));
    const sc = broadcastStrides(p.condShape, p.outShape);
    const sa = broadcastStrides(p.aShape, p.outShape);
    const sb = broadcastStrides(p.bShape, p.outShape);
    forEachRow(p.outShape, [sc, sa, sb], ([ic, ia, ib], start, len, [dc, da, db]) => {
      for (let j = 0; j < len; j++) out[start + j] = c[ic + j * dc] !== 0 ? a[ia + j * da] : b[ib + j * db];
    });
    return out;
  },

  logsumexp: ([x], p) => {
    const out = new Float64Array(p.rows);
    for (let r = 0; r < p.rows; r++) {
      const start = r * p.n;
      let m = -Infinity;
      for (let j = start; j < start + p.n; j++) m = binaryFns.maximum(m, x[j]);
      let s = 0;
      for (let j = start; j < start + p.n; j++) s += Math.exp(x[j] - m);
      out[r] = Math.log(s) + m;
    }
    return out;
  },

  elementwiseChain,

  scaleShift: ([x, scale, shift], p) => {
    const out = new Float64Array(p.size);
    for (let start = 0, plane = 0; start < p.size; start += p.inner, plane++) {
      const c = plane % p.channels;
      const s = scale[c];
      const t = shift[c];
      for (let i = start; i < start + p.inner; i++) out[i] = x[i] * s + t;
    }
    return out;
  },

  reduce: ([x], p) => {
    const kept = p.shape.map((_, i) => i).filter((i) => !p.axes.includes(i));
    const outShape = kept.map((i) => p.shape[i]);
    const out = new Float64Array(sizeOf(outShape)).fill(p.op === 'max' ? -Infinity : 0);
    // Output strides seen from the input's index space: 0 on reduced axes.
    const outStrides = stridesOf(outShape);
    const strides = new Array<number>(p.shape.length).fill(0);
    kept.forEach((axis, j) => (strides[axis] = outStrides[j]));
    if (p.op === 'sum') {
      forEachRow(p.shape, [strides], ([o], start, len, [d]) => {
        for (let j = 0; j < len; j++) out[o + j * d] += x[start + j];
      });
    } else {
      forEachRow(p.shape, [strides], ([o], start, len, [d]) => {
        for (let j = 0; j < len; j++) {
          const v = x[start + j];
          if (v > out[o + j * d] || Number.isNaN(v)) out[o + j * d] = v;
        }
      });
    }
    return out;
  },

  expand: ([x], p) => {
    const out = new Float64Array(sizeOf(p.outShape));
    const s = broadcastStrides(p.shape, p.outShape);
    forEachRow(p.outShape, [s], ([ix], start, len, [dx]) => {
      for (let j = 0; j < len; j++) out[start + j] = x[ix + j * dx];
    });
    return out;
  },

  transpose: ([x], p) => {
    const outShape = p.perm.map((a) => p.shape[a]);
    const inStrides = stridesOf(p.shape);
    const out = new Float64Array(x.length);
    forEachRow(outShape, [p.perm.map((a) => inStrides[a])], ([ix], start, len, [d]) => {
      for (let j = 0; j < len; j++) out[start + j] = x[ix + j * d];
    });
    return out;
  },

  slice: ([x], p) => {
    const inStrides = stridesOf(p.shape);
    const start = p.begin.reduce((acc, b, d) => acc + b * inStrides[d], 0);
    const out = new Float64Array(sizeOf(p.outShape));
    forEachIndex(p.outShape, [inStrides.map((s, d) => s * p.step[d])], ([ix], i) => {
      out[i] = x[start + ix];
    });
    return out;
  },

  pad: ([x], p) => {
    const out = new Float64Array(sizeOf(p.outShape)).fill(p.value);
    const outStrides = stridesOf(p.outShape);
    const start = p.before.reduce((acc, b, d) => acc + b * outStrides[d], 0);
    forEachIndex(p.shape, [outStrides.map((s, d) => s * (p.interior[d] + 1))], ([io], i) => {
      out[start + io] = x[i];
    });
    return out;
  },

  concat: (inputs, p) => {
    const out = new Float64Array(sizeOf(p.outShape));
    const outStrides = stridesOf(p.outShape);
    let offsetAlongAxis = 0;
    inputs.forEach((x, k) => {
      const shape = p.shapes[k];
      const start = offsetAlongAxis * outStrides[p.axis];
      forEachIndex(shape, [outStrides], ([io], i) => {
        out[start + io] = x[i];
      });
      offsetAlongAxis += shape[p.axis];
    });
    return out;
  },

  gather: ([x, idx], p) => {
    const out = new Float64Array(sizeOf(p.outShape));
    const inStrides = stridesOf(p.shape);
    const along = inStrides[p.axis];
    const base = inStrides.map((s, d) => (d === p.axis ? 0 : s));
    forEachIndex(p.outShape, [base], ([ix], i) => {
      out[i] = x[ix + idx[i] * along];
    });
    return out;
  },

  scatterAdd: ([upd, idx], p) => {
    const out = new Float64Array(sizeOf(p.outShape));
    const outStrides = stridesOf(p.outShape);
    const along = outStrides[p.axis];
    const base = outStrides.map((s, d) => (d === p.axis ? 0 : s));
    forEachIndex(p.updShape, [base], ([io], i) => {
      out[io + idx[i] * along] += upd[i];
    });
    return out;
  },

  matmul: ([a, b], p) => {
    const r = p.outShape.length;
    const m = p.outShape[r - 2];
    const n = p.outShape[r - 1];
    const k = p.aShape[p.aShape.length - 1];
    const batchShape = p.outShape.slice(0, r - 2);
    const aBatch = broadcastStrides(p.aShape.slice(0, -2), batchShape).map((s) => s * m * k);
    const bBatch = broadcastStrides(p.bShape.slice(0, -2), batchShape).map((s) => s * k * n);
    const out = new Float64Array(sizeOf(p.outShape));
    forEachIndex(batchShape, [aBatch, bBatch], ([ao, bo], batch) => {
      const oo = batch * m * n;
      for (let i = 0; i < m; i++) {
        const row = oo + i * n;
        for (let kk = 0; kk < k; kk++) {
          const av = a[ao + i * k + kk];
          if (av === 0) continue;
          const brow = bo + kk * n;
          for (let j = 0; j < n; j++) out[row + j] += av * b[brow + j];
        }
      }
    });
    return out;
  },

  conv2d: ([x, w, ...extra], g) => (g.epilogue ? applyEpilogue(convForward(x, w, g), g, g.epilogue, extra) : convForward(x, w, g)),

  conv2dBackwardInput: ([dy, w], g) => {
    const dx = new Float64Array(sizeOf(g.xShape));
    convLoop(g, 'input', dx, w, dy);
    return dx;
  },

  conv2dBackwardFilter: ([x, dy], g) => {
    const dw = new Float64Array(sizeOf(g.wShape));
    convLoop(g, 'filter', x, dw, dy);
    return dw;
  },

  maxPoolArgmax: ([x], p) => {
    const [N, C, H, W] = p.xShape;
    const [, , OH, OW] = p.outShape;
    const out = new Float64Array(sizeOf(p.outShape));
    let o = 0;
    for (let plane = 0; plane < N * C; plane++) {
      const base = plane * H * W;
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let best = -Infinity;
          let bestIdx = -1;
          for (let ky = 0; ky < p.kernel[0]; ky++) {
            const iy = oy * p.stride[0] - p.padding[0] + ky * p.dilation[0];
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < p.kernel[1]; kx++) {
              const ix = ox * p.stride[1] - p.padding[1] + kx * p.dilation[1];
              if (ix < 0 || ix >= W) continue;
              const v = x[base + iy * W + ix];
              if (v > best || bestIdx < 0 || Number.isNaN(v)) {
                best = v;
                bestIdx = iy * W + ix;
              }
            }
          }
          out[o++] = bestIdx;
        }
      }
    }
    return out;
  },
};

/**
 * Forward convolution as im2col + matrix product per image and group: the unrolled input rows are as
 * long as the whole output plane, so the innermost loop is long and contiguous, and four output channels
 * share each load (about twice as fast in JavaScript as walking the taps row by row).
 */
function convForward(x: Float64Array, w: Float64Array, g: ConvGeometry): Float64Array {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const Og = O / g.groups;
  const P = OH * OW;
  const K = Cg * KH * KW;
  const y = new Float64Array(sizeOf(g.yShape));
  const cols = new Float64Array(K * P);
  for (let n = 0; n < N; n++) {
    for (let grp = 0; grp < g.groups; grp++) {
      // cols[(c, ky, kx), (oy, ox)] = x[n, grp·Cg + c, oy·sh − ph + ky·dh, ox·sw − pw + kx·dw], 0 outside.
      cols.fill(0);
      for (let c = 0; c < Cg; c++) {
        const xPlane = (n * C + grp * Cg + c) * H * W;
        for (let ky = 0; ky < KH; ky++) {
          for (let kx = 0; kx < KW; kx++) {
            const row = ((c * KH + ky) * KW + kx) * P;
            const oxLo = Math.max(0, Math.ceil((pw - kx * dw) / sw));
            const oxHi = Math.min(OW - 1, Math.floor((W - 1 + pw - kx * dw) / sw));
            for (let oy = 0; oy < OH; oy++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= H) continue;
              const src = xPlane + iy * W - pw + kx * dw;
              const dst = row + oy * OW;
              for (let ox = oxLo; ox <= oxHi; ox++) cols[dst + ox] = x[src + ox * sw];
            }
          }
        }
      }
      // Four output channels per pass: each unrolled input element is loaded once for four products.
      let og = 0;
      for (; og + 4 <= Og; og += 4) {
        const o = grp * Og + og;
        const y0 = (n * O + o) * P;
        const y1 = y0 + P;
        const y2 = y1 + P;
        const y3 = y2 + P;
        for (let k = 0; k < K; k++) {
          const a0 = w[o * K + k];
          const a1 = w[(o + 1) * K + k];
          const a2 = w[(o + 2) * K + k];
          const a3 = w[(o + 3) * K + k];
          const cRow = k * P;
          for (let p = 0; p < P; p++) {
            const v = cols[cRow + p];
            y[y0 + p] += a0 * v;
            y[y1 + p] += a1 * v;
            y[y2 + p] += a2 * v;
            y[y3 + p] += a3 * v;
          }
        }
      }
      for (; og < Og; og++) {
        const o = grp * Og + og;
        const yRow = (n * O + o) * P;
        for (let k = 0; k < K; k++) {
          const wv = w[o * K + k];
          const cRow = k * P;
          for (let p = 0; p < P; p++) y[yRow + p] += wv * cols[cRow + p];
        }
      }
    }
  }
  return y;
}

/**
 * Walks every (input, weight, output) triple of a grouped, strided, dilated, padded convolution and
 * applies one of the backward updates: x += y·w (backward-input) or w += x·y (backward-filter). The
 * valid output column range of each tap is computed up front so the innermost loop has no bounds checks.
 */
function convLoop(g: ConvGeometry, mode: 'input' | 'filter', x: Float64Array, w: Float64Array, y: Float64Array): void {
  const [N, C, H, W] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const Og = O / g.groups;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const group = Math.floor(o / Og);
      const yPlane = (n * O + o) * OH * OW;
      for (let cg = 0; cg < Cg; cg++) {
        const xPlane = (n * C + group * Cg + cg) * H * W;
        for (let ky = 0; ky < KH; ky++) {
          // Output rows whose input row iy = oy·sh − ph + ky·dh lies inside the image.
          const oyLo = Math.max(0, Math.ceil((ph - ky * dh) / sh));
          const oyHi = Math.min(OH - 1, Math.floor((H - 1 + ph - ky * dh) / sh));
          for (let kx = 0; kx < KW; kx++) {
            const oxLo = Math.max(0, Math.ceil((pw - kx * dw) / sw));
            const oxHi = Math.min(OW - 1, Math.floor((W - 1 + pw - kx * dw) / sw));
            if (oxLo > oxHi) continue;
            const wi = ((o * Cg + cg) * KH + ky) * KW + kx;
            const wv = w[wi];
            let acc = 0;
            for (let oy = oyLo; oy <= oyHi; oy++) {
              const yRow = yPlane + oy * OW;
              const xRow = xPlane + (oy * sh - ph + ky * dh) * W - pw + kx * dw;
              if (mode === 'input') {
                for (let ox = oxLo; ox <= oxHi; ox++) x[xRow + ox * sw] += wv * y[yRow + ox];
              } else {
                for (let ox = oxLo; ox <= oxHi; ox++) acc += x[xRow + ox * sw] * y[yRow + ox];
              }
            }
            if (mode === 'filter') w[wi] += acc;
          }
        }
      }
    }
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly epsilon = Number.EPSILON;
  private live = 0;
  private liveElements = 0;

  describe(): string {
    return 'cpu (float64 reference)';
  }

  private wrap(values: Float64Array): CpuStorage {
    this.live++;
    this.liveElements += values.length;
    return new CpuStorage(this, values);
  }

  upload(values: ArrayLike<number>): Storage {
    return this.wrap(Float64Array.from(values));
  }

  values(storage: Storage): Float64Array {
    const s = storage as CpuStorage;
    if (s.backend !== this) throw new Error('cpu backend: storage belongs to another backend');
    if (!s.values) throw new Error('cpu backend: tensor used after dispose()');
    return s.values;
  }

  async read(storage: Storage): Promise<Float64Array> {
    return this.readSync(storage);
  }

  readSync(storage: Storage): Float64Array {
    return this.values(storage).slice();
  }

  free(storage: Storage): void {
    const s = storage as CpuStorage;
    if (!s.values) return;
    this.live--;
    this.liveElements -= s.values.length;
    s.values = null;
  }

  run<K extends KernelName>(kernel: K, inputs: readonly Storage[], params: KernelParams[K]): Storage {
    const arrays = inputs.map((s) => this.values(s));
    return this.wrap((kernels[kernel] as Kernel<K>)(arrays, params));
  }

  memory(): MemoryStats {
    return { buffers: this.live, bytes: this.liveElements * 8 };
  }
}
