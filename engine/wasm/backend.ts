// The WebAssembly backend: float32 storage in one WebAssembly.Memory shared by the calling thread and
// its workers, kernels written in AssemblyScript (kernels/wasm/assembly, SIMD), one kernel call per
// primitive split into tasks that every thread claims. Reading is synchronous (the memory is local),
// so `readSync` is offered as on the CPU backend.

import type { Backend, KernelName, KernelParams, MemoryStats, Storage } from '../backend.ts';
import { CTL_BASE, CTL_WORDS, HEAP_BASE } from '../../kernels/wasm/assembly/ids.ts';
import { ARGS_ADDRESS, ARGS_WORDS, EXTRA_ADDRESS, EXTRA_CAPACITY, SMALL_WORK, type WasmContext } from '../../kernels/wasm/context.ts';
import { binary, fill, unary, where } from '../../kernels/wasm/elementwise.ts';
import { concat, expand, gather, maxPoolArgmax, pad, scatterAdd, slice, transpose } from '../../kernels/wasm/layout.ts';
import { reduce } from '../../kernels/wasm/reduce.ts';
import { matmul } from '../../kernels/wasm/gemm.ts';
import { conv2d, conv2dBackwardFilter, conv2dBackwardInput } from '../../kernels/wasm/conv.ts';
import { scaleShift } from '../../kernels/wasm/scale-shift.ts';
import { logsumexp } from '../../kernels/wasm/logsumexp.ts';
import { elementwiseChain } from '../../kernels/wasm/elementwise-chain.ts';
import { Heap } from './heap.ts';
import { ThreadPool, type KernelExports } from './pool.ts';
import { availableCores, envVar, loadModuleBytes } from './platform.ts';

class WasmStorage implements Storage {
  constructor(readonly backend: WasmBackend, readonly size: number, readonly ptr: number) {}
  freed = false;
  /** Copies derived from this storage by kernel plans (packed weights), by key; freed with it. */
  derived: Map<string, { ptr: number; bytes: number }> | null = null;
}

type Plan<K extends KernelName> = (ctx: WasmContext, inputs: number[], p: KernelParams[K]) => unknown;

const plans: { [K in KernelName]: Plan<K> } = {
  fill: (ctx, _inputs, p) => fill(ctx, p),
  unary, binary, where, reduce, expand, transpose, slice, pad, concat, gather, scatterAdd, matmul, conv2d, conv2dBackwardInput, conv2dBackwardFilter, maxPoolArgmax, scaleShift, logsumexp, elementwiseChain,
};

export interface WasmBackendOptions {
  /** Threads including the caller; default ENGINE_WASM_THREADS, else the available cores. */
  threads?: number;
  /** The compiled kernels; default the committed kernels/wasm/build/kernels.wasm (benchmarks compare builds). */
  module?: Uint8Array;
}

/** Maximum memory tried first (4 GiB, the wasm32 limit), then smaller where the host refuses to reserve it. */
const MAX_PAGES = [65536, 32768, 16384];

