// torchvision 0.14 semantic segmentation networks (torchvision/models/segmentation) with their exact
// module names, so `state_dict`s load unchanged and CAM layers are named as researchers name them:
//
//   lraspp_mobilenet_v3_large     backbone.0…16 = mobilenet_v3_large(dilated=True).features; classifier =
//                                 LRASPPHead: cbr (1×1 conv, BN, ReLU), scale (avgpool, 1×1 conv, Sigmoid),
//                                 low_classifier, high_classifier. It taps `low` = backbone.4 (stride 8) and
//                                 `high` = backbone.16 (stride 16).
//   deeplabv3_resnet50            backbone = resnet50(replace_stride_with_dilation=[False, True, True]) up to
//   deeplabv3_mobilenet_v3_large  layer4 (backbone.conv1 … backbone.layer4), or the dilated MobileNetV3
//                                 features; classifier = DeepLabHead: 0 = ASPP (convs.0 1×1, convs.1…3 3×3 at
//                                 rates 12/24/36, convs.4 pooling branch; project), 1 3×3 conv, 2 BN, 3 ReLU,
//                                 4 1×1 conv to the classes.
//   fcn_resnet50                  the same ResNet-50 backbone; classifier = FCNHead (3×3 conv to in/4, BN,
//                                 ReLU, Dropout, 1×1 conv).
//
// The output is torchvision's `model(x)['out']`: the classifier's map resized bilinearly
// (align_corners=False) to the input's size, (B, classes, H, W). Pretrained DeepLabV3/FCN checkpoints also
// hold an auxiliary FCNHead (`aux_classifier.*`, on layer3 or on MobileNetV3 block 4) that only training
// uses: when a file has it, the head is declared so its names and shapes are checked by strict loading,
// and it is never run (its layers are never called). Widths, input channels and classes come from the
// weights file. BatchNorm is eval mode, Dropout the identity.

import * as E from '../../engine/index.ts';
import type { Tensor } from '../../engine/index.ts';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, ModuleList, NamedSequential, ReLU, Sequential, Sigmoid } from '../layers.ts';
import { Module } from '../module.ts';
import { IMAGENET_MEAN, IMAGENET_STD, registerArchitecture, type Network, type Preprocessing, type WeightShapes } from '../registry.ts';
import { mobilenetV3Features, mobilenetV3FromWeights, mobilenetV3Setting, mobilenetV3Stages } from './mobilenet_v3.ts';
import { RESNET_CONFIGS, resnetConfig, resnetFeatures } from './resnet.ts';
import { ShapeReader } from './shapes.ts';

/** The 21 Pascal VOC categories of torchvision's COCO_WITH_VOC_LABELS_V1 segmentation weights. */
export const VOC_CLASSES: readonly string[] = Object.freeze([
  '__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
]);

/** torchvision `SemanticSegmentation(resize_size=520)`: shorter side to 520, no crop, ImageNet mean/std. */
const SEGMENTATION_PREPROCESSING: Preprocessing = { resize: 520, mean: IMAGENET_MEAN, std: IMAGENET_STD, inputSize: [520, 520] };

/** Bilinear (align_corners=False) resize of the last two axes to those of `like`, as torchvision's F.interpolate calls. */
const resizeLike = (x: Tensor, like: Tensor) => E.resizeBilinear(x, [like.shape[like.rank - 2], like.shape[like.rank - 1]]);

// ---------------------------------------------------------------------------------------------------
// Heads

class LRASPPHead extends Module {
  private readonly cbr: Sequential;
  private readonly scale: Sequential;
  private readonly lowClassifier: Conv2d;
  private readonly highClassifier: Conv2d;

  constructor(low: number, high: number, numClasses: number, inter: number) {
    super();
    this.cbr = this.add('cbr', new Sequential(new Conv2d(high, inter, 1, { bias: false }), new BatchNorm2d(inter), ReLU()));
    this.scale = this.add('scale', new Sequential(AdaptiveAvgPool2d(1), new Conv2d(high, inter, 1, { bias: false }), Sigmoid()));
    this.lowClassifier = this.add('low_classifier', new Conv2d(low, numClasses, 1));
    this.highClassifier = this.add('high_classifier', new Conv2d(inter, numClasses, 1));
  }

