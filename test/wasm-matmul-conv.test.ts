// The wasm GEMM and the convolutions built on it (and the direct depthwise kernels) against the
// float64 CPU reference, under the float32 dot-product bound γ_{L+1}·Σ|a||b| that the WebGPU tests use
// (test/helpers/float32.ts): a correct kernel never exceeds it, whatever its summation order, and a
// wrong index (a missing or extra term) exceeds it by orders of magnitude. Outputs are poisoned with NaN.

import { beforeAll, describe, expect, it } from 'vitest';
import type { ConvGeometry } from '../engine/backend.ts';
import { convGeometry } from '../engine/primitives/linalg.ts';
import { sizeOf, type Shape } from '../engine/shape.ts';
import type { WasmBackend } from '../engine/wasm/backend.ts';
import { GEMM_MR, GEMM_NR } from '../kernels/wasm/assembly/ids.ts';
import { checkDotKernel, matmulShapes, rand } from './helpers/float32.ts';
import { wasmBackend } from './helpers/wasm.ts';

let wasm: WasmBackend;
let seed = 1;

beforeAll(async () => {
  wasm = await wasmBackend();
});

async function checkMatmul(aShape: Shape, bShape: Shape): Promise<number> {
  const p = matmulShapes(aShape, bShape);
  return (await checkDotKernel(wasm, 'matmul', [rand(sizeOf(aShape), seed++), rand(sizeOf(bShape), seed++)], p, aShape[aShape.length - 1])).worst;
}

async function checkConv(g: ConvGeometry): Promise<void> {
  const [N] = g.xShape;
  const [O, Cg, KH, KW] = g.wShape;
  const [, , OH, OW] = g.yShape;
  const x = rand(sizeOf(g.xShape), seed++);
  const w = rand(sizeOf(g.wShape), seed++);
  const dy = rand(sizeOf(g.yShape), seed++);
  await checkDotKernel(wasm, 'conv2d', [x, w], g, Cg * KH * KW);
  await checkDotKernel(wasm, 'conv2dBackwardInput', [dy, w], g, (O / g.groups) * KH * KW);
  await checkDotKernel(wasm, 'conv2dBackwardFilter', [x, dy], g, N * OH * OW);
}

function geometry(xShape: Shape, wShape: Shape, o: Partial<{ stride: [number, number]; padding: [number, number]; dilation: [number, number]; groups: number }> = {}): ConvGeometry {
  return convGeometry('test', xShape, wShape, { stride: o.stride ?? [1, 1], padding: o.padding ?? [0, 0], dilation: o.dilation ?? [1, 1], groups: o.groups ?? 1 });
}

