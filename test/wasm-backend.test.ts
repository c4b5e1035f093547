// The wasm backend as a whole: selection by name and environment, results that do not depend on the
// number of threads, memory that returns to where it started after many HVPs, growth of the shared
// memory, dispatch of small problems on the calling thread, and the worker's copy of the control-block
// layout.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Backend, Storage } from '../engine/backend.ts';
import { createWasmBackend, type WasmBackend } from '../engine/wasm/backend.ts';
import { Heap } from '../engine/wasm/heap.ts';
import * as ids from '../kernels/wasm/assembly/ids.ts';
import { convGeometry, cpuRun, rand } from './helpers/float32.ts';
import { relErr } from './helpers/fixtures.ts';
import { smallCnn } from './helpers/small-cnn.ts';
import { wasmBackend } from './helpers/wasm.ts';

function cnnTensors(backend: Backend, size = 12, channels = 8) {
  return [
    E.tensor(rand(2 * 3 * size * size, 7), [2, 3, size, size], backend),
    E.tensor(rand(channels * 27, 8, -0.5, 0.5), [channels, 3, 3, 3], backend),
    E.tensor(rand(6 * channels * 9, 9, -0.3, 0.3), [6, channels, 3, 3], backend),
    E.tensor(rand(5 * 6, 10), [5, 6], backend),
  ];
}

/** Value, gradient and HVP of the small CNN's head at its activations, plus the input HVP. */
async function cnnDerivatives(backend: Backend, size = 12, channels = 8): Promise<Float64Array[]> {
  const outs = E.tidy(() => {
    const [x, w1, w2, w3] = cnnTensors(backend, size, channels);
    const { features, head } = smallCnn(w1, w2, w3);
    const a = features(x);
    const r = E.gradAndHvp(head, a, a);
    return [a, r.value, r.grad, r.hvp, E.hvp((t: E.Tensor) => head(features(t)), x, x)];
  });
  const values = await Promise.all(outs.map((t) => t.values()));
  E.dispose(outs);
  return values;
}

let wasm: WasmBackend;
beforeAll(async () => {
  wasm = await wasmBackend(2);
});

