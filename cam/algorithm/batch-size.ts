// How many rows one derivative-free forward pass takes by default: eval's scoring passes
// (cam/evaluation/scoring.ts) and ScoreCAM's / AblationCAM's perturbed copies (row-scoring.ts).

import type { BackendName } from '../../engine/index.ts';

/**
 * How many 32×32 inputs fit one pass by default, per backend (the activations of a batch are held at
 * once; larger inputs get proportionally fewer rows, at least one). The float64 CPU backend gains little
 * from large batches; wasm's packed GEMM and WebGPU's dispatches gain until about 256 CIFAR images.
 */
const DEFAULT_BATCH_AT_32X32: Record<BackendName, number> = { cpu: 64, wasm: 256, webgpu: 256 };

/** The default --max-batch for inputs of H×W pixels on a backend. */
export function defaultMaxBatch(backend: BackendName, H: number, W: number): number {
  return Math.max(1, Math.floor((DEFAULT_BATCH_AT_32X32[backend] * 32 * 32) / (H * W)));
}
