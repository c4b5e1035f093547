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
import { wasmConvPaths } from '../kernels/wasm/conv.ts';
import { directConvApplies, directConvChosen } from '../kernels/wasm/conv-direct.ts';
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
    // The direct forward convolution (rows of 8 or more): strides through column phases, segment tails,
    // channel counts around its 4-row strips, rows split over tasks.
    ['3×3 stride 2 pad 1, 9-wide output rows (direct: 2 phases, tail segment)', geometry([2, 5, 17, 18], [6, 5, 3, 3], { stride: [2, 2], padding: [1, 1] })],
    ['3×3 stride 2 pad 1, odd padding phase, 21-wide input (direct: 8 columns per shuffle)', geometry([1, 3, 9, 21], [4, 3, 3, 3], { stride: [2, 2], padding: [1, 1] })],
    ['3×3 stride 2 pad 0 (direct: even padding phase), 65 channels (GEMM chosen)', geometry([1, 4, 9, 20], [65, 4, 3, 3], { stride: [2, 2] })],
    ['1×1 stride 2, 8-wide output rows (direct: one segment)', geometry([2, 8, 15, 16], [5, 8, 1, 1], { stride: [2, 2] })],
    ['3×3 stride 3 pad 2, 13 output columns (direct: 3 phases)', geometry([1, 3, 10, 37], [9, 3, 3, 3], { stride: [3, 3], padding: [2, 2] })],
    ['5×5 stride 1×2 pad 2×1, 1 and 2 channels past a strip', geometry([3, 4, 6, 20], [5, 4, 5, 5], { stride: [1, 2], padding: [2, 1] }), ],
    ['3×3 pad 1, 16 → 16 channels at 32×32, batch 1 (rows split over tasks)', geometry([1, 16, 32, 32], [16, 16, 3, 3], { padding: [1, 1] })],
    ['1×1 stride 1 with 8-wide rows (direct, no padding)', geometry([2, 6, 3, 8], [10, 6, 1, 1])],
  ];

  for (const [label, g] of convCases) it(`conv ${label}: forward, backward-input, backward-filter`, () => checkConv(g));

  it('forward convolutions the direct path applies to, through each path: the GEMM and the direct kernel at any channel count', async () => {
    const direct = convCases.filter(([, g]) => directConvApplies(g));
    expect(direct.length).toBeGreaterThanOrEqual(10);
    expect(direct.some(([, g]) => !directConvChosen(g))).toBe(true);
    for (const paths of [{ direct: false, always: false }, { direct: true, always: true }]) {
      Object.assign(wasmConvPaths, paths);
      try {
        for (const [, g] of direct) await checkDotKernel(wasm, 'conv2d', [rand(sizeOf(g.xShape), seed++), rand(sizeOf(g.wShape), seed++)], g, g.wShape[1] * g.wShape[2] * g.wShape[3]);
      } finally {
        Object.assign(wasmConvPaths, { direct: true, always: false });
      }
    }
  });

  it('conv with output padding past the input (torch: bottom/right padding is whatever yShape implies)', async () => {
    const base = geometry([2, 3, 8, 8], [4, 3, 3, 3], { stride: [2, 2], padding: [1, 1] });
    await checkConv({ ...base, yShape: [2, 4, base.yShape[2] + 1, base.yShape[3] + 1] });
    const wide = geometry([1, 3, 7, 15], [5, 3, 3, 3], { padding: [1, 1] }); // the direct path, reading 2 columns past the padded row
    expect(directConvApplies(wide)).toBe(true);
    await checkConv({ ...wide, yShape: [1, 5, wide.yShape[2] + 1, wide.yShape[3] + 2] });
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
