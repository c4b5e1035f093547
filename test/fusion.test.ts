// The compiled inference prefix (models/inference-prefix.ts) and its fused convolution
// (engine/fusion/conv2d.ts): on every backend, the fused convolution (bias, residual, each activation) equals
// the unfused ops within float32 rounding and the float64 reference; and the CAM terms A, G and H·A at target
// layers inside blocks (a BN that is the target, a shared ReLU, a conv) equal the unfused run's, with random
// BatchNorm statistics so that folding is really exercised. On WebGPU the fusion is also seen to happen: the
// implicit-GEMM convolution stores its epilogue in the same dispatch, and a forward needs far fewer dispatches.

import { afterEach, describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Backend } from '../engine/index.ts';
import type { EpilogueActivation } from '../engine/backend.ts';
import { conv2dWithEpilogue } from '../engine/fusion/conv2d.ts';
import { EPILOGUE_ACTIVATIONS } from '../engine/fusion/epilogue.ts';
import type { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { captureForward, layerTerms } from '../cam/algorithm/terms.ts';
import { classifierTarget } from '../cam/algorithm/targets.ts';
import { setFusion } from '../models/inference-prefix.ts';
import { randomStateDict } from '../models/init.ts';
import type { Module, StateDictSource } from '../models/module.ts';
import { ResNet, type ResNetConfig } from '../models/archs/resnet.ts';
import { loadZooModel } from '../models/zoo.ts';
import { rand } from './helpers/float32.ts';
import { wasmBackend } from './helpers/wasm.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

afterEach(() => setFusion(null));

const UNFUSED: Record<EpilogueActivation, (x: E.Tensor) => E.Tensor> = {
  none: (x) => x,
  relu: E.relu,
  relu6: E.relu6,
  silu: E.silu,
  hardswish: E.hardswish,
  gelu: (x) => E.gelu(x),
};

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  opts: { stride?: number; padding?: number; groups?: number };
}

// Awkward sizes on each route a backend has: implicit GEMM, 1×1 as a matmul, depthwise, wasm's direct
// convolution (rows of 8 or more: the 1×1 case and the 18-wide one, whose last segment overlaps).
const CASES: ConvCase[] = [
  { name: '3×3 stride 1, 18-wide rows, 7 channels out (direct on wasm)', x: [2, 5, 6, 18], w: [7, 5, 3, 3], opts: { padding: 1 } },
  { name: '3×3 stride 2 (implicit GEMM)', x: [2, 3, 17, 13], w: [5, 3, 3, 3], opts: { stride: 2, padding: 1 } },
  { name: '1×1 stride 1 (pointwise)', x: [3, 7, 5, 9], w: [6, 7, 1, 1], opts: {} },
  { name: 'depthwise 3×3', x: [1, 4, 9, 7], w: [4, 1, 3, 3], opts: { padding: 1, groups: 4 } },
  { name: '5×5 groups 2, 65 channels out', x: [1, 6, 11, 10], w: [66, 3, 5, 5], opts: { padding: 2, groups: 2 } },
];

const sizeOf = (s: number[]) => s.reduce((a, b) => a * b, 1);

function outShape(c: ConvCase): number[] {
  const s = c.opts.stride ?? 1;
  const p = c.opts.padding ?? 0;
  const [N, , H, W] = c.x;
  const [O, , KH, KW] = c.w;
  return [N, O, Math.floor((H + 2 * p - KH) / s) + 1, Math.floor((W + 2 * p - KW) / s) + 1];
}

