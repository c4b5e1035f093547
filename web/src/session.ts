// The engine side of the page: one loaded model and the images the visitor added, explained through the
// high-level API (api/) with the same models and CAM modules as the CLI. It runs in a Worker (see
// engine-worker.ts) but touches nothing of the DOM, so it also runs under Node for tests.
//
// Nothing the visitor loaded is lost on bad input: a model that fails to load leaves the previous one in
// place, an image that does not decode is not added, a run that fails leaves models and images as they were.

import { createExplainer, type Explainer } from '../../api/index.ts';
import { METHODS } from '../../cam/algorithm/methods/index.ts';
import { mapsFile, termsFile } from '../../cam/algorithm/record-files.ts';
import { TARGETS, softmaxRow, type TargetName } from '../../cam/algorithm/targets.ts';
import { decodeImageBytes } from '../../cam/rendering/codec.ts';
import { showCamOnImage } from '../../cam/rendering/colormap.ts';
import { centerCrop, resizeImage, type RgbImage } from '../../cam/rendering/image.ts';
import { explanationTermsPicture } from '../../cam/rendering/terms-picture.ts';
import { getBackend, useBackend } from '../../engine/index.ts';
import { probeAdapter } from '../../engine/webgpu/device.ts';
import { fusionEnabled } from '../../models/fusion-switch.ts';
import { architectureNames } from '../../models/registry.ts';
import { serializeSafetensors } from '../../models/safetensors.ts';
import { getZooEntry, zooNames } from '../../models/zoo.ts';
import { backendOptions, pageBackend, type Environment } from './backend-rule.ts';
import type { BackendReport, BackendRequest, Catalog, ClassScore, ImageInfo, ImageOutcome, ModelChoice, ModelInfo, RunOutcome, RunRequest, Step } from './protocol.ts';

export type Progress = (done: number, total: number, what: string) => void;

/** The adapter's name as the page shows it, e.g. `google swiftshader (software)`; null without an adapter. */
async function adapterName(): Promise<string | null> {
  const info = await probeAdapter();
  if (!info) return null;
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  return info.software ? `${name} (software)` : name;
}

const isFamily = (method: string) => METHODS.find((m) => m.name === method)?.needsHvp ?? false;

