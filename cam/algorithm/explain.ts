// The CAM pipeline shared by every method: forward and capture A at each target layer, differentiate
// the head (G, and H·A when a method needs it), apply each layer method, then ReLU, min-max, resize to the
// input and aggregate the layers, as the reference implementation does. Around that core: FullGrad and
// guided backpropagation, which read the whole network; the meta-methods (Finer-CAM's own utility,
// Refine-CAM's product over layers, Guided Grad-CAM); eigen smoothing (a projection instead of the channel
// sum) and augmentation smoothing (the whole pass per augmented input, maps brought back and averaged).
//
// What is differentiated is always a HeadTarget (targets.ts): the batch target fixed once from the model's
// own output (classes; segmentation masks), or Finer-CAM's comparison built on the same classes. Layers
// whose output is not (B, K, h, w) — token sequences of a ViT, NHWC blocks — are read through their
// ActivationLayout: the methods see the (B, K, h, w) grid, replays get the layer's native layout back.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import type { Module } from '../../models/module.ts';
import type { ActivationLayout } from '../../models/registry.ts';
import { principalProjection } from './methods/eigen.ts';
import { finerClasses, finerTarget, DEFAULT_ALPHA, DEFAULT_COMPARE, type FinerClasses } from './methods/finer.ts';
import { fullGrad } from './methods/fullgrad.ts';
import { guidedTarget, inputGradient } from './methods/guided.ts';
import { gradcam } from './methods/gradient.ts';
import { baseMethod, getMethod, targetRefusal, type CamMethod, type Method, type MethodContext, type MethodOptions } from './methods/index.ts';
import { refineMaps } from './methods/refine.ts';
import { MethodSettingError } from './methods/types.ts';
import { defaultMaxBatch } from './batch-size.ts';
import { aggregateLayers, scaleCamImage } from './postprocess.ts';
import { rowScorers } from './row-scoring.ts';
import { AUGMENTATIONS, augment, deaugmentMap, isIdentity, meanMaps, type Augmentation } from './smoothing.ts';
import { batchTarget, mirroredTarget, type BatchTarget, type HeadTarget, type TargetName } from './targets.ts';
import { captureForward, layerTerms, NCHW_LAYOUT, toCamLayout, type ForwardCapture, type LayerTerms } from './terms.ts';

export interface ExplainOptions {
  module: Module;
  /** Normalised input [B, C, H, W] (C = the model's input channels). */
  input: Tensor;
  layers: readonly string[];
  methods: readonly string[];
  /** Default `rest`; a segmentation model is explained with `segmentation` (the API and CLI default to it there). */
  target?: TargetName;
  /** One class per image; default the predicted class (segmentation: the most frequent one other than 0). */
  classes?: readonly number[];
  /** How a layer's output becomes (B, K, h, w) (models/registry.ts activationLayout); default: it is already. */
  layout?: (layer: string) => ActivationLayout;
  seed?: number;
  /** Compute G and H·A whatever the methods need, and keep A, G and H·A as host arrays (terms.safetensors). */
  keepTerms?: boolean;
  /** Average every map over pytorch-grad-cam's test-time augmentations (see smoothing.ts). */
  augSmooth?: boolean;
  /** Project the per-channel terms on their first principal component instead of summing them. */
  eigenSmooth?: boolean;
  /** Settings of particular methods: KPCA-CAM's kernel, Finer-CAM's and Refine-CAM's base, … */
  options?: MethodOptions;
  /**
   * Rows per forward pass of ScoreCAM's masked inputs and AblationCAM's ablated activations, gathered
   * across the batch's images; the maps do not depend on it. Default: defaultMaxBatch (batch-size.ts) for
   * the backend and input size (256 inputs of 32×32 on wasm and webgpu, 64 on cpu).
   */
  maxBatch?: number;
  /**
   * Called as each step ends — a layer's forward pass and derivatives, each method at that layer (per
   * augmentation with `augSmooth`), FullGrad, guided backpropagation: for progress displays.
   */
  onStep?: (step: ExplainStep) => void;
}

export interface ExplainStep {
  /** Steps done so far, of `total` (known before the first step). */
  done: number;
  total: number;
  /** What the step was, e.g. `layer3: forward, G, H·A`, `layer3: gradcam` or `flip-x1.1: layer3: gradcam`. */
  what: string;
  ms: number;
}

