// Utilities (targets): the scalar of the model's output that a CAM explains. Every one is per image, for
// that image's class, and the batch utility is their sum (images are independent in inference mode, so the
// cross-image Hessian blocks are zero). The softmax is never detached: ReST's curvature comes from it.
//
// Classifier targets act on logits (B, C). The segmentation target acts on a dense output (B, C, H, W):
// u_b = Σ_pixels out[b, c_b] · mask_b, where mask_b marks the pixels the model itself predicts as c_b
// (argmax over classes of its own output, on whatever backend computed it). The mask is fixed once per
// batch and is a constant of the utility (pytorch-grad-cam's SemanticSegmentationTarget; the segmentation
// fixture README): it is neither differentiated nor recomputed when the output is perturbed, so the
// target is linear in the output and its curvature comes from the network alone.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';

export const CLASSIFIER_TARGETS = ['rest', 'logit', 'softmax', 'logsoftmax'] as const;
export const TARGETS = [...CLASSIFIER_TARGETS, 'segmentation'] as const;
export type TargetName = (typeof TARGETS)[number];
export type ClassifierTargetName = (typeof CLASSIFIER_TARGETS)[number];

/** Targets of a dense (B, C, H, W) output rather than of logits. */
export function isDenseTarget(target: TargetName): target is 'segmentation' {
  return target === 'segmentation';
}

/** What the targets need to know of a model: its name, and whether its output is a segmentation (models/registry.ts). */
export interface TargetModel {
  name: string;
  task?: 'classification' | 'segmentation';
}

/** The target a model is explained with when none is named: segmentation for a segmentation model, else ReST. */
export function defaultTarget(model: Pick<TargetModel, 'task'>): TargetName {
  return model.task === 'segmentation' ? 'segmentation' : 'rest';
}

/** Why `target` cannot explain `model`, or null when it can. */
export function targetMismatch(target: TargetName, model: TargetModel): string | null {
  const dense = model.task === 'segmentation';
  if (isDenseTarget(target) && !dense) return `${model.name} is a classifier (the segmentation target needs a per-pixel class map)`;
  if (!isDenseTarget(target) && dense) return `${model.name} is a segmentation model, explained with the segmentation target`;
  return null;
}

/** Per-image utility u(o_b; c_b) of classifier logits [B, C], shape [B], as differentiable engine ops. */
export function utility(target: ClassifierTargetName, logits: Tensor, classes: readonly number[]): Tensor {
  const B = logits.shape[0];
  if (classes.length !== B) throw new Error(`utility: ${classes.length} classes for a batch of ${B}`);
  const idx = E.tensor(classes.map((c) => [c]), [B, 1]);
  const pick = (t: Tensor) => E.reshape(E.gather(t, idx, 1), [B]);
  switch (target) {
    case 'logit':
      return pick(logits);
    case 'softmax':
      return pick(E.softmax(logits, 1));
    case 'logsoftmax':
      return pick(E.logSoftmax(logits, 1));
    case 'rest':
      // o_c + log s_c = 2·o_c − logsumexp(o)
      return E.sub(E.mul(pick(logits), 2), E.reshape(E.logsumexp(logits, 1, true), [B]));
  }
}

/**
 * Per-row segmentation utility Σ_pixels out[i, c_i]·mask_i of a dense output [M, C, H, W], shape [M]; the
 * masks (H×W, 0/1) are constants.
 */
export function segmentationUtility(output: Tensor, classes: readonly number[], masks: readonly Uint8Array[]): Tensor {
  if (output.rank !== 4) throw new Error(`segmentation target: the model's output is ${JSON.stringify(output.shape)}, not (B, classes, H, W)`);
  const [M, , H, W] = output.shape;
  if (classes.length !== M || masks.length !== M) throw new Error(`segmentation target: ${classes.length} classes and ${masks.length} masks for ${M} rows`);
  const n = H * W;
  const idx = new Float64Array(M * n);
  const weight = new Float64Array(M * n);
  for (let i = 0; i < M; i++) {
    if (masks[i].length !== n) throw new Error(`segmentation target: a mask of ${masks[i].length} pixels for a ${H}×${W} output`);
    idx.fill(classes[i], i * n, (i + 1) * n);
    for (let p = 0; p < n; p++) weight[i * n + p] = masks[i][p];
  }
  const picked = E.gather(output, E.tensor(idx, [M, 1, H, W]), 1);
  return E.sum(E.mul(picked, E.tensor(weight, [M, 1, H, W])), [1, 2, 3]);
}

