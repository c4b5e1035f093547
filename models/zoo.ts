// The model zoo: entries with shipped weights, and loading any registered architecture from a
// safetensors file. Zoo names and architecture names are a contract (the CAM CLI's --model and --arch).

import { displayName, parseSafetensors, readSafetensors, SafetensorsError, type SafetensorsFile } from './safetensors.ts';
import { ModelError, type StateDictSource } from './module.ts';
import { getArchitecture, type Architecture, type Network } from './registry.ts';
import './archs/index.ts';

export interface ZooEntry {
  name: string;
  arch: string;
  /** Weights shipped with the project (a path under models/weights). */
  weights: string;
  description: string;
}

/** A shipped weights file. A template literal in `new URL`, so bundlers (the browser page's vite) ship them too. */
const shippedWeights = (file: string) => new URL(`./weights/${file}`, import.meta.url);

const zoo: ZooEntry[] = [
  { name: 'resnet20_cifar10', arch: 'resnet20', weights: 'resnet20_cifar10.safetensors', description: 'CIFAR-10 ResNet-20 (akamaster/pytorch_resnet_cifar10, BSD-2)' },
  { name: 'resnet56_cifar10', arch: 'resnet56', weights: 'resnet56_cifar10.safetensors', description: 'CIFAR-10 ResNet-56 (akamaster/pytorch_resnet_cifar10, BSD-2)' },
];

export function zooNames(): string[] {
  return zoo.map((z) => z.name);
}

export function getZooEntry(name: string): ZooEntry {
  const entry = zoo.find((z) => z.name === name);
  if (!entry) throw new ModelError(`unknown model "${name}"; shipped models: ${zooNames().join(', ')}`);
  return entry;
}

/** Adapts a safetensors file to the module tree's loader (float dtypes only). */
export function stateDictFromSafetensors(file: SafetensorsFile): StateDictSource {
  return {
    names: () => file.names,
    has: (n) => file.has(n),
    shape: (n) => file.entry(n).shape,
    values: (n) => file.float32(n),
  };
}

export interface LoadedModel {
  name: string;
  /** The registered architecture, with the settings that depend on these weights applied (see Architecture.specialise). */
  arch: Architecture;
  module: Network;
  numClasses: number;
  inChannels: number;
  labels: readonly string[];
}

/** Weights held in memory under the name errors should give (a file chosen in a browser page, say). */
export interface NamedBytes {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export type WeightsSource = string | URL | Uint8Array | NamedBytes;

const isNamedBytes = (w: WeightsSource): w is NamedBytes => typeof w === 'object' && 'bytes' in w && w.bytes instanceof Uint8Array;

/**
 * Builds an architecture with the shape hyper-parameters of a safetensors weights file (input channels,
 * widths, classes, a ViT's depth and sizes) and loads the weights into it (strict names and shapes). The
 * weights go to the current backend (useBackend), like every tensor made from host values. `weights` is a
 * file (path or URL) or the bytes of one (named `<memory>` in errors, or as `{ name, bytes }` says).
 */
export async function loadModel(archName: string, weights: WeightsSource): Promise<LoadedModel> {
  const base = getArchitecture(archName);
  let file: SafetensorsFile;
  try {
    if (weights instanceof Uint8Array) file = parseSafetensors(weights);
    else if (isNamedBytes(weights)) file = parseSafetensors(weights.bytes, weights.name);
    else file = await readSafetensors(weights);
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    const name = weights instanceof Uint8Array ? '<memory>' : isNamedBytes(weights) ? weights.name : displayName(weights);
    throw new ModelError(`${name}: cannot read weights (${(e as Error).message})`);
  }
  const source = stateDictFromSafetensors(file);
  let module: Network;
  try {
    module = base.build(undefined, source);
  } catch (e) {
    if (e instanceof ModelError) throw new ModelError(`${file.fileName}: ${e.message}`);
    throw e;
  }
  module.loadStateDict(source, { sourceName: file.fileName });
  const arch = base.specialise ? { ...base, ...base.specialise(module) } : base;
  const n = module.numClasses;
  const labels = n === base.labels.length ? base.labels : Array.from({ length: n }, (_, i) => `class ${i}`);
  return { name: archName, arch, module, numClasses: n, inChannels: module.inChannels, labels };
}

/** Loads a zoo model with its shipped weights. */
export async function loadZooModel(name: string): Promise<LoadedModel> {
  const entry = getZooEntry(name);
  const loaded = await loadModel(entry.arch, shippedWeights(entry.weights));
  return { ...loaded, name };
}