export interface LayerReport {
  layer: string;
  /** [B, K, h, w] */
  shape: number[];
  hvpComputed: boolean;
  /** H·A is zero by the structure of the head under this utility (not by arithmetic). */
  hvpStructurallyZero: boolean;
  /** Σ_k A ⊙ G per image, [B, h, w] flattened: the first-order (HiResCAM) term. */
  firstOrder?: Float64Array;
  /** Σ_k −½ A ⊙ H·A per image, [B, h, w] flattened: the second-order term ShapleyCAM adds. */
  secondOrder?: Float64Array;
  terms?: { A: Float64Array; G: Float64Array | null; HA: Float64Array | null };
  /** Milliseconds for the forward pass and the derivatives of this layer. */
  termsMs: number;
}

export interface MethodReport {
  /** Final maps, one per image, in [0, 1]: H×W, or for 3-channel methods 3×H×W (CHW, unnormalised). */
  maps: Float64Array[];
  channels: 1 | 3;
  /** Per layer: the raw map [B, h, w] before ReLU/normalisation/resize, and channel weights [B, K] if any. */
  raw: Map<string, Float64Array>;
  weights: Map<string, Float64Array>;
  /** Milliseconds of the method itself (terms excluded; see LayerReport.termsMs), over all augmentations. */
  ms: number;
  /** The layer method a meta-method ran on. */
  base?: string;
  /** FullGrad: the bias layers it read (it ignores the target layers). */
  biasLayers?: string[];
  /** Whether the smoothing asked for changed this method (see methods/index.ts for the rules). */
  smoothed: { aug: boolean; eigen: boolean };
}

export interface AugmentationReport extends Augmentation {
  /** The target layers' terms on this augmented input (kept when `keepTerms`). */
  layers: LayerReport[];
}

export interface Explanation {
  /** The model's output: logits [B, C], or a dense [B, C, H, W] map for segmentation models. */
  logits: Float64Array;
  outputShape: number[];
  numClasses: number;
  /** Segmentation target only: per image, the H×W 0/1 mask of the pixels predicted as its class. */
  masks: Uint8Array[] | null;
  classes: number[];
  /** Softmax probability of each image's class (segmentation: its mean over the mask). */
  probabilities: number[];
  /** Utility value per image. */
  utilities: number[];
  target: TargetName;
  /** The terms of the (un-augmented) input. */
  layers: LayerReport[];
  methods: Map<string, MethodReport>;
  inputSize: [number, number];
  /** With augmentation smoothing: each augmentation and its terms. */
  augmentations?: AugmentationReport[];
  /** Finer-CAM's classes and α. */
  finer?: FinerClasses & { alpha: number };
}

function perImage(values: Float64Array, B: number): Float64Array[] {
  const n = values.length / B;
  return Array.from({ length: B }, (_, b) => values.slice(b * n, (b + 1) * n));
}

/** Runs the CAM methods on a batch; every tensor it creates is released before it returns. */
export function explain(opts: ExplainOptions): Promise<Explanation> {
  return E.tidyAsync(() => explainInScope(opts));
}

/** A layer method to run at every target layer under one target: the batch's or Finer-CAM's. */
interface Job {
  utility: 'target' | 'finer';
  method: CamMethod;
}

/** What a requested method needs from the per-layer pass, and how its final maps are formed. */
interface Plan {
  method: Method;
  job?: Job;
}

function planMethods(names: readonly string[], layers: readonly string[], target: TargetName, options: MethodOptions): Plan[] {
  return names.map((name) => {
    const method = getMethod(name);
    const refusal = targetRefusal(name, target);
    if (refusal) throw new MethodSettingError(refusal);
    switch (method.kind) {
      case 'layer':
        return { method, job: { utility: 'target', method } };
      case 'finer':
        return { method, job: { utility: 'finer', method: baseMethod('finer-cam', options.base) } };
      case 'refine':
        if (layers.length < 2) throw new MethodSettingError(`--layer: refine-cam needs two or more target layers, got ${layers.length}`);
        return { method, job: { utility: 'target', method: baseMethod('refine-cam', options.base) } };
      case 'guided-gradcam':
        return { method, job: { utility: 'target', method: gradcam } };
      case 'fullgrad':
      case 'guided-backprop':
        return { method };
    }
  });
}

const jobKey = (j: Job) => `${j.utility}/${j.method.name}`;

interface JobResult {
  /** Per layer (in order): the scaled H×W map of each image. */
  perLayer: Float64Array[][];
  raw: Map<string, Float64Array>;
  weights: Map<string, Float64Array>;
  ms: number;
}

