// The allocator over the backend's WebAssembly.Memory: blocks of 64-byte multiples (SIMD- and
// cache-line-aligned), reused by exact size (the engine allocates the same shapes over and over), a bump
// pointer above them, and growth of the memory when the top is reached. When the memory cannot grow any
// further, free blocks are merged with their neighbours and reused first-fit before giving up.

const ALIGN = 64;
const PAGE = 65536;

export class Heap {
  /** Float32 view of the whole memory; replaced after each growth (views keep their old length). */
  f32: Float32Array;
  i32: Int32Array;
  private top: number;
  private readonly bins = new Map<number, number[]>();
  private freeBytes = 0;

  constructor(readonly memory: WebAssembly.Memory, base: number) {
    this.top = base;
    this.f32 = new Float32Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
  }

  static blockSize(bytes: number): number {
    return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  }

  /** A block of at least `bytes` bytes; its byte address. */
  alloc(bytes: number): number {
    const size = Heap.blockSize(bytes);
    const bin = this.bins.get(size);
    if (bin && bin.length > 0) {
      this.freeBytes -= size;
      return bin.pop()!;
    }
    if (this.ensure(this.top + size)) {
      const p = this.top;
      this.top += size;
      return p;
    }
    const reused = this.coalesceAndFit(size);
    if (reused >= 0) return reused;
    throw new Error(`wasm backend: out of memory allocating ${bytes} bytes (memory ${this.memory.buffer.byteLength} bytes, ${this.freeBytes} free in fragments)`);
  }

  free(ptr: number, bytes: number): void {
    const size = Heap.blockSize(bytes);
    let bin = this.bins.get(size);
    if (!bin) this.bins.set(size, (bin = []));
    bin.push(ptr);
    this.freeBytes += size;
  }

  /** Grows the memory so that `end` bytes exist; false when it cannot. */
  private ensure(end: number): boolean {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return true;
    try {
      // At least double (amortised growth), at most what the limit allows.
      const pages = Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE));
      try {
        this.memory.grow(pages);
      } catch {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      }
    } catch {
      return false;
    }
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
    return true;
  }

  /** Merges adjacent free blocks (lowering the top where the highest ones are free), then fits first. */
  private coalesceAndFit(size: number): number {
    const blocks: [number, number][] = [];
    for (const [s, ptrs] of this.bins) for (const p of ptrs) blocks.push([p, s]);
    blocks.sort((a, b) => a[0] - b[0]);
    const merged: [number, number][] = [];
    for (const [p, s] of blocks) {
      const last = merged[merged.length - 1];
      if (last && last[0] + last[1] === p) last[1] += s;
      else merged.push([p, s]);
    }
    const lastBlock = merged[merged.length - 1];
    if (lastBlock && lastBlock[0] + lastBlock[1] === this.top) {
      this.top = lastBlock[0];
      merged.pop();
    }
    this.bins.clear();
    this.freeBytes = 0;
    let found = -1;
    for (const [p, s] of merged) {
      if (found < 0 && s >= size) {
        found = p;
        if (s > size) this.free(p + size, s - size);
      } else {
        this.free(p, s);
      }
    }
    if (found >= 0) return found;
    if (this.ensure(this.top + size)) {
      const p = this.top;
      this.top += size;
      return p;
    }
    return -1;
  }
}
