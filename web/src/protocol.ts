// What the page and its engine worker say to each other. Every request carries an id; the worker answers
// it once (a result or a one-line error) and may send progress for it before that. Pictures travel as
// 8-bit RGB (the engine's RgbImage), bytes as Uint8Array (transferred, not copied).

import type { RgbImage } from '../../cam/rendering/image.ts';

/** `auto`: WebGPU when the browser offers an adapter, else wasm when the page is cross-origin isolated, else the CPU. */
export type BackendRequest = 'auto' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendOption {
  name: BackendRequest;
  available: boolean;
  /** Why it is (not) available, in a few words. */
  note: string;
}

/** What the engine offers, read from its registries (new methods and architectures appear by themselves). */
export interface Catalog {
  zoo: { name: string; description: string }[];
  architectures: string[];
  /** `family`: the method uses H·A (the ShapleyCAM family), so the second-order inspection applies. */
  methods: { name: string; family: boolean }[];
  targets: string[];
  backends: BackendOption[];
  crossOriginIsolated: boolean;
}

export type ModelChoice = { zoo: string } | { arch: string; weights: { name: string; bytes: Uint8Array } };

export interface BackendReport {
  name: string;
  requested: BackendRequest;
  /** How `auto` decided (null when a backend was named). */
  reason: string | null;
  /** The engine's description: the backend and, for WebGPU, the adapter. */
  description: string;
}

export interface ModelInfo {
  /** The zoo name, or the architecture and the weights file's name. */
  name: string;
  arch: string;
  numClasses: number;
  labels: string[];
  defaultLayer: string;
  /** Module paths, parents before children (the root excluded). */
  modules: string[];
  /** The nominal input [H, W], and whether the architecture resizes images itself. */
  inputSize: [number, number];
  resizes: boolean;
  backend: BackendReport;
  loadMs: number;
}

export interface ImageInfo {
  id: number;
  name: string;
  width: number;
  height: number;
  decodeMs: number;
}

export interface RunRequest {
  /** Images by the ids `addImage` gave them, in order. */
  images: number[];
  methods: string[];
  layer: string;
  target: string;
  /** A class by the model's label for every image; null: each image's predicted class. */
  className: string | null;
  /** Photos are resized (shorter side) and centre-cropped to the input size when the architecture does not resize. */
  fitToInput: boolean;
}

export interface ClassScore {
  index: number;
  label: string;
  probability: number;
}

export interface ImageOutcome {
  id: number;
  name: string;
  /** The model-sized picture the maps lie on. */
  picture: RgbImage;
  top5: ClassScore[];
  explained: ClassScore & { utility: number };
  overlays: { method: string; image: RgbImage }[];
  /** max |second order| / max |first order| per layer, of this image. */
  secondOrderShare: number[];
  /** The second-order inspection picture (cam/rendering/terms-picture.ts); null without a ShapleyCAM-family method. */
  terms: RgbImage | null;
}

export interface LayerOutcome {
  layer: string;
  shape: number[];
  hvpStructurallyZero: boolean;
}

export interface Step {
  what: string;
  ms: number;
}

export interface RunOutcome {
  target: string;
  methods: string[];
  images: ImageOutcome[];
  layers: LayerOutcome[];
  steps: Step[];
  totalMs: number;
  backend: BackendReport;
  /**
   * Whether the run was fused: the compiled inference prefix (BatchNorm folded, convolution epilogues
   * fused) and the head's fused primitives (models/fusion-switch.ts), as the CLI and the API run.
   */
  fused: boolean;
  /** GPU dispatches the run issued (WebGPU; null on backends that do not count them). */
  dispatches: number | null;
  /** maps.safetensors and terms.safetensors, as the CLI writes them. */
  files: { maps: Uint8Array; terms: Uint8Array };
}

export type Request =
  | { type: 'catalog' }
  | { type: 'load'; model: ModelChoice; backend: BackendRequest }
  | { type: 'addImage'; name: string; bytes: Uint8Array }
  | { type: 'removeImage'; imageId: number }
  | { type: 'run'; run: RunRequest };

export type Answer<R extends Request> = R extends { type: 'catalog' }
  ? Catalog
  : R extends { type: 'load' }
    ? ModelInfo
    : R extends { type: 'addImage' }
      ? ImageInfo
      : R extends { type: 'removeImage' }
        ? null
        : RunOutcome;

export type ToWorker = { id: number; request: Request };

export type FromWorker =
  | { id: number; kind: 'progress'; done: number; total: number; what: string }
  | { id: number; kind: 'answer'; answer: unknown }
  | { id: number; kind: 'error'; message: string };