interface PassResult {
  jobs: Map<string, JobResult>;
  /** FullGrad's final maps and the layers it read. */
  fullgrad?: { maps: Float64Array[]; layers: string[]; ms: number };
  layers: LayerReport[];
}

interface Settings {
  opts: ExplainOptions;
  target: BatchTarget;
  finer?: FinerClasses & { alpha: number };
  jobs: Job[];
  wantsFullgrad: boolean;
  /** Reports a finished step to `opts.onStep`; `what` is prefixed with the augmentation's label when there are several. */
  step: (a: Augmentation, what: string, ms: number) => void;
}

/** The utilities a layer's derivatives are taken for: the target's, and Finer-CAM's where a job needs it. */
function utilitiesAtLayer(jobs: readonly Job[], keepTerms: boolean): Job['utility'][] {
  return (['target', 'finer'] as const).filter((u) => jobs.some((j) => j.utility === u) || (u === 'target' && keepTerms));
}

/** How many steps `onStep` will report (see ExplainStep). */
function stepCount(plans: readonly Plan[], jobs: readonly Job[], opts: ExplainOptions, augmentations: number): number {
  const readsLayers = jobs.length > 0 || !!opts.keepTerms;
  const perLayer = utilitiesAtLayer(jobs, !!opts.keepTerms).length + jobs.length;
  const perPass = (readsLayers ? opts.layers.length * perLayer : 0) + (plans.some((p) => p.method.kind === 'fullgrad') ? 1 : 0);
  const guided = plans.some((p) => p.method.kind === 'guided-backprop' || p.method.kind === 'guided-gradcam') ? 1 : 0;
  return augmentations * perPass + guided;
}

async function explainInScope(opts: ExplainOptions): Promise<Explanation> {
  const targetName = opts.target ?? 'rest';
  const options = opts.options ?? {};
  const plans = planMethods(opts.methods, opts.layers, targetName, options);
  const { module, input } = opts;
  if (input.rank !== 4) throw new Error(`input must be [B, C, H, W], got ${JSON.stringify(input.shape)}`);
  const [B, , H, W] = input.shape;
  if (opts.layers.length === 0) throw new Error('explain: no target layer given');
  if (opts.maxBatch !== undefined && !(Number.isInteger(opts.maxBatch) && opts.maxBatch >= 1)) throw new RangeError(`explain: maxBatch must be an integer ≥ 1, got ${opts.maxBatch}`);

  // The first layer's capture pass also gives the logits: the network runs once per layer, no more.
  const firstCapture = captureForward(module, input, opts.layers[0]);
  const logits = await firstCapture.logits.values();
  const outputShape = [...firstCapture.logits.shape];
  // Classes and (segmentation) masks are fixed here, from the model's own output: constants from now on.
  const target = batchTarget(targetName, logits, outputShape, opts.classes);
  const C = target.numClasses;
  const jobs = [...new Map(plans.flatMap((p) => (p.job ? [[jobKey(p.job), p.job] as const] : []))).values()];
  let finer: Settings['finer'];
  if (jobs.some((j) => j.utility === 'finer')) {
    const alpha = options.alpha ?? DEFAULT_ALPHA;
    const ranks = options.compare ?? DEFAULT_COMPARE;
    if (ranks.some((r) => !Number.isInteger(r) || r < 1 || r >= C)) throw new MethodSettingError(`--compare: ranks must be integers in 1…${C - 1} for ${C} classes, got ${ranks.join(',')}`);
    finer = { ...finerClasses(logits, B, C, ranks, opts.classes), alpha };
  }
  const augmentations = opts.augSmooth ? AUGMENTATIONS : AUGMENTATIONS.filter(isIdentity);
  const steps = { done: 0, total: stepCount(plans, jobs, opts, augmentations.length) };
  const step = (a: Augmentation | null, what: string, ms: number) =>
    opts.onStep?.({ done: ++steps.done, total: steps.total, what: a && augmentations.length > 1 ? `${a.label}: ${what}` : what, ms });
  const settings: Settings = { opts, target, finer, jobs, wantsFullgrad: plans.some((p) => p.method.kind === 'fullgrad'), step };

  const passes: PassResult[] = [];
  for (const a of augmentations) {
    const identity = isIdentity(a);
    passes.push(await E.tidyAsync(() => runPass(settings, a, identity ? input : augment(input, a), identity ? firstCapture : null)));
  }

  const reports = new Map<string, MethodReport>();
  let guided: Float64Array[] | null = null;
  const guidedMaps = async () => {
    if (guided) return guided;
    const t0 = performance.now();
    guided = perImage(await inputGradient(module, input, guidedTarget(target)).values(), B);
    step(null, 'guided-backprop', performance.now() - t0);
    return guided;
  };
  for (const plan of plans) reports.set(plan.method.name, await methodReport(plan, passes, augmentations, opts, guidedMaps));

  const identityPass = passes[augmentations.findIndex(isIdentity)];
  return {
    logits,
    outputShape,
    numClasses: C,
    masks: target.masks,
    classes: target.classes,
    probabilities: target.probabilities,
    utilities: target.utilities,
    target: targetName,
    layers: identityPass.layers,
    methods: reports,
    inputSize: [H, W],
    ...(opts.augSmooth ? { augmentations: augmentations.map((a, i) => ({ ...a, layers: passes[i].layers })) } : {}),
    ...(finer ? { finer } : {}),
  };
}

