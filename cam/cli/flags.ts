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
import { METHOD_NAMES } from '../algorithm/methods/index.ts';
import { TARGETS, isDenseTarget, type TargetName } from '../algorithm/targets.ts';
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
export const SHARED_USAGE = `  --backend   auto (default: WebGPU when an adapter is there, else the CPU), cpu or webgpu; ENGINE_BACKEND
              sets the default
  --max-pixels  refuse larger images before decoding them (default ${DEFAULT_MAX_PIXELS}, Pillow's limit)`;

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
  const dense = arch.task === 'segmentation';
  if (target === null) return dense ? 'segmentation' : 'rest';
  if (isDenseTarget(target) && !dense) throw new UsageError(`--target segmentation: ${arch.name} is a classifier (the segmentation target needs a per-pixel class map)`);
  if (!isDenseTarget(target) && dense) throw new UsageError(`--target ${target}: ${arch.name} is a segmentation model; explain it with --target segmentation`);
  return target;
}

/** Method names from repeatable, comma-separated flag values, checked and without repeats. */
export function parseMethods(values: readonly string[], fallback: readonly string[], flag: string): string[] {
  const list = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of list) if (!METHOD_NAMES.includes(m)) throw new UsageError(`${flag}: unknown method "${m}"; choose from ${METHOD_NAMES.join(' ')}`);
  return list.length ? [...new Set(list)] : [...fallback];
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
