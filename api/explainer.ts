// The high-level CAM API: an explainer holds a model (zoo name, architecture + safetensors, or a model
// already loaded), its target layers and the backend its weights live on; calling it on images or a
// tensor runs cam/algorithm/explain.ts and returns typed results. Call options are the algorithm's own
// options passed through (less what the explainer fixes: model, input, layers, layout), so methods and
// options added there appear here without changes.

import * as E from '../engine/index.ts';
import { explain, type ExplainOptions } from '../cam/algorithm/explain.ts';
import { METHOD_NAMES } from '../cam/algorithm/methods/index.ts';
import { defaultTarget, targetMismatch } from '../cam/algorithm/targets.ts';
import { activationLayout, getArchitecture } from '../models/registry.ts';
import { getZooEntry, loadModel, loadZooModel, type LoadedModel, type WeightsSource } from '../models/zoo.ts';
import { toBatch, type Inputs } from './inputs.ts';
import { toResult, type ExplainResult } from './results.ts';

export const DEFAULT_MODEL = 'resnet20_cifar10';

/**
 * A zoo name with shipped weights (`resnet20_cifar10`, `resnet56_cifar10`), a registered architecture with
 * a safetensors weights file (path, URL, bytes, or `{ name, bytes }` for bytes that errors should name)
 * holding its torchvision/timm `state_dict` names, or a model loaded with `shapleycam-webgpu/models`.
 */
export type ModelSpec = string | { readonly arch: string; readonly weights: WeightsSource } | LoadedModel;

export interface ExplainerOptions {
  /** Default `resnet20_cifar10`. */
  model?: ModelSpec;
  /** Torch-style module paths (`layer4`, `features.29`); default the architecture's usual CAM layer. */
  layers?: string | readonly string[];
  /**
   * `auto` (default: WebGPU on a hardware adapter — Dawn under Node, `navigator.gpu` under Deno and in
   * browsers — else wasm), `wasm`, `webgpu` or `cpu` (the float64 reference). Not for a loaded model, which
   * stays where it was loaded.
   */
  backend?: E.BackendChoice;
}

/** A class by index, or by the model's label for it (`'cat'`). */
export type ClassSelector = number | string;

/** The algorithm's options (cam/algorithm/explain.ts), less those the explainer fixes, plus: */
export type ExplainCallOptions = Omit<ExplainOptions, 'module' | 'input' | 'layers' | 'layout' | 'methods' | 'classes'> & {
  /** CAM methods by CLI name (see METHOD_NAMES); default `shapleycam`. */
  methods?: string | readonly string[];
  /** The class to explain: one for every image, or one per image; default each image's predicted class. */
  classes?: ClassSelector | readonly ClassSelector[];
  /** Refuse images with more pixels, from their header (default 89,478,485, Pillow's limit). */
  maxPixels?: number;
};

export interface BackendInfo {
  name: E.BackendName;
  /** What was asked for; null when a loaded model was given (its backend is taken as it is). */
  choice: E.BackendChoice | null;
  /** How `auto` decided, in a few words; null unless `auto`. */
  reason: string | null;
  /** The backend and, for WebGPU, its adapter. */
  description: string;
}

const toList = (v: string | readonly string[]): string[] => (typeof v === 'string' ? [v] : [...v]);

const isLoadedModel = (spec: ModelSpec): spec is LoadedModel => typeof spec === 'object' && 'module' in spec;

/** Checks a model's names without reading weights, and returns how to load it. */
function modelLoader(spec: string | { readonly arch: string; readonly weights: WeightsSource }): () => Promise<LoadedModel> {
  if (typeof spec === 'string') {
    getZooEntry(spec);
    return () => loadZooModel(spec);
  }
  getArchitecture(spec.arch);
  return () => loadModel(spec.arch, spec.weights);
}

/** Explainers load and run one at a time: the engine's memory scopes and current backend are process-wide. */
let queue: Promise<unknown> = Promise.resolve();

function serialized<T>(task: () => Promise<T>): Promise<T> {
  const run = queue.then(task);
  queue = run.catch(() => undefined);
  return run;
}

export class Explainer {
  readonly model: LoadedModel;
  readonly layers: readonly string[];
  readonly backend: BackendInfo;
  readonly #engineBackend: E.Backend;
  /** The weights were loaded here (and are freed by dispose), not handed in. */
  readonly #ownsModel: boolean;
  #disposed = false;

