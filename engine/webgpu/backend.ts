/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend: float32 storages in GPU buffers, handwritten WGSL kernels.
 *
 * Kernels are plug-ins: the families in `kernels/` implement the kernel-author API of ./kernel-api.ts
 * (where writing one is explained), and `kernels/index.ts` merges them into the table this backend runs.
 *
 * ## Execution model
 *
 * `run` validates and enqueues; nothing reaches the GPU until a flush: `read` flushes, and the queue is
 * flushed on its own after `maxBatch` dispatches (synchronously when every pipeline is compiled, so a
 * long synchronous loop cannot grow the queue without bound). A flush waits for pipelines still being
 * compiled (createComputePipelineAsync under error scopes), then encodes all queued dispatches into one
 * compute pass, uploads their uniforms into one arena buffer (each at an aligned offset, bound with a
 * dynamic offset) and submits. Bind groups are cached by (pipeline, buffers): creating one costs more
 * than the rest of a dispatch in Dawn, and pooled buffers make the same combinations recur.
 * `queue.writeBuffer` runs ahead of unsubmitted encoders, so the arena is only written right before the
 * submit that uses it, and buffers freed while queued work may still touch them are parked by the pool
 * until that work is submitted (see buffers.ts); only kernel outputs, first written by a later GPU
 * command, may recycle a parked buffer at once. Dispatches capture their GPUBuffers when queued, so a
 * tensor may be freed (tidy) right after the op that reads it.
 *
 * Environment: ENGINE_WEBGPU_DEBUG=1 sets `debug.validateDispatches`, ENGINE_WEBGPU_POISON=1 sets
 * `debug.poisonOutputs` (fill every new output with NaN); ENGINE_AUTOTUNE=off turns the autotuner off
 * (./autotune.ts; ENGINE_AUTOTUNE_BUDGET_MS bounds its measuring per shape class, default 1500).
 *
 * ## Autotuning
 *
 * Kernels with several variants ask `ctx.tuned(request)` which one to run; requests for classes not yet
 * decided are measured at the end of the next flush (after the queued work has run), on scratch buffers.
 *
 * Errors: pipeline creation always runs under validation/out-of-memory error scopes; with
 * `debug.validateDispatches` (or ENGINE_WEBGPU_DEBUG=1) each dispatch is encoded, submitted and checked on
 * its own, so an error names the kernel and shapes.
 *
 * ## Tensors larger than one binding
 *
 * A storage is one GPU buffer of up to maxBufferSize bytes, which may exceed maxStorageBufferBindingSize
 * (lavapipe: 4 GiB buffers, 128 MiB bindings; VGG-16's first classifier weight is 411 MB). Kernels bind
 * such a tensor through windows (kernel-api.ts `windowOf`) and split their work so that every window fits;
 * uploads and readbacks move it in chunks. A tensor above maxBufferSize, or one the device has no memory
 * for, is a DeviceLimitError: one line naming the tensor, its size and the limit. Tests force small limits
 * (`debug.maxBindingBytes`, `debug.bindingAlignBytes`, `debug.maxBufferBytes`, or the environment variables
 * ENGINE_WEBGPU_MAX_BINDING_BYTES / ENGINE_WEBGPU_MAX_BUFFER_BYTES) so the split paths run on any adapter.
 */

import type { Backend, KernelName, KernelParams, MemoryStats, Storage } from '../backend.ts';
import { env, envFlag } from '../platform.ts';
import { fmt } from '../shape.ts';
import { BufferPool, type PoolStats } from './buffers.ts';
import { describeAdapter, getDevice, reportedLimits, type GpuContext } from './device.ts';
import { Autotuner, type TuneMode, type TuneRunner } from './autotune.ts';
import { DeviceLimitError, GpuError, withErrorScopes } from './errors.ts';
import { isWindow, type Dispatch, type GpuStorage, type KernelContext, type KernelImpl, type KernelTable, type OverrideConstants } from './kernel-api.ts';
import { BindGroupCache, PipelineCache, gridFor, packUniforms, type BindGroupBuffer, type PipelineEntry } from './pipelines.ts';
import { WGSL_KERNELS } from '../../kernels/index.ts';

/** This backend's storage: a GPU buffer of float32, returned to the pool when freed. */
class WebGpuStorage implements GpuStorage {
  constructor(
    readonly backend: WebGpuBackend,
    readonly size: number,
    public buffer: GPUBuffer | null,
  ) {}
  get bindingSize(): number {
    return Math.max(4, this.size * 4);
  }
}

// ---------------------------------------------------------------------------------------------------
// The backend

export interface WebGpuDebugOptions {
  /** Fill every newly acquired output and scratch buffer with NaN, so unwritten elements show. */
  poisonOutputs: boolean;
  /** Encode, submit and check each dispatch in its own error scope (slow; precise error labels). */
  validateDispatches: boolean;
  /** Called with every dispatch as it is queued (tests: race checks, kernel coverage). */
  onDispatch?: (d: DispatchRecord) => void;
  /** Binds at most this many bytes per binding (below the device's limit): forces the split paths. */
  maxBindingBytes?: number;
  /** Aligns window offsets to this many bytes (a multiple of the device's minStorageBufferOffsetAlignment). */
  bindingAlignBytes?: number;
  /** Refuses buffers above this many bytes (below the device's maxBufferSize): the limit-error path. */
  maxBufferBytes?: number;
}

/** A positive integer environment variable, or undefined. */
function envBytes(name: string): number | undefined {
  const v = env(name);
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 16) throw new Error(`${name}: expected a byte count ≥ 16, got "${v}"`);
  return n;
}

