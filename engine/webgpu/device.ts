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
 * Environment:
 * - ENGINE_VERBOSE=1     print the adapter line to stderr once per process.
 * - ENGINE_DAWN_FLAGS    extra Dawn options for `create()`, separated by
 *                        whitespace, e.g. "backend=vulkan" or
 *                        "enable-dawn-features=dump_shaders" (Node only).
 */

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
}

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: GpuAdapterInfo;
  limits: GPUSupportedLimits;
  features: GPUSupportedFeatures;
  hasTimestampQuery: boolean;
  /** Which WebGPU implementation provides the device. */
  runtime: 'dawn-node' | 'navigator';
  /** True for software / fallback adapters such as lavapipe (llvmpipe). */
  isFallbackAdapter: boolean;
}

/** Limits requested at the adapter's maximum (when the adapter reports them). */
const MAX_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
  // Without these the per-dimension defaults (256, 256, 64) cap
  // @workgroup_size below maxComputeInvocationsPerWorkgroup.
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
] as const;

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

// --- environment helpers -------------------------------------------------------

interface DenoLike {
  env: { get(name: string): string | undefined };
}

function denoGlobal(): DenoLike | undefined {
  return (globalThis as { Deno?: DenoLike }).Deno;
}

function getEnv(name: string): string | undefined {
  try {
    const deno = denoGlobal();
    if (deno) return deno.env.get(name);
  } catch {
    // no --allow-env: treat as unset
  }
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !denoGlobal() && typeof proc?.versions?.node === 'string';
}

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
  const flags = (getEnv('ENGINE_DAWN_FLAGS') ?? '').split(/\s+/).filter(Boolean);
  dawnGpu = mod.create(flags);
  installExitHook();
  return dawnGpu;
}

function installExitHook(): void {
  if (exitHookInstalled || !isNode()) return;
  exitHookInstalled = true;
  // beforeExit fires when the event loop drains: destroy the device and drop
  // Dawn's instance so nothing keeps Node alive. (Processes that end through
  // process.exit(), e.g. vitest forks, skip this; that is fine too.)
  process.once('beforeExit', () => releaseDevice());
}

async function gpuEntry(): Promise<{ gpu: GPU; runtime: GpuContext['runtime'] }> {
  const nav = navigatorGpu();
  if (nav) return { gpu: nav, runtime: 'navigator' };
  if (isNode()) return { gpu: await loadDawn(), runtime: 'dawn-node' };
  throw new Error('WebGPU unavailable: no navigator.gpu and not running under Node');
}

// --- acquisition ---------------------------------------------------------------

function readAdapterInfo(adapter: GPUAdapter): GpuAdapterInfo & { isFallbackAdapter: boolean } {
  // GPUAdapterInfo's fields are prototype getters (Dawn): copy them explicitly.
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const legacyFallback = (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const infoFallback = (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter;
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    description: info?.description ?? '',
    device: info?.device ?? '',
    isFallbackAdapter: Boolean(infoFallback ?? legacyFallback ?? false),
  };
}

async function acquire(gen: number): Promise<GpuContext> {
  const { gpu, runtime } = await gpuEntry();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new Error(
      `WebGPU: no adapter available (${runtime}); on a GPU-less Linux machine run ` +
        'scripts/install-gpu-driver.sh (Mesa >= 24 lavapipe)',
    );
  }

  const requiredLimits: Record<string, number> = {};
  const adapterLimits = adapter.limits as unknown as Record<string, unknown>;
  for (const name of MAX_LIMITS) {
    const value = adapterLimits[name];
    if (typeof value === 'number' && Number.isFinite(value)) requiredLimits[name] = value;
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));

  const device = await adapter.requestDevice({
    label: 'engine',
    requiredLimits,
    requiredFeatures,
  });

  const { isFallbackAdapter, ...adapterInfo } = readAdapterInfo(adapter);
  const ctx: GpuContext = {
    device,
    adapterInfo,
    limits: device.limits,
    features: device.features,
    hasTimestampQuery: device.features.has('timestamp-query'),
    runtime,
    isFallbackAdapter,
  };

  if (gen !== generation) {
    // releaseDevice() ran while we were acquiring: do not resurrect state.
    device.destroy();
    throw new Error('WebGPU: device released while it was being acquired');
  }

  currentAdapter = adapter;
  currentCtx = ctx;
  watchLoss(ctx, gen);

  if (!verbosePrinted && getEnv('ENGINE_VERBOSE') === '1') {
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
  if (ctx.isFallbackAdapter) parts.push('fallback');
  return `WebGPU adapter (${ctx.runtime}): ${parts.join(' ')}`;
}
