// The flags `explain` and `eval` share, declared and checked once: the model (--model | --arch
// --weights), target layers, utility, batch size, seed, backend, pixel limit and output folder. A command
// spreads SHARED_OPTIONS into its own parseArgs options, hands the values to `sharedSettings`, checks its
// inputs, and only then starts the backend and loads the model with `openModel`.

import { parseArgs } from 'node:util';
import * as E from '../../engine/index.ts';
import { env } from '../../engine/internal.ts';
import { ModelError } from '../../models/module.ts';
import type { LoadedModel } from '../../models/zoo.ts';
import type { Architecture } from '../../models/registry.ts';
import { baseMethodNames, getMethod, METHOD_NAMES, type MethodOptions } from '../algorithm/methods/index.ts';
import { DEFAULT_ALPHA, DEFAULT_COMPARE, DEFAULT_FINER_BASE } from '../algorithm/methods/finer.ts';
import { DEFAULT_KERNEL, KERNELS } from '../algorithm/methods/kernel-pca.ts';
import { DEFAULT_REFINE_BASE } from '../algorithm/methods/refine.ts';
import { TARGETS, defaultTarget, targetMismatch, type TargetName } from '../algorithm/targets.ts';
import { QueueError, parseRedisUrl, type RedisAddress } from '../evaluation/queue/address.ts';
import { DEFAULT_MAX_PIXELS } from '../rendering/codec.ts';
import { EXTRA_METRICS, type ExtraMetric } from '../evaluation/report.ts';
import { InputError, UsageError, parseIntFlag } from './errors.ts';
import type { ModelFlags, ModelSource } from './inputs.ts';

