// The architecture registry: names (a contract: the CAM CLI's --arch takes them), how to build each one,
// its preprocessing, class labels, default CAM target layer and the layout of its activations.

import type { Module } from './module.ts';
import { ModelError } from './module.ts';

export interface Preprocessing {
  /** Shorter side resized to this before cropping (torchvision Resize(int)); none = no resize. */
  resize?: number;
  /** Centre crop [h, w]; none = no crop. */
  crop?: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
  /** Expected input [H, W]. */
  inputSize: [number, number];
}

export interface Architecture {
  name: string;
  build(numClasses?: number): Module;
  defaultLayer: string;
  preprocessing: Preprocessing;
  /** Class names for the default number of classes. */
  labels: readonly string[];
  /**
   * Layout of a layer's output when it is not NCHW (transformer blocks give NHWC). CAM computes on the
   * native layout and permutes A, G and H·A to NCHW afterwards; the methods are elementwise, so this is exact.
   */
  layout?(path: string): 'NCHW' | 'NHWC';
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

const architectures = new Map<string, Architecture>();

export function registerArchitecture(arch: Architecture): void {
  architectures.set(arch.name, arch);
}

export function architectureNames(): string[] {
  return [...architectures.keys()].sort();
}

export function getArchitecture(name: string): Architecture {
  const arch = architectures.get(name);
  if (!arch) throw new ModelError(`unknown architecture "${name}"; known: ${architectureNames().join(', ')}`);
  return arch;
}

