/// <reference types="@webgpu/types" />
// Shader reflection, uniform packing, the pipeline cache and the bind-group cache.
//
// Every kernel's WGSL declares its resources with names. `wgsl_reflect` parses the source once and tells
// us, per entry point, which (group, binding) each name has, its access mode, and the byte layout of the
// uniform struct. Dispatch code therefore binds buffers and writes uniforms BY NAME; nothing here or in a
// kernel counts binding indices or struct offsets by hand. The same reflection builds each pipeline's
// explicit bind group layouts (uniform with a dynamic offset, storage read-only or read-write).

import type { TypeInfo, VariableInfo, WgslReflect as WgslReflectType } from 'wgsl_reflect';
// The package's `main` is a CommonJS file under "type": "module" (Node cannot load it); its ESM build has
// no declaration file of its own, so the types come from the package root (imported above).
// @ts-expect-error TS7016: no .d.ts beside the ESM build.
import * as wgslReflectModule from 'wgsl_reflect/wgsl_reflect.module.js';
import { GpuError, withErrorScopes } from './errors.ts';
import type { OverrideConstants, UniformValues } from './kernel-api.ts';

const WgslReflect = (wgslReflectModule as { WgslReflect: typeof WgslReflectType }).WgslReflect;

// ---------------------------------------------------------------------------------------------------
// Reflection

export interface BindingInfo {
  name: string;
  group: number;
  binding: number;
  kind: 'uniform' | 'storage';
  /** 'read' | 'read_write' for storage buffers. */
  access: string;
}

/** One scalar slot of a uniform struct: where it lives and how it is encoded. */
interface UniformSlot {
  offset: number;
  kind: 'u32' | 'i32' | 'f32';
}

export interface UniformLayout {
  /** Bytes, rounded up to 16. */
  size: number;
  /** Member name → its scalar slots in order (1 for a scalar, N for vecN, count·lanes for an array). */
  fields: Map<string, UniformSlot[]>;
}

export interface EntryInfo {
  entryPoint: string;
  /** Every resource the entry point uses (directly or through functions it calls), by name. */
  bindings: Map<string, BindingInfo>;
  /** The uniform buffer, if any (at most one per entry point). */
  uniform: (BindingInfo & { layout: UniformLayout }) | null;
  /** Bind group indices used, ascending. */
  groups: number[];
}

export interface ShaderInfo {
  code: string;
  entries: Map<string, EntryInfo>;
  overrides: Set<string>;
  /** Names of module-scope `var<workgroup>` variables (the race check runs on these kernels). */
  workgroupVars: string[];
}

const shaderInfoCache = new Map<string, ShaderInfo>();