/**
 * A method's final maps from the passes: its layer method's maps finished (averaged over the layers, or
 * Refine-CAM's product), FullGrad's, or guided backpropagation's; one map per image and augmentation,
 * brought back to the original frame and averaged.
 */
async function methodReport(
  { method, job }: Plan,
  passes: PassResult[],
  augmentations: readonly Augmentation[],
  opts: ExplainOptions,
  guidedMaps: () => Promise<Float64Array[]>,
): Promise<MethodReport> {
  const [, , H, W] = opts.input.shape;
  // A meta-method's eigen smoothing is its base's (a projection method as base ignores it).
  const eigen = job ? job.method.smoothing.eigen : method.smoothing.eigen;
  const smoothed = { aug: !!opts.augSmooth && method.smoothing.aug, eigen: !!opts.eigenSmooth && eigen };
  const report: MethodReport = { maps: [], channels: method.channels, raw: new Map(), weights: new Map(), ms: 0, smoothed };
  const smooth = (perPass: Float64Array[][]) =>
    perPass[0].map((_, b) => meanMaps(perPass.map((maps, i) => deaugmentMap(maps[b], W, augmentations[i]))));
  if (job) {
    const results = passes.map((p) => p.jobs.get(jobKey(job))!);
    const finish = method.kind === 'refine' ? refineMaps : aggregateLayers;
    report.maps = smooth(results.map((r) => finish(r.perLayer)));
    const plain = results[augmentations.findIndex(isIdentity)];
    report.raw = plain.raw;
    report.weights = plain.weights;
    report.ms = results.reduce((s, r) => s + r.ms, 0);
    if (method.kind !== 'layer') report.base = job.method.name;
  }
  if (method.kind === 'fullgrad') {
    report.maps = smooth(passes.map((p) => p.fullgrad!.maps));
    report.biasLayers = passes[0].fullgrad!.layers;
    report.ms = passes.reduce((s, p) => s + p.fullgrad!.ms, 0);
  }
  if (method.kind === 'guided-backprop' || method.kind === 'guided-gradcam') {
    // Computed once on the original input; Guided Grad-CAM multiplies it by its (smoothed) Grad-CAM map.
    const t0 = performance.now();
    const g = await guidedMaps();
    const cam = report.maps;
    report.maps = method.kind === 'guided-backprop' ? g.map((m) => Float64Array.from(m)) : g.map((m, b) => m.map((v, i) => v * cam[b][i % (H * W)]));
    report.ms += performance.now() - t0;
  }
  return report;
}

/**
 * Everything computed on one input, `a` of the original: the layer methods' per-layer maps, FullGrad's.
 * The targets keep the original's classes; a mirrored input's segmentation masks are mirrored with it.
 */