describe('the wasm backend', () => {
  it('is selected by useBackend("wasm") and by ENGINE_BACKEND=wasm (with ENGINE_WASM_THREADS)', async () => {
    const previous = E.getBackend();
    const b = await E.useBackend('wasm');
    expect(b.name).toBe('wasm');
    expect(E.getBackend()).toBe(b);
    expect(await E.useBackend('wasm')).toBe(b); // one backend per process
    expect(await E.mul(E.tensor([1, 2, 3]), 2).data()).toEqual([2, 4, 6]);
    E.setBackend(previous);
    const script = "import * as E from './engine/index.ts'; const b = await E.ready(); console.log(JSON.stringify({ name: b.name, describe: b.describe(), eps: b.epsilon, v: await E.exp(E.tensor([0, 1])).data() }));";
    const r = spawnSync('npx', ['--no-install', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ENGINE_BACKEND: 'wasm', ENGINE_WASM_THREADS: '1' } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out).toEqual({ name: 'wasm', describe: 'wasm (float32 SIMD, 1 thread)', eps: 2 ** -23, v: [1, Math.fround(Math.E)] });
    const bad = spawnSync('npx', ['--no-install', 'tsx', '--input-type=module', '-e', "import * as E from './engine/index.ts'; await E.ready();"], { encoding: 'utf8', env: { ...process.env, ENGINE_BACKEND: 'wasm', ENGINE_WASM_THREADS: 'many' } });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/ENGINE_WASM_THREADS must be an integer from 1 to 64, got "many"/);
  });

  it('gives bitwise the same results with 1, 2 and 3 threads (every sum in a fixed order)', async () => {
    const one = await createWasmBackend({ threads: 1 });
    const three = await createWasmBackend({ threads: 3 });
    try {
      const run = async (b: Backend) => {
        const outs: Float64Array[] = [];
        const kernel = async (...args: Parameters<Backend['run']>) => {
          const s = b.run(...args);
          outs.push(await b.read(s));
          b.free(s);
        };
        const up = (n: number, seed: number) => b.upload(rand(n, seed));
        const a = up(300 * 700, 1);
        const m = up(700 * 500, 2);
        const x = up(4 * 32 * 30 * 30, 3);
        const w = up(48 * 32 * 9, 4);
        const dy = up(4 * 48 * 15 * 15, 5);
        const g = { xShape: [4, 32, 30, 30], wShape: [48, 32, 3, 3], yShape: [4, 48, 15, 15], stride: [2, 2] as [number, number], padding: [1, 1] as [number, number], dilation: [1, 1] as [number, number], groups: 1 };
        await kernel('matmul', [a, m], { aShape: [300, 700], bShape: [700, 500], outShape: [300, 500] });
        await kernel('conv2d', [x, w], g);
        await kernel('conv2dBackwardInput', [dy, w], g);
        await kernel('conv2dBackwardFilter', [x, dy], g);
        await kernel('reduce', [a], { op: 'sum', shape: [300, 700], axes: [0] });
        await kernel('reduce', [a], { op: 'sum', shape: [300 * 700], axes: [0] });
        await kernel('reduce', [x], { op: 'sum', shape: [4, 32, 900], axes: [0, 2] });
        [a, m, x, w, dy].forEach((s) => b.free(s));
        outs.push(...(await cnnDerivatives(b, 24, 16)));
        return outs;
      };
      const [r1, r2, r3] = [await run(one), await run(wasm), await run(three)];
      expect(wasm.dispatchStats.shared).toBeGreaterThan(0); // the two- and three-thread runs did share work
      r1.forEach((v, i) => {
        expect(Array.from(r2[i]), `result ${i}, 2 threads`).toEqual(Array.from(v));
        expect(Array.from(r3[i]), `result ${i}, 3 threads`).toEqual(Array.from(v));
      });
    } finally {
      one.close();
      three.close();
    }
  });

  it('300 forward + HVP iterations on a small CNN leave live buffers, bytes and the memory size where they started', async () => {
    const poison = wasm.debug.poisonOutputs;
    wasm.debug.poisonOutputs = false;
    try {
      const [x, w1, w2, w3] = cnnTensors(wasm);
      const { features, head } = smallCnn(w1, w2, w3);
      const step = () =>
        E.tidy(() => {
          const a = features(x);
          return E.sum(E.gradAndHvp(head, a, a).hvp);
        });
      step().dispose();
      const start = wasm.memory();
      let half = 0;
      for (let i = 0; i < 300; i++) {
        step().dispose();
        if (i === 149) half = wasm.memorySize;
      }
      expect(wasm.memory()).toEqual(start);
      expect(wasm.memorySize).toBe(half); // a steady state: the second half allocates nothing new
      [x, w1, w2, w3].forEach((t) => t.dispose());
    } finally {
      wasm.debug.poisonOutputs = poison;
    }
  });

  it('keeps packed conv weights with their storage: later calls reuse them; freeing the weights frees them, and new weights at the same address are packed anew', () => {
    // 5 output channels: the weights (135 floats) and their packings differ in size, so the allocator,
    // which reuses freed blocks by size, hands the weights' own block to the next weights of that size.
    const g = convGeometry([2, 3, 9, 9], [5, 3, 3, 3], { padding: [1, 1] });
    const xv = rand(2 * 3 * 81, 1);
    const dyv = rand(2 * 5 * 81, 2);
    const [w1v, w2v] = [rand(135, 3), rand(135, 4)];
    const x = wasm.upload(xv);
    const dy = wasm.upload(dyv);
    const run = (kernel: 'conv2d' | 'conv2dBackwardInput', inputs: Storage[]) => {
      const out = wasm.run(kernel, inputs, g);
      const v = wasm.readSync(out);
      wasm.free(out);
      return v;
    };
    // A first call with other weights sizes the kernels' scratch, so that nothing but the weights and
    // their packings is allocated or freed below (the address check needs the allocator's free list as is).
    const w0 = wasm.upload(w2v);
    run('conv2d', [x, w0]);
    run('conv2dBackwardInput', [dy, w0]);
    wasm.free(w0);
    const base = wasm.cachedBytes;
    const w1 = wasm.upload(w1v);
    const y1 = run('conv2d', [x, w1]);
    const packed = wasm.cachedBytes - base;
    expect(packed).toBeGreaterThan(0);
    expect(run('conv2d', [x, w1])).toEqual(y1); // the kept packing
    expect(wasm.cachedBytes - base).toBe(packed);
    const dx1 = run('conv2dBackwardInput', [dy, w1]); // the transposed packing is kept beside it
    expect(wasm.cachedBytes - base).toBeGreaterThan(packed);
    expect(run('conv2dBackwardInput', [dy, w1])).toEqual(dx1);
    expect(relErr(y1, cpuRun('conv2d', [xv, w1v], g))).toBeLessThan(1e-5);
    expect(relErr(dx1, cpuRun('conv2dBackwardInput', [dyv, w1v], g))).toBeLessThan(1e-5);
    const address = (w1 as unknown as { ptr: number }).ptr;
    wasm.free(w1);
    expect(wasm.cachedBytes).toBe(base);
    const w2 = wasm.upload(w2v);
    expect((w2 as unknown as { ptr: number }).ptr, 'the allocator reused the address').toBe(address);
    expect(relErr(run('conv2d', [x, w2]), cpuRun('conv2d', [xv, w2v], g))).toBeLessThan(1e-5);
    expect(relErr(run('conv2dBackwardInput', [dy, w2]), cpuRun('conv2dBackwardInput', [dyv, w2v], g))).toBeLessThan(1e-5);
    [x, dy, w2].forEach((s) => wasm.free(s));
    expect(wasm.cachedBytes).toBe(base);
  });

  it('grows its memory for large tensors and keeps earlier ones intact', async () => {
    const before = wasm.memorySize;
    const small = wasm.upload([1, 2, 3]);
    const n = 40_000_000; // 160 MB
    const big = wasm.run('fill', [], { size: n, value: 0.5 });
    const sum = wasm.run('reduce', [big], { op: 'sum', shape: [n], axes: [0] });
    expect(wasm.memorySize).toBeGreaterThan(before);
    expect(await wasm.read(sum)).toEqual(Float64Array.from([n / 2]));
    expect(await wasm.read(small)).toEqual(Float64Array.from([1, 2, 3]));
    [small, big, sum].forEach((s) => wasm.free(s));
  });

  it('the allocator reuses freed blocks by size, merges neighbours when the memory cannot grow, and says when it is full', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 }); // 128 KiB at most
    const heap = new Heap(memory, 0);
    const a = heap.alloc(1000);
    const b = heap.alloc(1000);
    expect(b - a).toBe(1024); // 64-byte blocks
    heap.free(a, 1000);
    expect(heap.alloc(1000)).toBe(a); // same size: the same block
    const big = heap.alloc(100_000); // grows the memory to its second page
    expect(memory.buffer.byteLength).toBe(131072);
    expect(heap.f32.length).toBe(131072 / 4); // views follow the growth
    heap.free(a, 1000);
    heap.free(b, 1000);
    heap.free(big, 100_000);
    // Nothing fits a 120 KB block by size, and the memory is at its maximum: the free blocks (which are
    // adjacent, up to the top) merge, and the block starts at address 0 again.
    expect(heap.alloc(120_000)).toBe(0);
    expect(() => heap.alloc(20_000)).toThrow(/wasm backend: out of memory allocating 20000 bytes/);
  });

  it('runs small problems on the calling thread alone, large ones on every thread', () => {
    const s0 = wasm.dispatchStats;
    const a = wasm.upload(rand(100, 1));
    wasm.free(wasm.run('unary', [a], { op: 'exp', size: 100 }));
    const s1 = wasm.dispatchStats;
    expect(s1).toEqual({ shared: s0.shared, alone: s0.alone + 1 });
    const b = wasm.upload(rand(1 << 20, 2));
    wasm.free(wasm.run('unary', [b], { op: 'exp', size: 1 << 20 }));
    expect(wasm.dispatchStats.shared).toBe(s1.shared + 1);
    [a, b].forEach((s) => wasm.free(s));
  });

  it('a kernel that traps is reported as an error, on the caller or in a worker, and the pool keeps working', () => {
    const pool = (wasm as unknown as { pool: { run(kernel: number, args: number, tasks: number, alone: boolean): void } }).pool;
    // No kernel has number 999: every task reaches `unreachable`.
    expect(() => pool.run(999, 65536 + 256, 64, false)).toThrow(/wasm backend: internal: kernel 999 trapped/);
    expect(() => pool.run(999, 65536 + 256, 1, true)).toThrow(/unreachable/);
    const a = wasm.upload(rand(1 << 20, 3));
    const out = wasm.run('unary', [a], { op: 'neg', size: 1 << 20 });
    expect(wasm.readSync(out)[5]).toBe(-Math.fround(rand(1 << 20, 3)[5]));
    [a, out].forEach((s) => wasm.free(s));
  });

  it('refuses a freed storage and a storage of another backend with a clear error', () => {
    const s = wasm.upload([1, 2]);
    wasm.free(s);
    expect(() => wasm.run('unary', [s], { op: 'neg', size: 2 })).toThrow(/wasm backend: tensor used after dispose\(\)/);
    const c = E.cpuBackend().upload([1, 2]);
    expect(() => wasm.run('unary', [c], { op: 'neg', size: 2 })).toThrow(/storage belongs to another backend/);
  });

  it("the worker's copy of the control-block layout matches kernels/wasm/assembly/ids.ts", () => {
    const src = readFileSync(new URL('../engine/wasm/worker.mjs', import.meta.url), 'utf8');
    for (const name of ['CTL_BASE', 'CTL_SEQ', 'CTL_SHUTDOWN', 'CTL_FINISHED', 'CTL_FAILED'] as const) {
      const m = src.match(new RegExp(`const ${name} = (\\d+);`));
      expect(m, name).not.toBeNull();
      expect(Number(m![1]), name).toBe(ids[name]);
    }
  });
});
