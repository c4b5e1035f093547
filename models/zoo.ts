// The model zoo: entries with shipped weights, and loading any registered architecture from a
// safetensors file. Zoo names and architecture names are a contract (the CAM CLI's --model and --arch).

import { displayName, readSafetensors, SafetensorsError, type SafetensorsFile } from './safetensors.ts';
import { ModelError, type Module, type StateDictSource } from './module.ts';
import { getArchitecture, type Architecture } from './registry.ts';
import './archs/index.ts';

export interface ZooEntry {
  name: string;
  arch: string;
  /** Weights shipped with the project (a path under models/weights). */
  weights: string;
  description: string;
}

const WEIGHTS = new URL('./weights/', import.meta.url);

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
  arch: Architecture;
  module: Module;
  numClasses: number;
  labels: readonly string[];
}

/**
 * Builds an architecture and loads a safetensors weights file into it (strict names and shapes). The
 * weights go to the current backend (useBackend), like every tensor made from host values.
 */
export async function loadModel(archName: string, weightsPath: string | URL): Promise<LoadedModel> {
  const arch = getArchitecture(archName);
  let file: SafetensorsFile;
  try {
    file = await readSafetensors(weightsPath);
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new ModelError(`${displayName(weightsPath)}: cannot read weights (${(e as Error).message})`);
  }
  const numClasses = inferNumClasses(file) ?? undefined;
  const module = arch.build(numClasses);
  module.loadStateDict(stateDictFromSafetensors(file), { sourceName: file.fileName });
  const n = numClasses ?? arch.labels.length;
  const labels = n === arch.labels.length ? arch.labels : Array.from({ length: n }, (_, i) => `class ${i}`);
  return { name: archName, arch, module, numClasses: n, labels };
}

/** The number of classes, read from the classifier's bias/weight (the last 1-D or 2-D float tensor named like a head). */
function inferNumClasses(file: SafetensorsFile): number | null {
  const heads = ['linear.weight', 'fc.weight', 'classifier.weight', 'classifier.1.weight', 'classifier.6.weight', 'classifier.2.weight', 'head.weight', 'head.fc.weight', 'heads.head.weight'];
  for (const h of heads) if (file.has(h)) return file.entry(h).shape[0];
  return null;
}

/** Loads a zoo model with its shipped weights. */
export async function loadZooModel(name: string): Promise<LoadedModel> {
  const entry = getZooEntry(name);
  const loaded = await loadModel(entry.arch, new URL(entry.weights, WEIGHTS));
  return { ...loaded, name };
}
