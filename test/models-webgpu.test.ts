// The MobileNetV3, segmentation and ViT architectures on WebGPU (float32 WGSL kernels) against PyTorch's
// float64 references: the reduced arch_* fixtures' logits and hooked layers, and the public LR-ASPP
// fixture's logits, G and H·A of the segmentation target (the fixture README's float32 tolerances: rtol
// 1e-4 for values, 2e-4 for derivatives).

import { afterAll, beforeAll, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';
import { ForwardReplay, withForwardHooks } from '../models/module.ts';
import { loadModel } from '../models/zoo.ts';
import { fixture, FIXTURES, relErr } from './helpers/fixtures.ts';
import { describeWebGpu, webgpuBackend } from './helpers/webgpu.ts';

const FAMILY = ['mobilenet_v3_large', 'mobilenet_v3_small', 'lraspp', 'deeplabv3_resnet50', 'deeplabv3_mobilenet', 'fcn_resnet50', 'vit_b16', 'deit_distilled_timm', 'resnet18_1ch'];

describeWebGpu('family architectures on WebGPU against PyTorch float64', () => {
  // Weights go to the current backend: load them with WebGPU selected.
  beforeAll(async () => E.setBackend(await webgpuBackend()));
  afterAll(() => E.setBackend(E.cpuBackend()));

  for (const name of FAMILY) {
    it(`arch_${name}: logits and hooked layers within float32 rounding`, async () => {
      const gpu = await webgpuBackend();
      const ref = fixture(`arch_${name}`);
      const model = await loadModel(ref.meta.config.arch, `${FIXTURES}${ref.meta.weights_file}`);
      await E.tidyAsync(async () => {
        const x = E.tensor(ref.file.float32('input'), ref.file.entry('input').shape, gpu);
        const acts = new Map<string, Tensor>();
        const hooks = new Map((ref.meta.layers as string[]).map((l) => [l, (out: Tensor) => void acts.set(l, out)] as const));
        const y = withForwardHooks(hooks, () => model.module.call(x));
        expect(relErr(await y.values(), ref.file.float64('logits64')), 'logits').toBeLessThan(1e-4);
        for (const layer of ref.meta.layers as string[]) expect(relErr(await acts.get(layer)!.values(), ref.file.float64(`A/${layer}`)), layer).toBeLessThan(1e-4);
      });
      model.module.disposeParameters();
    });
  }

  it('LR-ASPP (public segmentation fixture): logits, and G and H·A of the segmentation target at backbone.16', async () => {
    const gpu = await webgpuBackend();
    const ref = fixture('seg_lraspp_public');
    const model = await loadModel('lraspp_mobilenet_v3_large', `${FIXTURES}seg_lraspp_public.weights.safetensors`);
    const c = Number(ref.file.int('category')[0]);
    await E.tidyAsync(async () => {
      const x = E.tensor(ref.file.float32('input'), ref.file.entry('input').shape, gpu);
      const out = model.module.call(x);
      const grid = E.slice(out, [0, 0, 0, 0], [null, null, null, null], [1, 1, 3, 3]);
      expect(relErr(await grid.values(), ref.file.float64('logits64_stride3')), 'logits').toBeLessThan(1e-4);
      // Image 0 (the fixture subset): u = Σ_pixels out[0, c]·mask[0], differentiated in A at backbone.16.
      const x0 = E.slice(x, [0], [1]);
      const mask = E.tensor(Float64Array.from(ref.file.int('mask').slice(0, 128 * 128)), [1, 1, 128, 128], gpu);
      const replay = new ForwardReplay('backbone.16');
      withForwardHooks(new Map(), () => model.module.call(x0), replay);
      replay.finishRecording();
      const head = (a: Tensor) => {
        replay.replacement = a;
        try {
          return E.sum(E.mul(E.slice(withForwardHooks(new Map(), () => model.module.call(x0), replay), [0, c], [null, c + 1]), mask));
        } finally {
          replay.replacement = null;
        }
      };
      const A = replay.captured!;
      const r = E.gradAndHvp(head, A, A);
      expect(relErr(await A.values(), ref.file.float64('A/backbone.16/image0')), 'A').toBeLessThan(1e-4);
      expect(relErr(await r.grad.values(), ref.file.float64('G/seg/backbone.16/image0')), 'G').toBeLessThan(2e-4);
      expect(relErr(await r.hvp.values(), ref.file.float64('HA/seg/backbone.16/image0')), 'HA').toBeLessThan(2e-4);
    });
    model.module.disposeParameters();
  });
});