async function runPass(s: Settings, a: Augmentation, input: Tensor, firstCapture: ForwardCapture | null): Promise<PassResult> {
  const { opts } = s;
  const { module } = opts;
  const [B, , H, W] = input.shape;
  const result: PassResult = { jobs: new Map(s.jobs.map((j) => [jobKey(j), { perLayer: [], raw: new Map(), weights: new Map(), ms: 0 }])), layers: [] };
  const target = a.flip ? mirroredTarget(s.target) : s.target;
  const targets: Record<Job['utility'], HeadTarget> = {
    target,
    finer: s.finer ? finerTarget(s.finer, s.finer.alpha) : target,
  };

  // With only FullGrad and guided backpropagation asked and no terms kept, no target layer is read.
  const readsLayers = s.jobs.length > 0 || !!opts.keepTerms;
  for (const layer of readsLayers ? opts.layers : []) {
    const layout = opts.layout?.(layer) ?? NCHW_LAYOUT;
    await E.tidyAsync(async () => {
      const t0 = performance.now();
      const capture = firstCapture ?? captureForward(module, input, layer);
      firstCapture = null;
      for (const [i, u] of utilitiesAtLayer(s.jobs, !!opts.keepTerms).entries()) {
        const jobs = s.jobs.filter((j) => j.utility === u);
        const keep = u === 'target' && !!opts.keepTerms;
        const tTerms = i === 0 ? t0 : performance.now(); // the first utility's step includes the forward pass
        const needsGrad = keep || jobs.some((j) => j.method.needsGradient);
        const needsHvp = keep || jobs.some((j) => j.method.needsHvp);
        let terms: LayerTerms;
        if (needsGrad) {
          terms = layerTerms(module, input, capture, targets[u], needsHvp, layout);
          const gradientUser = jobs.find((j) => j.method.needsGradient);
          if (gradientUser && terms.G!.symbolicZero) {
            throw new MethodSettingError(`--layer ${layer}: the model's output does not depend on this layer, so ${gradientUser.method.name} has no gradient there`);
          }
        } else {
          terms = { layer, A: toCamLayout(capture, layout, capture.activation), G: null, HA: null, hvpStructurallyZero: false };
        }
        if (u === 'target') result.layers.push(await layerReport(terms, keep, t0));
        const computed = [i === 0 ? 'forward' : null, terms.G ? 'G' : null, terms.HA ? 'H·A' : null].filter(Boolean).join(', ');
        s.step(a, `${layer}: ${computed}${u === 'finer' ? ' (Finer-CAM utility)' : ''}`, performance.now() - tTerms);
        const ctx = methodContext(s, input, capture, terms, layout, targets[u]);
        for (const job of jobs) {
          const t1 = performance.now();
          const out = await job.method.compute(ctx);
          const eigen = !!opts.eigenSmooth && job.method.smoothing.eigen && !!out.perChannel;
          const raw = await (eigen ? await principalProjection(out.perChannel!) : out.raw).values();
          const jr = result.jobs.get(jobKey(job))!;
          jr.raw.set(layer, raw);
          if (out.weights) jr.weights.set(layer, await out.weights.values());
          const [, , h, w] = terms.A.shape;
          jr.perLayer.push(scaleCamImage(perImage(raw, B), h, w, H, W));
          jr.ms += performance.now() - t1;
          s.step(a, `${layer}: ${job.method.name}`, performance.now() - t1);
        }
      }
    });
  }

  if (s.wantsFullgrad) {
    const t0 = performance.now();
    const fg = await E.tidyAsync(async () => {
      const r = await fullGrad(module, input, target, !!opts.eigenSmooth);
      return { maps: perImage(await r.maps.values(), B), layers: r.layers };
    });
    result.fullgrad = { ...fg, ms: performance.now() - t0 };
    s.step(a, 'fullgrad', result.fullgrad.ms);
  }
  return result;
}

/** The report of one layer's terms; its readbacks also wait for the derivatives, so the time includes them. */
async function layerReport(terms: LayerTerms, keep: boolean, t0: number): Promise<LayerReport> {
  const report: LayerReport = { layer: terms.layer, shape: [...terms.A.shape], hvpComputed: !!terms.HA, hvpStructurallyZero: terms.hvpStructurallyZero, termsMs: 0 };
  if (terms.G) report.firstOrder = await E.sum(E.mul(terms.A, terms.G), 1).values();
  if (terms.HA) report.secondOrder = await E.sum(E.elementwiseChain([terms.A, terms.HA], (a, ha) => a.mul(ha).mul(-0.5)), 1).values();
  if (keep) report.terms = { A: await terms.A.values(), G: terms.G ? await terms.G.values() : null, HA: terms.HA ? await terms.HA.values() : null };
  report.termsMs = performance.now() - t0;
  return report;
}

/** What a layer method sees at one layer: its terms, and scoring through the model under its target. */
function methodContext(s: Settings, input: Tensor, capture: ForwardCapture, terms: LayerTerms, layout: ActivationLayout, target: HeadTarget): MethodContext {
  const { module } = s.opts;
  const [, , H, W] = input.shape;
  const maxBatch = s.opts.maxBatch ?? defaultMaxBatch(input.backend.name, H, W);
  return {
    terms,
    input,
    classes: target.classes,
    target: s.target.name,
    seed: s.opts.seed ?? 0,
    options: s.opts.options ?? {},
    ...rowScorers({ module, input, capture, layout, target, activationShape: terms.A.shape.slice(1), maxBatch }),
  };
}
