// The WebGPU kernel table (kernels/index.ts), without a device: every kernel once, the production
// kernels and not the naive baselines, and a duplicate name refused when the table is built.

import { describe, expect, it } from 'vitest';
import { mergeFamilies, type KernelFamily, type KernelTable } from '../engine/webgpu/kernel-api.ts';
import { WGSL_KERNELS } from '../kernels/index.ts';
import { elementwiseKernels } from '../kernels/elementwise.ts';
import { matmulKernels } from '../kernels/matmul.ts';
import { conv2dKernels } from '../kernels/conv2d.ts';
import { naiveKernels } from '../kernels/naive.ts';

describe('the WebGPU kernel table', () => {
  it('holds the tiled matmul and convolutions, not the naive baselines', () => {
    expect(WGSL_KERNELS.matmul).toBe(matmulKernels.matmul);
    expect(WGSL_KERNELS.conv2d).toBe(conv2dKernels.conv2d);
    expect(WGSL_KERNELS.conv2dBackwardInput).toBe(conv2dKernels.conv2dBackwardInput);
    expect(WGSL_KERNELS.conv2dBackwardFilter).toBe(conv2dKernels.conv2dBackwardFilter);
    for (const impl of Object.values(naiveKernels)) expect(Object.values(WGSL_KERNELS)).not.toContain(impl);
  });

  it('refuses a kernel that two families define, naming both', () => {
    const extraFill = { fill: elementwiseKernels.fill } satisfies KernelFamily;
    expect(() => mergeFamilies({ elementwise: elementwiseKernels, extra: extraFill })).toThrow(/"fill" is defined by two families: elementwise and extra/);
    expect(() => mergeFamilies({ matmul: matmulKernels, naive: naiveKernels })).toThrow(/"matmul" is defined by two families: matmul and naive/);
  });

  it('a table missing a kernel does not type-check (checked by tsc)', () => {
    // @ts-expect-error the elementwise family alone lacks matmul, conv2d, … : not a KernelTable
    const partial: KernelTable = mergeFamilies({ elementwise: elementwiseKernels });
    expect(Object.keys(partial)).toEqual(['fill', 'unary', 'binary', 'where']);
  });
});
