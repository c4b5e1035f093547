// The Tensor value. A tensor is either concrete (backend storage, level 0) or a tracer created by a
// transform at level ≥ 1 that wraps lower-level tensors: a JVP tracer holds a primal and a tangent, a
// reverse tracer holds a primal and the tape node that produced it. Transforms nest by level
// (see trace.ts), so a tracer never mixes with another transform's (no perturbation confusion).

import type { Backend, Storage } from './backend.ts';
import { fmt, sizeOf, type Shape } from './shape.ts';
import { track } from './memory.ts';

/** Reference-counted storage, so reshape-like views can share memory and still be freed exactly once. */
export class DataRef {
  refs = 1;
  constructor(readonly storage: Storage) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) this.storage.backend.free(this.storage);
  }
}

/** A tape node of a reverse-mode transform (defined in trace.ts, opaque here). */
export interface TapeNode {
  readonly id: number;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly level: number;
  /** Concrete tensors only. */
  ref: DataRef | null = null;
  /** Tracers only: the value one level down. */
  readonly primal: Tensor | null = null;
  /** JVP tracers only: the tangent (never a symbolic zero: such tracers are not created). */
  readonly tangent: Tensor | null = null;
  /** Reverse tracers only. */
  readonly node: TapeNode | null = null;
  /**
   * True when this tensor stands for a derivative that is zero by the structure of the computation
   * (no path carried a tangent or cotangent), rather than zero by arithmetic. Inside the transforms a
   * structural zero is `null` (MaybeZero, the role of JAX's `Zero`: no tensor, no work); only at the API
   * boundary is it made a tensor of zeros (as JAX's `instantiate_zeros`), and this flag keeps what JAX
   * forgets there. Set only by transforms.ts.
   */
  symbolicZero = false;
  private disposed = false;

  private constructor(shape: Shape, level: number, ref: DataRef | null, primal: Tensor | null, tangent: Tensor | null, node: TapeNode | null) {
    this.shape = Object.freeze([...shape]);
    this.level = level;
    this.ref = ref;
    this.primal = primal;
    this.tangent = tangent;
    this.node = node;
    track(this);
  }

  static concrete(shape: Shape, ref: DataRef): Tensor {
    if (ref.storage.size !== sizeOf(shape)) {
      throw new Error(`internal: storage of ${ref.storage.size} elements for shape ${fmt(shape)}`);
    }
    return new Tensor(shape, 0, ref, null, null, null);
  }

  static jvpTracer(level: number, primal: Tensor, tangent: Tensor): Tensor {
    return new Tensor(primal.shape, level, null, primal, tangent, null);
  }

  static reverseTracer(level: number, primal: Tensor, node: TapeNode): Tensor {
    return new Tensor(primal.shape, level, null, primal, null, node);
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  /** The concrete value under every tracer layer. */
  concreteValue(): Tensor {
    let t: Tensor = this;
    while (t.level > 0) t = t.primal!;
    return t;
  }

  get backend(): Backend {
    return this.concreteValue().storage().backend;
  }

  storage(): Storage {
    if (this.level > 0) return this.concreteValue().storage();
    if (this.disposed || !this.ref) throw new Error(`tensor ${fmt(this.shape)} used after dispose()`);
    return this.ref.storage;
  }

  /** Flat row-major values as plain numbers (the primal value for a tracer). */
  async data(): Promise<number[]> {
    return Array.from(await this.values());
  }

  /** Flat row-major values as a Float64Array (no intermediate number[]). */
  async values(): Promise<Float64Array> {
    const s = this.storage();
    return s.backend.read(s);
  }

  /** Synchronous read; only backends that hold host memory (CPU) offer it. */
  valuesSync(): Float64Array {
    const s = this.storage();
    if (!s.backend.readSync) throw new Error(`valuesSync(): the ${s.backend.name} backend reads asynchronously; use await data()`);
    return s.backend.readSync(s);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Releases this tensor's storage now (views share storage and keep it alive until the last is gone). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ref) this.ref.release();
    this.ref = null;
  }

  toString(): string {
    return `Tensor${fmt(this.shape)}${this.level > 0 ? `@${this.level}` : ''}`;
  }
}
