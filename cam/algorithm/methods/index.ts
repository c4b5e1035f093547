// The method registry, by CLI name (a contract).
//
// Smoothing follows pytorch-grad-cam: --aug-smooth (test-time augmentation) for every CAM method that its
// BaseCAM runs, and also for Finer-CAM and Refine-CAM here; not for guided backpropagation (an input
// gradient, not a CAM). --eigen-smooth projects the per-channel terms of the methods that sum them
// (weights × A, G ⊙ A, …) and FullGrad's layer maps; upstream ignores it for the methods that are a
// projection already (EigenCAM, EigenGradCAM, KPCA-CAM, Seg-Eigen-CAM) and for FEM, and so does this port.

import { gradcam, gradcamElementwise, gradcamPlusPlus, hirescam, layercam, shapleycam, shapleycamElementwise, shapleycamHires, xgradcam } from './gradient.ts';
import { eigencam, eigengradcam, segEigencam } from './eigen.ts';
import { ablationcam, randomcam, scorecam } from './perturbation.ts';
import { fem } from './fem.ts';
import { kpcacam } from './kernel-pca.ts';
import { fullgrad } from './fullgrad.ts';
import { guidedBackprop, guidedGradcam } from './guided.ts';
import { DEFAULT_FINER_BASE, finercam } from './finer.ts';
import { DEFAULT_REFINE_BASE, refinecam } from './refine.ts';
import { isDenseTarget, type TargetName } from '../targets.ts';
import { MethodSettingError, type CamMethod, type Method } from './types.ts';

/** Methods computed at each target layer from A (and G, H·A), averaged over the layers. */
export const LAYER_METHODS: readonly CamMethod[] = [
  shapleycam, shapleycamHires, shapleycamElementwise,
  gradcam, hirescam, gradcamElementwise, gradcamPlusPlus, xgradcam, layercam,
  eigencam, eigengradcam, scorecam, ablationcam, randomcam,
  kpcacam, fem, segEigencam,
];

/** Every method: the layer methods, then those composed from the network or from a layer method. */
export const METHODS: readonly Method[] = [...LAYER_METHODS, fullgrad, guidedBackprop, guidedGradcam, finercam, refinecam];

export const METHOD_NAMES = METHODS.map((m) => m.name);

export function getMethod(name: string): Method {
  const m = METHODS.find((x) => x.name === name);
  if (!m) throw new Error(`unknown method "${name}"; choose from ${METHOD_NAMES.join(' ')}`);
  return m;
}

export function isLayerMethod(m: Method): m is CamMethod {
  return m.kind === 'layer';
}

/**
 * The layer method a meta-method runs on: `base` (checked) or its default. Finer-CAM needs a method driven
 * by the gradient of its utility; Refine-CAM takes any deterministic layer method.
 */
export function baseMethod(meta: 'finer-cam' | 'refine-cam', base: string | undefined): CamMethod {
  const name = base ?? (meta === 'finer-cam' ? DEFAULT_FINER_BASE : DEFAULT_REFINE_BASE);
  const m = LAYER_METHODS.find((x) => x.name === name);
  const allowed = baseMethodNames(meta);
  if (!m || !allowed.includes(name)) throw new MethodSettingError(`--base: ${meta}: "${name}" cannot be its base; choose from ${allowed.join(' ')}`);
  return m;
}

/** Why method `name` cannot explain under `target`, or null when it can (the message names the flag). */
export function targetRefusal(name: string, target: TargetName): string | null {
  return getMethod(name).classifierOnly && isDenseTarget(target) ? `--method ${name}: it compares a classifier's class logits, which the ${target} target does not have` : null;
}

/** The layer methods a meta-method accepts as its base. */
export function baseMethodNames(meta: 'finer-cam' | 'refine-cam'): string[] {
  return LAYER_METHODS.filter((m) => !m.randomised && (meta === 'refine-cam' || m.needsGradient)).map((m) => m.name);
}

export type { CamMethod, ComposedMethod, Method, MethodContext, MethodOptions, MethodResult } from './types.ts';