/** act(conv + bias + residual), fused and unfused, on `backend`. Values span the activations' kinks (±3, 0, 6). */
async function fusedAndUnfused(backend: Backend, c: ConvCase, act: EpilogueActivation, withBias: boolean, withResidual: boolean) {
  const seed = c.x[1] * 7 + c.w[0];
  const x = E.tensor(rand(sizeOf(c.x), seed, -3, 3), c.x, backend);
  const w = E.tensor(rand(sizeOf(c.w), seed + 1, -1, 1), c.w, backend);
  const bias = withBias ? E.tensor(rand(c.w[0], seed + 2, -2, 2), [c.w[0]], backend) : null;
  const residual = withResidual ? E.tensor(rand(sizeOf(outShape(c)), seed + 3, -4, 4), outShape(c), backend) : null;
  const fused = conv2dWithEpilogue(x, w, { ...c.opts, bias, residual, activation: act });
  let y = E.conv2d(x, w, bias, c.opts);
  if (residual) y = E.add(y, residual);
  const unfused = UNFUSED[act](y);
  const out = { fused: await fused.values(), unfused: await unfused.values() };
  E.dispose([x, w, bias, residual, fused, y, unfused]);
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Each activation with bias and residual on every geometry; bias only and residual only on the first two. */
const COMBOS: [ConvCase, EpilogueActivation, boolean, boolean][] = [
  ...CASES.flatMap((c) => EPILOGUE_ACTIVATIONS.map((a) => [c, a, true, true] as [ConvCase, EpilogueActivation, boolean, boolean])),
  [CASES[0], 'relu', true, false],
  [CASES[0], 'gelu', false, true],
  [CASES[1], 'relu', true, false],
  [CASES[1], 'gelu', false, true],
  [CASES[2], 'silu', true, false],
  [CASES[3], 'hardswish', false, true],
];

function fusedConvSuite(name: string, describeIt: (name: string, body: () => void) => void, start: () => Promise<Backend>) {
  describeIt(`fused convolution epilogue on ${name}`, () => {
    it.each(COMBOS.map(([c, a, b, r]) => [`${c.name}, ${a}${b ? ', bias' : ''}${r ? ', residual' : ''}`, c, a, b, r] as const))('%s', async (_label, c, act, withBias, withResidual) => {
      const backend = await start();
      const got = await fusedAndUnfused(backend, c, act, withBias, withResidual);
      const ref = await fusedAndUnfused(E.cpuBackend(), c, act, withBias, withResidual);
      const scale = Math.max(1, maxAbs(ref.unfused));
      // float32: a few roundings of sums of ≤ 75 products of magnitude ≤ 3; float64 ~1e-15 the same way.
      const tol = backend.epsilon * 64 * scale;
      expect(maxAbsDiff(got.fused, ref.unfused)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(got.fused, got.unfused)).toBeLessThanOrEqual(tol);
      expect(maxAbsDiff(ref.fused, ref.unfused)).toBeLessThanOrEqual(E.cpuBackend().epsilon * 64 * scale);
    });
  });
}

fusedConvSuite('cpu (float64)', describe, async () => E.cpuBackend());
fusedConvSuite('wasm', describe, () => wasmBackend(2));
fusedConvSuite('webgpu', describeWebGpu, webgpuBackend);

// ---------------------------------------------------------------------------------------------------
// The CAM terms through the compiled prefix

/** A state dict whose BatchNorms have random statistics and affine parameters (folding is not an identity). */
function randomBatchNorms(module: Module, seed: number): StateDictSource {
  const base = randomStateDict(module, seed);
  return {
    ...base,
    values: (n) => {
      const v = base.values(n);
      const leaf = n.split('.').pop()!;
      if (v.length && base.shape(n).length === 1 && /running_|weight|bias/.test(leaf) && !n.startsWith('fc.')) {
        const [lo, hi] = leaf === 'running_var' ? [0.3, 2] : leaf === 'weight' ? [0.5, 1.5] : [-0.5, 0.5];
        return Float32Array.from(rand(v.length, seed + n.length, lo, hi));
      }
      return v;
    },
  };
}

function smallResNet(cfg: Partial<ResNetConfig> & Pick<ResNetConfig, 'block'>, backend: Backend): ResNet {
  const previous = E.getBackend();
  E.setBackend(backend);
  try {
    const m = new ResNet({ layers: [1, 1, 1, 1], planes: [4, 8, 8, 8], stemWidth: 6, numClasses: 5, ...cfg });
    m.loadStateDict(randomBatchNorms(m, 3));
    return m;
  } finally {
    E.setBackend(previous);
  }
}

async function terms(module: Module, input: E.Tensor, layer: string, fused: boolean) {
  setFusion(fused);
  const previous = E.getBackend();
  E.setBackend(input.backend); // the utility's constants
  try {
    return await termsOn(module, input, layer);
  } finally {
    E.setBackend(previous);
  }
}

async function termsOn(module: Module, input: E.Tensor, layer: string) {
  const capture = captureForward(module, input, layer);
  const classes = Array.from({ length: input.shape[0] }, (_, i) => (2 * i + 1) % 5);
  const t = layerTerms(module, input, capture, classifierTarget('rest', classes), true);
  const out = { A: await t.A.values(), G: await t.G.values(), HA: await t.HA!.values() };
  E.dispose([t, capture.logits]);
  return out;
}

interface Model {
  name: string;
  build: (backend: Backend) => Promise<Module>;
  input: number[];
  layers: string[];
}

const MODELS: Model[] = [
  {
    name: 'ResNet (BasicBlock)',
    build: async (b) => smallResNet({ block: 'basic' }, b),
    input: [2, 3, 35, 29],
    layers: ['layer3.0.bn1', 'layer3.0.relu', 'layer2.0.conv2', 'layer2', 'bn1', 'relu', 'layer4.0.downsample.1'],
  },
  {
    name: 'ResNet (Bottleneck)',
    build: async (b) => smallResNet({ block: 'bottleneck', planes: [2, 3, 2, 2] }, b),
    input: [1, 3, 33, 33],
    layers: ['layer2.0.bn2', 'layer3', 'layer1.0.relu'],
  },
  {
    name: 'CIFAR ResNet-20 (zoo weights)',
    build: async (b) => {
      const previous = E.getBackend();
      E.setBackend(b);
      try {
        return (await loadZooModel('resnet20_cifar10')).module;
      } finally {
        E.setBackend(previous);
      }
    },
    input: [2, 3, 32, 32],
    layers: ['layer3', 'layer2.1.bn2', 'layer3.0.conv1'],
  },
];

function prefixSuite(name: string, describeIt: (name: string, body: () => void) => void, start: () => Promise<Backend>) {
  describeIt(`compiled prefix on ${name}: A, G and H·A as unfused`, () => {
    for (const model of MODELS) {
      it(`${model.name} at ${model.layers.join(', ')}`, async () => {
        const backend = await start();
        const module = await model.build(backend);
        const refModule = backend === E.cpuBackend() ? module : await model.build(E.cpuBackend());
        const values = rand(sizeOf(model.input), 11, -2, 2);
        const input = E.tensor(values, model.input, backend);
        const refInput = E.tensor(values, model.input, E.cpuBackend());
        try {
          for (const layer of model.layers) {
            const fused = await terms(module, input, layer, true);
            const unfused = await terms(module, input, layer, false);
            const ref = await terms(refModule, refInput, layer, false);
            for (const k of ['A', 'G', 'HA'] as const) {
              const scale = Math.max(maxAbs(ref[k]), 1e-30);
              // float32 rounding carried through a few layers; float64 agrees to ~1e-13 relative.
              const tol = (backend.epsilon < 1e-10 ? 1e-12 : 2e-4) * scale;
              expect(maxAbsDiff(fused[k], unfused[k]), `${layer} ${k} fused vs unfused`).toBeLessThanOrEqual(tol);
              // H·A is small beside the float32 rounding of G's terms it cancels: against float64, the fused
              // run must be as close as the unfused float32 run is (within 2×), or within tol.
              const unfusedError = maxAbsDiff(unfused[k], ref[k]);
              expect(maxAbsDiff(fused[k], ref[k]), `${layer} ${k} fused vs float64`).toBeLessThanOrEqual(Math.max(tol, 2 * unfusedError));
            }
          }
        } finally {
          E.dispose([input, refInput]);
          module.disposeParameters();
          if (refModule !== module) refModule.disposeParameters();
        }
      }, 120_000);
    }
  });
}

prefixSuite('cpu (float64)', describe, async () => E.cpuBackend());
prefixSuite('wasm', describe, () => wasmBackend(2));
prefixSuite('webgpu', describeWebGpu, webgpuBackend);

describeWebGpu('fusion on WebGPU is seen in the dispatch count', () => {
  async function dispatchesOf(gpu: WebGpuBackend, fn: () => E.Tensor): Promise<number> {
    await gpu.read(E.tensor([0], [1], gpu).storage()); // flush what came before
    const before = gpu.stats().dispatches;
    const y = fn();
    await y.values();
    y.dispose();
    return gpu.stats().dispatches - before;
  }

  it('an implicit-GEMM convolution with bias, residual and an activation is one dispatch', async () => {
    const gpu = await webgpuBackend();
    const c = CASES[0];
    const x = E.tensor(rand(sizeOf(c.x), 1), c.x, gpu);
    const w = E.tensor(rand(sizeOf(c.w), 2), c.w, gpu);
    const bias = E.tensor(rand(c.w[0], 3), [c.w[0]], gpu);
    const residual = E.tensor(rand(sizeOf(outShape(c)), 4), outShape(c), gpu);
    expect(await dispatchesOf(gpu, () => conv2dWithEpilogue(x, w, { ...c.opts, bias, residual, activation: 'silu' }))).toBe(1);
    E.dispose([x, w, bias, residual]);
  });

  it('the recording pass of a ResNet needs at least 3× fewer dispatches', async () => {
    const gpu = await webgpuBackend();
    const module = smallResNet({ block: 'basic' }, gpu);
    const input = E.tensor(rand(3 * 32 * 32, 5), [1, 3, 32, 32], gpu);
    const count = async (fused: boolean) => {
      setFusion(fused);
      return dispatchesOf(gpu, () => E.tidy(() => captureForward(module, input, 'layer4').logits));
    };
    await count(true); // folds the BatchNorms once (cached with the model)
    const fused = await count(true);
    const unfused = await count(false);
    expect(fused * 3).toBeLessThanOrEqual(unfused);
    module.disposeParameters();
    input.dispose();
  });
});