  /** Use createExplainer. */
  constructor(model: LoadedModel, layers: readonly string[], backend: E.Backend, info: BackendInfo, ownsModel: boolean) {
    this.model = model;
    this.layers = Object.freeze([...layers]);
    this.#engineBackend = backend;
    this.backend = info;
    this.#ownsModel = ownsModel;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Explains a batch: the images (or the tensor's rows) run together, through every method. */
  explain(inputs: Inputs, options: ExplainCallOptions = {}): Promise<ExplainResult> {
    return serialized(() => this.#run(inputs, options));
  }

  /** Frees the weights this explainer loaded (GPU memory on WebGPU); a model handed in is left to its owner. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#ownsModel) this.model.module.disposeParameters();
  }

  async #run(inputs: Inputs, options: ExplainCallOptions): Promise<ExplainResult> {
    if (this.#disposed) throw new Error('explainer: used after dispose()');
    const { methods = 'shapleycam', classes, maxPixels, ...passed } = options;
    const methodList = [...new Set(toList(methods))];
    for (const m of methodList) if (!METHOD_NAMES.includes(m)) throw new RangeError(`methods: unknown method "${m}"; choose from ${METHOD_NAMES.join(' ')}`);
    const previous = E.getBackend();
    E.setBackend(this.#engineBackend);
    try {
      const { arch, module, inChannels, labels } = this.model;
      const target = passed.target ?? defaultTarget(arch);
      const mismatch = targetMismatch(target, arch);
      if (mismatch) throw new RangeError(`target ${target}: ${mismatch}`);
      const batch = await toBatch(inputs, arch.preprocessing, inChannels, maxPixels);
      try {
        const raw = await explain({
          ...passed,
          target,
          module,
          input: batch.input,
          layers: this.layers,
          methods: methodList,
          classes: classes === undefined ? undefined : this.#classIndices(classes, batch.sources.length),
          layout: (layer) => activationLayout(arch, layer),
        });
        return toResult(raw, batch.sources, batch.pictures, labels);
      } finally {
        if (batch.owned) batch.input.dispose();
      }
    } finally {
      E.setBackend(previous);
    }
  }

  #classIndices(classes: ClassSelector | readonly ClassSelector[], B: number): number[] {
    const list = typeof classes === 'number' || typeof classes === 'string' ? new Array(B).fill(classes) : [...classes];
    if (list.length !== B) throw new RangeError(`classes: ${list.length} given for ${B} images`);
    return list.map((c: ClassSelector) => {
      if (typeof c === 'number') {
        if (!Number.isInteger(c) || c < 0 || c >= this.model.numClasses) throw new RangeError(`classes: ${c} is outside 0…${this.model.numClasses - 1}`);
        return c;
      }
      const index = this.model.labels.indexOf(c);
      if (index < 0) throw new RangeError(`classes: "${c}" is not one of the model's labels (${this.model.labels.slice(0, 10).join(', ')}, …)`);
      return index;
    });
  }
}

/**
 * Loads the model on the backend chosen (names and layers are checked first: an unknown one is a clear
 * error before any weights are read) and returns an explainer for its target layers.
 */
export function createExplainer(options: ExplainerOptions = {}): Promise<Explainer> {
  return serialized(() => openExplainer(options));
}

async function openExplainer(options: ExplainerOptions): Promise<Explainer> {
  const spec = options.model ?? DEFAULT_MODEL;
  let model: LoadedModel;
  let backend: E.Backend;
  let info: BackendInfo;
  if (isLoadedModel(spec)) {
    if (options.backend !== undefined) throw new TypeError('createExplainer: a loaded model stays on the backend it was loaded on; give no backend');
    model = spec;
    backend = E.getBackend();
    info = { name: backend.name, choice: null, reason: null, description: backend.describe() };
  } else {
    const load = modelLoader(spec);
    const chosen = await E.chooseBackend(options.backend ?? 'auto');
    backend = chosen.backend;
    info = { name: backend.name, choice: chosen.choice, reason: chosen.reason, description: backend.describe() };
    model = await load();
  }
  const layers = options.layers === undefined ? [model.arch.defaultLayer] : toList(options.layers);
  try {
    if (layers.length === 0) throw new RangeError('layers: give at least one target layer');
    for (const layer of layers) model.module.get(layer);
  } catch (e) {
    if (!isLoadedModel(spec)) model.module.disposeParameters();
    throw e;
  }
  return new Explainer(model, layers, backend, info, !isLoadedModel(spec));
}
