/// <reference types="@webgpu/types" />
// Shared benchmark machinery for bench/matmul.ts and bench/conv.ts.
//
// GPU timing. A kernel family's implementation is run against a capturing KernelContext, which records
// the dispatches it would queue (WGSL, override constants, uniforms, bindings, grid) instead of handing
// them to the backend's batching queue. The benchmark then encodes those dispatches itself, in one
// compute pass per measured run, so it can time them with timestamp queries (`timestampWrites` at the
// start and end of the pass) when the device has 'timestamp-query', and otherwise with wall time around
// submit + onSubmittedWorkDone. Pipelines are compiled here from the captured specs (same reflection and
// uniform packing as the backend, 'auto' layouts). Every configuration is warmed up first (pipeline compilation, first-touch
// costs) and the median of several runs is reported.

import {
  cpuBackend,
  createWebGpuBackend,
  isWindow,
  packUniforms,
  reflectShader,
  withErrorScopes,
  type Dispatch,
  type GpuStorage,
  type KernelContext,
  type KernelFamily,
  type KernelName,
  type KernelParams,
  type WebGpuBackend,
} from '../engine/internal.ts';
import { WGSL_KERNELS } from '../kernels/index.ts';

// ---------------------------------------------------------------------------------------------------
// Arguments

export interface Args {
  flags: Set<string>;
  values: Map<string, string>;
}

/** Parses `--flag` and `--name value` / `--name=value`. */
export function parseArgs(argv: readonly string[]): Args {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) values.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) values.set(a.slice(2), argv[++i]);
    else flags.add(a.slice(2));
  }
  return { flags, values };
}

