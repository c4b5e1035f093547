// The torchvision/timm architectures (models/archs) against PyTorch, on the float64 CPU backend.
//
// - case2_* (shared fixtures): torchvision ResNet-18 at base width 16 and MobileNetV2 ×0.25, both 100
//   classes, weights loaded strictly by state_dict name; logits and hooked layer outputs.
// - arch_* (scripts/make-arch-fixtures.py, torch 1.13 / torchvision 0.14): reduced models built with
//   torchvision's own classes (Bottleneck ResNet, ResNeXt, VGG, VGG-BN, EfficientNet, ConvNeXt, Swin), random
//   weights with randomised BN statistics, float64 logits and intermediate activations.
// - timm naming: (a) the torchvision Swin fixture, its state_dict renamed with torchvisionToTimmSwinName,
//   loaded into the timm-named model (the two libraries compute the same function at that size), and
//   (b) arch_swin_timm, made by a hand transcription of timm 1.0's Swin in the script (timm is not
//   installable there) at sizes where timm differs from torchvision (window clamped to a 6×6 map, roll then
//   pad); this checks our reading of timm's code, not timm itself.
// - Every registered name: builds, parameter count and state_dict names/shapes equal torchvision's (and the
//   timm transcription's) full-size models (arch_full_size.json), default layer exists.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { withForwardHooks, ModelError, type Module, type StateDictSource } from '../models/module.ts';
import { loadModel, stateDictFromSafetensors } from '../models/zoo.ts';
import { getArchitecture } from '../models/registry.ts';
import { ResNet, type ResNetConfig } from '../models/archs/resnet.ts';
import { VGG, lastPoolIndex, VGG_CFGS, type VggCfg } from '../models/archs/vgg.ts';
import { MobileNetV2 } from '../models/archs/mobilenet_v2.ts';
import { EfficientNet } from '../models/archs/efficientnet.ts';
import { ConvNeXt } from '../models/archs/convnext.ts';
import { legacyTimmSwinName, relativePositionIndex, SwinTransformer, swinLayout, torchvisionToTimmSwinName, type SwinConfig } from '../models/archs/swin.ts';
import { IMAGENET_CLASSES } from '../models/imagenet_classes.ts';
import { fixture, FIXTURES, relErr, weightsFile } from './helpers/fixtures.ts';

const cpu = E.cpuBackend();

interface Run {
  logits: Float64Array;
  acts: Map<string, E.Tensor>;
}

/** Forward pass on the fixture tensor `inputName`, capturing the outputs of `layers` with forward hooks. */
function run(model: Module, file: ReturnType<typeof fixture>['file'], inputName: string, layers: string[]): Run {
  const entry = file.entry(inputName);
  const x = E.tensor(file.float32(inputName), entry.shape, cpu);
  const acts = new Map<string, E.Tensor>();
  const hooks = new Map(layers.map((l) => [l, (out: E.Tensor) => void acts.set(l, out)] as const));
  const y = withForwardHooks(hooks, () => model.call(x));
  return { logits: y.valuesSync(), acts };
}

function expectActivation(r: Run, file: ReturnType<typeof fixture>['file'], layer: string, refName: string, tol: number): void {
  const a = r.acts.get(layer);
  expect(a, `layer ${layer} was not called`).toBeDefined();
  expect(a!.shape).toEqual(file.entry(refName).shape);
  expect(relErr(a!.valuesSync(), file.float64(refName))).toBeLessThan(tol);
}

/** A state_dict source with names renamed by `rename` (null drops an entry). */
function renamed(source: StateDictSource, rename: (n: string) => string | null): StateDictSource {
  const back = new Map<string, string>();
  for (const n of source.names()) {
    const m = rename(n);
    if (m !== null) back.set(m, n);
  }
  return {
    names: () => [...back.keys()],
    has: (n) => back.has(n),
    shape: (n) => source.shape(back.get(n)!),
    values: (n) => source.values(back.get(n)!),
  };
}