/** What `debug.onDispatch` sees of a dispatch. */
export interface DispatchRecord {
  label: string;
  code: string;
  entryPoint: string;
  constants: OverrideConstants;
  /** The packed uniform struct, if any. */
  uniform: { group: number; binding: number; bytes: Uint8Array } | null;
  /** Storage buffers by WGSL name: where they bind and how many bytes are bound (a window's bytes). */
  storage: Record<string, { group: number; binding: number; size: number }>;
  grid: [number, number, number];
}

interface QueuedDispatch {
  label: Label;
  entry: PipelineEntry;
  /** Captured at enqueue time: the storage may be freed before the dispatch is encoded (tidy does that);
   *  its buffer then stays parked in the pool until this dispatch is submitted. */
  buffers: (BindGroupBuffer & { group: number })[];
  uniform: { group: number; binding: number; bytes: Uint8Array } | null;
  grid: [number, number, number];
}

const STORAGE_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const STAGING_USAGE = 0x01 | 0x08; // MAP_READ | COPY_DST
const UNIFORM_USAGE = 0x40 | 0x08; // UNIFORM | COPY_DST
const MAP_READ = 0x01;

function sliceOf(values: ArrayLike<number>, start: number, end: number): ArrayLike<number> {
  if (ArrayBuffer.isView(values) || Array.isArray(values)) return (values as unknown as { slice(a: number, b: number): ArrayLike<number> }).slice(start, end);
  return Array.from({ length: end - start }, (_, i) => values[start + i]);
}

/**
 * A label built only when printed: most kernel calls never fail, and describing every call up front
 * (JSON of its parameters) costs more than the rest of `run`.
 */
export class Label {
  private text: string | undefined;
  constructor(private readonly make: () => string) {}
  toString(): string {
    return (this.text ??= this.make());
  }
}