export function listArg(args: Args, name: string, fallback: number[]): number[] {
  const v = args.values.get(name);
  if (!v) return fallback;
  return v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: bad number ${s}`);
    return n;
  });
}

// ---------------------------------------------------------------------------------------------------
// Capturing a family's dispatches

export interface Captured {
  specs: Dispatch[];
  output: GpuStorage;
  /** Frees the output and any scratch. */
  dispose(): void;
}

/** Runs `family[kernel]` against a context that records its dispatches instead of queueing them. */
export function capture<K extends KernelName>(backend: WebGpuBackend, family: KernelFamily, kernel: K, inputs: readonly GpuStorage[], params: KernelParams[K]): Captured {
  const impl = family[kernel];
  if (!impl) throw new Error(`bench: the family has no kernel ${kernel}`);
  const specs: Dispatch[] = [];
  const owned: GpuStorage[] = [];
  const ctx: KernelContext = {
    kernel,
    limits: backend.limits,
    softwareAdapter: backend.ctx.adapterInfo.software,
    bindingLimit: backend.bindingLimitBytes / 4,
    bindingAlign: backend.bindingAlignBytes / 4,
    output: (size) => {
      const s = backend.allocate(size, `bench ${kernel} output`);
      owned.push(s);
      return s;
    },
    scratch: (size) => {
      const s = backend.allocate(size, `bench ${kernel} scratch`);
      owned.push(s);
      return s;
    },
    dispatch: (spec) => specs.push(spec),
    tuned: (request) => backend.tuner.choose(request),
    // Another kernel (split-K's reduction of its partial sums): captured too, from the backend's table
    // where the family does not define it.
    call: (k, ins, p) => {
      const inner = capture(backend, family[k] ? family : WGSL_KERNELS, k, ins, p);
      specs.push(...inner.specs);
      owned.push(inner.output);
      return inner.output;
    },
  };
  const output = (impl as (c: KernelContext, i: readonly GpuStorage[], p: KernelParams[K]) => GpuStorage)(ctx, inputs, params);
  return { specs, output, dispose: () => owned.forEach((s) => backend.free(s)) };
}

// ---------------------------------------------------------------------------------------------------
// Timing

interface Encoded {
  pipeline: GPUComputePipeline;
  bindGroups: [number, GPUBindGroup][];
  grid: [number, number, number];
}

export interface Timer {
  /** 'timestamp' (GPU timestamps around the pass) or 'wall' (submit → onSubmittedWorkDone). */
  method: 'timestamp' | 'wall';
  /** Times `specs` (one compute pass per run) after `warmup` untimed runs; returns each run's ms. */
  time(specs: readonly Dispatch[], runs: number, warmup: number): Promise<number[]>;
}

/** A timer on the backend's device; uses timestamp queries when the device has them (unless `wall`). */
export function makeTimer(backend: WebGpuBackend, wall = false): Timer {
  const device = backend.device;
  const useTimestamps = !wall && backend.ctx.hasTimestampQuery;
  let querySet: GPUQuerySet | null = null;
  let resolveBuf: GPUBuffer | null = null;
  let readBuf: GPUBuffer | null = null;
  if (useTimestamps) {
    querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
    resolveBuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    readBuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  // The benchmark compiles its own pipelines ('auto' layouts, no dynamic offsets) from the captured
  // specs, so it depends only on the dispatch description, not on how the backend binds.
  const pipelines = new Map<string, Promise<GPUComputePipeline>>();
  function pipelineFor(spec: Dispatch, label: string): Promise<GPUComputePipeline> {
    const entryPoint = spec.entryPoint ?? 'main';
    const key = `${entryPoint}|${JSON.stringify(spec.constants ?? {})}|${spec.code}`;
    let p = pipelines.get(key);
    if (!p) {
      p = withErrorScopes(device, `bench pipeline ${label}`, () =>
        device.createComputePipelineAsync({
          label,
          layout: 'auto',
          compute: { module: device.createShaderModule({ code: spec.code, label }), entryPoint, constants: spec.constants ?? {} },
        }),
      );
      pipelines.set(key, p);
    }
    return p;
  }

  async function encode(specs: readonly Dispatch[]): Promise<{ encoded: Encoded[]; uniforms: GPUBuffer[] }> {
    const encoded: Encoded[] = [];
    const uniforms: GPUBuffer[] = [];
    for (const spec of specs) {
      const label = String(spec.label ?? 'bench');
      const info = reflectShader(spec.code).entries.get(spec.entryPoint ?? 'main');
      if (!info) throw new Error(`${label}: no entry point ${spec.entryPoint ?? 'main'}`);
      const pipeline = await pipelineFor(spec, label);
      const groups = new Map<number, GPUBindGroupEntry[]>();
      const add = (g: number, e: GPUBindGroupEntry) => {
        const list = groups.get(g) ?? [];
        list.push(e);
        groups.set(g, list);
      };
      for (const [name, bound] of Object.entries(spec.bindings)) {
        const b = info.bindings.get(name);
        if (!b) throw new Error(`${label}: no binding ${name}`);
        const resource = isWindow(bound)
          ? { buffer: bound.storage.buffer!, offset: bound.offset * 4, size: bound.size * 4 }
          : { buffer: bound.buffer!, offset: 0, size: bound.bindingSize };
        add(b.group, { binding: b.binding, resource });
      }
      if (info.uniform) {
        const bytes = packUniforms(info.uniform.layout, spec.uniforms ?? {}, label);
        const buf = device.createBuffer({ size: Math.max(16, bytes.length), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(buf, 0, bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
        uniforms.push(buf);
        add(info.uniform.group, { binding: info.uniform.binding, resource: { buffer: buf } });
      }
      const wg = spec.workgroups;
      const grid: [number, number, number] = typeof wg === 'number' ? [wg, 1, 1] : [wg[0], wg[1] ?? 1, wg[2] ?? 1];
      const bindGroups: [number, GPUBindGroup][] = [...groups].map(([g, entries]) => [g, device.createBindGroup({ layout: pipeline.getBindGroupLayout(g), entries })]);
      encoded.push({ pipeline, bindGroups, grid });
    }
    return { encoded, uniforms };
  }

  async function once(encoded: Encoded[]): Promise<number> {
    const enc = device.createCommandEncoder({ label: 'bench' });
    const pass = enc.beginComputePass(
      querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
    );
    for (const e of encoded) {
      pass.setPipeline(e.pipeline);
      for (const [g, bg] of e.bindGroups) pass.setBindGroup(g, bg);
      pass.dispatchWorkgroups(...e.grid);
    }
    pass.end();
    if (querySet) {
      enc.resolveQuerySet(querySet, 0, 2, resolveBuf!, 0);
      enc.copyBufferToBuffer(resolveBuf!, 0, readBuf!, 0, 16);
    }
    const t0 = performance.now();
    // Validation errors (a bad bind group, say) would otherwise only be logged, and the "timing" of a
    // rejected command buffer would be reported: make them throw.
    await withErrorScopes(device, 'bench submit', () => device.queue.submit([enc.finish()]));
    await device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - t0;
    if (!querySet) return wallMs;
    await readBuf!.mapAsync(GPUMapMode.READ);
    const [start, end] = new BigUint64Array(readBuf!.getMappedRange().slice(0));
    readBuf!.unmap();
    const ms = Number(end - start) / 1e6;
    // A driver that reports nothing useful (zeros, wrapped counters) falls back to the wall time.
    return ms > 0 && ms < wallMs * 2 + 1000 ? ms : wallMs;
  }

  return {
    method: useTimestamps ? 'timestamp' : 'wall',
    async time(specs, runs, warmup) {
      const { encoded, uniforms } = await encode(specs);
      try {
        for (let i = 0; i < warmup; i++) await once(encoded);
        const times: number[] = [];
        for (let i = 0; i < runs; i++) times.push(await once(encoded));
        return times;
      } finally {
        uniforms.forEach((b) => b.destroy());
      }
    },
  };
}

/** Wall-clock ms of `fn` on the CPU backend (median of `runs` after `warmup`). */
export function timeCpu(fn: () => void, runs: number, warmup: number): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export { cpuBackend };

// ---------------------------------------------------------------------------------------------------
// Output

export interface Row {
  [column: string]: string | number;
}

/** Prints rows as an aligned text table. */
export function printTable(rows: readonly Row[], columns: readonly string[]): void {
  const cell = (v: string | number | undefined) => (v === undefined ? '' : typeof v === 'number' ? formatNumber(v) : v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(line([...columns]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

/** A compact adapter description for the JSON lines: vendor and description. */
export function adapterName(backend: WebGpuBackend): string {
  const { vendor, description, architecture } = backend.ctx.adapterInfo;
  return [vendor, architecture, description].filter(Boolean).join(' / ');
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`;
}

