// The CAM pipeline shared by every method: forward and capture A at each target layer, differentiate
// the head (G, and H·A when a method needs it), apply each method, then ReLU, min-max, resize to the
// input and aggregate the layers, as the reference implementation does.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import type { Module } from '../../models/module.ts';
import { getMethod, type CamMethod, type MethodContext } from './methods/index.ts';
import { aggregateLayers, scaleCamImage } from './postprocess.ts';
import { argmaxRows, softmaxRow, utility, utilityValue, type TargetName } from './targets.ts';
import { captureForward, forwardFrom, layerTerms, type ForwardCapture, type LayerTerms } from './terms.ts';

export interface ExplainOptions {
  module: Module;
  /** Normalised input [B, 3, H, W]. */
  input: Tensor;
  layers: readonly string[];
  methods: readonly string[];
  target?: TargetName;
  /** One class per image; default the predicted class. */
  classes?: readonly number[];
  /** Layout of a layer's output (transformers give NHWC). */
  layout?: (layer: string) => 'NCHW' | 'NHWC';
  seed?: number;
  /** Compute G and H·A whatever the methods need, and keep A, G and H·A as host arrays (terms.safetensors). */
  keepTerms?: boolean;
  /** Called as each step ends (a layer's forward pass and derivatives, then each method on it): for progress displays. */
  onStep?: (step: ExplainStep) => void;
}

export interface ExplainStep {
  /** Steps done so far, of `total` (1 + methods, per layer). */
  done: number;
  total: number;
  /** What the step was, e.g. `layer3: forward, G, H·A` or `layer3: gradcam`. */
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
  /** Final maps, one H×W array per image, in [0, 1]. */
  maps: Float64Array[];
  /** Per layer: the raw map [B, h, w] before ReLU/normalisation/resize, and channel weights [B, K] if any. */
  raw: Map<string, Float64Array>;
  weights: Map<string, Float64Array>;
  /** Milliseconds of the method itself (terms excluded; see LayerReport.termsMs). */
  ms: number;
}

export interface Explanation {
  logits: Float64Array;
  numClasses: number;
  classes: number[];
  /** Softmax probability of each image's class. */
  probabilities: number[];
  /** Utility value per image. */
  utilities: number[];
  target: TargetName;
  layers: LayerReport[];
  methods: Map<string, MethodReport>;
  inputSize: [number, number];
}

function perImage(values: Float64Array, B: number): Float64Array[] {
  const n = values.length / B;
  return Array.from({ length: B }, (_, b) => values.slice(b * n, (b + 1) * n));
}

/** Runs the CAM methods on a batch; every tensor it creates is released before it returns. */
export function explain(opts: ExplainOptions): Promise<Explanation> {
  return E.tidyAsync(() => explainInScope(opts));
}