export const SHARED_OPTIONS = {
  model: { type: 'string' },
  arch: { type: 'string' },
  weights: { type: 'string' },
  layer: { type: 'string', multiple: true },
  target: { type: 'string' },
  backend: { type: 'string' },
  batch: { type: 'string', default: '8' },
  seed: { type: 'string', default: '0' },
  'max-pixels': { type: 'string' },
  out: { type: 'string' },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The usage lines of the shared flags. */
export const SHARED_USAGE = `  --backend   auto (default: WebGPU on a hardware adapter, else wasm), wasm, webgpu or cpu (float64
              reference); ENGINE_BACKEND sets the default
  --max-pixels  refuse larger images before decoding them (default ${DEFAULT_MAX_PIXELS}, Pillow's limit)`;

/** --max-batch, which `explain` and `eval` share: rows per derivative-free forward pass. */
export const MAX_BATCH_OPTIONS = {
  'max-batch': { type: 'string' },
} as const;

/** The default of --max-batch, in words (cam/algorithm/batch-size.ts). */
export const MAX_BATCH_DEFAULT = 'default: 256 images of 32×32 on wasm and webgpu, 64 on cpu, fewer in proportion for larger images';

/** --max-batch as given (an integer ≥ 1), or undefined for the backend's default. */
export function maxBatchFlag(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseIntFlag('max-batch', value, 1);
}

/** The queue flag `eval` and `worker` share. */
export const QUEUE_OPTIONS = {
  queue: { type: 'string' },
} as const;

export const QUEUE_USAGE = `  --queue     redis://HOST:PORT[/DB]: the Redis whose queue (BullMQ) carries the shards of queued runs`;

/** The Redis address of --queue; a malformed one is bad usage. */
export function queueAddress(value: string): RedisAddress {
  try {
    return parseRedisUrl(value);
  } catch (e) {
    if (e instanceof QueueError) throw new UsageError(e.message);
    throw e;
  }
}

/** Runs node's parseArgs, turning its errors into usage errors (exit 2) of one line. */
export function parseCommandLine<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/**
 * The bare words of a command line, allowed only right after `option` (shell globs expand
 * `--image *.png` into one flag and many words); any other bare word is a usage error.
 */
export function wordsAfter(tokens: readonly { kind: string; name?: string; value?: string }[], option: string): string[] {
  const words: string[] = [];
  let after = false;
  for (const token of tokens) {
    if (token.kind === 'option') after = token.name === option;
    else if (token.kind === 'positional') {
      if (!after) throw new UsageError(`unexpected argument "${token.value}"`);
      words.push(token.value!);
    } else after = false;
  }
  return words;
}

/** The values of SHARED_OPTIONS as parseArgs returns them. */
export interface SharedFlags extends ModelFlags {
  layer?: string[];
  target?: string;
  backend?: string;
  batch: string;
  seed: string;
  'max-pixels'?: string;
  out?: string;
  verbose: boolean;
}

export interface SharedSettings {
  model: ModelFlags;
  /** As given; empty for the architecture's default layer. */
  layers: string[];
  /** The utility named by --target; none given: the model's own kind decides (see targetFor). */
  target: TargetName | null;
  batch: number;
  seed: number;
  backend: E.BackendChoice;
  maxPixels: number;
  out: string;
  verbose: boolean;
}

/** Checks the shared flags (bad usage exits 2). */
export function sharedSettings(v: SharedFlags): SharedSettings {
  if (!v.out) throw new UsageError('--out DIR is required');
  if (v.target !== undefined && !(TARGETS as readonly string[]).includes(v.target)) throw new UsageError(`--target: expected one of ${TARGETS.join('|')}, got "${v.target}"`);
  const fromEnv = v.backend === undefined ? env('ENGINE_BACKEND') || undefined : undefined;
  const backend = v.backend ?? fromEnv ?? 'auto';
  if (!(E.BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new UsageError(`${fromEnv ? 'ENGINE_BACKEND' : '--backend'}: expected ${E.BACKEND_CHOICES.join(', ')}, got "${backend}"`);
  }
  return {
    model: { model: v.model, arch: v.arch, weights: v.weights },
    layers: v.layer ?? [],
    target: (v.target ?? null) as TargetName | null,
    batch: parseIntFlag('batch', v.batch, 1),
    seed: parseIntFlag('seed', v.seed, 0),
    backend: backend as E.BackendChoice,
    maxPixels: v['max-pixels'] === undefined ? DEFAULT_MAX_PIXELS : parseIntFlag('max-pixels', v['max-pixels'], 1),
    out: v.out,
    verbose: v.verbose,
  };
}

/**
 * The utility for this architecture: --target as given, or by default `segmentation` for a segmentation
 * model and `rest` for a classifier. A target of the other kind is bad usage (exit 2), found before any
 * backend starts.
 */
export function targetFor(target: TargetName | null, arch: Pick<Architecture, 'name' | 'task'>): TargetName {
  if (target === null) return defaultTarget(arch);
  const mismatch = targetMismatch(target, arch);
  if (mismatch) throw new UsageError(`--target ${target}: ${mismatch}`);
  return target;
}

/**
 * Method names from repeatable, comma-separated flag values, checked and without repeats. `saliencyOnly`
 * (for metrics, which multiply the input by a map) refuses the 3-channel input-space methods; `layers`
 * (as given, empty for the default one) refuses Refine-CAM with fewer than two.
 */
export function parseMethods(values: readonly string[], fallback: readonly string[], flag: string, opts: { saliencyOnly?: boolean; layers?: readonly string[] } = {}): string[] {
  const list = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of list) {
    if (!METHOD_NAMES.includes(m)) throw new UsageError(`${flag}: unknown method "${m}"; choose from ${METHOD_NAMES.join(' ')}`);
    if (opts.saliencyOnly && getMethod(m).channels !== 1) throw new UsageError(`${flag}: ${m} gives a 3-channel input-space map, not a saliency map the metrics can use`);
    if (opts.layers && m === 'refine-cam' && opts.layers.length < 2) throw new UsageError(`--layer: refine-cam needs two or more target layers, got ${opts.layers.length || 'only the default one'}`);
  }
  return list.length ? [...new Set(list)] : [...fallback];
}

/** The flags that change how methods run: smoothing, and settings of particular methods. */
export const METHOD_OPTIONS = {
  'aug-smooth': { type: 'boolean', default: false },
  'eigen-smooth': { type: 'boolean', default: false },
  kernel: { type: 'string' },
  base: { type: 'string' },
  compare: { type: 'string' },
  alpha: { type: 'string' },
} as const;

export const METHOD_USAGE = `  --aug-smooth    average each map over pytorch-grad-cam's test-time augmentations (horizontal flip ×
                  scaling by 0.9, 1, 1.1); terms.safetensors then keeps A, G and H·A per augmentation
  --eigen-smooth  project the per-channel terms (w_k·A_k, G⊙A, …) on their first principal component
                  instead of summing them (not for methods that are projections already, nor FEM)
  --kernel NAME   kpca-cam's kernel: ${KERNELS.join(', ')} (default ${DEFAULT_KERNEL})
  --base NAME     the layer method finer-cam and refine-cam run on (defaults ${DEFAULT_FINER_BASE} and
                  ${DEFAULT_REFINE_BASE}); finer-cam: ${baseMethodNames('finer-cam').join(' ')}
  --compare R,…   finer-cam's comparison classes as ranks by logit distance to the main class (default
                  ${DEFAULT_COMPARE.join(',')}: the three closest)
  --alpha X       finer-cam's comparison strength α ≥ 0 (default ${DEFAULT_ALPHA})`;

/** The values of METHOD_OPTIONS as parseArgs returns them. */
export interface MethodFlags {
  'aug-smooth': boolean;
  'eigen-smooth': boolean;
  kernel?: string;
  base?: string;
  compare?: string;
  alpha?: string;
}

export interface MethodSettings {
  augSmooth: boolean;
  eigenSmooth: boolean;
  options: MethodOptions;
  /** Lines to tell the user: smoothing that does not apply to a method, layers a method ignores. */
  notes: string[];
}

/**
 * Checks the method flags against the methods asked for and the layers given (empty: the model's default
 * layer). Bad usage exits 2: a flag no asked method uses, a bad value, Refine-CAM with fewer than two layers.
 */
export function methodSettings(v: MethodFlags, methods: readonly string[], layers: readonly string[]): MethodSettings {
  const asked = (name: string) => methods.includes(name);
  const onlyFor = (flag: string, users: string[]) => {
    if (!users.some(asked)) throw new UsageError(`--${flag}: only ${users.join(' and ')} use${users.length === 1 ? 's' : ''} it; add ${users.length === 1 ? 'it' : 'one'} to --method`);
  };
  const options: MethodOptions = {};
  if (v.kernel !== undefined) {
    onlyFor('kernel', ['kpca-cam']);
    if (!(KERNELS as readonly string[]).includes(v.kernel)) throw new UsageError(`--kernel: expected one of ${KERNELS.join(', ')}, got "${v.kernel}"`);
    options.kernel = v.kernel;
  }
  if (v.base !== undefined) {
    onlyFor('base', ['finer-cam', 'refine-cam']);
    for (const meta of ['finer-cam', 'refine-cam'] as const) {
      if (asked(meta) && !baseMethodNames(meta).includes(v.base)) throw new UsageError(`--base: ${meta} cannot run on "${v.base}"; choose from ${baseMethodNames(meta).join(' ')}`);
    }
    options.base = v.base;
  }
  if (v.compare !== undefined) {
    onlyFor('compare', ['finer-cam']);
    const ranks = v.compare.split(',').map((r) => r.trim());
    if (!ranks.every((r) => /^\d+$/.test(r) && Number(r) >= 1) || new Set(ranks.map(Number)).size !== ranks.length) {
      throw new UsageError(`--compare: expected distinct ranks ≥ 1 separated by commas (1 = the class with the closest logit), got "${v.compare}"`);
    }
    options.compare = ranks.map(Number);
  }
  if (v.alpha !== undefined) {
    onlyFor('alpha', ['finer-cam']);
    const alpha = Number(v.alpha);
    if (v.alpha.trim() === '' || !Number.isFinite(alpha) || alpha < 0) throw new UsageError(`--alpha: expected a number ≥ 0, got "${v.alpha}"`);
    options.alpha = alpha;
  }
  if (asked('refine-cam') && layers.length < 2) {
    throw new UsageError(`--layer: refine-cam needs two or more target layers, got ${layers.length === 0 ? 'only the default one' : `only "${layers[0]}"`} (repeat --layer)`);
  }
  const notes: string[] = [];
  for (const [flag, on, key] of [['--aug-smooth', v['aug-smooth'], 'aug'], ['--eigen-smooth', v['eigen-smooth'], 'eigen']] as const) {
    if (!on) continue;
    const untouched = methods.filter((m) => !getMethod(m).smoothing[key]);
    if (untouched.length) notes.push(`${flag}: not applied to ${untouched.join(', ')} (as in pytorch-grad-cam)`);
  }
  for (const m of methods) if (getMethod(m).ignoresLayers && layers.length) notes.push(`${m}: ignores --layer (it reads every bias layer)`);
  return { augSmooth: v['aug-smooth'], eigenSmooth: v['eigen-smooth'], options, notes };
}

/** Refuses comparison ranks the model's classes cannot have (known once the model is loaded). */
export function checkCompare(options: MethodOptions, numClasses: number): void {
  const bad = options.compare?.find((r) => r >= numClasses);
  if (bad !== undefined) throw new UsageError(`--compare: rank ${bad} is beyond this model's ${numClasses} classes (ranks go up to ${numClasses - 1})`);
}

/** eval's --metrics: the extra metric families, checked, without repeats, in their canonical order. */
export function parseMetrics(values: readonly string[]): ExtraMetric[] {
  const list = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of list) if (!(EXTRA_METRICS as readonly string[]).includes(m)) throw new UsageError(`--metrics: unknown metric family "${m}"; choose from ${EXTRA_METRICS.join(' ')}`);
  return EXTRA_METRICS.filter((m) => list.includes(m));
}

export interface OpenedModel {
  chosen: E.ChosenBackend;
  model: LoadedModel;
  /** The target layers, checked against the model (its default layer when none was given). */
  layers: string[];
}

/** Starts the backend, loads the model on it and checks the target layers (an unknown one exits 1). */
export async function openModel(s: SharedSettings, source: ModelSource): Promise<OpenedModel> {
  let chosen: E.ChosenBackend;
  try {
    chosen = await E.chooseBackend(s.backend);
  } catch (e) {
    throw new InputError(`--backend ${s.backend}: cannot start (${(e as Error).message.split('\n')[0]})`);
  }
  const model = await source.load();
  const layers = s.layers.length ? s.layers : [model.arch.defaultLayer];
  for (const layer of layers) {
    try {
      model.module.get(layer);
    } catch (e) {
      if (e instanceof ModelError) throw new InputError(`--layer: ${e.message}`);
      throw e;
    }
  }
  return { chosen, model, layers };
}

/** The line a command prints when its work starts: which backend, and why; with --verbose the adapter too. */
export function backendLines(chosen: E.ChosenBackend, verbose: boolean): string[] {
  return [E.describeChoice(chosen), ...(verbose ? [`backend: ${chosen.backend.describe()}`] : [])];
}
