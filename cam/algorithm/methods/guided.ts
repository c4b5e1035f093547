// Guided backpropagation (Springenberg et al., ICLR 2015 workshop) and Guided Grad-CAM (Selvaraju et al.,
// ICCV 2017). Guided backpropagation is the input gradient of the raw logit of each image's class with
// every ReLU guided (the engine's `withGuidedRelu`: module or functional, a ReLU passes only positive
// gradients at positive inputs); it is a 3-channel map in input space, returned unnormalised as upstream
// returns it. Guided Grad-CAM multiplies it by the Grad-CAM map, repeated over the 3 channels.
//
// Upstream swaps only `nn.ReLU` modules, so on a network with functional ReLUs (the CIFAR ResNet-20) its
// result is the plain gradient; this rule guides every ReLU.

import * as E from '../../../engine/index.ts';
import type { Tensor } from '../../../engine/index.ts';
import type { Module } from '../../../models/module.ts';
import { classifierTarget, imageUtilities, type BatchTarget, type HeadTarget } from '../targets.ts';
import type { ComposedMethod } from './types.ts';

export const guidedBackprop: ComposedMethod = {
  kind: 'guided-backprop',
  name: 'guided-backprop',
  referenceName: 'GuidedBackprop',
  needsGradient: true,
  needsHvp: false,
  randomised: false,
  channels: 3,
  smoothing: { aug: false, eigen: false },
};

export const guidedGradcam: ComposedMethod = {
  kind: 'guided-gradcam',
  name: 'guided-gradcam',
  referenceName: 'GuidedGradCAM',
  needsGradient: true,
  needsHvp: false,
  randomised: false,
  channels: 3,
  // Smoothing applies to its Grad-CAM factor, as upstream's cam.py smooths the CAM it multiplies.
  smoothing: { aug: true, eigen: true },
};

/**
 * The raw score guided backpropagation differentiates, whatever the CAM's target: the logit of each image's
 * class, as upstream; under the segmentation target, that target itself (the class's output summed over its
 * mask: already linear in the output, where upstream's guided backpropagation cannot take a dense output).
 */
export function guidedTarget(target: BatchTarget): HeadTarget {
  return target.masks ? target : classifierTarget('logit', target.classes);
}

/**
 * [B, 3, H, W]: ∂u_b/∂x of the target's per-image utility (guidedTarget's raw score) with guided ReLUs (or,
 * with `guided` false, the plain input gradient, which is what upstream returns for a network without ReLU
 * modules). Images are independent.
 */
export function inputGradient(module: Module, input: Tensor, target: HeadTarget, guided = true): Tensor {
  const score = (x: Tensor) => E.sum(imageUtilities(target, module.call(x)));
  return guided ? E.withGuidedRelu(() => E.grad(score)(input)) : E.grad(score)(input);
}
