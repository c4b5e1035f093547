// MobileNetV3, the segmentation networks and the vision transformers (models/archs/mobilenet_v3.ts,
// segmentation.ts, vit.ts), and shape hyper-parameters read from weights files, on the float64 CPU backend.
//
// - arch_* fixtures (scripts/make-model-fixtures.py, torch 1.13 / torchvision 0.14): reduced models built
//   with torchvision's own classes (MobileNetV3 large/small, LR-ASPP, DeepLabV3 over ResNet-50 and over
//   MobileNetV3 with the aux head in the file, FCN, ViT-B/16's structure, a one-channel ResNet-18) and a
//   hand transcription of timm's distilled DeiT, loaded by their registered names through loadModel, which
//   reads every width, the classes, input channels and a ViT's sizes from the file: float64 logits and
//   hooked layer outputs.
// - arch_full_size_family.json: every registered name's full-size parameter count and state_dict names and
//   shapes equal torchvision's (timm's from the transcription), with and without the aux heads.
// - Shape inference for every registered architecture: a model with one input channel and 7 classes, and
//   reduced-width variants of the older architectures, are rebuilt exactly from their tensors' shapes.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.ts';
import { withForwardHooks, type Module, type StateDictSource } from '../models/module.ts';
import { loadModel, stateDictFromSafetensors } from '../models/zoo.ts';
import { activationLayout, architectureNames, getArchitecture, type Network, type WeightShapes } from '../models/registry.ts';
import { IMAGENET_CLASSES } from '../models/imagenet_classes.ts';
import { VOC_CLASSES } from '../models/archs/segmentation.ts';
import { torchvisionToTimmVitName, VisionTransformer } from '../models/archs/vit.ts';
import { ResNet } from '../models/archs/resnet.ts';
import { VGG, VGG_CFGS } from '../models/archs/vgg.ts';
import { MobileNetV2 } from '../models/archs/mobilenet_v2.ts';
import { EfficientNet, efficientnetBConf } from '../models/archs/efficientnet.ts';
import { ConvNeXt, CONVNEXT_TINY_SETTING } from '../models/archs/convnext.ts';
import { SwinTransformer } from '../models/archs/swin.ts';
import { MobileNetV3, mobilenetV3Setting } from '../models/archs/mobilenet_v3.ts';
import { fixture, FIXTURES, relErr, weightsFile } from './helpers/fixtures.ts';

const cpu = E.cpuBackend();
// float64 weights are the float32 numbers, so float64 forwards agree with torch's float64 model up to
// rounding order (observed ≤ 4e-14 relative to max |ref| here).
const F64_TOL = 1e-11;

/** Forward pass on a fixture's `input`, capturing the outputs of `layers`. */
function run(model: Module, file: ReturnType<typeof fixture>['file'], layers: readonly string[]) {
  const x = E.tensor(file.float32('input'), file.entry('input').shape, cpu);
  const acts = new Map<string, E.Tensor>();
  const hooks = new Map(layers.map((l) => [l, (out: E.Tensor) => void acts.set(l, out)] as const));
  const y = withForwardHooks(hooks, () => model.call(x));
  return { y, acts };
}

/** name → "d0,d1,…" of a model's declared tensors. */
function shapesOf(m: Module): Map<string, number[]> {
  return new Map([...m.tensors()].map(([n, s]) => [n, s.shape]));
}

/** A WeightShapes over a name → shape map (a weights file without values). */
function weightShapes(shapes: Map<string, number[]>): WeightShapes {
  return { names: () => [...shapes.keys()], has: (n) => shapes.has(n), shape: (n) => shapes.get(n)! };
}

const FAMILY = ['mobilenet_v3_large', 'mobilenet_v3_small', 'lraspp', 'deeplabv3_resnet50', 'deeplabv3_mobilenet', 'fcn_resnet50', 'vit_b16', 'deit_distilled_timm', 'resnet18_1ch'];