  forward(low: Tensor, high: Tensor): Tensor {
    const x = resizeLike(E.mul(this.cbr.call(high), this.scale.call(high)), low);
    return E.add(this.lowClassifier.call(low), this.highClassifier.call(x));
  }
}

/** The pooling branch of ASPP: global average, 1×1 conv, BN, ReLU, then back to the feature size. */
class ASPPPooling extends Sequential {
  constructor(inChannels: number, channels: number) {
    super(AdaptiveAvgPool2d(1), new Conv2d(inChannels, channels, 1, { bias: false }), new BatchNorm2d(channels), ReLU());
  }

  override forward(x: Tensor): Tensor {
    return resizeLike(super.forward(x), x);
  }
}

class ASPP extends Module {
  private readonly convs: ModuleList;
  private readonly project: Sequential;

  constructor(inChannels: number, rates: readonly number[], channels: number) {
    super();
    const branch = (k: number, rate = 1) => new Sequential(new Conv2d(inChannels, channels, k, { padding: k === 3 ? rate : 0, dilation: rate, bias: false }), new BatchNorm2d(channels), ReLU());
    const branches = [branch(1), ...rates.map((r) => branch(3, r)), new ASPPPooling(inChannels, channels)];
    this.convs = this.add('convs', new ModuleList(branches));
    this.project = this.add('project', new Sequential(new Conv2d(branches.length * channels, channels, 1, { bias: false }), new BatchNorm2d(channels), ReLU(), Identity('Dropout')));
  }

  forward(x: Tensor): Tensor {
    return this.project.call(E.concat(this.convs.items.map((m) => m.call(x)), 1));
  }
}

const deepLabHead = (inChannels: number, numClasses: number, channels: number) =>
  new Sequential(
    new ASPP(inChannels, [12, 24, 36], channels),
    new Conv2d(channels, channels, 3, { padding: 1, bias: false }),
    new BatchNorm2d(channels),
    ReLU(),
    new Conv2d(channels, numClasses, 1),
  );

const fcnHead = (inChannels: number, numClasses: number, inter: number) =>
  new Sequential(new Conv2d(inChannels, inter, 3, { padding: 1, bias: false }), new BatchNorm2d(inter), ReLU(), Identity('Dropout'), new Conv2d(inter, numClasses, 1));

// ---------------------------------------------------------------------------------------------------
// Models

/** A backbone as torchvision's IntermediateLayerGetter keeps it: the children up to the last tapped one. */
export interface Backbone {
  layers: [string, Module][];
  inChannels: number;
  /** Output width of the last child (the `out` features). */
  outChannels: number;
}

/** torchvision's LRASPP: backbone taps at `low` and `high`, LRASPPHead, resize to the input. */
export class LRASPP extends Module {
  private readonly backbone: NamedSequential;
  private readonly classifier: LRASPPHead;
  readonly inChannels: number;

  private readonly taps: [string, string];

  constructor(backbone: Backbone, low: { name: string; channels: number }, readonly numClasses: number, inter: number) {
    super();
    this.inChannels = backbone.inChannels;
    this.taps = [low.name, backbone.layers[backbone.layers.length - 1][0]];
    this.backbone = this.add('backbone', new NamedSequential(backbone.layers));
    this.classifier = this.add('classifier', new LRASPPHead(low.channels, backbone.outChannels, numClasses, inter));
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    const [low, high] = this.backbone.taps(x, this.taps);
    return resizeLike(this.classifier.call(low, high), x);
  }
}

/** torchvision's _SimpleSegmentationModel (DeepLabV3, FCN): backbone, classifier, resize to the input. */
export class SimpleSegmentationModel extends Module {
  private readonly backbone: NamedSequential;
  private readonly classifier: Module;
  readonly inChannels: number;

  /** `auxClassifier`: declared (strict loading checks its weights) and never run, as in eval-only use. */
  constructor(backbone: Backbone, classifier: Module, auxClassifier: Module | null, readonly numClasses: number) {
    super();
    this.inChannels = backbone.inChannels;
    this.backbone = this.add('backbone', new NamedSequential(backbone.layers));
    this.classifier = this.add('classifier', classifier);
    if (auxClassifier) this.add('aux_classifier', auxClassifier);
    this.finalize();
  }