export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  readonly epsilon = 2 ** -23;
  /** Test hooks: poisonOutputs fills every output with NaN before its kernel runs. */
  readonly debug = { poisonOutputs: false };
  private live = 0;
  private liveElements = 0;
  private scratchBlock = { ptr: 0, bytes: 0 };
  private derivedBytes = 0;
  /** The inputs of the kernel being run (for `cached`). */
  private running: readonly Storage[] = [];
  private closed = false;
  private readonly ctx: WasmContext;

  constructor(private readonly heap: Heap, private readonly pool: ThreadPool) {
    const backend = this;
    this.ctx = {
      output: (size) => {
        const s = backend.allocate(size);
        if (backend.debug.poisonOutputs) backend.heap.f32.fill(NaN, s.ptr >>> 2, (s.ptr >>> 2) + size);
        return { storage: s, ptr: s.ptr };
      },
      temp: (bytes) => backend.heap.alloc(bytes),
      release: (ptr, bytes) => backend.heap.free(ptr, bytes),
      cached: (input, key, bytes, fill) => backend.cached(input, key, bytes, fill),
      scratch: (bytesPerThread) => backend.scratch(bytesPerThread),
      run: (id, words, tasks, work, extra) => backend.dispatch(id, words, tasks, work, extra),
    };
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** Bytes of the shared memory (it only grows). */
  get memorySize(): number {
    return this.heap.memory.buffer.byteLength;
  }

  /** Bytes held by copies derived from live storages (packed weights, kept across calls). */
  get cachedBytes(): number {
    return this.derivedBytes;
  }

  /** Dispatches shared with the workers and run by the caller alone, since the start. */
  get dispatchStats(): { shared: number; alone: number } {
    return { ...this.pool.stats };
  }

  describe(): string {
    return `wasm (float32 SIMD, ${this.threads} thread${this.threads === 1 ? '' : 's'})`;
  }

  private allocate(size: number): WasmStorage {
    if (this.closed) throw new Error('wasm backend: used after close()');
    const ptr = this.heap.alloc(Math.max(4, size * 4));
    this.live++;
    this.liveElements += size;
    return new WasmStorage(this, size, ptr);
  }

  private address(storage: Storage): number {
    const s = storage as WasmStorage;
    if (s.backend !== this) throw new Error('wasm backend: storage belongs to another backend');
    if (s.freed) throw new Error('wasm backend: tensor used after dispose()');
    return s.ptr;
  }

  upload(values: ArrayLike<number>): Storage {
    const s = this.allocate(values.length);
    this.heap.f32.set(values, s.ptr >>> 2);
    return s;
  }

  async read(storage: Storage): Promise<Float64Array> {
    return this.readSync(storage);
  }

  readSync(storage: Storage): Float64Array {
    const p = this.address(storage) >>> 2;
    return Float64Array.from(this.heap.f32.subarray(p, p + storage.size));
  }

  free(storage: Storage): void {
    const s = storage as WasmStorage;
    if (s.freed) return;
    s.freed = true;
    this.live--;
    this.liveElements -= s.size;
    this.heap.free(s.ptr, Math.max(4, s.size * 4));
    if (s.derived) {
      for (const d of s.derived.values()) {
        this.heap.free(d.ptr, d.bytes);
        this.derivedBytes -= d.bytes;
      }
      s.derived = null;
    }
  }

  run<K extends KernelName>(kernel: K, inputs: readonly Storage[], params: KernelParams[K]): Storage {
    const addresses = inputs.map((s) => this.address(s));
    this.running = inputs;
    try {
      return (plans[kernel] as Plan<K>)(this.ctx, addresses, params) as Storage;
    } finally {
      this.running = [];
    }
  }

  private cached(input: number, key: string, bytes: number, fill: (dst: number) => void): number {
    const s = this.running[input] as WasmStorage | undefined;
    if (!s) throw new Error(`wasm backend: internal: no input ${input} to derive from`);
    const found = s.derived?.get(key);
    if (found) return found.ptr;
    const ptr = this.heap.alloc(bytes);
    try {
      fill(ptr);
    } catch (e) {
      this.heap.free(ptr, bytes);
      throw e;
    }
    (s.derived ??= new Map()).set(key, { ptr, bytes });
    this.derivedBytes += bytes;
    return ptr;
  }

  memory(): MemoryStats {
    return { buffers: this.live, bytes: this.liveElements * 4 };
  }

  /** Stops the worker threads; the backend cannot be used afterwards. */
  close(): void {
    this.closed = true;
    this.pool.close();
  }

  private scratch(bytesPerThread: number): { ptr: number; stride: number } {
    const stride = Heap.blockSize(bytesPerThread);
    const bytes = stride * this.threads;
    if (bytes > this.scratchBlock.bytes) {
      if (this.scratchBlock.bytes > 0) this.heap.free(this.scratchBlock.ptr, this.scratchBlock.bytes);
      this.scratchBlock = { ptr: this.heap.alloc(bytes), bytes };
    }
    return { ptr: this.scratchBlock.ptr, stride };
  }

  private dispatch(id: number, words: readonly number[], tasks: number, work: number, extra?: readonly number[]): void {
    if (words.length > ARGS_WORDS) throw new Error(`wasm backend: internal: ${words.length} argument words (at most ${ARGS_WORDS})`);
    if (extra && extra.length > EXTRA_CAPACITY) throw new Error(`wasm backend: internal: ${extra.length} extra words (at most ${EXTRA_CAPACITY})`);
    const i32 = this.heap.i32;
    // Addresses above 2^31 are stored as their i32 bit pattern; the kernels read them as u32.
    for (let i = 0; i < words.length; i++) i32[(ARGS_ADDRESS >>> 2) + i] = words[i] | 0;
    if (extra) for (let i = 0; i < extra.length; i++) i32[(EXTRA_ADDRESS >>> 2) + i] = extra[i] | 0;
    this.pool.run(id, ARGS_ADDRESS, tasks, work < SMALL_WORK);
  }
}

/** The thread count asked for by ENGINE_WASM_THREADS, if any. */
function threadsFromEnv(): number | undefined {
  const v = envVar('ENGINE_WASM_THREADS');
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`ENGINE_WASM_THREADS must be an integer from 1 to 64, got "${v}"`);
  return n;
}

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  const threads = options.threads ?? threadsFromEnv() ?? (await availableCores());
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new Error(`wasm backend: threads must be an integer from 1 to 64, got ${threads}`);
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new Error('wasm backend: SharedArrayBuffer is unavailable (a browser page must be cross-origin isolated: COOP/COEP headers)');
  }
  const bytes = options.module ?? (await loadModuleBytes());
  let memory: WebAssembly.Memory | null = null;
  for (const maximum of MAX_PAGES) {
    try {
      memory = new WebAssembly.Memory({ initial: 32, maximum, shared: true });
      break;
    } catch {
      // try a smaller reservation
    }
  }
  if (!memory) throw new Error('wasm backend: cannot create a shared WebAssembly.Memory');
  const instance = await WebAssembly.instantiate(await WebAssembly.compile(bytes as BufferSource), { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  if (exports.dataEnd() > CTL_BASE || exports.heapBase() !== HEAP_BASE || CTL_BASE + 4 * CTL_WORDS > ARGS_ADDRESS) {
    throw new Error(`wasm backend: internal: the module's static data (${exports.dataEnd()} bytes) overlaps the control block`);
  }
  const pool = await ThreadPool.start(bytes, memory, exports, threads);
  return new WasmBackend(new Heap(memory, HEAP_BASE), pool);
}
