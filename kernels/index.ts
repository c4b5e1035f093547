// The WGSL kernel families the WebGPU backend runs, merged into one table. The table's type makes a kernel
// that no family defines a compile error here, and `mergeFamilies` refuses a kernel defined twice when
// this module loads. The naive matmul/convolutions (naive.ts) are deliberately absent: tests and
// benchmarks compare the tiled kernels against them by building a table of their own.

import { mergeFamilies, type KernelTable } from '../engine/webgpu/kernel-api.ts';
import { conv2dKernels } from './conv2d.ts';
import { elementwiseKernels } from './elementwise.ts';
import { elementwiseChainKernels } from './elementwise-chain.ts';
import { gatherKernels } from './gather.ts';
import { layoutKernels } from './layout.ts';
import { logsumexpKernels } from './logsumexp.ts';
import { matmulKernels } from './matmul.ts';
import { poolKernels } from './pool.ts';
import { reduceKernels } from './reduce.ts';
import { scaleShiftKernels } from './scale-shift.ts';

export const WGSL_KERNELS: KernelTable = mergeFamilies({
  elementwise: elementwiseKernels,
  reduce: reduceKernels,
  layout: layoutKernels,
  gather: gatherKernels,
  pool: poolKernels,
  matmul: matmulKernels,
  conv2d: conv2dKernels,
  scaleShift: scaleShiftKernels,
  logsumexp: logsumexpKernels,
  elementwiseChain: elementwiseChainKernels,
});
