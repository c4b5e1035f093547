/// <reference types="@webgpu/types" />
// GPU buffer pool. Allocation is the slowest thing a kernel call can do (and on some drivers it
// synchronises), so freed buffers are kept, keyed by a size class, and handed out again.
//
// The one hazard: `queue.writeBuffer` executes on the queue *now*, ahead of any command encoder that is
// still being recorded. A buffer freed while unsubmitted work may still read it must therefore not be
// written by writeBuffer (an upload, a uniform, a NaN poison) before that work is submitted. Such buffers
// are parked in `deferred` and become safe after the next submit (`afterSubmit`). A parked buffer may
// still be handed out at once to be written by GPU commands recorded later (`acquire(bytes, true)`):
// those run after the commands that read it, in queue order, so a chain of kernels recycles its
// intermediates within one submission instead of holding them all until the submit.

/** Size classes: powers of two split in quarters above 64 bytes, so a buffer wastes at most 25%. */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes));
  if (b <= 64) return Math.ceil(b / 16) * 16;
  const below = 2 ** Math.floor(Math.log2(b - 1)); // largest power of two < b
  const step = below / 4;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Buffers that exist on the GPU (in use, idle or parked). */
  gpuBuffers: number;
  gpuBytes: number;
  /** Idle buffers ready for reuse. */
  idleBuffers: number;
  idleBytes: number;
  /** Freed buffers waiting for the next submit. */
  deferredBuffers: number;
  /** Buffers ever created (a stable count in a steady loop means the pool is reusing). */
  created: number;
}

export class BufferPool {
  private readonly idle = new Map<number, GPUBuffer[]>();
  private deferred = new Map<number, GPUBuffer[]>();
  private deferredCount = 0;
  private gpuBuffers = 0;
  private gpuBytes = 0;
  private idleBytes = 0;
  private idleCount = 0;
  private created = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    private readonly label: string,
    /** Idle bytes above this are destroyed instead of pooled. */
    public maxIdleBytes = 512 * 1024 * 1024,
    /** Told about a buffer creation that failed (out of memory, validation): reported asynchronously. */
    private readonly onCreateError: (label: string, kind: 'validation' | 'out-of-memory', error: GPUError) => void = () => undefined,
  ) {}

  /** Error scopes around buffer creation not yet popped; readers await them before trusting results. */
  readonly pendingChecks = new Set<Promise<void>>();

  /**
   * A buffer of at least `bytes` (≥ 16) bytes. Safe to writeBuffer into unless `gpuWriteOnly`, which
   * also accepts a parked buffer (for an output written by a GPU command recorded from now on).
   */
  acquire(bytes: number, gpuWriteOnly = false, what?: { toString(): string }): GPUBuffer {
    const cls = Math.min(sizeClass(bytes), Math.max(16, this.device.limits.maxBufferSize - (this.device.limits.maxBufferSize % 4)));
    const reused = this.idle.get(cls)?.pop();
    if (reused) {
      this.idleBytes -= cls;
      this.idleCount--;
      return reused;
    }
    const parked = gpuWriteOnly ? this.deferred.get(cls)?.pop() : undefined;
    if (parked) {
      this.deferredCount--;
      return parked;
    }
    // createBuffer never throws for lack of memory: the error surfaces through an error scope.
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const label = `${this.label}[${cls} bytes]`;
    const buffer = this.device.createBuffer({ size: cls, usage: this.usage, label });
    const check = Promise.all([this.device.popErrorScope(), this.device.popErrorScope()]).then(
      ([validation, oom]) => {
        // Scopes pop in reverse order of pushing: validation first, then out-of-memory.
        const named = what === undefined ? label : `${what} (${label})`;
        if (oom) this.onCreateError(named, 'out-of-memory', oom);
        else if (validation) this.onCreateError(named, 'validation', validation);
      },
      () => undefined,
    );
    this.pendingChecks.add(check);
    void check.finally(() => this.pendingChecks.delete(check));
    this.gpuBuffers++;
    this.gpuBytes += cls;
    this.created++;
    return buffer;
  }

  /**
   * Returns a buffer to the pool. `inFlight`: unsubmitted commands may still use it, so it is parked until
   * `afterSubmit()`.
   */
  release(buffer: GPUBuffer, inFlight: boolean): void {
    if (!inFlight) {
      this.toIdle(buffer);
      return;
    }
    let list = this.deferred.get(buffer.size);
    if (!list) this.deferred.set(buffer.size, (list = []));
    list.push(buffer);
    this.deferredCount++;
  }

  /** Everything recorded so far has been submitted: parked buffers may be written again. */
  afterSubmit(): void {
    if (this.deferredCount === 0) return;
    const parked = this.deferred;
    this.deferred = new Map();
    this.deferredCount = 0;
    for (const list of parked.values()) for (const b of list) this.toIdle(b);
  }

  private toIdle(buffer: GPUBuffer): void {
    const cls = buffer.size;
    if (this.idleBytes + cls > this.maxIdleBytes) {
      this.destroy(buffer);
      return;
    }
    let list = this.idle.get(cls);
    if (!list) this.idle.set(cls, (list = []));
    list.push(buffer);
    this.idleBytes += cls;
    this.idleCount++;
  }

  private destroy(buffer: GPUBuffer): void {
    this.gpuBuffers--;
    this.gpuBytes -= buffer.size;
    buffer.destroy();
  }

  /** Destroys idle buffers (parked ones stay until they are safe). */
  trim(): void {
    for (const list of this.idle.values()) for (const b of list) this.destroy(b);
    this.idle.clear();
    this.idleBytes = 0;
    this.idleCount = 0;
  }

  stats(): PoolStats {
    return {
      gpuBuffers: this.gpuBuffers,
      gpuBytes: this.gpuBytes,
      idleBuffers: this.idleCount,
      idleBytes: this.idleBytes,
      deferredBuffers: this.deferredCount,
      created: this.created,
    };
  }
}
