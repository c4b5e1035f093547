// The CAM layer's public entry (`shapleycam-webgpu/cam`), for those who go below the explainer of the
// package root: the algorithm on a module and a normalised tensor, the methods and utilities, images
// (codec, preprocessing, overlays, comparison sheets) and the faithfulness metrics.

export { explain, type ExplainOptions, type Explanation, type LayerReport, type MethodReport } from './algorithm/explain.ts';
export { METHODS, METHOD_NAMES, getMethod, type CamMethod, type MethodContext, type MethodResult } from './algorithm/methods/index.ts';
export { TARGETS, utility, utilityValue, type TargetName } from './algorithm/targets.ts';
export { decodeImage, decodeImageBytes, encodePng, ImageError, PixelLimitError, DEFAULT_MAX_PIXELS, type DecodeOptions } from './rendering/codec.ts';
export { preprocess, resizeImage, centerCrop, type RgbImage, type PreprocessOptions } from './rendering/image.ts';
export { showCamOnImage, jetColormap } from './rendering/colormap.ts';
export { comparisonSheet, type SheetRow, type SheetOptions } from './rendering/sheet.ts';
export {
  averageDrop, increaseInConfidence, averageDropInDeletion, complexity, coherency, adcc, adccMetrics, datasetAdcc,
  multiplyByMap, trapezoidAuc, type AdccScores, type AdccMetrics,
} from './evaluation/metrics.ts';
export { roadInputs, roadCombined, noisyLinearImpute, ROAD_PERCENTAGES } from './evaluation/road.ts';
