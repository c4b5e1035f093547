// The package's root entry: the high-level CAM API. `createExplainer` loads a model onto the backend the
// machine offers; its `explain` takes images or a tensor and returns maps, derivative terms, predictions
// and the structural-zero flag as typed objects. Deeper layers: `shapleycam-webgpu/engine` (tensors,
// autodiff, backends), `/models` (architectures, zoo, safetensors) and `/cam` (the algorithm, rendering,
// metrics).

export { createExplainer, Explainer, DEFAULT_MODEL, type ExplainerOptions, type ModelSpec, type ExplainCallOptions, type ClassSelector, type BackendInfo } from './explainer.ts';
export type { ImageInput, Inputs } from './inputs.ts';
export type { NamedBytes } from '../models/zoo.ts';
export type { ExplainStep } from '../cam/algorithm/explain.ts';
export type { ExplainResult, ImageResult, LayerResult, ClassScore, HostArray } from './results.ts';
export { METHOD_NAMES } from '../cam/algorithm/methods/index.ts';
export { TARGETS, type TargetName } from '../cam/algorithm/targets.ts';
export { zooNames } from '../models/zoo.ts';
export { architectureNames } from '../models/registry.ts';
export { showCamOnImage } from '../cam/rendering/colormap.ts';
export { encodePng } from '../cam/rendering/codec.ts';
export type { RgbImage } from '../cam/rendering/image.ts';