/** Creates the WebGPU backend and prints the benchmark's header (date, adapter, timing method). */
export async function startGpuBenchmark(title: string, args: Args, runs: number, warmup: number) {
  const gpu: WebGpuBackend = await createWebGpuBackend();
  const timer = makeTimer(gpu, args.flags.has('wall'));
  const adapter = adapterName(gpu);
  const date = new Date().toISOString();
  console.log(`# ${title} benchmark, ${date}`);
  console.log(`# ${gpu.describe()}`);
  // The adapter limits the device was created with (issue 17), as one JSON line.
  console.log(JSON.stringify({ bench: title, adapter, adapter_limits: gpu.deviceLimits(), date }));
  console.log(`# timing: ${timer.method === 'timestamp' ? 'GPU timestamp queries around the compute pass' : 'wall time, submit → onSubmittedWorkDone'}; median of ${runs} runs after ${warmup} warm-up`);
  /** n uniform values in [−0.5, 0.5) from a seeded LCG, uploaded to the GPU. */
  const randomStorage = (n: number, seed: number): GpuStorage => {
    let s = seed >>> 0;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      v[i] = s / 2 ** 32 - 0.5;
    }
    return gpu.upload(v) as GpuStorage;
  };
  return { gpu, timer, adapter, date, randomStorage };
}