describe('wasm matmul and convolutions vs the CPU reference (float32 dot-product bound)', () => {
  const SIZES = [1, 3, 17, 63, 65, 129];

  for (const M of SIZES) {
    it(`matmul M=${M} × every N, K in {${SIZES.join(', ')}}`, async () => {
      let worst = 0;
      for (const N of SIZES) for (const K of SIZES) worst = Math.max(worst, await checkMatmul([M, K], [K, N]));
      expect(worst).toBeLessThanOrEqual(1);
    });
  }

  it(`matmul around the register tile (${GEMM_MR}×${GEMM_NR}), the packing depth (256), the task blocks (256 columns) and rows split over tasks (B packed once)`, async () => {
    for (const [M, K, N] of [
      [5, 8, 8], [10, 16, 16], [4, 255, 7], [6, 256, 9], [11, 257, 17], [9, 513, 255], [200, 300, 257], [41, 70, 513], [1, 1000, 1], [300, 2, 600], [600, 300, 40], [2000, 600, 9],
    ]) {
      await checkMatmul([M, K], [K, N]);
    }
  });

  it('one row times a matrix (the GEMV path): column blocks over several tasks, column tails, batches sharing B', async () => {
    for (const [a, b] of [
      [[1, 700], [700, 1503]], [[1, 2048], [2048, 1000]], [[1, 3], [3, 4099]], [[6, 1, 300], [6, 300, 70]], [[5, 1, 33], [33, 517]], [[2, 3, 1, 64], [64, 9]],
    ] as [Shape, Shape][]) {
      await checkMatmul(a, b);
    }
  });

  it('batched matmul with numpy batch broadcasting, k = 0 and empty outputs', async () => {
    const cases: [Shape, Shape][] = [
      [[2, 17, 65], [2, 65, 63]], [[2, 1, 17, 8], [3, 8, 12]], [[5, 3, 4], [4, 129]], [[63, 3], [4, 3, 17]], [[1, 17, 3], [4, 3, 1]],
      [[2, 1, 3, 1, 5, 7], [1, 4, 1, 6, 7, 9]], [[1, 1, 1, 9], [9, 3]], [[3, 0], [0, 4]], [[0, 4], [4, 2]], [[2, 3, 0], [0, 5]],
    ];
    for (const [a, b] of cases) await checkMatmul(a, b);
  });

  const convCases: [string, ConvGeometry][] = [
    ['3×3 stride 1 pad 1, batch 2, odd sizes', geometry([2, 3, 9, 11], [4, 3, 3, 3], { padding: [1, 1] })],
    ['3×3 stride 1 pad 1, 16-wide rows (panels inside one row, window leaving it)', geometry([1, 3, 6, 16], [7, 3, 3, 3], { padding: [1, 1] })],
    ['3×3 stride 1 pad 2, 21-wide rows (panels over two rows)', geometry([2, 2, 5, 21], [6, 2, 3, 3], { padding: [2, 2] })],
    ['3×3 stride 2 pad 1', geometry([2, 5, 13, 10], [6, 5, 3, 3], { stride: [2, 2], padding: [1, 1] })],
    ['3×3 stride 3 pad 2, 70 channels', geometry([1, 6, 13, 13], [70, 6, 3, 3], { stride: [3, 3], padding: [2, 2] })],
    ['asymmetric stride 2×1, padding 2×0', geometry([2, 4, 11, 9], [5, 4, 3, 3], { stride: [2, 1], padding: [2, 0] })],
    ['asymmetric padding 0×1, kernel 2×3', geometry([2, 3, 7, 8], [4, 3, 2, 3], { padding: [0, 1] })],
    ['dilation 2', geometry([2, 3, 15, 12], [4, 3, 3, 3], { padding: [2, 2], dilation: [2, 2] })],
    ['dilation 2×1 with stride 2', geometry([1, 4, 17, 15], [8, 4, 3, 3], { stride: [2, 2], padding: [1, 1], dilation: [2, 1] })],
    ['groups 2, stride 2', geometry([2, 4, 9, 11], [6, 2, 3, 3], { stride: [2, 2], padding: [1, 0], groups: 2 })],
    ['groups 4 (ResNeXt-like), 1×1', geometry([2, 8, 5, 5], [12, 2, 1, 1], { groups: 4 })],
    ['depthwise 3×3 pad 1', geometry([2, 5, 10, 9], [5, 1, 3, 3], { padding: [1, 1], groups: 5 })],
    ['depthwise multiplier 2, stride 2, dilation 2', geometry([2, 5, 17, 19], [10, 1, 3, 3], { stride: [2, 2], padding: [2, 2], dilation: [2, 2], groups: 5 })],
    ['depthwise 5×5 stride 3, 65×3 plane', geometry([1, 3, 65, 3], [3, 1, 5, 5], { stride: [3, 1], padding: [2, 2], groups: 3 })],
    ['depthwise 3×3 stride 1, 33-wide rows (SIMD tails)', geometry([2, 4, 12, 33], [4, 1, 3, 3], { padding: [1, 1], groups: 4 })],
    ['1×1 stride 1 (matrix product)', geometry([2, 8, 7, 7], [16, 8, 1, 1])],
    ['1×1 grouped', geometry([2, 8, 7, 7], [6, 4, 1, 1], { groups: 2 })],
    ['1×1 stride 2 (ResNet downsample)', geometry([2, 8, 9, 9], [12, 8, 1, 1], { stride: [2, 2] })],
    ['1×1 pad 1', geometry([1, 4, 5, 6], [3, 4, 1, 1], { padding: [1, 1] })],
    ['7×7 stride 2 pad 3 (ResNet stem), batch 2', geometry([2, 3, 29, 23], [8, 3, 7, 7], { stride: [2, 2], padding: [3, 3] })],
    ['several tasks: 70 channels × 2046 columns, K = 144', geometry([2, 16, 33, 31], [70, 16, 3, 3], { padding: [1, 1] })],
    ['K over several packing slices (C·9 = 576), 64 channels', geometry([1, 64, 14, 14], [64, 64, 3, 3], { padding: [1, 1] })],
    ['single channel, single output', geometry([1, 1, 3, 3], [1, 1, 3, 3])],
  ];

  for (const [label, g] of convCases) it(`conv ${label}: forward, backward-input, backward-filter`, () => checkConv(g));

  it('conv with output padding past the input (torch: bottom/right padding is whatever yShape implies)', async () => {
    const base = geometry([2, 3, 8, 8], [4, 3, 3, 3], { stride: [2, 2], padding: [1, 1] });
    await checkConv({ ...base, yShape: [2, 4, base.yShape[2] + 1, base.yShape[3] + 1] });
    const dw = geometry([1, 4, 8, 8], [4, 1, 3, 3], { stride: [2, 2], padding: [1, 1], groups: 4 });
    await checkConv({ ...dw, yShape: [1, 4, dw.yShape[2] + 1, dw.yShape[3] + 2] });
  });

  it('the bound is live: a product with one term dropped fails it', async () => {
    const a = rand(7 * 9, 1);
    const b = rand(9 * 5, 2);
    const p = matmulShapes([7, 9], [9, 5]);
    const dropped = Float64Array.from(a, (v, i) => (i === 4 ? 0 : v)); // a[0][4] missing from row 0
    const wasmDropped = { ...wasm, run: wasm.run.bind(wasm), upload: (v: ArrayLike<number>) => wasm.upload(v === a ? dropped : v), read: wasm.read.bind(wasm), free: wasm.free.bind(wasm) };
    await expect(checkDotKernel(wasmDropped as unknown as WasmBackend, 'matmul', [a, b], p, 9)).rejects.toThrow(/5 of 35 elements outside/);
  });
});