function load(model: Module, weights: string, rename?: (n: string) => string | null): Module {
  let source = stateDictFromSafetensors(weightsFile(weights));
  if (rename) source = renamed(source, rename);
  model.loadStateDict(source, { sourceName: weights }); // strict: every name and shape must match
  return model;
}

// float64 weights are the float32 numbers, so a float64 forward reproduces torch's float64 model up to
// rounding order: observed ≤ 2.1e-14 relative to max |ref| over all logits and layers here.
const F64_TOL = 1e-11;

describe('case 2 fixtures (torchvision models at reduced width)', () => {
  const cases = [
    {
      name: 'case2_resnet18_w16_public',
      build: () => new ResNet({ block: 'basic', layers: [2, 2, 2, 2], planes: [16, 32, 64, 128], stemWidth: 16, numClasses: 100 }),
      layers: ['layer4', 'layer3'],
    },
    { name: 'case2_mobilenet_v2_w025_public', build: () => new MobileNetV2({ widthMult: 0.25, numClasses: 100 }), layers: ['features.18', 'features.14'] },
  ];
  for (const c of cases) {
    it(`${c.name}: logits (float64 and float32) and hooked layers match PyTorch`, () => {
      const ref = fixture(c.name);
      const model = load(c.build(), `${c.name}.weights.safetensors`);
      const r = run(model, ref.file, 'input', c.layers);
      expect(relErr(r.logits, ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
      expect(relErr(r.logits, ref.file.float32('logits'))).toBeLessThan(1e-4);
      for (const l of c.layers) expectActivation(r, ref.file, l, `A/${l}`, F64_TOL);
      model.disposeParameters();
    });
  }

  it('loadModel reads the widths and classes of the width-16 weights into the registered resnet18; a bottleneck name rejects them', async () => {
    const ref = fixture('case2_resnet18_w16_public');
    const weights = `${FIXTURES}case2_resnet18_w16_public.weights.safetensors`;
    const model = await loadModel('resnet18', weights);
    expect([model.numClasses, model.inChannels]).toEqual([100, 3]);
    const r = run(model.module, ref.file, 'input', []);
    expect(relErr(r.logits, ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
    model.module.disposeParameters();
    // Widths come from the file, the block type and depths from the name: strict loading names the difference.
    await expect(loadModel('resnet50', weights)).rejects.toThrow(/case2_resnet18_w16_public.weights.safetensors: missing \d+ .*mis-shaped \d+/);
  });
});

describe('reduced torchvision architectures (arch_* fixtures)', () => {
  const meta = (name: string) => fixture(`arch_${name}`).meta;
  const resnet = (name: string) => () => new ResNet(meta(name).config as ResNetConfig);
  const cases: { name: string; build: () => Module; inputs?: string[] }[] = [
    { name: 'resnet_bottleneck', build: resnet('resnet_bottleneck') },
    { name: 'resnext', build: resnet('resnext') },
    { name: 'vgg', build: () => new VGG(meta('vgg').config as { cfg: VggCfg; batchNorm: boolean; hidden: number; numClasses: number }) },
    { name: 'vgg_bn', build: () => new VGG(meta('vgg_bn').config as { cfg: VggCfg; batchNorm: boolean; hidden: number; numClasses: number }) },
    { name: 'efficientnet', build: () => new EfficientNet(meta('efficientnet').config) },
    {
      name: 'convnext',
      build: () => {
        const cfg = meta('convnext').config as { blockSetting: [number, number | null, number][]; numClasses: number };
        return new ConvNeXt(cfg.blockSetting.map(([inputChannels, outChannels, numLayers]) => ({ inputChannels, outChannels, numLayers })), cfg.numClasses);
      },
    },
    { name: 'swin_t', build: () => new SwinTransformer({ naming: 'torchvision', ...meta('swin_t').config } as SwinConfig), inputs: ['', '_40'] },
    { name: 'swin_timm', build: () => new SwinTransformer({ naming: 'timm', ...meta('swin_timm').config } as SwinConfig) },
  ];
  for (const c of cases) {
    it(`arch_${c.name}: float64 logits and layer outputs match PyTorch`, () => {
      const ref = fixture(`arch_${c.name}`);
      const model = load(c.build(), ref.meta.weights_file);
      for (const suffix of c.inputs ?? ['']) {
        const r = run(model, ref.file, `input${suffix}`, ref.meta.layers);
        expect(relErr(r.logits, ref.file.float64(`logits64${suffix}`))).toBeLessThan(F64_TOL);
        expect(relErr(r.logits, ref.file.float32(`logits${suffix}`))).toBeLessThan(1e-4);
        for (const l of ref.meta.layers as string[]) expectActivation(r, ref.file, l, `A/${l}${suffix}`, F64_TOL);
      }
      model.disposeParameters();
    });
  }

  it('timm-named Swin loads the torchvision fixture through torchvisionToTimmSwinName and computes the same function', () => {
    const ref = fixture('arch_swin_t');
    const cfg = ref.meta.config as Omit<SwinConfig, 'naming'>;
    const model = load(new SwinTransformer({ naming: 'timm', imgSize: 64, ...cfg }), ref.meta.weights_file, torchvisionToTimmSwinName);
    // timm's stage 2 output (layers.1) is torchvision's features.3; norm is norm in both.
    const r = run(model, ref.file, 'input', ['norm', 'layers.1']);
    expect(relErr(r.logits, ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
    expectActivation(r, ref.file, 'norm', 'A/norm', F64_TOL);
    expectActivation(r, ref.file, 'layers.1', 'A/features.3', F64_TOL);
    // timm fixes the input size (strict_img_size); torchvision's model takes the 40×40 input, timm's refuses it.
    const x40 = E.tensor(ref.file.float32('input_40'), ref.file.entry('input_40').shape, cpu);
    expect(() => model.call(x40)).toThrow(ModelError);
    model.disposeParameters();
  });

  it("torchvision Swin's int64 relative_position_index buffers equal ours and are skipped by the strict loader", () => {
    const file = weightsFile('arch_swin_t.weights.safetensors');
    const buffers = file.names.filter((n) => n.endsWith('.relative_position_index'));
    expect(buffers.length).toBe(6); // one per block; the arch_swin_t test above loads this file strictly
    const ours = Array.from(relativePositionIndex(4, 4));
    for (const n of buffers) {
      expect(file.entry(n).dtype).toBe('I64');
      expect(file.int(n)).toEqual(ours);
    }
  });

  it('legacy timm (< 0.9) Swin names map as timm checkpoint_filter_fn does', () => {
    expect(legacyTimmSwinName('layers.0.downsample.reduction.weight')).toBe('layers.1.downsample.reduction.weight');
    expect(legacyTimmSwinName('layers.2.downsample.norm.bias')).toBe('layers.3.downsample.norm.bias');
    expect(legacyTimmSwinName('layers.1.blocks.0.attn.qkv.weight')).toBe('layers.1.blocks.0.attn.qkv.weight');
    expect(legacyTimmSwinName('head.weight')).toBe('head.fc.weight');
    expect(legacyTimmSwinName('layers.0.blocks.1.attn_mask')).toBeNull();
    expect(legacyTimmSwinName('layers.0.blocks.1.attn.relative_position_index')).toBeNull();
  });
});

describe('registered ImageNet architectures', () => {
  const facts = JSON.parse(readFileSync(`${FIXTURES}arch_full_size.json`, 'utf8')).architectures as Record<
    string,
    { num_parameters: number; state_dict_entries: number; state_dict_elements: number; state_dict_sha256: string; state_dict?: string[] }
  >;
  // Default CAM layers (the paper's): ResNets `layer4`, VGG the last max-pool, MobileNetV2 features.18,
  // EfficientNet-B0 features.8, ConvNeXt features.7, Swin `norm` (channels-last).
  const expected: Record<string, string> = {
    resnet18: 'layer4', resnet34: 'layer4', resnet50: 'layer4', resnet101: 'layer4', resnet152: 'layer4', resnext50_32x4d: 'layer4',
    vgg11: 'features.20', vgg11_bn: 'features.28', vgg13: 'features.24', vgg13_bn: 'features.34',
    vgg16: 'features.30', vgg16_bn: 'features.43', vgg19: 'features.36', vgg19_bn: 'features.52',
    mobilenet_v2: 'features.18', efficientnet_b0: 'features.8', convnext_tiny: 'features.7',
    swin_tiny_patch4_window7_224: 'norm', swin_small_patch4_window7_224: 'norm', swin_base_patch4_window7_224: 'norm', swin_large_patch4_window7_224: 'norm',
    swin_t: 'norm', swin_s: 'norm', swin_b: 'norm',
  };

  it('torchvision parameter counts quoted in the brief are what torchvision 0.14 reports', () => {
    expect(facts.resnet50.num_parameters).toBe(25_557_032);
    expect(facts.vgg16.num_parameters).toBe(138_357_544);
    expect(facts.mobilenet_v2.num_parameters).toBe(3_504_872);
    expect(facts.efficientnet_b0.num_parameters).toBe(5_288_548);
    expect(facts.convnext_tiny.num_parameters).toBe(28_589_128);
    expect(facts.swin_t.num_parameters).toBe(28_288_354);
  });

  for (const [name, layer] of Object.entries(expected)) {
    it(`${name}: builds; parameter count, state_dict names and shapes equal the reference; default layer ${layer}`, () => {
      const arch = getArchitecture(name);
      expect(arch.defaultLayer).toBe(layer);
      expect(arch.labels).toBe(IMAGENET_CLASSES);
      expect(arch.preprocessing.inputSize).toEqual([224, 224]);
      const module = arch.build(); // declares shapes only: nothing is allocated
      const lines: string[] = [];
      let params = 0;
      let elements = 0;
      for (const [n, spec] of module.tensors()) {
        const size = spec.shape.reduce((a, b) => a * b, 1);
        elements += size;
        if (!n.endsWith('running_mean') && !n.endsWith('running_var')) params += size; // BN statistics are buffers
        lines.push(`${n} ${spec.shape.join(',')}`);
      }
      lines.sort();
      const ref = facts[name];
      expect(params).toBe(ref.num_parameters);
      expect(elements).toBe(ref.state_dict_elements);
      expect(lines.length).toBe(ref.state_dict_entries);
      if (ref.state_dict) expect(lines).toEqual(ref.state_dict);
      expect(createHash('sha256').update(lines.join('\n')).digest('hex')).toBe(ref.state_dict_sha256);
      expect(module.get(layer)).toBeDefined();
      if (name.startsWith('swin')) expect(arch.layout?.(layer)).toBe('NHWC');
      // Another class count changes only the classifier.
      const small = arch.build(7);
      const matrices = [...small.tensors()].filter(([n, s]) => n.endsWith('.weight') && s.shape.length === 2);
      const [headName, head] = matrices[matrices.length - 1];
      expect(headName).toMatch(/^(fc|classifier\.[126]|head|head\.fc)\.weight$/);
      expect(head.shape[0]).toBe(7);
    });
  }

  it('preprocessing: torchvision resize/crop per weight set; timm Swin resize floor(224 / 0.9) = 248', () => {
    expect(getArchitecture('resnet50').preprocessing).toMatchObject({ resize: 256, crop: [224, 224] });
    expect(getArchitecture('convnext_tiny').preprocessing).toMatchObject({ resize: 236, crop: [224, 224] });
    expect(getArchitecture('swin_t').preprocessing).toMatchObject({ resize: 232, crop: [224, 224] });
    expect(getArchitecture('swin_tiny_patch4_window7_224').preprocessing).toMatchObject({ resize: 248, crop: [224, 224] });
    expect(lastPoolIndex(VGG_CFGS.D, false)).toBe(30);
    expect(IMAGENET_CLASSES.length).toBe(1000);
    expect([IMAGENET_CLASSES[0], IMAGENET_CLASSES[281], IMAGENET_CLASSES[999]]).toEqual(['tench', 'tabby', 'toilet tissue']);
    expect(swinLayout('features.0.0')).toBe('NCHW');
    expect(swinLayout('features.5.1')).toBe('NHWC');
  });
});