  forward(x: Tensor): Tensor {
    return resizeLike(this.classifier.call(this.backbone.call(x)), x);
  }
}

// ---------------------------------------------------------------------------------------------------
// Backbones and the registered builders, with widths and classes from the weights

interface SegmentationBackbone extends Backbone {
  /**
   * The stride-8 child torchvision taps besides the last one: the aux head's input (ResNet layer3,
   * MobileNetV3 stage C2 = block 4), which is also LR-ASPP's `low` features.
   */
  lowTap: { name: string; channels: number };
}

function resnet50Backbone(weights: WeightShapes | undefined): SegmentationBackbone {
  const cfg = resnetConfig({ ...RESNET_CONFIGS.resnet50, replaceStrideWithDilation: [false, true, true] }, weights, 'backbone.');
  const { layers, outChannels } = resnetFeatures(cfg);
  return { layers, inChannels: cfg.inChannels!, outChannels, lowTap: { name: 'layer3', channels: cfg.planes![2] * 4 } };
}

function mobilenetV3Backbone(weights: WeightShapes | undefined): SegmentationBackbone {
  const setting = mobilenetV3FromWeights(mobilenetV3Setting('mobilenet_v3_large', { dilated: true }), weights, 'backbone.');
  const features = mobilenetV3Features(setting);
  const stages = mobilenetV3Stages(setting);
  const low = stages[stages.length - 4];
  const layers = features.names.map((n, i): [string, Module] => [n, features.layers[i]]);
  return { layers, inChannels: setting.inChannels, outChannels: setting.lastConvChannels, lowTap: { name: String(low), channels: setting.blocks[low - 1].outChannels } };
}

type Head = 'lraspp' | 'deeplabv3' | 'fcn';

function buildSegmentation(head: Head, backboneOf: (w: WeightShapes | undefined) => SegmentationBackbone) {
  return (numClasses: number | undefined, weights: WeightShapes | undefined): Network => {
    const w = new ShapeReader(weights);
    const b = backboneOf(weights);
    if (head === 'lraspp') {
      const classes = numClasses ?? w.dim('classifier.low_classifier.weight', 4, 0, 21);
      return new LRASPP(b, b.lowTap, classes, w.dim('classifier.cbr.0.weight', 4, 0, 128));
    }
    const classes = numClasses ?? w.dim('classifier.4.weight', 4, 0, 21);
    const classifier =
      head === 'deeplabv3'
        ? deepLabHead(b.outChannels, classes, w.dim('classifier.0.convs.0.0.weight', 4, 0, 256))
        : fcnHead(b.outChannels, classes, w.dim('classifier.0.weight', 4, 0, Math.floor(b.outChannels / 4)));
    const auxIn = b.lowTap.channels;
    const aux = w.hasAny('aux_classifier.') ? fcnHead(auxIn, classes, w.dim('aux_classifier.0.weight', 4, 0, Math.floor(auxIn / 4))) : null;
    return new SimpleSegmentationModel(b, classifier, aux, classes);
  };
}

const MODELS: [string, Head, (w: WeightShapes | undefined) => SegmentationBackbone, string][] = [
  ['lraspp_mobilenet_v3_large', 'lraspp', mobilenetV3Backbone, 'backbone.16'],
  ['deeplabv3_mobilenet_v3_large', 'deeplabv3', mobilenetV3Backbone, 'backbone.16'],
  ['deeplabv3_resnet50', 'deeplabv3', resnet50Backbone, 'backbone.layer4'],
  ['fcn_resnet50', 'fcn', resnet50Backbone, 'backbone.layer4'],
];

for (const [name, head, backbone, defaultLayer] of MODELS) {
  registerArchitecture({
    name,
    build: buildSegmentation(head, backbone),
    // pytorch-grad-cam's segmentation tutorial targets the backbone's last layer (`backbone.layer4`).
    defaultLayer,
    preprocessing: SEGMENTATION_PREPROCESSING,
    labels: VOC_CLASSES,
    task: 'segmentation',
  });
}
