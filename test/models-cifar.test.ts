// The shipped CIFAR-10 ResNets against PyTorch: logits on the sample images, and accuracy.

import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { loadZooModel } from '../models/zoo.ts';
import { fixture, relErr } from './helpers/fixtures.ts';

describe('CIFAR-10 ResNets match PyTorch', () => {
  const ref = fixture('resnet_cifar_logits');
  const input = ref.file.float32('input');
  const labels = ref.file.int('label');

  // ResNet-56 on the float64 CPU reference costs three times ResNet-20: its logit check uses 25 images.
  for (const [zoo, key, n] of [['resnet20_cifar10', 'resnet20', 100], ['resnet56_cifar10', 'resnet56', 25]] as const) {
    it(`${zoo}: float64 logits of ${n} images within 1e-10 of PyTorch's float64 model`, async () => {
      const model = await loadZooModel(zoo);
      const x = E.tensor(input.subarray(0, n * 3 * 32 * 32), [n, 3, 32, 32], E.cpuBackend());
      const logits = await model.module.call(x).values();
      // The weights are float32 numbers, so a float64 forward reproduces torch's float64 model.
      expect(relErr(logits, ref.file.float64(`logits64/${key}`).subarray(0, n * 10))).toBeLessThan(1e-10);
      expect(relErr(logits, ref.file.float32(`logits/${key}`).subarray(0, n * 10))).toBeLessThan(1e-4);
      if (n === 100) {
        // 82 of the 100 sample images, as PyTorch classifies them (the fixture's sidecar).
        let correct = 0;
        for (let b = 0; b < 100; b++) {
          const row = Array.from(logits.subarray(b * 10, b * 10 + 10));
          if (row.indexOf(Math.max(...row)) === labels[b]) correct++;
        }
        expect(correct).toBe(ref.meta.sample100_top1_percent.resnet20);
      }
    });
  }
});
