// The architecture registry: names (a contract: the CAM CLI's --arch takes them), how to build each one
// (with the hyper-parameters a weights file determines), its preprocessing, class labels, task, default CAM
// target layer and the layout of its activations.

import * as E from '../engine/index.ts';
import type { Shape } from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import type { Module } from './module.ts';
import { ModelError } from './module.ts';

export interface Preprocessing {
  /** Shorter side resized to this before cropping (torchvision Resize(int)); none = no resize. */
  resize?: number;
  /** Centre crop [h, w]; none = no crop. */
  crop?: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
  /** Expected input [H, W] (segmentation networks take any size: their nominal one). */
  inputSize: [number, number];
}

/** The shapes of a weights file's tensors: what architectures read their hyper-parameters from. */
export interface WeightShapes {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): Shape;
}

/** What every built model says about its ends. */
export interface ModelShape {
  readonly numClasses: number;
  readonly inChannels: number;
}

export type Network = Module & ModelShape;

/**
 * A token sequence (B, prefixTokens + h·w, C), as a vision transformer's blocks give: the first tokens
 * (class, distillation) are not image positions; the rest are the patch grid in row-major order.
 */
export interface TokenLayout {
  prefixTokens: number;
  grid: [number, number];
}

export interface Architecture {
  name: string;
  /**
   * Builds the module tree (shapes declared, nothing allocated). Hyper-parameters the weights determine
   * (input channels, classes, widths, a ViT's depth and sizes) are read from `weights` when given, else
   * the named architecture's; an explicit `numClasses` wins over both.
   */
  build(numClasses?: number, weights?: WeightShapes): Network;
  defaultLayer: string;
  preprocessing: Preprocessing;
  /** Class names for the default number of classes. */
  labels: readonly string[];
  /** Dense prediction: the output is (B, classes, H, W) at the input's size. Default 'classification'. */
  task?: 'classification' | 'segmentation';
  /**
   * Layout of a layer's output when it is not NCHW (transformer blocks give NHWC). CAM computes on the
   * native layout and permutes A, G and H·A to NCHW afterwards; the methods are elementwise, so this is exact.
   */
  layout?(path: string): 'NCHW' | 'NHWC';
  /** Layers whose output is a token sequence (vision transformers); null for the others. */
  tokens?(path: string): TokenLayout | null;
  /** Settings that depend on the built model (its depth, input size, token grid); loadModel applies them. */
  specialise?(module: Network): Partial<Pick<Architecture, 'defaultLayer' | 'preprocessing' | 'tokens'>>;
}

/**
 * How to bring a layer's output to NCHW for CAM and back: identity, an NHWC permutation, or, for token
 * sequences, dropping the prefix tokens and laying the patch tokens out on their grid (pytorch-grad-cam's
 * ViT `reshape_transform`). The CAM methods are elementwise over (B, C, h, w), so A, G and H·A computed on
 * the native layout and brought to NCHW this way are exact; the prefix tokens' G and H·A are dropped.
 */
export interface ActivationLayout {
  kind: 'NCHW' | 'NHWC' | 'tokens';
  toNCHW(native: Tensor): Tensor;
  /** The inverse: a (B, C, h, w) map back to the native layout, prefix tokens taken from `native`. */
  toNative(nchw: Tensor, native: Tensor): Tensor;
}

export function activationLayout(arch: Pick<Architecture, 'layout' | 'tokens'>, path: string): ActivationLayout {
  const tokens = arch.tokens?.(path) ?? null;
  if (tokens) return tokenLayout(path, tokens);
  if (arch.layout?.(path) === 'NHWC') {
    return { kind: 'NHWC', toNCHW: (t) => E.permute(t, [0, 3, 1, 2]), toNative: (t) => E.permute(t, [0, 2, 3, 1]) };
  }
  return { kind: 'NCHW', toNCHW: (t) => t, toNative: (t) => t };
}

function tokenLayout(path: string, { prefixTokens, grid: [h, w] }: TokenLayout): ActivationLayout {
  const check = (t: Tensor) => {
    if (t.rank !== 3 || t.shape[1] !== prefixTokens + h * w) {
      throw new ModelError(`layer "${path}": output ${JSON.stringify(t.shape)} is not (B, ${prefixTokens} + ${h}·${w} tokens, C)`);
    }
  };
  return {
    kind: 'tokens',
    toNCHW(t) {
      check(t);
      const [B, , C] = t.shape;
      return E.permute(E.reshape(E.slice(t, [0, prefixTokens]), [B, h, w, C]), [0, 3, 1, 2]);
    },
    toNative(nchw, native) {
      check(native);
      const [B, C] = nchw.shape;
      const patches = E.reshape(E.permute(nchw, [0, 2, 3, 1]), [B, h * w, C]);
      return prefixTokens ? E.concat([E.slice(native, [0, 0], [null, prefixTokens]), patches], 1) : patches;
    },
  };
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

