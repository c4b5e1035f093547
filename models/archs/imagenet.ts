// Shared ImageNet-1k settings for the torchvision/timm architectures: preprocessing, labels and small
// building blocks used by several architecture files.
//
// Preprocessing follows each weight set's own evaluation transform (torchvision 0.14 `Weights.transforms`,
// timm 1.0 `default_cfg`): Resize(shorter side) → CenterCrop(224) → ToTensor → Normalize(ImageNet mean/std).
//
//   architecture                    | resize | crop | interpolation in the reference | here
//   --------------------------------|--------|------|--------------------------------|---------
//   resnet*, resnext50_32x4d (V1)   | 256    | 224  | bilinear                       | bilinear
//   vgg*, vgg*_bn                   | 256    | 224  | bilinear                       | bilinear
//   mobilenet_v2 (V1)               | 256    | 224  | bilinear                       | bilinear
//   efficientnet_b0 (V1)            | 256    | 224  | BICUBIC                        | bilinear
//   convnext_tiny (V1)              | 236    | 224  | bilinear                       | bilinear
//   swin_t / swin_s / swin_b        | 232 / 246 / 238 | 224 | BICUBIC                  | bilinear
//   timm swin_*_patch4_window7_224  | 248    | 224  | BICUBIC (crop_pct 0.9)         | bilinear
//
// timm's resize for crop_pct 0.9 is floor(224 / 0.9) = 248 (timm.data.transforms_factory). cam/rendering/image.ts
// implements Pillow's bilinear filter only, and the registry's Preprocessing has no interpolation field, so
// the bicubic models are fed Pillow-bilinear resizes: pixel values differ slightly from the reference
// pipeline (a few grey levels at edges), which changes logits a little but not the architecture's math.
// The reference interpolation is recorded in REFERENCE_INTERPOLATION for callers that want to report it.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { Lambda } from '../layers.ts';
import { IMAGENET_MEAN, IMAGENET_STD, type Preprocessing } from '../registry.ts';

export { IMAGENET_CLASSES } from '../imagenet_classes.ts';

/** torchvision `ImageClassification(crop_size=224, resize_size=…)`: resize, centre crop, ImageNet mean/std. */
export function imagenetPreprocessing(resize = 256, crop = 224): Preprocessing {
  return { resize, crop: [crop, crop], mean: IMAGENET_MEAN, std: IMAGENET_STD, inputSize: [crop, crop] };
}

/** timm's eval transform for a crop_pct: Resize(floor(size / crop_pct)) then CenterCrop(size). */
export function timmPreprocessing(size = 224, cropPct = 0.9): Preprocessing {
  return imagenetPreprocessing(Math.floor(size / cropPct), size);
}

/** The interpolation each reference pipeline uses (this project resizes with Pillow bilinear in all cases). */
export const REFERENCE_INTERPOLATION: Readonly<Record<string, 'bilinear' | 'bicubic'>> = Object.freeze({
  efficientnet_b0: 'bicubic',
  swin_t: 'bicubic',
  swin_s: 'bicubic',
  swin_b: 'bicubic',
  swin_tiny_patch4_window7_224: 'bicubic',
  swin_small_patch4_window7_224: 'bicubic',
  swin_base_patch4_window7_224: 'bicubic',
  swin_large_patch4_window7_224: 'bicubic',
});

/** torchvision.ops.misc.Permute as a module (no parameters). */
export const Permute = (dims: number[]) => new Lambda((x: Tensor) => E.permute(x, dims), 'Permute');

/** Python's `int(v + d / 2) // d * d` rounding of torchvision's `_make_divisible` (positive v). */
export function makeDivisible(v: number, divisor: number, minValue?: number): number {
  const min = minValue ?? divisor;
  let n = Math.max(min, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}
