// A module tree with torch-style dotted paths, so torchvision/timm state_dict names load unchanged and a
// CAM target layer is named the way researchers name it ("layer4", "features.18", "layer3.2.conv1").
//
// Forward hooks: while `withForwardHooks` runs, every module output passes through the hook registered
// for its path. CAM uses this to capture the activation A at a layer and to substitute a watched tensor
// for it. `ForwardReplay` adds the memo that makes the second pass cheap: outputs computed before the
// target layer are reused instead of recomputed, so only the network after A is evaluated (and traced).

import { DeviceLimitError, Tensor, tensor as makeTensor } from '../engine/index.ts';
import { fmt, type Shape } from '../engine/internal.ts';

export class ModelError extends Error {
  override name = 'ModelError';
}

export type OutputHook = (output: Tensor, path: string, call: number) => Tensor | void;

interface ForwardState {
  hooks: ReadonlyMap<string, OutputHook>;
  calls: Map<string, number>;
  replay?: ForwardReplay;
}

let state: ForwardState | null = null;

/** Runs fn with output hooks keyed by module path; `replay` memoises outputs before a target layer. */
export function withForwardHooks<T>(hooks: ReadonlyMap<string, OutputHook>, fn: () => T, replay?: ForwardReplay): T {
  const saved = state;
  state = { hooks, calls: new Map(), replay };
  try {
    return fn();
  } finally {
    state = saved;
  }
}

/**
 * Records, during a first forward pass, every module output finished before the target layer's output
 * appeared; in later passes those outputs are returned without recomputation and the target's output is
 * replaced. Keys include the call number, since a module (a shared ReLU) may run several times.
 */
export class ForwardReplay {
  private readonly memo = new Map<string, Tensor>();
  /** The memo as it stood when the target's (last) output appeared: what later passes may reuse. */
  private frozen = new Map<string, Tensor>();
  private recording = true;
  targetCall = 0;
  captured: Tensor | null = null;
  /** Returned in place of the target's output in later passes (the watched activation). */
  replacement: Tensor | null = null;
  /** Runs modules that finish before the target in a compiled form during recording (inference-prefix.ts). */
  compiled: CompiledModules | null = null;

  constructor(readonly targetPath: string) {}

  /** Called for each finished module during the recording pass. */
  record(key: string, path: string, call: number, output: Tensor): void {
    if (!this.recording) return;
    if (path === this.targetPath) {
      // The last call of the target counts (as a forward hook would leave it); keep memoising until then.
      this.captured = output;
      this.targetCall = call;
      this.frozen = new Map(this.memo);
      return;
    }
    this.memo.set(key, output);
  }

  finishRecording(): void {
    if (!this.captured) throw new ModelError(`layer "${this.targetPath}" was not called during the forward pass`);
    this.recording = false;
  }

  get isRecording(): boolean {
    return this.recording;
  }

  lookup(key: string): Tensor | undefined {
    return this.frozen.get(key);
  }
}

/**
 * A compiled form of some modules for the recording pass, before the target's output appears: `run`
 * returns a module's output computed its own way, or null to let the module run its forward.
 */
export interface CompiledModules {
  run(module: Module, call: number, inputs: readonly Tensor[]): Tensor | null;
}

const parameterReleasers: ((root: Module) => void)[] = [];

/** Registers a function that frees what was derived from a model's parameters when they are disposed. */
export function onDisposeParameters(release: (root: Module) => void): void {
  parameterReleasers.push(release);
}

export interface ParamSpec {
  shape: number[];
  value: Tensor | null;
}

export abstract class Module {
  /** Dotted path from the root ('' for the root), set when the tree is assembled. */
  path = '';
  private readonly childMap = new Map<string, Module>();
  private readonly paramMap = new Map<string, ParamSpec>();

  abstract forward(...inputs: Tensor[]): Tensor;

  /** Calls forward and passes the output through the active hooks and replay memo. */
  call(...inputs: Tensor[]): Tensor {
    const s = state;
    if (!s) return this.forward(...inputs);
    const call = (s.calls.get(this.path) ?? 0) + 1;
    s.calls.set(this.path, call);
    const key = `${this.path}#${call}`;
    const replay = s.replay;
    if (replay && !replay.isRecording) {
      if (replay.replacement && this.path === replay.targetPath && call === replay.targetCall) return replay.replacement;
      const memo = replay.lookup(key);
      if (memo) return memo;
    }
    const compiled = replay?.isRecording && !replay.captured ? replay.compiled : null;
    let out = compiled?.run(this, call, inputs) ?? this.forward(...inputs);
    const hook = s.hooks.get(this.path);
    if (hook) out = hook(out, this.path, call) ?? out;
    if (replay?.isRecording) replay.record(key, this.path, call, out);
    return out;
  }