/** The same classifier utilities in float64 on host values, for reporting. */
export function utilityValue(target: ClassifierTargetName, logits: ArrayLike<number>, c: number): number {
  const o = Array.from(logits);
  const m = Math.max(...o);
  const lse = m + Math.log(o.reduce((acc, v) => acc + Math.exp(v - m), 0));
  switch (target) {
    case 'logit':
      return o[c];
    case 'softmax':
      return Math.exp(o[c] - lse);
    case 'logsoftmax':
      return o[c] - lse;
    case 'rest':
      return 2 * o[c] - lse;
  }
}

export function softmaxRow(logits: ArrayLike<number>): number[] {
  const o = Array.from(logits);
  const m = Math.max(...o);
  const e = o.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function argmaxRows(values: ArrayLike<number>, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let c = 1; c < cols; c++) if (values[r * cols + c] > values[r * cols + best]) best = c;
    return best;
  });
}

/** Per pixel, the class with the largest output (first on ties), of one image's [C, H·W] output. */
export function pixelArgmax(image: ArrayLike<number>, C: number, n: number): Int32Array {
  const best = new Int32Array(n);
  for (let k = 1; k < C; k++) {
    for (let p = 0; p < n; p++) if (image[k * n + p] > image[best[p] * n + p]) best[p] = k;
  }
  return best;
}

/**
 * The default class of a segmentation: the most frequent predicted class other than 0 (the background in
 * torchvision's VOC-style heads), ties to the smaller index; 0 when nothing else is predicted. This is the
 * segmentation fixtures' rule, applied per image (so an image's result does not depend on its batch).
 */
export function dominantClass(predicted: Int32Array, C: number): number {
  const counts = new Int32Array(C);
  for (const k of predicted) counts[k]++;
  let best = 0;
  for (let k = 1; k < C; k++) if (counts[k] > 0 && (best === 0 || counts[k] > counts[best])) best = k;
  return best;
}

/**
 * What a CAM differentiates and scores: per image the class explained, and the utility of any batch of
 * outputs. Row i of `rowUtility` is scored for class `classes[i]` as image `images[i]` (a perturbed or
 * replayed copy of an image keeps what is fixed for that image: its segmentation mask, Finer-CAM's
 * comparison classes). Every target the pipeline uses is one: the named targets (batchTarget), Finer-CAM's
 * comparison of classes (methods/finer.ts), the raw score guided backpropagation differentiates.
 */
export interface HeadTarget {
  readonly classes: readonly number[];
  rowUtility(output: Tensor, classes: readonly number[], images: readonly number[]): Tensor;
}

/** The per-image utilities [B] of the batch's own output (row b is image b, for its class). */
export function imageUtilities(target: HeadTarget, output: Tensor): Tensor {
  return target.rowUtility(output, target.classes, target.classes.map((_, b) => b));
}

/** A classifier target for given classes, without the host values of an output. */
export function classifierTarget(name: ClassifierTargetName, classes: readonly number[]): HeadTarget {
  return { classes: [...classes], rowUtility: (out, rowClasses) => utility(name, out, rowClasses) };
}

/** The segmentation target of fixed masks (H×W, 0/1; mask b for image b). */
export function segmentationTarget(classes: readonly number[], masks: readonly Uint8Array[]): HeadTarget {
  return { classes: [...classes], rowUtility: (out, rowClasses, images) => segmentationUtility(out, rowClasses, images.map((b) => masks[b])) };
}