describe('reduced torchvision models loaded by registered name (arch_* fixtures)', () => {
  for (const name of FAMILY) {
    it(`arch_${name}: widths and classes from the file; float64 logits and layer outputs match PyTorch`, async () => {
      const ref = fixture(`arch_${name}`);
      const model = await loadModel(ref.meta.config.arch, `${FIXTURES}${ref.meta.weights_file}`);
      expect(model.numClasses).toBe(ref.meta.config.numClasses);
      expect(model.inChannels).toBe(ref.meta.config.inChannels ?? 3);
      const { y, acts } = run(model.module, ref.file, ref.meta.layers);
      expect(y.shape).toEqual(ref.file.entry('logits64').shape);
      expect(relErr(y.valuesSync(), ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
      expect(relErr(y.valuesSync(), ref.file.float32('logits'))).toBeLessThan(1e-4);
      for (const layer of ref.meta.layers as string[]) {
        const a = acts.get(layer);
        expect(a, `layer ${layer} was not called`).toBeDefined();
        expect(a!.shape).toEqual(ref.file.entry(`A/${layer}`).shape);
        expect(relErr(a!.valuesSync(), ref.file.float64(`A/${layer}`)), layer).toBeLessThan(F64_TOL);
      }
      model.module.disposeParameters();
    });
  }

  it('segmentation models output the class map at the input size; the aux head is loaded (checked) but never run', async () => {
    const ref = fixture('arch_deeplabv3_resnet50');
    const model = await loadModel('deeplabv3_resnet50', `${FIXTURES}${ref.meta.weights_file}`);
    expect(model.arch.task).toBe('segmentation');
    const aux = (names: string[]) => names.filter((n) => n.startsWith('aux_classifier.') && !n.endsWith('num_batches_tracked')).sort();
    const declared = aux([...model.module.tensors()].map(([n]) => n));
    expect(declared.length).toBe(7); // 3×3 conv, BN (4 tensors), 1×1 conv and its bias
    expect(declared).toEqual(aux(weightsFile(ref.meta.weights_file).names));
    const { acts } = run(model.module, ref.file, ['aux_classifier', 'backbone.layer3', 'classifier']);
    expect(acts.has('aux_classifier')).toBe(false);
    expect(acts.get('classifier')!.shape).toEqual([1, 6, 4, 5]); // output stride 8, before the resize to 32×40
    // Without the aux tensors, the same file loads without the aux head (torchvision aux_loss=False).
    const source = stateDictFromSafetensors(weightsFile(ref.meta.weights_file));
    const noAux = filtered(source, (n) => !n.startsWith('aux_classifier.'));
    const plain = getArchitecture('deeplabv3_resnet50').build(undefined, noAux);
    plain.loadStateDict(noAux);
    expect(relErr(plain.call(E.tensor(ref.file.float32('input'), ref.file.entry('input').shape, cpu)).valuesSync(), ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
    model.module.disposeParameters();
    plain.disposeParameters();
  });

  it('one-channel ResNet-18 (pytorch-grad-cam test_one_channel): conv1 takes one channel, also at full size', async () => {
    const ref = fixture('arch_resnet18_1ch');
    const model = await loadModel('resnet18', `${FIXTURES}${ref.meta.weights_file}`);
    expect(model.inChannels).toBe(1);
    expect(shapesOf(model.module).get('conv1.weight')).toEqual([4, 1, 7, 7]);
    const full = shapesOf(getArchitecture('resnet18').build());
    full.set('conv1.weight', [64, 1, 7, 7]);
    const built = getArchitecture('resnet18').build(undefined, weightShapes(full));
    expect(built.inChannels).toBe(1);
    expect(shapesOf(built)).toEqual(full);
    model.module.disposeParameters();
  });
});

function filtered(source: StateDictSource, keep: (name: string) => boolean): StateDictSource {
  return { ...source, names: () => source.names().filter(keep), has: (n) => keep(n) && source.has(n) };
}

describe('vision transformers', () => {
  it('timm-named ViT-B/16 loads the torchvision fixture through torchvisionToTimmVitName and computes the same function', () => {
    const ref = fixture('arch_vit_b16');
    const source = stateDictFromSafetensors(weightsFile(ref.meta.weights_file));
    const back = new Map(source.names().map((n) => [torchvisionToTimmVitName(n), n]));
    const renamed: StateDictSource = { names: () => [...back.keys()], has: (n) => back.has(n), shape: (n) => source.shape(back.get(n)!), values: (n) => source.values(back.get(n)!) };
    const model = getArchitecture('vit_base_patch16_224').build(undefined, renamed);
    model.loadStateDict(renamed); // strict
    const { y, acts } = run(model, ref.file, ['blocks.2.norm1', 'norm', 'blocks.1']);
    expect(relErr(y.valuesSync(), ref.file.float64('logits64'))).toBeLessThan(F64_TOL);
    expect(relErr(acts.get('blocks.2.norm1')!.valuesSync(), ref.file.float64('A/encoder.layers.encoder_layer_2.ln_1'))).toBeLessThan(F64_TOL);
    expect(relErr(acts.get('norm')!.valuesSync(), ref.file.float64('A/encoder.ln'))).toBeLessThan(F64_TOL);
    expect(relErr(acts.get('blocks.1')!.valuesSync(), ref.file.float64('A/encoder.layers.encoder_layer_1'))).toBeLessThan(F64_TOL);
    model.disposeParameters();
  });

  it('sizes from the file (depth 3, width 36, MLP 72, 64×64 input), default layer and token grid specialised to them', async () => {
    const ref = fixture('arch_vit_b16');
    const model = await loadModel('vit_b_16', `${FIXTURES}${ref.meta.weights_file}`);
    const vit = model.module as unknown as VisionTransformer;
    expect(vit.config).toMatchObject({ numLayers: 3, hiddenDim: 36, mlpDim: 72, imageSize: 64, patchSize: 16, numHeads: 12 });
    expect(getArchitecture('vit_b_16').defaultLayer).toBe('encoder.layers.encoder_layer_11.ln_1');
    expect(model.arch.defaultLayer).toBe('encoder.layers.encoder_layer_2.ln_1');
    expect(model.arch.preprocessing).toMatchObject({ resize: 64, crop: [64, 64], inputSize: [64, 64] });
    expect(model.arch.tokens?.(model.arch.defaultLayer)).toEqual({ prefixTokens: 1, grid: [4, 4] });
    expect(model.arch.tokens?.('conv_proj')).toBeNull();
    // torchvision asserts the input size; so does the port, in one line.
    const x48 = E.zeros([1, 3, 48, 48], cpu);
    expect(() => model.module.call(x48)).toThrow(/ViT: input gives a 3×3 patch grid; this model takes 64×64 images/);
    model.module.disposeParameters();
  });

  it("the token layout drops the class token and lays the patch tokens out as pytorch-grad-cam's reshape_transform, and back", async () => {
    const ref = fixture('arch_vit_b16');
    const model = await loadModel('vit_b_16', `${FIXTURES}${ref.meta.weights_file}`);
    const layer = model.arch.defaultLayer;
    const A = run(model.module, ref.file, [layer]).acts.get(layer)!;
    const layout = activationLayout(model.arch, layer);
    expect(layout.kind).toBe('tokens');
    const grid = layout.toNCHW(A);
    expect(grid.shape).toEqual([2, 36, 4, 4]);
    // reshape_transform: tensor[:, 1:, :].reshape(B, h, w, C), then channels first.
    const a = A.valuesSync();
    const g = grid.valuesSync();
    for (const [b, c, i, j] of [[0, 0, 0, 0], [1, 35, 3, 2], [0, 17, 2, 3], [1, 5, 0, 1]]) {
      expect(g[((b * 36 + c) * 4 + i) * 4 + j]).toBe(a[(b * 17 + 1 + i * 4 + j) * 36 + c]);
    }
    expect(layout.toNative(grid, A).valuesSync()).toEqual(a);
    expect(() => layout.toNCHW(E.zeros([2, 16, 36], cpu))).toThrow(/not \(B, 1 \+ 4·4 tokens, C\)/);
    // Distilled DeiT: two prefix tokens; timm's patch_embed gives the patch tokens alone.
    const deit = await loadModel('deit_tiny_distilled_patch16_224', `${FIXTURES}arch_deit_distilled_timm.weights.safetensors`);
    expect(deit.arch.tokens?.('blocks.1.norm1')).toEqual({ prefixTokens: 2, grid: [4, 4] });
    expect(deit.arch.tokens?.('patch_embed')).toEqual({ prefixTokens: 0, grid: [4, 4] });
    expect(activationLayout(getArchitecture('swin_t'), 'norm').kind).toBe('NHWC');
    expect(activationLayout(getArchitecture('resnet50'), 'layer4').kind).toBe('NCHW');
    model.module.disposeParameters();
    deit.module.disposeParameters();
  });
});

describe('registered family architectures at full size', () => {
  const facts = JSON.parse(readFileSync(`${FIXTURES}arch_full_size_family.json`, 'utf8')).architectures as Record<
    string,
    { num_parameters: number; state_dict_entries: number; state_dict_elements: number; state_dict_sha256: string; state_dict?: string[] }
  >;
  const vitLast = (n: number) => `encoder.layers.encoder_layer_${n}.ln_1`;
  const expected: Record<string, [string, readonly string[]]> = {
    mobilenet_v3_large: ['features.16', IMAGENET_CLASSES], mobilenet_v3_small: ['features.12', IMAGENET_CLASSES],
    lraspp_mobilenet_v3_large: ['backbone.16', VOC_CLASSES], deeplabv3_mobilenet_v3_large: ['backbone.16', VOC_CLASSES],
    deeplabv3_resnet50: ['backbone.layer4', VOC_CLASSES], fcn_resnet50: ['backbone.layer4', VOC_CLASSES],
    vit_b_16: [vitLast(11), IMAGENET_CLASSES], vit_b_32: [vitLast(11), IMAGENET_CLASSES], vit_l_16: [vitLast(23), IMAGENET_CLASSES],
    vit_l_32: [vitLast(23), IMAGENET_CLASSES], vit_h_14: [vitLast(31), IMAGENET_CLASSES],
    vit_tiny_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES], vit_small_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES],
    vit_base_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES], vit_base_patch32_224: ['blocks.11.norm1', IMAGENET_CLASSES],
    vit_large_patch16_224: ['blocks.23.norm1', IMAGENET_CLASSES],
    deit_tiny_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES], deit_small_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES],
    deit_base_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES], deit_tiny_distilled_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES],
    deit_small_distilled_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES], deit_base_distilled_patch16_224: ['blocks.11.norm1', IMAGENET_CLASSES],
  };

  function expectFacts(m: Module, ref: (typeof facts)[string]): void {
    const lines: string[] = [];
    let params = 0;
    let elements = 0;
    for (const [n, spec] of m.tensors()) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      elements += size;
      if (!n.endsWith('running_mean') && !n.endsWith('running_var')) params += size; // BN statistics are buffers
      lines.push(`${n} ${spec.shape.join(',')}`);
    }
    lines.sort();
    expect(params).toBe(ref.num_parameters);
    expect(elements).toBe(ref.state_dict_elements);
    expect(lines.length).toBe(ref.state_dict_entries);
    if (ref.state_dict) expect(lines).toEqual(ref.state_dict);
    expect(createHash('sha256').update(lines.join('\n')).digest('hex')).toBe(ref.state_dict_sha256);
  }

  it('the reference counts are the ones torchvision and timm document', () => {
    expect(facts.mobilenet_v3_large.num_parameters).toBe(5_483_032);
    expect(facts.lraspp_mobilenet_v3_large.num_parameters).toBe(3_221_538);
    expect(facts['deeplabv3_resnet50+aux'].num_parameters).toBe(42_004_074);
    expect(facts['fcn_resnet50+aux'].num_parameters).toBe(35_322_218);
    expect(facts.vit_b_16.num_parameters).toBe(86_567_656);
    expect(facts.vit_l_16.num_parameters).toBe(304_326_632);
    expect(facts.deit_tiny_patch16_224.num_parameters).toBe(5_717_416);
    expect(facts.deit_base_distilled_patch16_224.num_parameters).toBe(87_338_192);
  });

  for (const [name, [layer, labels]] of Object.entries(expected)) {
    it(`${name}: parameter count, state_dict names and shapes equal the reference; default layer ${layer}`, () => {
      const arch = getArchitecture(name);
      expect(arch.defaultLayer).toBe(layer);
      expect(arch.labels).toBe(labels);
      expect(arch.task ?? 'classification').toBe(labels === VOC_CLASSES ? 'segmentation' : 'classification');
      const module = arch.build();
      expectFacts(module, facts[name]);
      expect(module.get(layer)).toBeDefined();
      expect([module.numClasses, module.inChannels]).toEqual([labels.length, 3]);
    });
  }

  for (const name of ['deeplabv3_resnet50', 'deeplabv3_mobilenet_v3_large', 'fcn_resnet50']) {
    it(`${name} with the aux head (aux_loss=True, as the pretrained checkpoints): built from the file's shapes, equal to torchvision's`, () => {
      const ref = facts[`${name}+aux`];
      const shapes = new Map(ref.state_dict!.map((line) => {
        const [n, dims] = line.split(' ');
        return [n, dims.split(',').map(Number)] as [string, number[]];
      }));
      expectFacts(getArchitecture(name).build(undefined, weightShapes(shapes)), ref);
    });
  }

  it('preprocessing: segmentation resize 520 without crop; ViT per weight set; timm ViT mean/std 0.5, DeiT ImageNet', () => {
    expect(getArchitecture('deeplabv3_resnet50').preprocessing).toMatchObject({ resize: 520 });
    expect(getArchitecture('deeplabv3_resnet50').preprocessing.crop).toBeUndefined();
    expect(getArchitecture('vit_b_16').preprocessing).toMatchObject({ resize: 256, crop: [224, 224] });
    expect(getArchitecture('vit_l_16').preprocessing).toMatchObject({ resize: 242, crop: [224, 224] });
    expect(getArchitecture('vit_base_patch16_224').preprocessing).toMatchObject({ resize: 248, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(getArchitecture('deit_small_patch16_224').preprocessing).toMatchObject({ resize: 248, mean: [0.485, 0.456, 0.406] });
    expect(getArchitecture('mobilenet_v3_small').preprocessing).toMatchObject({ resize: 256, crop: [224, 224] });
    expect(VOC_CLASSES.length).toBe(21);
    expect([VOC_CLASSES[0], VOC_CLASSES[15], VOC_CLASSES[20]]).toEqual(['__background__', 'person', 'tvmonitor']);
  });
});