async function explainInScope(opts: ExplainOptions): Promise<Explanation> {
  const target = opts.target ?? 'rest';
  const methods: CamMethod[] = opts.methods.map(getMethod);
  const { module, input } = opts;
  if (input.rank !== 4) throw new Error(`input must be [B, C, H, W], got ${JSON.stringify(input.shape)}`);
  const [B, , H, W] = input.shape;
  // Kept terms always include G and H·A (terms.safetensors promises both, whatever the methods need).
  const needsGrad = !!opts.keepTerms || methods.some((m) => m.needsGradient);
  const needsHvp = !!opts.keepTerms || methods.some((m) => m.needsHvp);

  if (opts.layers.length === 0) throw new Error('explain: no target layer given');
  // The first layer's capture pass also gives the logits: the network runs once per layer, no more.
  let firstCapture: ForwardCapture | null = captureForward(module, input, opts.layers[0]);
  const logits = await firstCapture.logits.values();
  const C = logits.length / B;
  const classes = opts.classes ? [...opts.classes] : argmaxRows(logits, B, C);
  classes.forEach((c, b) => {
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`class ${c} for image ${b} is outside 0…${C - 1}`);
  });
  const rows = perImage(logits, B);
  const reports = new Map<string, MethodReport>(methods.map((m) => [m.name, { maps: [], raw: new Map(), weights: new Map(), ms: 0 }]));
  const perLayerMaps = new Map<string, Float64Array[][]>(methods.map((m) => [m.name, []]));
  const layerReports: LayerReport[] = [];
  const steps = { done: 0, total: opts.layers.length * (1 + methods.length) };
  const stepDone = (what: string, ms: number) => opts.onStep?.({ done: ++steps.done, total: steps.total, what, ms });

  for (const layer of opts.layers) {
    const layout = opts.layout?.(layer) ?? 'NCHW';
    await E.tidyAsync(async () => {
      const t0 = performance.now();
      const capture = firstCapture ?? captureForward(module, input, layer);
      firstCapture = null;
      let terms: LayerTerms;
      if (needsGrad) {
        terms = layerTerms(module, input, capture, target, classes, needsHvp, layout);
      } else {
        const A = layout === 'NHWC' ? E.permute(capture.activation, [0, 3, 1, 2]) : capture.activation;
        terms = { layer, A, G: null, HA: null, hvpStructurallyZero: false };
      }
      const [, , h, w] = terms.A.shape;
      const report: LayerReport = { layer, shape: [...terms.A.shape], hvpComputed: !!terms.HA, hvpStructurallyZero: terms.hvpStructurallyZero, termsMs: 0 };
      // These small readbacks also wait for the derivatives, so the time below includes them.
      if (terms.G) report.firstOrder = await E.sum(E.mul(terms.A, terms.G), 1).values();
      if (terms.HA) report.secondOrder = await E.sum(E.mul(E.mul(terms.A, terms.HA), -0.5), 1).values();
      if (opts.keepTerms) {
        report.terms = { A: await terms.A.values(), G: terms.G ? await terms.G.values() : null, HA: terms.HA ? await terms.HA.values() : null };
      }
      report.termsMs = performance.now() - t0;
      layerReports.push(report);
      stepDone(`${layer}: forward${terms.G ? ', G' : ''}${terms.HA ? ', H·A' : ''}`, report.termsMs);

      const toNative = (a: Tensor) => (layout === 'NHWC' ? E.permute(a, [0, 2, 3, 1]) : a);
      const singleCaptures = new Map<number, { xb: Tensor; capture: ReturnType<typeof captureForward> }>();
      const captureImage = (b: number) => {
        let c = singleCaptures.get(b);
        if (!c) {
          const xb = E.slice(input, [b], [b + 1]);
          c = { xb, capture: captureForward(module, xb, layer) };
          singleCaptures.set(b, c);
        }
        return c;
      };
      const ctx: MethodContext = {
        terms,
        input,
        classes,
        target,
        seed: opts.seed ?? 0,
        scoreInputs: async (x, cls) => {
          const u = E.tidy(() => utility(target, module.call(x), cls));
          const v = await u.values();
          u.dispose();
          return v;
        },
        scoreWithActivations: async (b, a) => {
          // Replay from the layer for image b alone; the memoised prefix broadcasts over the batch of a.
          const { xb, capture: single } = captureImage(b);
          const u = E.tidy(() => utility(target, forwardFrom(module, xb, single, toNative(a)), new Array(a.shape[0]).fill(classes[b])));
          const v = await u.values();
          u.dispose();
          return v;
        },
      };
      for (const m of methods) {
        const t1 = performance.now();
        const result = await m.compute(ctx);
        const raw = await result.raw.values();
        const rep = reports.get(m.name)!;
        rep.ms += performance.now() - t1;
        rep.raw.set(layer, raw);
        if (result.weights) rep.weights.set(layer, await result.weights.values());
        perLayerMaps.get(m.name)!.push(scaleCamImage(perImage(raw, B), h, w, H, W));
        stepDone(`${layer}: ${m.name}`, performance.now() - t1);
      }
    });
  }

  for (const m of methods) reports.get(m.name)!.maps = aggregateLayers(perLayerMaps.get(m.name)!);
  return {
    logits,
    numClasses: C,
    classes,
    probabilities: rows.map((r, b) => softmaxRow(r)[classes[b]]),
    utilities: rows.map((r, b) => utilityValue(target, r, classes[b])),
    target,
    layers: layerReports,
    methods: reports,
    inputSize: [H, W],
  };
}