function topClasses(logits: ArrayLike<number>, labels: readonly string[], n: number): ClassScore[] {
  const p = softmaxRow(logits);
  return p
    .map((probability, index) => ({ index, label: labels[index] ?? `class ${index}`, probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, n);
}

/** The WebGPU backend's dispatch counter (it counts every dispatch submitted); null on other backends. */
function dispatchesSoFar(): number | null {
  const backend = getBackend() as { name: string; stats?: () => { dispatches?: number } };
  return backend.name === 'webgpu' ? (backend.stats?.().dispatches ?? null) : null;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export class Session {
  #environment: Environment | null = null;
  #explainer: Explainer | null = null;
  #info: ModelInfo | null = null;
  /** Explainers for other layers of the loaded model (they share its weights). */
  readonly #byLayer = new Map<string, Explainer>();
  readonly #images = new Map<number, { name: string; picture: RgbImage }>();
  #nextImage = 1;

  /** Read once: navigator.gpu's adapter and cross-origin isolation. */
  async environment(): Promise<Environment> {
    this.#environment ??= { adapter: await adapterName(), crossOriginIsolated: globalThis.crossOriginIsolated === true };
    return this.#environment;
  }

  async catalog(): Promise<Catalog> {
    const env = await this.environment();
    return {
      zoo: zooNames().map((name) => ({ name, description: getZooEntry(name).description })),
      architectures: architectureNames(),
      methods: METHODS.map((m) => ({ name: m.name, family: m.needsHvp })),
      targets: [...TARGETS],
      backends: backendOptions(env),
      crossOriginIsolated: env.crossOriginIsolated,
    };
  }

  /** Loads a model (weights checked strictly, as the CLI does); the previous one stays until this succeeds. */
  async load(choice: ModelChoice, requested: BackendRequest): Promise<ModelInfo> {
    const t0 = performance.now();
    const { backend, reason } = pageBackend(requested, await this.environment());
    const spec = 'zoo' in choice ? choice.zoo : { arch: choice.arch, weights: choice.weights };
    const explainer = await createExplainer({ model: spec, backend });
    this.#dropModel();
    this.#explainer = explainer;
    const { arch, module, numClasses, labels } = explainer.model;
    const report: BackendReport = { name: explainer.backend.name, requested, reason, description: explainer.backend.description };
    this.#info = {
      name: 'zoo' in choice ? choice.zoo : `${choice.arch} (${choice.weights.name})`,
      arch: arch.name,
      numClasses,
      labels: [...labels],
      defaultLayer: explainer.layers[0],
      modules: [...module.modules()].map(([path]) => path).filter(Boolean),
      inputSize: [...arch.preprocessing.inputSize],
      resizes: arch.preprocessing.resize !== undefined,
      backend: report,
      loadMs: performance.now() - t0,
    };
    return this.#info;
  }

  /** Decodes an image with the CLI's codec (PNG or JPEG, the pixel limit); a file that is neither is refused. */
  addImage(name: string, bytes: Uint8Array): ImageInfo {
    const t0 = performance.now();
    const picture = decodeImageBytes(bytes, name);
    const id = this.#nextImage++;
    this.#images.set(id, { name, picture });
    return { id, name, width: picture.width, height: picture.height, decodeMs: performance.now() - t0 };
  }

  removeImage(id: number): void {
    this.#images.delete(id);
  }

  async run(request: RunRequest, progress: Progress): Promise<RunOutcome> {
    const t0 = performance.now();
    const explainer = await this.#explainerFor(request.layer);
    const info = this.#info!;
    if (request.images.length === 0) throw new Error('no images: drop or choose a PNG or JPEG first');
    if (request.methods.length === 0) throw new Error('no methods: tick at least one');
    if (!(TARGETS as readonly string[]).includes(request.target)) throw new Error(`unknown utility "${request.target}"`);
    const images = request.images.map((id) => {
      const image = this.#images.get(id);
      if (!image) throw new Error(`image ${id} was removed`);
      return { id, name: image.name, picture: request.fitToInput && !info.resizes ? fitTo(image.picture, info.inputSize) : image.picture };
    });
    const steps: Step[] = [];
    const dispatchesBefore = dispatchesSoFar();
    const result = await explainer.explain(
      images.map((i) => i.picture),
      {
        methods: request.methods,
        target: request.target as TargetName,
        classes: request.className ?? undefined,
        keepTerms: true,
        onStep: (s) => {
          steps.push({ what: s.what, ms: s.ms });
          // One more step follows explain's: the overlays, terms pictures and files made here.
          progress(s.done, s.total + 1, s.what);
        },
      },
    );
    const computedMs = performance.now() - t0;
    const dispatchesAfter = dispatchesSoFar();
    steps.unshift({ what: 'preprocess, forward pass', ms: computedMs - steps.reduce((a, s) => a + s.ms, 0) });

    const t1 = performance.now();
    const family = request.methods.some(isFamily);
    const raw = result.raw;
    const outcomes = result.images.map((r, b): ImageOutcome => ({
      id: images[b].id,
      name: images[b].name,
      // A copy: the answer's buffers are transferred to the page, and this picture may be the stored one.
      picture: { ...r.picture!, data: r.picture!.data.slice() },
      top5: topClasses(r.logits, info.labels, 5),
      explained: r.explained,
      overlays: result.methods.map((method) => ({ method, image: showCamOnImage(r.picture!, r.maps[method].data) })),
      secondOrderShare: result.layers.map((l) => {
        const n = l.firstOrder!.shape[1] * l.firstOrder!.shape[2];
        const first = maxAbs(l.firstOrder!.data.subarray(b * n, (b + 1) * n));
        return first > 0 ? maxAbs(l.secondOrder!.data.subarray(b * n, (b + 1) * n)) / first : 0;
      }),
      terms: family ? explanationTermsPicture(raw, b, r.picture!, images[b].name, info.labels) : null,
    }));
    const maps = mapsFile([raw], result.methods, explainer.layers);
    const terms = termsFile([raw], explainer.layers);
    steps.push({ what: 'overlays, terms pictures, safetensors files', ms: performance.now() - t1 });
    return {
      target: result.target,
      methods: [...result.methods],
      images: outcomes,
      layers: result.layers.map((l) => ({ layer: l.layer, shape: [...l.shape], hvpStructurallyZero: l.hvpStructurallyZero })),
      steps,
      totalMs: performance.now() - t0,
      backend: info.backend,
      fused: fusionEnabled(),
      dispatches: dispatchesBefore === null || dispatchesAfter === null ? null : dispatchesAfter - dispatchesBefore,
      files: { maps: serializeSafetensors(maps.tensors, maps.metadata), terms: serializeSafetensors(terms.tensors, terms.metadata) },
    };
  }

  /** The loaded model's explainer for a layer (a missing layer: the API's one-line error naming the nearest ones). */
  async #explainerFor(layer: string): Promise<Explainer> {
    const main = this.#explainer;
    if (!main) throw new Error('no model loaded');
    if (layer === main.layers[0]) return main;
    let e = this.#byLayer.get(layer);
    if (!e) {
      // A loaded model is explained on the current backend: make it the model's again (a load that failed
      // since may have switched to another).
      await useBackend(main.backend.name);
      e = await createExplainer({ model: main.model, layers: [layer] });
      this.#byLayer.set(layer, e);
    }
    return e;
  }

  #dropModel(): void {
    for (const e of this.#byLayer.values()) e.dispose();
    this.#byLayer.clear();
    this.#explainer?.dispose();
    this.#explainer = null;
  }
}

/** A photo brought to a model's input as CIFAR-10 images are: shorter side resized, centre crop (8-bit, Pillow's filter). */
function fitTo(picture: RgbImage, [H, W]: [number, number]): RgbImage {
  if (picture.width === W && picture.height === H) return picture;
  return centerCrop(resizeImage(picture, Math.max(H, W)), H, W);
}
