// The engine's internal entry: what the project's own packages (models/, bench/, the tests) need beyond the
// public API of ./index.ts — the platform seam, shape helpers, the backend contract and the WebGPU
// backend's parts that benchmarks drive directly. Not a stable API; code outside this repository should use
// ./index.ts.

export { env, envFlag, readBytes, writeBytes, runtime, commandLineArgs, isMainModule, type RuntimeName } from './platform.ts';
export { fmt, sizeOf, stridesOf, broadcastStrides, type Shape } from './shape.ts';
export type { Backend, Storage, ConvGeometry, KernelName, KernelParams, MemoryStats } from './backend.ts';
export { cpuBackend } from './runtime.ts';
export { convGeometry } from './primitives/linalg.ts';
export { WebGpuBackend, createWebGpuBackend } from './webgpu/backend.ts';
export { getDevice, releaseDevice, probeAdapter, describeAdapter, type GpuContext, type GpuAdapterInfo } from './webgpu/device.ts';
export { packUniforms, reflectShader } from './webgpu/pipelines.ts';
export { withErrorScopes } from './webgpu/errors.ts';
export { isWindow, type Dispatch, type GpuStorage, type KernelContext, type KernelFamily, type KernelTable } from './webgpu/kernel-api.ts';