/** Short description of a kernel call for error messages: the kernel and its shape-like parameters. */
function describeCall(kernel: string, params: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(params, (_k, v) => (Array.isArray(v) && v.every((x) => typeof x === 'number') ? fmt(v) : v));
  } catch {
    text = '';
  }
  text = text.replace(/"/g, '');
  return `${kernel}${text.length > 240 ? `${text.slice(0, 240)}…` : text}`;
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly epsilon = 2 ** -23;
  readonly debug: WebGpuDebugOptions = {
    poisonOutputs: envFlag('ENGINE_WEBGPU_POISON'),
    validateDispatches: envFlag('ENGINE_WEBGPU_DEBUG'),
    maxBindingBytes: envBytes('ENGINE_WEBGPU_MAX_BINDING_BYTES'),
    maxBufferBytes: envBytes('ENGINE_WEBGPU_MAX_BUFFER_BYTES'),
  };
  /** Queued dispatches that trigger a flush. */
  maxBatch = 64;
  /** Elements per upload or readback chunk (64 MiB; tests make it small). */
  transferChunk = 16 * 1024 * 1024;

  readonly device: GPUDevice;
  readonly limits: GPUSupportedLimits;
  /** Tile configurations per adapter and problem-shape class (see ./autotune.ts). */
  readonly tuner: Autotuner;
  readonly pipelines: PipelineCache;
  private readonly bindGroups: BindGroupCache;
  private readonly pool: BufferPool;
  private readonly stagingPool: BufferPool;
  private readonly kernels: KernelTable;

  private live = 0;
  private liveBytes = 0;
  /** Dispatches not yet encoded. */
  private queue: QueuedDispatch[] = [];
  /** Dispatches taken by a flush and not yet submitted. */
  private taken = 0;
  private flushTail: Promise<void> = Promise.resolve();
  private flushesRunning = 0;
  /** An error from a flush nobody awaited (an automatic one); thrown by the next read or run. */
  private failure: Error | null = null;
  private arena: GPUBuffer | null = null;
  private readonly uniformAlign: number;
  private counters = { dispatches: 0, submits: 0 };

  /** `kernels`: the kernel table (tests and benchmarks may swap kernels in, e.g. the naive ones). */
  constructor(readonly ctx: GpuContext, kernels: KernelTable = WGSL_KERNELS) {
    this.device = ctx.device;
    this.limits = ctx.limits;
    this.pipelines = new PipelineCache(this.device);
    this.bindGroups = new BindGroupCache(this.device);
    // A failed allocation is raised by the next run or read, so no result computed with it is returned.
    const onCreateError = (label: string, kind: 'validation' | 'out-of-memory', e: GPUError) => {
      this.failure ??=
        kind === 'out-of-memory'
          ? new DeviceLimitError(`webgpu: the device has no memory left for ${label}: ${e.message.split('\n')[0]}`)
          : new GpuError(`allocation of ${label}`, kind, e.message);
    };
    this.pool = new BufferPool(this.device, STORAGE_USAGE, 'tensor', undefined, onCreateError);
    this.stagingPool = new BufferPool(this.device, STAGING_USAGE, 'readback', 64 * 1024 * 1024, onCreateError);
    this.uniformAlign = Math.max(16, this.limits.minUniformBufferOffsetAlignment);
    this.kernels = kernels;
    const { vendor, architecture, description, device } = ctx.adapterInfo;
    // ENGINE_AUTOTUNE=on/off decides; by default a hardware adapter tunes and a software one (lavapipe,
    // SwiftShader) does not: there the picks measured within noise of the defaults (bench/RESULTS.md), while
    // every candidate's pipelines must be compiled first — minutes on SwiftShader, which stalled the page.
    const asked = env('ENGINE_AUTOTUNE') ?? '';
    const mode: TuneMode = /^(0|off|false|no)$/i.test(asked) ? 'off' : /^(1|on|true|yes)$/i.test(asked) ? 'on' : ctx.adapterInfo.software ? 'off' : 'on';
    this.tuner = new Autotuner([ctx.runtime, vendor, architecture, description, device].join('|'), mode, Number(env('ENGINE_AUTOTUNE_BUDGET_MS') ?? 1500));
    // After a loss every call fails with a clear error; useBackend('webgpu') then builds a new backend.
    this.device.lost.then(
      (info) => {
        this.lostReason = info.reason === 'destroyed' ? 'the device was released' : `the device was lost (${info.reason ?? 'unknown'})`;
      },
      () => undefined,
    );
  }

  /** Set when the device is gone; tensors of this backend can no longer be used. */
  lostReason: string | null = null;

  get isLost(): boolean {
    return this.lostReason !== null;
  }

  describe(): string {
    return describeAdapter(this.ctx);
  }

  /** The device limits the kernels depend on (reported in summary.json and by the benchmarks). */
  deviceLimits(): Record<string, number> {
    return reportedLimits(this.limits);
  }

  /** Bytes one binding may hold: the device's limit, or the forced one; a multiple of 16. */
  get bindingLimitBytes(): number {
    const limit = Math.min(this.limits.maxStorageBufferBindingSize, this.debug.maxBindingBytes ?? Infinity);
    return Math.max(16, limit - (limit % 16));
  }

  /** Window offsets are multiples of this many bytes. */
  get bindingAlignBytes(): number {
    const device = this.limits.minStorageBufferOffsetAlignment;
    const forced = this.debug.bindingAlignBytes ?? device;
    if (forced % device !== 0) throw new Error(`debug.bindingAlignBytes ${forced} is not a multiple of minStorageBufferOffsetAlignment ${device}`);
    return Math.max(16, forced);
  }

  /** The largest buffer this backend creates (maxBufferSize, or the forced limit). */
  get maxBufferBytes(): number {
    return Math.min(this.limits.maxBufferSize, this.debug.maxBufferBytes ?? Infinity);
  }

  // --- storage --------------------------------------------------------------------------------------

  /**
   * Allocates a storage of `size` floats; `what` names the kernel and shape for the limit error.
   * `gpuWriteOnly`: its first write is a GPU command recorded later (kernel outputs), so a buffer still
   * read by queued work may be recycled (see buffers.ts); uploads and poisoned buffers use writeBuffer.
   */
  allocate(size: number, what: string | Label, gpuWriteOnly = false): GpuStorage {
    if (!Number.isInteger(size) || size < 0) throw new Error(`webgpu ${what}: invalid element count ${size}`);
    const bytes = Math.max(4, size * 4);
    const limit = this.maxBufferBytes;
    if (bytes > limit) {
      throw new DeviceLimitError(
        `webgpu: ${what} needs ${bytes} bytes (${size} float32), more than this device's maxBufferSize of ${limit} bytes`,
      );
    }
    const buffer = this.pool.acquire(bytes, gpuWriteOnly, what);
    this.live++;
    this.liveBytes += size * 4;
    return new WebGpuStorage(this, size, buffer);
  }

  upload(values: ArrayLike<number>): Storage {
    const n = values.length;
    const s = this.allocate(n, `upload of [${n}]`);
    // In chunks, so a large tensor never needs a second full-size float32 copy on the host (nor a
    // full-size staging area in the implementation).
    for (let start = 0; start < n; start += this.transferChunk) {
      const end = Math.min(n, start + this.transferChunk);
      const data = values instanceof Float32Array ? values.subarray(start, end) : Float32Array.from(sliceOf(values, start, end));
      this.device.queue.writeBuffer(s.buffer!, start * 4, data.buffer, data.byteOffset, data.byteLength);
    }
    return s;
  }

  free(storage: Storage): void {
    const s = storage as WebGpuStorage;
    if (s.backend !== this || !s.buffer) return;
    this.pool.release(s.buffer, this.queue.length + this.taken > 0);
    s.buffer = null;
    this.live--;
    this.liveBytes -= s.size * 4;
  }

  memory(): MemoryStats {
    return { buffers: this.live, bytes: this.liveBytes };
  }

  /** GPU-level buffer accounting (idle pooled buffers included) and dispatch counters. */
  stats(): PoolStats & { pipelines: number; dispatches: number; submits: number; bindGroupHits: number; bindGroupMisses: number } {
    return { ...this.pool.stats(), pipelines: this.pipelines.size, ...this.counters, bindGroupHits: this.bindGroups.hits, bindGroupMisses: this.bindGroups.misses };
  }

  /** Destroys idle pooled buffers. */
  trim(): void {
    this.pool.trim();
    this.stagingPool.trim();
  }

  private checkStorage(storage: Storage, what: () => string): GpuStorage {
    const s = storage as WebGpuStorage;
    if (s.backend !== this) throw new Error(`webgpu ${what()}: the storage belongs to the ${storage.backend.name} backend`);
    if (!s.buffer) throw new Error(`webgpu ${what()}: tensor used after dispose()`);
    return s;
  }

  private poison(s: GpuStorage): void {
    if (s.size > 0) this.device.queue.writeBuffer(s.buffer!, 0, new Float32Array(s.size).fill(NaN));
  }

  // --- kernels --------------------------------------------------------------------------------------

  run<K extends KernelName>(kernel: K, inputs: readonly Storage[], params: KernelParams[K]): Storage {
    if (this.lostReason) throw new Error(`webgpu ${kernel}: ${this.lostReason}; call useBackend('webgpu') for a new device and recreate the tensors`);
    this.raiseFailure();
    const out = this.runKernel(kernel, inputs.map((s, i) => this.checkStorage(s, () => `${kernel} input ${i}`)), params);
    if (this.queue.length >= this.maxBatch) this.autoFlush();
    return out;
  }

  private runKernel<K extends KernelName>(kernel: K, inputs: readonly GpuStorage[], params: KernelParams[K]): GpuStorage {
    const impl = this.kernels[kernel] as KernelImpl<K>;
    const what = new Label(() => describeCall(kernel, params));
    const scratch: GpuStorage[] = [];
    const outputs: GpuStorage[] = [];
    const ctx: KernelContext = {
      kernel,
      limits: this.limits,
      softwareAdapter: this.ctx.adapterInfo.software,
      bindingLimit: this.bindingLimitBytes / 4,
      bindingAlign: this.bindingAlignBytes / 4,
      output: (size, shape) => {
        const s = this.allocate(size, shape ? new Label(() => `${kernel} output ${fmt(shape)} (${what})`) : what, !this.debug.poisonOutputs);
        outputs.push(s);
        if (this.debug.poisonOutputs) this.poison(s);
        return s;
      },
      scratch: (size, shape) => {
        const s = this.allocate(size, shape ? new Label(() => `${kernel} scratch ${fmt(shape)} (${what})`) : what, !this.debug.poisonOutputs);
        scratch.push(s);
        if (this.debug.poisonOutputs) this.poison(s);
        return s;
      },
      dispatch: (spec) => this.enqueue(spec, what),
      tuned: (request) => this.tuner.choose(request),
      call: (k, ins, p) => {
        const s = this.runKernel(k, ins, p);
        outputs.push(s);
        return s;
      },
    };
    let result: GpuStorage;
    try {
      result = impl(ctx, inputs, params);
    } catch (err) {
      for (const s of [...outputs, ...scratch]) this.free(s);
      throw err;
    }
    for (const s of scratch) this.free(s);
    // Outputs the kernel made but does not return (e.g. an intermediate pass) are freed too.
    for (const s of outputs) if (s !== result) this.free(s);
    return result;
  }

  private enqueue(spec: Dispatch, what: Label): void {
    const label = spec.label ? new Label(() => `${spec.label} (${what})`) : what;
    const entry = this.pipelines.get(spec.code, spec.entryPoint ?? 'main', spec.constants, label);
    const info = entry.info;
    const buffers: QueuedDispatch['buffers'] = [];
    const limit = this.bindingLimitBytes;
    const align = this.bindingAlignBytes;
    for (const [name, bound] of Object.entries(spec.bindings)) {
      const b = info.bindings.get(name);
      if (!b || b.kind !== 'storage') {
        throw new Error(`${label}: entry point ${info.entryPoint} uses no storage buffer "${name}" (uses: ${[...info.bindings.keys()].join(', ')})`);
      }
      const window = isWindow(bound);
      const s = this.checkStorage(window ? bound.storage : bound, () => `${label} binding ${name}`);
      const offset = window ? bound.offset * 4 : 0;
      const size = window ? bound.size * 4 : s.bindingSize;
      if (size > limit) {
        throw new Error(`${label}: binding "${name}" of ${size} bytes exceeds the binding limit of ${limit} bytes (the kernel must split it)`);
      }
      if (offset % align !== 0 || offset + size > s.buffer!.size) {
        throw new Error(`${label}: binding "${name}" window at byte ${offset} (${size} bytes) is misaligned or outside its buffer`);
      }
      buffers.push({ group: b.group, binding: b.binding, buffer: s.buffer!, offset, size });
    }
    for (const b of info.bindings.values()) {
      if (b.kind === 'storage' && !(b.name in spec.bindings)) throw new Error(`${label}: storage buffer "${b.name}" not bound`);
    }
    let uniform: QueuedDispatch['uniform'] = null;
    if (info.uniform) {
      uniform = { group: info.uniform.group, binding: info.uniform.binding, bytes: packUniforms(info.uniform.layout, spec.uniforms ?? {}, label) };
    } else if (spec.uniforms && Object.keys(spec.uniforms).length > 0) {
      throw new Error(`${label}: uniforms given but entry point ${info.entryPoint} declares no uniform buffer`);
    }
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    let grid: [number, number, number];
    if (typeof spec.workgroups === 'number') {
      grid = gridFor(spec.workgroups, maxDim, label);
    } else {
      grid = [spec.workgroups[0], spec.workgroups[1] ?? 1, spec.workgroups[2] ?? 1];
      if (grid.some((g) => g > maxDim)) throw new Error(`${label}: grid ${fmt(grid)} exceeds ${maxDim} workgroups per dimension`);
    }
    if (grid.some((g) => !Number.isInteger(g) || g < 0)) throw new Error(`${label}: invalid grid ${fmt(grid)}`);
    if (grid[0] * grid[1] * grid[2] === 0) return; // nothing to do (empty tensors)
    this.queue.push({ label, entry, buffers, uniform, grid });
    if (this.debug.onDispatch) {
      const storage: DispatchRecord['storage'] = {};
      for (const [name, st] of Object.entries(spec.bindings)) {
        const b = info.bindings.get(name)!;
        storage[name] = { group: b.group, binding: b.binding, size: isWindow(st) ? st.size * 4 : st.bindingSize };
      }
      this.debug.onDispatch({ label: String(label), code: spec.code, entryPoint: info.entryPoint, constants: { ...spec.constants }, uniform, storage, grid });
    }
  }

  // --- flushing -------------------------------------------------------------------------------------

  /**
   * Encodes and submits every queued dispatch (waiting for pipelines still compiling), then runs the
   * autotuner's queued measurements, if any.
   */
  flush(): Promise<void> {
    const done = this.flushTail.then(async () => {
      await this.flushQueued();
      if (this.tuner.hasPending) await this.tune();
    });
    this.flushTail = done.catch(() => undefined);
    return done;
  }

  /** Measures the autotuner's queued requests once the device is idle (so nothing else is timed). */
  private async tune(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    const label = new Label(() => 'autotune');
    const runner: TuneRunner = {
      allocate: (size) => this.allocate(size, 'autotune scratch', true),
      free: (s) => this.free(s),
      time: async (dispatches) => {
        const start = performance.now();
        for (const d of dispatches) this.enqueue(d, label);
        await this.flushQueued();
        await this.device.queue.onSubmittedWorkDone();
        return performance.now() - start;
      },
    };
    await this.tuner.runPending(runner);
    this.raiseFailure();
  }

  private autoFlush(): void {
    const canSync = this.flushesRunning === 0 && !this.debug.validateDispatches && this.queue.every((d) => d.entry.pipeline);
    if (canSync) {
      const batch = this.queue;
      this.queue = [];
      try {
        this.submit(batch);
      } catch (err) {
        this.failure ??= err as Error;
      }
      return;
    }
    this.flush().catch((err: Error) => {
      this.failure ??= err;
    });
  }

  private raiseFailure(): void {
    const f = this.failure;
    if (f) {
      this.failure = null;
      throw f;
    }
  }

  private async flushQueued(): Promise<void> {
    this.flushesRunning++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        this.taken += batch.length;
        try {
          const waiting = [...new Set(batch.filter((d) => !d.entry.pipeline).map((d) => d.entry))];
          if (waiting.length > 0) await Promise.all(waiting.map((e) => e.ready));
          if (this.debug.validateDispatches) {
            for (const d of batch) await withErrorScopes(this.device, String(d.label), () => this.submit([d]));
          } else {
            this.submit(batch);
          }
        } finally {
          this.taken -= batch.length;
          if (this.queue.length + this.taken === 0) {
            this.pool.afterSubmit();
          }
        }
      }
    } finally {
      this.flushesRunning--;
    }
  }

  /** Encodes `batch` into one compute pass, writes its uniforms into the arena and submits. */
  private submit(batch: readonly QueuedDispatch[]): void {
    if (batch.length === 0) return;
    const align = this.uniformAlign;
    let total = 0;
    const offsets = batch.map((d) => {
      if (!d.uniform) return -1;
      const at = total;
      total = Math.ceil((total + d.uniform.bytes.length) / align) * align;
      return at;
    });
    const arena = this.arenaOf(total);
    const mirror = new Uint8Array(Math.max(total, 16));
    // Labels (for the implementation's own messages) only where errors are being attributed.
    const labelled = this.debug.validateDispatches;
    const encoder = this.device.createCommandEncoder(labelled ? { label: batch.length === 1 ? String(batch[0].label) : `batch of ${batch.length}` } : {});
    const pass = encoder.beginComputePass();
    batch.forEach((d, i) => {
      pass.setPipeline(d.entry.pipeline!);
      for (let g = 0; g < d.entry.layouts.length; g++) {
        const buffers: BindGroupBuffer[] = d.buffers.filter((b) => b.group === g);
        const dynamic: number[] = [];
        if (d.uniform && d.uniform.group === g) {
          mirror.set(d.uniform.bytes, offsets[i]);
          buffers.push({ binding: d.uniform.binding, buffer: arena!, offset: 0, size: d.uniform.bytes.length });
          dynamic.push(offsets[i]);
        }
        pass.setBindGroup(g, this.bindGroups.get(d.entry, g, buffers, labelled ? String(d.label) : undefined), dynamic);
      }
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    });
    pass.end();
    if (total > 0) this.device.queue.writeBuffer(arena!, 0, mirror.buffer, 0, total);
    this.device.queue.submit([encoder.finish()]);
    this.counters.dispatches += batch.length;
    this.counters.submits++;
    if (this.queue.length + this.taken === 0) this.pool.afterSubmit();
  }

  /** The uniform arena, grown to at least `bytes`. Rewritten before each submit (queue-ordered). */
  private arenaOf(bytes: number): GPUBuffer | null {
    if (bytes === 0) return this.arena;
    if (!this.arena || this.arena.size < bytes) {
      // A replaced arena may still be read by submitted work; destroy() waits for that work.
      this.arena?.destroy();
      const size = Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(bytes)));
      this.arena = this.device.createBuffer({ size, usage: UNIFORM_USAGE, label: 'uniform arena' });
    }
    return this.arena;
  }

  // --- readback -------------------------------------------------------------------------------------

  async read(storage: Storage): Promise<Float64Array> {
    this.checkStorage(storage, () => 'read');
    await this.flush();
    await Promise.all([...this.pool.pendingChecks]);
    this.raiseFailure();
    const s = this.checkStorage(storage, () => 'read'); // freed while we waited?
    const out = new Float64Array(s.size);
    // In chunks of at most `transferChunk` elements, each through its own staging buffer. All copies are
    // submitted at once, before any await: the tensor may be freed (and its buffer reused) while we wait.
    const chunks: { start: number; bytes: number; staging: GPUBuffer }[] = [];
    const encoder = this.device.createCommandEncoder({ label: 'readback' });
    for (let start = 0; start < s.size; start += this.transferChunk) {
      const bytes = Math.min(this.transferChunk, s.size - start) * 4;
      const staging = this.stagingPool.acquire(bytes);
      encoder.copyBufferToBuffer(s.buffer!, start * 4, staging, 0, bytes);
      chunks.push({ start, bytes, staging });
    }
    this.device.queue.submit([encoder.finish()]);
    this.counters.submits++;
    try {
      for (const { start, bytes, staging } of chunks) {
        await staging.mapAsync(MAP_READ, 0, bytes);
        out.set(new Float32Array(staging.getMappedRange(0, bytes)), start);
        staging.unmap();
      }
      return out;
    } finally {
      for (const { staging } of chunks) this.stagingPool.release(staging, false);
    }
  }

  /** Waits until every queued dispatch has run on the GPU (benchmarks). */
  async sync(): Promise<void> {
    await this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.raiseFailure();
  }
}

/** Creates the WebGPU backend on the process-wide device; throws when no adapter is available. */
export async function createWebGpuBackend(): Promise<WebGpuBackend> {
  const backend = new WebGpuBackend(await getDevice());
  await backend.tuner.load();
  return backend;
}