/** Parses (once per source) a WGSL module's entry points, bindings, overrides and workgroup variables. */
export function reflectShader(code: string): ShaderInfo {
  const cached = shaderInfoCache.get(code);
  if (cached) return cached;
  const reflect = new WgslReflect(code);
  const entries = new Map<string, EntryInfo>();
  for (const fn of reflect.entry.compute) {
    const bindings = new Map<string, BindingInfo>();
    let uniform: EntryInfo['uniform'] = null;
    for (const v of fn.resources) {
      const info = bindingOf(v);
      if (!info) continue;
      bindings.set(info.name, info);
      if (info.kind === 'uniform') {
        if (uniform) throw new Error(`WGSL entry point ${fn.name}: more than one uniform (${uniform.name}, ${info.name}); use one struct`);
        uniform = { ...info, layout: uniformLayout(v) };
      }
    }
    const groups = [...new Set([...bindings.values()].map((b) => b.group))].sort((a, b) => a - b);
    entries.set(fn.name, { entryPoint: fn.name, bindings, uniform, groups });
  }
  const workgroupVars = [...code.matchAll(/var\s*<\s*workgroup\s*>\s*([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]);
  const info: ShaderInfo = { code, entries, overrides: new Set(reflect.overrides.map((o) => o.name)), workgroupVars };
  shaderInfoCache.set(code, info);
  return info;
}

function bindingOf(v: VariableInfo): BindingInfo | null {
  // ResourceType: 0 uniform, 1 storage (see wgsl_reflect's info.d.ts).
  const rt = v.resourceType as unknown as number;
  if (rt !== 0 && rt !== 1) return null;
  return { name: v.name, group: v.group, binding: v.binding, kind: rt === 0 ? 'uniform' : 'storage', access: v.access || 'read' };
}

const SCALARS = new Set(['u32', 'i32', 'f32']);

/** Scalar kind and lane count of a scalar or vector type name: u32, vec4u, vec4<u32>, vec2f… */
function lanesOf(type: TypeInfo): { kind: UniformSlot['kind']; lanes: number } | null {
  const name = type.getTypeName();
  if (SCALARS.has(name)) return { kind: name as UniformSlot['kind'], lanes: 1 };
  const m = /^vec([234])(?:([uif])|<(u32|i32|f32)>)$/.exec(name);
  if (!m) return null;
  const kind = (m[3] ?? `${m[2]}32`) as UniformSlot['kind'];
  return { kind, lanes: Number(m[1]) };
}

function uniformLayout(v: VariableInfo): UniformLayout {
  const fields = new Map<string, UniformSlot[]>();
  const members = v.members;
  if (!members) throw new Error(`uniform ${v.name}: must be a struct`);
  for (const m of members) {
    const slots: UniformSlot[] = [];
    const direct = lanesOf(m.type);
    if (direct) {
      for (let l = 0; l < direct.lanes; l++) slots.push({ offset: m.offset + 4 * l, kind: direct.kind });
    } else if (m.type.isArray) {
      const arr = m.type as TypeInfo & { format: TypeInfo; count: number; stride: number };
      const el = lanesOf(arr.format);
      if (!el || !arr.count) throw new Error(`uniform ${v.name}.${m.name}: unsupported type ${m.type.getTypeName()}`);
      for (let i = 0; i < arr.count; i++) {
        for (let l = 0; l < el.lanes; l++) slots.push({ offset: m.offset + i * arr.stride + 4 * l, kind: el.kind });
      }
    } else {
      throw new Error(`uniform ${v.name}.${m.name}: unsupported type ${m.type.getTypeName()} (scalars, vectors and arrays of them)`);
    }
    fields.set(m.name, slots);
  }
  return { size: Math.ceil(v.size / 16) * 16, fields };
}

/**
 * Encodes `values` into the uniform struct's bytes. Every member must be given except those whose name
 * starts with `_` (padding); unknown names are errors. An array member takes a flat list of its scalars
 * (shorter lists are zero-filled: e.g. a shape of rank 3 in an array<vec4u, 2>).
 */
export function packUniforms(layout: UniformLayout, values: UniformValues, label: string | { toString(): string }): Uint8Array {
  const bytes = new Uint8Array(layout.size);
  const view = new DataView(bytes.buffer);
  for (const name of Object.keys(values)) {
    if (!layout.fields.has(name)) throw new Error(`${label}: the uniform struct has no member "${name}" (members: ${[...layout.fields.keys()].join(', ')})`);
  }
  for (const [name, slots] of layout.fields) {
    const value = values[name];
    if (value === undefined) {
      if (name.startsWith('_')) continue;
      throw new Error(`${label}: uniform member "${name}" not given`);
    }
    const list = typeof value === 'number' ? [value] : value;
    if (typeof value === 'number' && slots.length !== 1) throw new Error(`${label}: uniform member "${name}" takes ${slots.length} values`);
    if (list.length > slots.length) throw new Error(`${label}: uniform member "${name}" takes at most ${slots.length} values, got ${list.length}`);
    list.forEach((x, i) => {
      const { offset, kind } = slots[i];
      if (kind === 'f32') view.setFloat32(offset, x, true);
      else if (!Number.isInteger(x)) throw new Error(`${label}: uniform member "${name}" is ${kind}, got ${x}`);
      else if (kind === 'u32') {
        if (x < 0 || x > 0xffffffff) throw new Error(`${label}: uniform member "${name}" (u32) out of range: ${x}`);
        view.setUint32(offset, x, true);
      } else {
        if (x < -0x80000000 || x > 0x7fffffff) throw new Error(`${label}: uniform member "${name}" (i32) out of range: ${x}`);
        view.setInt32(offset, x, true);
      }
    });
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------
// Pipelines

export interface PipelineEntry {
  /** Unique per entry (bind-group cache keys). */
  readonly id: number;
  /** Entry point and override constants (the source is the outer cache key). */
  readonly key: string;
  readonly label: string;
  readonly info: EntryInfo;
  /** Set once compiled; until then dispatches using it wait in the backend's queue. */
  pipeline: GPUComputePipeline | null;
  /**
   * Explicit bind group layouts, one per group 0..max (built from reflection): the uniform binding has a
   * dynamic offset, so a bind group does not depend on where a dispatch's uniforms sit in the arena and
   * can be cached (see BindGroupCache).
   */
  layouts: GPUBindGroupLayout[];
  readonly ready: Promise<GPUComputePipeline>;
}

const COMPUTE_STAGE = 0x4; // GPUShaderStage.COMPUTE

/** Bind group layouts for an entry point: uniform → dynamic-offset uniform, storage by access mode. */
function bindGroupLayouts(device: GPUDevice, info: EntryInfo, label: string): GPUBindGroupLayout[] {
  const last = info.groups.length ? info.groups[info.groups.length - 1] : -1;
  const layouts: GPUBindGroupLayout[] = [];
  for (let g = 0; g <= last; g++) {
    const entries: GPUBindGroupLayoutEntry[] = [...info.bindings.values()]
      .filter((b) => b.group === g)
      .map((b) => ({
        binding: b.binding,
        visibility: COMPUTE_STAGE,
        buffer: b.kind === 'uniform' ? { type: 'uniform', hasDynamicOffset: true } : { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
      }));
    layouts.push(device.createBindGroupLayout({ label: `${label} group ${g}`, entries }));
  }
  return layouts;
}

/** Entry point and constants; the source is the outer key (see PipelineCache.entries). */
function variantKey(entryPoint: string, constants: OverrideConstants | undefined): string {
  if (!constants) return entryPoint;
  let key = entryPoint;
  for (const k of Object.keys(constants).sort()) key += `|${k}=${constants[k]}`;
  return key;
}

/**
 * Compute pipelines cached by (source, entry point, override constants). Creation is asynchronous
 * (createComputePipelineAsync) inside validation + out-of-memory error scopes; creations are serialised
 * so that error scopes (a device-wide stack) never interleave.
 */
export class PipelineCache {
  /**
   * Source → variant → entry. Two levels because kernels pass the same (long) source string every call:
   * V8 caches a string's hash, so the outer lookup is cheap, whereas a key concatenated from the source
   * would be re-hashed in full on every dispatch.
   */
  private readonly entries = new Map<string, Map<string, PipelineEntry>>();
  private count = 0;
  private created = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.count;
  }

  get(code: string, entryPoint: string, constants: OverrideConstants | undefined, labelLike: string | { toString(): string }): PipelineEntry {
    const key = variantKey(entryPoint, constants);
    let variants = this.entries.get(code);
    const hit = variants?.get(key);
    if (hit) return hit;
    if (!variants) this.entries.set(code, (variants = new Map()));
    const label = String(labelLike);
    const shader = reflectShader(code);
    const info = shader.entries.get(entryPoint);
    if (!info) throw new Error(`${label}: WGSL has no compute entry point "${entryPoint}" (has: ${[...shader.entries.keys()].join(', ')})`);
    for (const name of Object.keys(constants ?? {})) {
      if (!shader.overrides.has(name)) throw new Error(`${label}: WGSL declares no override "${name}"`);
    }
    const entry: PipelineEntry = {
      id: ++this.created,
      key,
      label,
      info,
      pipeline: null,
      layouts: [],
      ready: null as unknown as Promise<GPUComputePipeline>,
    };
    const create = async (): Promise<GPUComputePipeline> => {
      const pipeline = await withErrorScopes(this.device, `pipeline ${label}`, async () => {
        const module = this.device.createShaderModule({ code, label });
        entry.layouts = bindGroupLayouts(this.device, info, label);
        try {
          return await this.device.createComputePipelineAsync({
            label,
            layout: this.device.createPipelineLayout({ label, bindGroupLayouts: entry.layouts }),
            compute: { module, entryPoint, constants: constants ?? {} },
          });
        } catch (err) {
          throw new GpuError(`pipeline ${label}`, 'validation', await describeFailure(module, err));
        }
      });
      entry.pipeline = pipeline;
      return pipeline;
    };
    const ready = this.chain.then(create, create);
    this.chain = ready.catch(() => undefined);
    (entry as { ready: Promise<GPUComputePipeline> }).ready = ready;
    // Failed pipelines are not cached: a later request retries (and fails again, loudly).
    ready.catch(() => {
      if (variants.delete(key)) this.count--;
    });
    variants.set(key, entry);
    this.count++;
    return entry;
  }
}

/** The pipeline error plus the WGSL compiler's messages with line numbers. */
async function describeFailure(module: GPUShaderModule, err: unknown): Promise<string> {
  const base = err instanceof Error ? err.message : String(err);
  try {
    const info = await module.getCompilationInfo();
    const lines = info.messages.map((m) => `${m.type} at line ${m.lineNum}:${m.linePos}: ${m.message}`);
    return lines.length ? `${base}\n${lines.join('\n')}` : base;
  } catch {
    return base;
  }
}

// ---------------------------------------------------------------------------------------------------
// Bind groups

const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 0;
function bufferId(buffer: GPUBuffer): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) bufferIds.set(buffer, (id = ++nextBufferId));
  return id;
}

export interface BindGroupBuffer {
  binding: number;
  buffer: GPUBuffer;
  /** Bytes from the buffer's start (a window of a large tensor; 0 for a whole buffer). */
  offset: number;
  size: number;
}

/**
 * Bind groups keyed by (pipeline entry, group, buffers, binding offsets and sizes). Creating one costs ~50 µs in
 * Dawn (more than encoding the dispatch), and a steady workload binds the same pooled buffers to the same
 * pipelines again and again, so they are kept, least recently used evicted past `capacity`. Uniforms
 * use a dynamic offset, so the arena position is not part of the key. A destroyed buffer never matches
 * again (ids are never reused); its stale entries age out.
 */
export class BindGroupCache {
  private readonly map = new Map<string, GPUBindGroup>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly device: GPUDevice,
    public capacity = 4096,
  ) {}

  get(entry: PipelineEntry, group: number, buffers: readonly BindGroupBuffer[], label?: string): GPUBindGroup {
    let key = `${entry.id}:${group}`;
    for (const b of buffers) key += `|${b.binding}:${bufferId(b.buffer)}:${b.offset}:${b.size}`;
    const hit = this.map.get(key);
    if (hit) {
      this.hits++;
      this.map.delete(key); // re-insert: Map order is the recency order
      this.map.set(key, hit);
      return hit;
    }
    this.misses++;
    const entries = buffers.map((b) => ({ binding: b.binding, resource: { buffer: b.buffer, offset: b.offset, size: b.size } }));
    const bindGroup = this.device.createBindGroup(label ? { label, layout: entry.layouts[group], entries } : { layout: entry.layouts[group], entries });
    this.map.set(key, bindGroup);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
    return bindGroup;
  }

  get size(): number {
    return this.map.size;
  }
}

// ---------------------------------------------------------------------------------------------------
// Dispatch grids

/**
 * A grid for `count` workgroups: 1-D while it fits maxComputeWorkgroupsPerDimension, else 2-D. Shaders
 * recover the linear workgroup index as `wid.x + wid.y * nwg.x` (`linear_index`, kernels/prelude.ts) and
 * must ignore the few workgroups past `count` of the last row.
 */
export function gridFor(count: number, maxPerDim: number, label: string | { toString(): string }): [number, number, number] {
  if (count <= maxPerDim) return [count, 1, 1];
  const y = Math.ceil(count / maxPerDim);
  if (y > maxPerDim) throw new Error(`${label}: ${count} workgroups exceed the ${maxPerDim}² grid`);
  return [Math.ceil(count / y), y, 1];
}
