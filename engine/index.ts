// The engine's public API: tensors, ops, transforms, memory scopes and backend selection.
// The WebGPU types (GPUDevice, …) that the backend's declarations use, kept in the emitted .d.ts for users.
/// <reference types="@webgpu/types" preserve="true" />

export { Tensor } from './tensor.ts';
export { ShapeError, type Shape } from './shape.ts';
export type { Backend, MemoryStats } from './backend.ts';
export { DeviceLimitError } from './webgpu/errors.ts';
export { tidy, tidyAsync, keep, dispose } from './memory.ts';
export { getBackend, setBackend, useBackend, ready, closeBackends, cpuBackend, backendFromEnv, type BackendName } from './runtime.ts';
export { chooseBackend, autoBackend, describeChoice, BACKEND_CHOICES, type BackendChoice, type ChosenBackend, type AutoDecision } from './backend-choice.ts';
export { grad, valueAndGrad, vjp, jvp, hvp, gradAndHvp, type GradAndHvp } from './transforms.ts';
export {
  tensor, full, zeros, ones, zerosLike, onesLike,
  add, sub, mul, div, neg, pow, maximum, minimum, where,
  greater, greaterEqual, less, lessEqual, equal, notEqual,
  exp, log, log1p, sqrt, rsqrt, abs, sign, tanh, sigmoid, erf, sin, cos, reciprocal, stopGradient,
  relu, relu6, leakyRelu, gelu, silu, hardswish, hardsigmoid, softplus, withGuidedRelu,
  matmul, linear, sum, mean, max, min, var, variance, logsumexp, softmax, logSoftmax,
  conv2d, maxPool2d, avgPool2d, adaptiveAvgPool2d, batchNorm, batchNormAffine, layerNorm,
  reshape, transpose, permute, slice, concat, pad, flatten, expand, broadcastTo, squeeze, unsqueeze, gather, scatterAdd,
  type TensorLike, type Conv2dOptions, type Pool2dOptions, type BatchNormParams,
} from './ops.ts';
export { resizeBilinear, type ResizeOptions } from './ops.ts';
export { scaleShift } from './fusion/scale-shift.ts';
export {
  elementwiseChain, runChainProgram, setChainFusion, ChainExpr, MAX_CHAIN_INPUTS, type ChainOperand,
} from './fusion/elementwise-chain.ts';
export { compileChain } from './fusion/elementwise-chain-program.ts';