describe('shape hyper-parameters from weights, every registered architecture', () => {
  /** The first convolution taking the image: the first 4-D tensor whose second axis is the 3 input channels. */
  const firstConv = (shapes: Map<string, number[]>) => [...shapes].find(([, s]) => s.length === 4 && s[1] === 3)![0];

  for (const name of architectureNames()) {
    it(`${name}: one input channel and 7 classes are read back from the tensors' shapes`, () => {
      const arch = getArchitecture(name);
      const shapes = shapesOf(arch.build(7));
      const conv = firstConv(shapes);
      shapes.set(conv, [shapes.get(conv)![0], 1, ...shapes.get(conv)!.slice(2)]);
      const built = arch.build(undefined, weightShapes(shapes));
      expect([built.numClasses, built.inChannels]).toEqual([7, 1]);
      expect(shapesOf(built)).toEqual(shapes);
    });
  }

  // Models with other widths than the registered name, built with the classes' own configurations.
  const variants: [string, () => Network][] = [
    ['resnext50_32x4d', () => new ResNet({ block: 'bottleneck', layers: [3, 4, 6, 3], groups: 8, widthPerGroup: 4, planes: [16, 32, 64, 128], stemWidth: 24, numClasses: 5 })],
    ['resnet50', () => new ResNet({ block: 'bottleneck', layers: [3, 4, 6, 3], planes: [8, 16, 24, 40], stemWidth: 8, numClasses: 5 })],
    ['vgg16_bn', () => new VGG({ cfg: VGG_CFGS.D.map((v) => (v === 'M' ? v : v / 8)), batchNorm: true, hidden: 64, numClasses: 5 })],
    ['mobilenet_v2', () => new MobileNetV2({ widthMult: 0.35, numClasses: 5 })],
    ['efficientnet_b0', () => new EfficientNet({ widthMult: 0.5, numClasses: 5 })],
    ['convnext_tiny', () => new ConvNeXt(CONVNEXT_TINY_SETTING.map((c) => ({ ...c, inputChannels: c.inputChannels / 4, outChannels: c.outChannels && c.outChannels / 4 })), 5)],
    ['swin_t', () => new SwinTransformer({ naming: 'torchvision', patchSize: 4, embedDim: 48, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], windowSize: 7, mlpRatio: 2, numClasses: 5 })],
    ['swin_tiny_patch4_window7_224', () => new SwinTransformer({ naming: 'timm', patchSize: 4, embedDim: 48, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], windowSize: 7, numClasses: 5 })],
    ['mobilenet_v3_large', () => new MobileNetV3(mobilenetV3Setting('mobilenet_v3_large', { widthMult: 0.75 }), 5)],
    ['mobilenet_v3_small', () => new MobileNetV3(mobilenetV3Setting('mobilenet_v3_small', { widthMult: 0.5, reducedTail: true }), 5)],
    ['vit_l_16', () => new VisionTransformer({ naming: 'torchvision', imageSize: 384, patchSize: 16, numLayers: 6, numHeads: 16, hiddenDim: 512, mlpDim: 1024, numClasses: 5 })],
    ['deit_small_patch16_224', () => new VisionTransformer({ naming: 'timm', imageSize: 224, patchSize: 16, numLayers: 4, numHeads: 6, hiddenDim: 96, mlpDim: 384, numClasses: 5, distilled: true })],
  ];
  for (const [name, make] of variants) {
    it(`${name}: a model of other widths is rebuilt exactly from its tensors' shapes`, () => {
      const variant = make();
      const shapes = shapesOf(variant);
      expect(shapes).not.toEqual(shapesOf(getArchitecture(name).build(5)));
      const built = getArchitecture(name).build(undefined, weightShapes(shapes));
      expect(shapesOf(built)).toEqual(shapes);
      expect(built.numClasses).toBe(5);
    });
  }
});
