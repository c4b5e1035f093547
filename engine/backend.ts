// The contract between the engine and a compute backend. Primitives resolve every shape before they
// reach a backend, so a kernel receives flat storages plus fully specified parameters and never has to
// validate or broadcast shapes on its own.

import type { Shape } from './shape.ts';

/** Opaque handle to backend-owned memory holding `size` float elements, row-major. */
export interface Storage {
  readonly backend: Backend;
  readonly size: number;
}

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'log1p' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'tanh' | 'sigmoid' | 'erf'
  | 'relu' | 'sin' | 'cos' | 'reciprocal';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  | 'greater' | 'greaterEqual' | 'less' | 'lessEqual' | 'equal' | 'notEqual';

export type ReduceOp = 'sum' | 'max';

/**
 * One step of an elementwise chain (engine/fusion/elementwise-chain.ts): operands name earlier steps by
 * their index; the last step is the chain's value. Constants are float64 here, rounded by the backend.
 */
export type ChainStep =
  | { readonly op: 'input'; readonly input: number }
  | { readonly op: 'const'; readonly value: number }
  | { readonly op: 'unary'; readonly fn: UnaryOp; readonly a: number }
  | { readonly op: 'binary'; readonly fn: BinaryOp; readonly a: number; readonly b: number }
  | { readonly op: 'where'; readonly cond: number; readonly a: number; readonly b: number };

/** A compiled elementwise chain: steps in dependency order, the first `inputs` of them the inputs in order. */
export interface ChainProgram {
  readonly steps: readonly ChainStep[];
  readonly inputs: number;
  /** The steps as text with constants written `c<k>` (their values excluded): what kernels cache code by. */
  readonly key: string;
  /** The constants' values in the order of their `c<k>` names. */
  readonly constants: readonly number[];
}

export interface ConvGeometry {
  /** [N, C, H, W] */
  xShape: Shape;
  /** [O, C / groups, kh, kw] */
  wShape: Shape;
  /** [N, O, oh, ow] */
  yShape: Shape;
  stride: [number, number];
  /** [top, left]; bottom/right padding is whatever makes yShape come out (torch semantics). */
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** Kernel name → the parameters it takes. Each kernel writes one new output storage. */
export interface KernelParams {
  fill: { size: number; value: number };
  unary: { op: UnaryOp; size: number };
  binary: { op: BinaryOp; aShape: Shape; bShape: Shape; outShape: Shape };
  /** out = cond != 0 ? a : b, all three broadcast to outShape. */
  where: { condShape: Shape; aShape: Shape; bShape: Shape; outShape: Shape };
  /** Reduces sorted `axes` of `shape`; the output has the reduced axes removed (the engine reshapes). */
  reduce: { op: ReduceOp; shape: Shape; axes: readonly number[] };
  expand: { shape: Shape; outShape: Shape };
  transpose: { shape: Shape; perm: readonly number[] };
  /** Strided slice: out[i] = x[begin + i * step] per axis, outShape given. */
  slice: { shape: Shape; begin: readonly number[]; step: readonly number[]; outShape: Shape };
  /** Constant padding with edge (`before`/`after`, ≥ 0) and interior (between elements) padding. */
  pad: { shape: Shape; before: readonly number[]; after: readonly number[]; interior: readonly number[]; value: number; outShape: Shape };
  concat: { shapes: readonly Shape[]; axis: number; outShape: Shape };
  /** take_along_axis: out[.., i, ..] = x[.., idx[.., i, ..], ..] along `axis`; idx has outShape. */
  gather: { shape: Shape; axis: number; outShape: Shape };
  /** The transpose of gather: out = zeros(outShape); out[.., idx[.., i, ..], ..] += upd[.., i, ..]. */
  scatterAdd: { updShape: Shape; axis: number; outShape: Shape };
  /** Batched matmul with numpy batch broadcasting: a [...ba, m, k] @ b [...bb, k, n] → [...bo, m, n]. */
  matmul: { aShape: Shape; bShape: Shape; outShape: Shape };
  /** Inputs x, w, then the epilogue's bias and residual when it names them. */
  conv2d: ConvGeometry & { epilogue?: ConvEpilogue };
  /** dL/dx given dL/dy (input 0) and w (input 1). */
  conv2dBackwardInput: ConvGeometry;
  /** dL/dw given x (input 0) and dL/dy (input 1). */
  conv2dBackwardFilter: ConvGeometry;
  /**
   * out[i] = x[i] · scale[c] + shift[c] with c = ⌊i / inner⌋ mod channels: a per-channel affine map over
   * x viewed as [outer, channels, inner] (eval-mode BatchNorm in one pass; engine/fusion/scale-shift.ts).
   * Inputs x, scale [channels], shift [channels].
   */
  scaleShift: { size: number; channels: number; inner: number };
  /** Row-wise m + log Σ exp(x − m), m the row maximum, over x [rows, n] contiguous; the output is [rows]. */
  logsumexp: { rows: number; n: number };
  /**
   * An elementwise chain in one pass: the program's value at every element of outShape, each input
   * broadcast (numpy rules) from its shape in `shapes` (engine/fusion/elementwise-chain.ts).
   */
  elementwiseChain: { program: ChainProgram; shapes: readonly Shape[]; outShape: Shape };
  /** Flat index (h * W + w) within each (n, c) plane of the max of each pooling window. Padding never wins. */
  maxPoolArgmax: { xShape: Shape; kernel: [number, number]; stride: [number, number]; padding: [number, number]; dilation: [number, number]; outShape: Shape };
}

export type KernelName = keyof KernelParams;

/** Activations a convolution's store can apply (engine/fusion: the compiled inference prefix). */
export type EpilogueActivation = 'none' | 'relu' | 'relu6' | 'silu' | 'hardswish' | 'gelu';

/**
 * What a forward convolution does to each output before storing it: y = act(conv + bias[o] + residual).
 * The optional inputs follow x and w in this order: bias [O] when `bias`, residual (y's shape) when `residual`.
 */
export interface ConvEpilogue {
  bias: boolean;
  residual: boolean;
  activation: EpilogueActivation;
}

export interface MemoryStats {
  /** Storages allocated and not yet freed. */
  buffers: number;
  bytes: number;
}

export interface Backend {
  readonly name: 'cpu' | 'webgpu' | 'wasm';
  /** One line describing where the computation runs (the adapter for WebGPU). */
  describe(): string;
  /** The device limits the kernels depend on, where there is a device (WebGPU: the adapter's own limits). */
  deviceLimits?(): Record<string, number>;
  upload(values: ArrayLike<number>): Storage;
  /** Asynchronous readback; values as float64 whatever the storage precision. */
  read(storage: Storage): Promise<Float64Array>;
  /** Synchronous readback where the backend can offer it (CPU). */
  readSync?(storage: Storage): Float64Array;
  free(storage: Storage): void;
  run<K extends KernelName>(kernel: K, inputs: readonly Storage[], params: KernelParams[K]): Storage;
  memory(): MemoryStats;
  /** Machine epsilon of the storage precision: float64 on the CPU, float32 on WebGPU and wasm. */
  readonly epsilon: number;
}