  /** Adds a child module under `name` (its path is fixed when the root calls `finalize`). */
  protected add<M extends Module>(name: string | number, child: M): M {
    this.childMap.set(String(name), child);
    return child;
  }

  /** Declares a parameter or buffer of a given shape, filled by loadStateDict. */
  protected declare(name: string, shape: number[]): void {
    this.paramMap.set(name, { shape, value: null });
  }

  /** A declared tensor's value; a clear error if the weights were never loaded. */
  protected p(name: string): Tensor {
    const spec = this.paramMap.get(name);
    if (!spec) throw new ModelError(`${this.path || '<root>'}: no parameter "${name}"`);
    if (!spec.value) throw new ModelError(`${this.qualified(name)}: weights not loaded`);
    return spec.value;
  }

  protected has(name: string): boolean {
    return this.paramMap.has(name);
  }

  private qualified(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  /** Sets paths throughout the tree; call once on the root after construction. */
  finalize(prefix = ''): this {
    this.path = prefix;
    for (const [name, child] of this.childMap) child.finalize(prefix ? `${prefix}.${name}` : name);
    return this;
  }

  child(name: string): Module | undefined {
    return this.childMap.get(name);
  }

  /** Every module in the tree with its path, parents before children, in registration order. */
  *modules(): Generator<[string, Module]> {
    yield [this.path, this];
    for (const child of this.childMap.values()) yield* child.modules();
  }

  /** Every declared parameter and buffer with its full dotted name. */
  *tensors(): Generator<[string, ParamSpec]> {
    for (const [name, spec] of this.paramMap) yield [this.qualified(name), spec];
    for (const child of this.childMap.values()) yield* child.tensors();
  }

  /** The module at a dotted path, or a clear error listing the nearest valid paths. */
  get(path: string): Module {
    for (const [p, m] of this.modules()) if (p === path) return m;
    throw new ModelError(`unknown layer "${path}"; closest valid layers: ${closestPaths(path, [...this.modules()].map(([p]) => p).filter(Boolean)).join(', ')}`);
  }

  /**
   * Loads parameters by name. Every missing, unexpected and mis-shaped key is reported in one error;
   * `num_batches_tracked` is accepted and ignored (eval mode does not use it).
   */
  loadStateDict(source: StateDictSource, opts: { strict?: boolean; sourceName?: string } = {}): void {
    const strict = opts.strict ?? true;
    const expected = new Map(this.tensors());
    const problems: string[] = [];
    const names = source.names().filter((n) => !n.endsWith('num_batches_tracked'));
    const unexpected = names.filter((n) => !expected.has(n));
    const missing = [...expected.keys()].filter((n) => !source.has(n));
    for (const [name, spec] of expected) {
      if (!source.has(name)) continue;
      const shape = source.shape(name);
      if (fmt(shape) !== fmt(spec.shape)) problems.push(`${name}: shape ${fmt(shape)} in file, ${fmt(spec.shape)} in model`);
    }
    if (strict && (missing.length || unexpected.length || problems.length)) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing ${missing.length} (${listSome(missing)})`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.length} (${listSome(unexpected)})`);
      if (problems.length) parts.push(`mis-shaped ${problems.length} (${listSome(problems)})`);
      throw new ModelError(`${opts.sourceName ?? 'state dict'}: ${parts.join('; ')}`);
    }
    if (!strict && problems.length) throw new ModelError(`${opts.sourceName ?? 'state dict'}: mis-shaped ${listSome(problems)}`);
    for (const [name, spec] of expected) {
      if (!source.has(name)) continue;
      spec.value?.dispose();
      try {
        spec.value = makeTensor(source.values(name), spec.shape);
      } catch (e) {
        // Name the parameter the device cannot hold (the backend only knows its size).
        if (e instanceof DeviceLimitError) throw new DeviceLimitError(`${name} ${fmt(spec.shape)}: ${e.message}`);
        throw e;
      }
    }
  }

  /** Releases every loaded parameter. */
  disposeParameters(): void {
    for (const release of parameterReleasers) release(this);
    for (const [, spec] of this.tensors()) {
      spec.value?.dispose();
      spec.value = null;
    }
  }
}

export interface StateDictSource {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): Shape;
  values(name: string): Float32Array | Float64Array;
}

function listSome(items: string[], n = 6): string {
  return items.length <= n ? items.join(', ') : `${items.slice(0, n).join(', ')}, … ${items.length - n} more`;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** Valid paths closest to a mistyped one (edit distance), for error messages. */
export function closestPaths(path: string, valid: string[], n = 5): string[] {
  return [...valid].sort((x, y) => editDistance(path, x) - editDistance(path, y)).slice(0, n);
}
