/// <reference types="@webgpu/types" />
/**
 * One GPUDevice per process.
 *
 * - Node: Dawn through the npm package `webgpu` (`create([])`). The object
 *   returned by `create()` MUST stay referenced while the device is in use:
 *   once it is garbage-collected, Dawn's instance is torn down underneath the
 *   device and the process dies a few dispatches later (segfault or a
 *   futex/pthread assertion). It is kept in the module-level `dawnGpu` below
 *   and dropped only by `releaseDevice()`.
 * - Deno / browsers: the built-in `navigator.gpu` (Deno uses wgpu + naga).
 *
 * On a machine without a GPU, Mesa's lavapipe (Vulkan on the CPU, Mesa >= 24)
 * provides a real adapter: see scripts/install-gpu-driver.sh.
 *
 * Environment (read through ../platform.ts):
 * - ENGINE_VERBOSE=1     print the adapter line to stderr once per process.
 * - ENGINE_DAWN_FLAGS    extra Dawn options for `create()`, separated by
 *                        whitespace, e.g. "backend=vulkan" or
 *                        "enable-dawn-features=dump_shaders" (Node only).
 */

import { beforeExit, env, runtime as hostRuntime } from '../platform.ts';

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
  /**
   * A software rasteriser running on the CPU (Mesa's lavapipe/llvmpipe, SwiftShader, WARP): the adapter
   * says so (`isFallbackAdapter`), or its names do. WebGPU there is emulated on the CPU's cores.
   */
  software: boolean;
}

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: GpuAdapterInfo;
  limits: GPUSupportedLimits;
  features: GPUSupportedFeatures;
  hasTimestampQuery: boolean;
  /** Which WebGPU implementation provides the device. */
  runtime: 'dawn-node' | 'navigator';
}

/**
 * The limits reported with results (summary.json of explain, the benchmarks): those the kernels depend on.
 * Every limit the adapter reports is requested at the adapter's own value (see `acquire`), not WebGPU's
 * defaults; these are the ones worth printing.
 */
export const REPORTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'minStorageBufferOffsetAlignment',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** The device's REPORTED_LIMITS as a plain object (GPUSupportedLimits' fields are prototype getters). */
export function reportedLimits(limits: GPUSupportedLimits): Record<string, number> {
  const source = limits as unknown as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const name of REPORTED_LIMITS) if (typeof source[name] === 'number') out[name] = source[name] as number;
  return out;
}

/**
 * Every numeric limit the adapter reports, at the adapter's value. (GPUSupportedLimits exposes its fields as
 * prototype getters, so they are enumerated with for…in rather than Object.keys.) Limits where "better" means
 * smaller (the alignments) are requested at the adapter's value too, which is always allowed.
 */
function adapterLimits(adapter: GPUAdapter): Record<string, number> {
  const source = adapter.limits as unknown as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const name in source) {
    const value = source[name];
    if (typeof value === 'number' && Number.isFinite(value)) out[name] = value;
  }
  return out;
}

/** Optional features requested when the adapter has them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['timestamp-query'];

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

// --- process-wide state --------------------------------------------------------

/** Dawn's GPU object (Node only). Keep referenced; see the file comment. */
let dawnGpu: GPU | null = null;
/** The adapter the current device came from (kept alive alongside the device). */
let currentAdapter: GPUAdapter | null = null;
let currentCtx: GpuContext | null = null;
let pending: Promise<GpuContext> | null = null;
/** Bumped on every release/loss so stale acquisitions do not clobber state. */
let generation = 0;
let verbosePrinted = false;
let exitHookInstalled = false;

function stderrLine(line: string): void {
  console.error(line);
}

// --- GPU entry point -----------------------------------------------------------

function navigatorGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? undefined;
}

async function loadDawn(): Promise<GPU> {
  if (dawnGpu) return dawnGpu;
  // A variable specifier keeps bundlers and Deno from resolving `webgpu`.
  const spec = 'webgpu';
  const mod = (await import(/* @vite-ignore */ spec)) as DawnModule;
  // Dawn's constants (GPUBufferUsage, GPUMapMode, GPUShaderStage, ...) and
  // classes are not Node globals; install the missing ones.
  for (const [name, value] of Object.entries(mod.globals)) {
    if (!(name in globalThis)) {
      (globalThis as Record<string, unknown>)[name] = value;
    }
  }
  const flags = (env('ENGINE_DAWN_FLAGS') ?? '').split(/\s+/).filter(Boolean);
  dawnGpu = mod.create(flags);
  installExitHook();
  return dawnGpu;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // beforeExit fires when the event loop drains: destroy the device and drop
  // Dawn's instance so nothing keeps Node alive. (Processes that end through
  // process.exit(), e.g. vitest forks, skip this; that is fine too.)
  beforeExit(() => releaseDevice());
}

async function gpuEntry(): Promise<{ gpu: GPU; runtime: GpuContext['runtime'] }> {
  const nav = navigatorGpu();
  if (nav) return { gpu: nav, runtime: 'navigator' };
  if (hostRuntime() === 'node') return { gpu: await loadDawn(), runtime: 'dawn-node' };
  throw new Error('WebGPU unavailable: no navigator.gpu and not running under Node');
}

// --- acquisition ---------------------------------------------------------------

/** Names of software rasterisers that present themselves as GPUs. */
const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render|\bwarp\b/i;