/** The target of one batch, fixed from the model's own output: each image's class and, for segmentation, its mask. */
export interface BatchTarget extends HeadTarget {
  name: TargetName;
  /** The model's output shape: [B, C] logits, or [B, C, H, W] under the segmentation target. */
  outputShape: readonly number[];
  /** The number of classes of the output. */
  numClasses: number;
  classes: number[];
  /** Segmentation only: per image, the H×W 0/1 mask of the pixels predicted as its class. */
  masks: Uint8Array[] | null;
  /** Per image, the utility (float64, from the output given). */
  utilities: number[];
  /** Per image, the softmax probability of its class (segmentation: its mean over the mask's pixels, 0 for an empty mask). */
  probabilities: number[];
}

/**
 * The target for the batch mirrored left to right (augmentation smoothing): the masks mirrored with the
 * image, so that they still mark the pixels predicted as the class; a classifier target is unchanged.
 */
export function mirroredTarget(target: BatchTarget): HeadTarget {
  if (!target.masks) return target;
  const W = target.outputShape[3];
  const mirrored = target.masks.map((m) => m.map((_, p) => m[p - (p % W) + (W - 1 - (p % W))]));
  return segmentationTarget(target.classes, mirrored);
}

function checkClasses(classes: readonly number[], C: number): void {
  classes.forEach((c, b) => {
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`class ${c} for image ${b} is outside 0…${C - 1}`);
  });
}

/**
 * The batch target from the model's output (host values of shape `shape`: [B, C] logits, or [B, C, H, W]
 * for the segmentation target); classes default to each image's predicted (dominant) class.
 */
export function batchTarget(name: TargetName, output: ArrayLike<number>, shape: readonly number[], classes?: readonly number[]): BatchTarget {
  const B = shape[0];
  const C = shape[1];
  if (isDenseTarget(name)) {
    if (shape.length !== 4) throw new Error(`--target segmentation needs a dense (B, classes, H, W) output; this model gives ${JSON.stringify(shape)}`);
    const n = shape[2] * shape[3];
    const image = (b: number) => Array.prototype.slice.call(output, b * C * n, (b + 1) * C * n) as number[];
    const predicted = Array.from({ length: B }, (_, b) => pixelArgmax(image(b), C, n));
    const cls = classes ? [...classes] : predicted.map((p) => dominantClass(p, C));
    checkClasses(cls, C);
    const masks = predicted.map((p, b) => Uint8Array.from(p, (k) => (k === cls[b] ? 1 : 0)));
    const utilities: number[] = [];
    const probabilities: number[] = [];
    for (let b = 0; b < B; b++) {
      const o = image(b);
      let u = 0;
      let p = 0;
      let count = 0;
      for (let q = 0; q < n; q++) {
        if (!masks[b][q]) continue;
        u += o[cls[b] * n + q];
        p += softmaxRow(Array.from({ length: C }, (_, k) => o[k * n + q]))[cls[b]];
        count++;
      }
      utilities.push(u);
      probabilities.push(count ? p / count : 0);
    }
    return { ...segmentationTarget(cls, masks), name, outputShape: [...shape], numClasses: C, classes: cls, masks, utilities, probabilities };
  }
  if (shape.length !== 2) throw new Error(`--target ${name} needs classifier logits (B, classes); this model gives ${JSON.stringify(shape)} (a segmentation model takes --target segmentation)`);
  const rows = Array.from({ length: B }, (_, b) => Array.prototype.slice.call(output, b * C, (b + 1) * C) as number[]);
  const cls = classes ? [...classes] : argmaxRows(output, B, C);
  checkClasses(cls, C);
  return {
    ...classifierTarget(name, cls),
    name,
    outputShape: [...shape],
    numClasses: C,
    classes: cls,
    masks: null,
    utilities: rows.map((r, b) => utilityValue(name, r, cls[b])),
    probabilities: rows.map((r, b) => softmaxRow(r)[cls[b]]),
  };
}