function readAdapterInfo(adapter: GPUAdapter): GpuAdapterInfo {
  // GPUAdapterInfo's fields are prototype getters (Dawn): copy them explicitly.
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const legacyFallback = (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const infoFallback = (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter;
  const names = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? '',
    device: info?.device ?? '',
  };
  const fallback = Boolean(infoFallback ?? legacyFallback ?? false);
  return { ...names, software: fallback || Object.values(names).some((n) => SOFTWARE_RENDERERS.test(n)) };
}

async function requestAdapter(): Promise<{ adapter: GPUAdapter | null; runtime: GpuContext['runtime'] }> {
  const { gpu, runtime } = await gpuEntry();
  return { adapter: await gpu.requestAdapter({ powerPreference: 'high-performance' }), runtime };
}

/**
 * What adapter this machine offers, without creating a device (the backend choice asks this first);
 * null when there is none or WebGPU itself is missing. Never throws.
 */
export async function probeAdapter(): Promise<GpuAdapterInfo | null> {
  if (currentCtx) return currentCtx.adapterInfo;
  try {
    const { adapter } = await requestAdapter();
    return adapter ? readAdapterInfo(adapter) : null;
  } catch {
    return null;
  }
}

async function acquire(gen: number): Promise<GpuContext> {
  const { adapter, runtime } = await requestAdapter();
  if (!adapter) {
    throw new Error(
      `WebGPU: no adapter available (${runtime}); on a GPU-less Linux machine run ` +
        'scripts/install-gpu-driver.sh (Mesa >= 24 lavapipe)',
    );
  }

  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: 'engine', requiredLimits: adapterLimits(adapter), requiredFeatures });
  } catch {
    // An implementation that lists a limit it does not accept back: fall back to the ones the kernels need.
    const needed: Record<string, number> = {};
    const all = adapterLimits(adapter);
    for (const name of REPORTED_LIMITS) if (name in all) needed[name] = all[name];
    device = await adapter.requestDevice({ label: 'engine', requiredLimits: needed, requiredFeatures });
  }

  const adapterInfo = readAdapterInfo(adapter);
  const ctx: GpuContext = {
    device,
    adapterInfo,
    limits: device.limits,
    features: device.features,
    hasTimestampQuery: device.features.has('timestamp-query'),
    runtime,
  };

  if (gen !== generation) {
    // releaseDevice() ran while we were acquiring: do not resurrect state.
    device.destroy();
    throw new Error('WebGPU: device released while it was being acquired');
  }

  currentAdapter = adapter;
  currentCtx = ctx;
  watchLoss(ctx, gen);

  if (!verbosePrinted && env('ENGINE_VERBOSE') === '1') {
    verbosePrinted = true;
    stderrLine(`[engine] ${describeAdapter(ctx)}`);
  }
  return ctx;
}

function watchLoss(ctx: GpuContext, gen: number): void {
  ctx.device.lost.then(
    (info) => {
      const stillCurrent = currentCtx === ctx && gen === generation;
      // A 'destroyed' loss of a device we no longer hold is our own release.
      if (stillCurrent || info.reason !== 'destroyed') {
        const msg = (info.message ?? '').replace(/\s+/g, ' ').trim();
        stderrLine(`[engine] WebGPU device lost (reason: ${info.reason ?? 'unknown'})${msg ? `: ${msg}` : ''}`);
      }
      if (stillCurrent) {
        // Forget it; the next getDevice() creates a fresh device. Dawn's GPU
        // object stays referenced so the new device can come from it.
        generation++;
        currentCtx = null;
        currentAdapter = null;
        pending = null;
      }
    },
    () => undefined,
  );
}

/**
 * The process-wide WebGPU device (created on first call, then cached).
 * Throws when no adapter or device can be had.
 */
export function getDevice(): Promise<GpuContext> {
  if (currentCtx) return Promise.resolve(currentCtx);
  if (!pending) {
    const gen = generation;
    const p = acquire(gen);
    pending = p;
    p.catch(() => {
      if (pending === p) pending = null; // allow a retry later
    });
  }
  return pending;
}

/** True when a WebGPU device can be acquired here. Never throws. */
export async function webgpuAvailable(): Promise<boolean> {
  try {
    await getDevice();
    return true;
  } catch {
    return false;
  }
}

/**
 * Destroys the device and drops every reference (including Dawn's GPU object)
 * so the process can exit. A later getDevice() starts from scratch.
 */
export function releaseDevice(): void {
  generation++;
  const ctx = currentCtx;
  currentCtx = null;
  currentAdapter = null;
  pending = null;
  if (ctx) {
    try {
      ctx.device.destroy();
    } catch {
      // already gone
    }
  }
  dawnGpu = null;
}

/** One line: vendor, architecture, description (plus device id when known). */
export function describeAdapter(ctx: GpuContext): string {
  const { vendor, architecture, description, device } = ctx.adapterInfo;
  const parts = [
    `vendor=${vendor || '?'}`,
    `architecture=${architecture || '?'}`,
    `description=${JSON.stringify(description || '?')}`,
  ];
  if (device) parts.push(`device=${JSON.stringify(device)}`);
  if (ctx.adapterInfo.software) parts.push('software');
  return `WebGPU adapter (${ctx.runtime}): ${parts.join(' ')}`;
}
