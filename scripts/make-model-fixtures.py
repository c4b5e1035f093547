#!/usr/bin/env python3
"""Reference fixtures for bilinear resizing and the MobileNetV3, segmentation and ViT architectures.

Not a dependency of the project or of CI: it only produces committed files in test/fixtures:
    resize_bilinear.{safetensors,json}        F.interpolate(mode='bilinear') in float64, several sizes, both
                                              align_corners settings
    arch_<name>.{safetensors,json}            input, logits (F32), logits64 (F64), A/<layer> (F64)
    arch_<name>.weights.safetensors           the state_dict (torch names, F32)
    arch_full_size_family.json                full-size parameter counts and state_dict name digests
    seg_lraspp_public.{safetensors,json}      a subset of the shared LR-ASPP segmentation fixture
    seg_lraspp_public.weights.safetensors     its weights, copied unchanged

Run with Debian's PyTorch 1.13 / torchvision 0.14 (python3-torch, python3-torchvision):
    /usr/bin/python3 scripts/make-model-fixtures.py [--shared ../shared/fixtures] [--only NAME,...]

Reduced models are built with torchvision's own classes and builders (smaller widths, depths and inputs):
random weights (BatchNorm affine parameters random, running statistics calibrated on random batches, the
final classifier rescaled so that logits have std ~3 — torchvision zero-initialises the ViT head, so it is
redrawn), a seeded random input, and references from the same model in float32 and float64. Segmentation
models give `model(x)['out']`. The helpers shared with scripts/make-arch-fixtures.py (safetensors writer,
random initialisation, state_dict digests) are imported from it.

timm is not installed here (no PyPI): `TimmViT` below transcribes the module names and forward pass of timm
1.0's VisionTransformer / VisionTransformerDistilled (huggingface/pytorch-image-models, timm/models/
vision_transformer.py and deit.py, Apache-2.0); the script checks that it computes torchvision's function
when torchvision's state_dict is renamed onto it (the mapping models/archs/vit.ts implements).
"""

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead
from torchvision.models.segmentation.lraspp import LRASPP
from torchvision.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures')

_spec = importlib.util.spec_from_file_location('arch_fixtures', os.path.join(HERE, 'make-arch-fixtures.py'))
arch_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(arch_fixtures)
write_safetensors = arch_fixtures.write_safetensors
randomize = arch_fixtures.randomize
state_dict_f32 = arch_fixtures.state_dict_f32
leaf_modules = arch_fixtures.leaf_modules
sd_digest = arch_fixtures.sd_digest
TimmMlp = arch_fixtures.TimmMlp  # the same in timm's ViT and Swin

VERSIONS = {'torch': torch.__version__, 'torchvision': torchvision.__version__}


# ---------------------------------------------------------------------------------------------------
# Bilinear resizing

RESIZE_CASES = [
    # (name, input shape, output size, align_corners)
    ('up_mixed', (2, 3, 5, 7), (9, 4), False),
    ('up_mixed_ac', (2, 3, 5, 7), (9, 4), True),
    ('same_size', (1, 2, 5, 7), (5, 7), False),
    ('from_1x1', (1, 2, 1, 1), (6, 5), False),
    ('down_fractional', (1, 1, 8, 6), (3, 5), False),
    ('down_fractional_ac', (1, 1, 8, 6), (3, 5), True),
    ('seg_x16', (1, 3, 4, 5), (64, 80), False),
    ('to_1x1_ac', (1, 2, 3, 3), (1, 1), True),
    ('to_1x1', (1, 2, 3, 4), (1, 1), False),
    ('up_2x2', (1, 1, 2, 2), (7, 3), False),
]


def make_resize_fixture():
    gen = torch.Generator().manual_seed(3001)
    tensors = {}
    cases = []
    for name, shape, size, ac in RESIZE_CASES:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        y = F.interpolate(x, size=size, mode='bilinear', align_corners=ac)
        tensors[f'x/{name}'] = x
        tensors[f'y/{name}'] = y
        cases.append({'name': name, 'input': list(shape), 'size': list(size), 'align_corners': ac})
    write_safetensors(os.path.join(OUT, 'resize_bilinear.safetensors'), tensors)
    write_json('resize_bilinear.json', {
        'fixture': 'resize_bilinear', 'made_by': 'scripts/make-model-fixtures.py', 'versions': VERSIONS,
        'description': "torch.nn.functional.interpolate(x, size=size, mode='bilinear', align_corners=...) in float64; "
                       'x/<case> is the input, y/<case> the output',
        'cases': cases,
    })
    print(f'resize_bilinear: {len(cases)} cases')


# ---------------------------------------------------------------------------------------------------
# Reduced torchvision models

class ReducedResNet(ResNet):
    """torchvision ResNet with configurable input channels, stem width and stage planes, and torchvision's
    replace_stride_with_dilation (the same modules, forward and names as torchvision's ResNet)."""

    def __init__(self, block, layers, planes, stem_width, num_classes, in_channels=3, dilation=(False, False, False)):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem_width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2, dilate=dilation[0])
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2, dilate=dilation[1])
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2, dilate=dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')


def mobilenet_v3_features(width_mult, dilated):
    """mobilenet_v3_large(dilated=…).features at a width multiplier, and torchvision's stage indices."""
    setting, last_channel = _mobilenet_v3_conf('mobilenet_v3_large', width_mult=width_mult, dilated=dilated)
    features = MobileNetV3(setting, last_channel).features
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, '_is_cn', False)] + [len(features) - 1]
    return features, stages


def deeplab_head(in_channels, num_classes, channels):
    """torchvision DeepLabHead with the ASPP width (256 there) as a parameter: same modules and names."""
    return nn.Sequential(
        ASPP(in_channels, [12, 24, 36], out_channels=channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, num_classes, 1),
    )


def reduced_resnet50_dilated():
    return ReducedResNet(Bottleneck, [3, 4, 6, 3], planes=[2, 4, 8, 16], stem_width=4, num_classes=10, dilation=(False, True, True))


# ---------------------------------------------------------------------------------------------------
# timm ViT / DeiT (hand transcription of timm 1.0's names and forward)

class TimmAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(0.)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = self.q_norm(q) * self.scale
        attn = (q @ self.k_norm(k).transpose(-2, -1)).softmax(dim=-1)
        x = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class TimmBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, num_heads)
        self.ls1 = nn.Identity()
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TimmMlp(dim, mlp_hidden)
        self.ls2 = nn.Identity()
        self.drop_path2 = nn.Identity()

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class TimmPatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.norm = nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class TimmViT(nn.Module):
    """timm VisionTransformer (class token, learned position embedding including the prefix tokens, 'token'
    pooling); with distilled=True, timm's VisionTransformerDistilled in eval mode (dist_token, head_dist,
    logits = (head(x[:, 0]) + head_dist(x[:, 1])) / 2)."""

    def __init__(self, img_size=224, patch_size=16, num_classes=1000, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, distilled=False):
        super().__init__()
        self.patch_embed = TimmPatchEmbed(patch_size, embed_dim)
        prefix = 2 if distilled else 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + prefix, embed_dim))
        self.pos_drop = nn.Dropout(0.)
        self.patch_drop = nn.Identity()
        self.norm_pre = nn.Identity()
        self.blocks = nn.Sequential(*[TimmBlock(embed_dim, num_heads, int(embed_dim * mlp_ratio)) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.Identity()
        self.head_drop = nn.Dropout(0.)
        self.head = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if distilled else None

    def forward(self, x):
        x = self.patch_embed(x)
        tokens = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = self.pos_drop(torch.cat(tokens + [x], dim=1) + self.pos_embed)
        x = self.norm(self.blocks(self.norm_pre(self.patch_drop(x))))
        out = self.head(self.head_drop(self.fc_norm(x[:, 0])))
        if self.head_dist is None:
            return out
        return (out + self.head_dist(x[:, 1])) / 2


def tv_to_timm_vit_name(name):
    """The mapping implemented in models/archs/vit.ts (torchvisionToTimmVitName)."""
    import re
    fixed = {'class_token': 'cls_token', 'encoder.pos_embedding': 'pos_embed', 'conv_proj.weight': 'patch_embed.proj.weight',
             'conv_proj.bias': 'patch_embed.proj.bias', 'encoder.ln.weight': 'norm.weight', 'encoder.ln.bias': 'norm.bias',
             'heads.head.weight': 'head.weight', 'heads.head.bias': 'head.bias'}
    if name in fixed:
        return fixed[name]
    m = re.match(r'^encoder\.layers\.encoder_layer_(\d+)\.(.*)$', name)
    if not m:
        raise ValueError(name)
    inner = {'ln_1': 'norm1', 'ln_2': 'norm2', 'self_attention.in_proj_weight': 'attn.qkv.weight',
             'self_attention.in_proj_bias': 'attn.qkv.bias', 'self_attention.out_proj': 'attn.proj', 'mlp.0': 'mlp.fc1', 'mlp.3': 'mlp.fc2'}
    rest = m.group(2)
    for k, v in inner.items():
        if rest == k or rest.startswith(k + '.'):
            return f'blocks.{m.group(1)}.{v}{rest[len(k):]}'
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------------
# Random weights, references

def randomize_tokens(model, gen):
    """The parameters randomize() does not know: class/distillation tokens, position embeddings and
    nn.MultiheadAttention's packed input projection."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            last = name.rsplit('.', 1)[-1]
            if last in ('class_token', 'cls_token', 'dist_token'):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif last in ('pos_embedding', 'pos_embed'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif last == 'in_proj_weight':
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            elif last == 'in_proj_bias':
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def calibrate_bn(model, gen, shape, forward, batches=4):
    """BatchNorm running statistics from random batches (cumulative average), then perturbed."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            forward(model, torch.randn(8, *shape, generator=gen))
    model.eval()
    with torch.no_grad():
        for m in bns:
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=gen) * 0.05)
            m.running_var.mul_(torch.rand(m.running_var.shape, generator=gen) * 0.4 + 0.8)


def rescale_heads(model, gen, shape, forward, heads, target_std=3.0):
    """Scale the final layer(s) so that logits have std ~target_std over random inputs; biases N(0, 0.5)."""
    model.eval()
    mods = dict(model.named_modules())
    with torch.no_grad():
        logits = forward(model, torch.randn(8, *shape, generator=gen))
        s = (logits - logits.mean(0)).std().item()
        for name in heads:
            mods[name].weight.mul_(target_std / max(s, 1e-6))
            mods[name].bias.copy_(torch.randn(mods[name].bias.shape, generator=gen) * 0.5)


def classify(model, x):
    return model(x)


def segment(model, x):
    return model(x)['out']


def capture(model, x, layers, forward):
    acts = {}
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_hook(lambda _m, _i, out, n=n: acts.__setitem__(n, out.detach().clone())) for n in layers]
    with torch.no_grad():
        y = forward(model, x)
    for h in hooks:
        h.remove()
    return y, acts


def make_fixture(name, model, input_shape, layers, seed, description, config, heads, forward=classify, transformer_like=False):
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    randomize(model, gen, transformer_like)
    randomize_tokens(model, gen)
    shape = input_shape[1:]
    calibrate_bn(model, gen, shape, forward)
    rescale_heads(model, gen, shape, forward, heads)
    model.eval()
    weights = state_dict_f32(model)
    x = torch.randn(*input_shape, generator=gen)
    with torch.no_grad():
        logits32 = forward(model.float(), x)
    logits64, acts = capture(model.double(), x.double(), layers, forward)
    model.float()
    tensors = {'input': x, 'logits': logits32, 'logits64': logits64}
    for layer, a in acts.items():
        tensors[f'A/{layer}'] = a
    wsize = write_safetensors(os.path.join(OUT, f'arch_{name}.weights.safetensors'), weights, {'format': 'pt'})
    fsize = write_safetensors(os.path.join(OUT, f'arch_{name}.safetensors'), tensors)
    write_json(f'arch_{name}.json', {
        'fixture': f'arch_{name}',
        'made_by': 'scripts/make-model-fixtures.py',
        'versions': VERSIONS,
        'description': description,
        'config': config,
        'layers': layers,
        'weights_file': f'arch_{name}.weights.safetensors',
        'random_init': {
            'seed': seed,
            'norm_affine': 'weight U(0.5,1.5), bias N(0,0.2)',
            'bn_running_stats': 'calibrated on 4 random batches of 8 (cumulative), then mean += N(0,0.05), var *= U(0.8,1.2)',
            'conv_linear': ('weights N(0, 1/fan_in)' if transformer_like else "torchvision's init") + ', biases N(0,0.1)',
            'tokens': 'class/dist tokens N(0,1), position embeddings N(0,0.5), MHA in_proj weight N(0,1/fan_in) bias N(0,0.1)',
            'heads': f'{heads} rescaled so logits have std 3 over 8 random inputs; biases N(0,0.5)',
        },
        'num_parameters': sum(p.numel() for p in model.parameters()),
        'logits_f32_vs_f64_rel': ((logits32.double() - logits64).abs().max() / logits64.abs().max()).item(),
        'leaf_modules': leaf_modules(model),
        'tensors': {k: list(v.shape) for k, v in tensors.items()},
    })
    print(f'arch_{name}: weights {wsize} B, references {fsize} B, {sum(p.numel() for p in model.parameters())} parameters')
    return model


def write_json(name, obj):
    with open(os.path.join(OUT, name), 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


# ---------------------------------------------------------------------------------------------------
# The fixtures

def make_mobilenet_v3():
    torch.manual_seed(4001)  # torchvision's own init draws from the global generator
    setting, last = _mobilenet_v3_conf('mobilenet_v3_large', width_mult=0.125)
    make_fixture(
        'mobilenet_v3_large', MobileNetV3(setting, last, num_classes=10), (2, 3, 64, 64),
        ['features.16', 'features.13', 'features.4.block.2'], 4001,
        "torchvision MobileNetV3(*_mobilenet_v3_conf('mobilenet_v3_large', width_mult=0.125), num_classes=10)",
        {'arch': 'mobilenet_v3_large', 'widthMult': 0.125, 'numClasses': 10}, ['classifier.3'])
    torch.manual_seed(4002)
    setting, last = _mobilenet_v3_conf('mobilenet_v3_small', width_mult=0.25)
    make_fixture(
        'mobilenet_v3_small', MobileNetV3(setting, last, num_classes=10), (2, 3, 72, 56),
        ['features.12', 'features.9', 'features.1.block.1'], 4002,
        "torchvision MobileNetV3(*_mobilenet_v3_conf('mobilenet_v3_small', width_mult=0.25), num_classes=10), non-square input",
        {'arch': 'mobilenet_v3_small', 'widthMult': 0.25, 'numClasses': 10}, ['classifier.3'])


def make_segmentation():
    classes = 6  # not 21: the class count comes from the weights, and the references stay small
    torch.manual_seed(4003)
    features, stages = mobilenet_v3_features(0.125, dilated=True)
    low, high = stages[-4], stages[-1]
    backbone = IntermediateLayerGetter(features, return_layers={str(low): 'low', str(high): 'high'})
    model = LRASPP(backbone, features[low].out_channels, features[high].out_channels, classes, inter_channels=16)
    make_fixture(
        'lraspp', model, (2, 3, 32, 48), ['backbone.16', 'backbone.12', 'classifier.scale'], 4003,
        'torchvision LRASPP over IntermediateLayerGetter(mobilenet_v3_large(width_mult=0.125, dilated=True).features, '
        f"{{low: block {low}, high: block {high}}}), inter_channels=16, {classes} classes; output model(x)['out'] (upsampled to the input)",
        {'arch': 'lraspp_mobilenet_v3_large', 'numClasses': classes}, ['classifier.low_classifier', 'classifier.high_classifier'], forward=segment)

    torch.manual_seed(4004)
    resnet = reduced_resnet50_dilated()
    model = DeepLabV3(IntermediateLayerGetter(resnet, return_layers={'layer4': 'out', 'layer3': 'aux'}),
                      deeplab_head(64, classes, 8), FCNHead(32, classes))
    make_fixture(
        'deeplabv3_resnet50', model, (1, 3, 32, 40), ['backbone.layer4', 'backbone.layer3.5', 'classifier.0'], 4004,
        'torchvision DeepLabV3 over a ResNet-50 (Bottleneck [3,4,6,3], stem 4, planes 2/4/8/16, replace_stride_with_dilation '
        f'[False, True, True]) with DeepLabHead at ASPP width 8 (rates 12/24/36), {classes} classes, and the aux FCNHead(32) on layer3 '
        "(its weights are in the file; the output is model(x)['out'])",
        {'arch': 'deeplabv3_resnet50', 'numClasses': classes, 'aux': True}, ['classifier.4'], forward=segment)

    torch.manual_seed(4005)
    features, stages = mobilenet_v3_features(0.125, dilated=True)
    model = DeepLabV3(IntermediateLayerGetter(features, return_layers={str(stages[-1]): 'out'}),
                      deeplab_head(features[stages[-1]].out_channels, classes, 8), None)
    make_fixture(
        'deeplabv3_mobilenet', model, (1, 3, 48, 32), ['backbone.16', 'classifier.0.convs.4', 'classifier.0.project'], 4005,
        f'torchvision DeepLabV3 over mobilenet_v3_large(width_mult=0.125, dilated=True).features with DeepLabHead at ASPP width 8, {classes} classes, no aux',
        {'arch': 'deeplabv3_mobilenet_v3_large', 'numClasses': classes, 'aux': False}, ['classifier.4'], forward=segment)

    torch.manual_seed(4006)
    resnet = reduced_resnet50_dilated()
    model = FCN(IntermediateLayerGetter(resnet, return_layers={'layer4': 'out', 'layer3': 'aux'}), FCNHead(64, classes), FCNHead(32, classes))
    make_fixture(
        'fcn_resnet50', model, (1, 3, 24, 40), ['backbone.layer4', 'classifier.1'], 4006,
        f'torchvision FCN over the reduced dilated ResNet-50 above with FCNHead(64), {classes} classes, and the aux FCNHead(32) on layer3',
        {'arch': 'fcn_resnet50', 'numClasses': classes, 'aux': True}, ['classifier.4'], forward=segment)


def make_vit():
    torch.manual_seed(4007)
    tv = make_fixture(
        'vit_b16', VisionTransformer(image_size=64, patch_size=16, num_layers=3, num_heads=12, hidden_dim=36, mlp_dim=72, num_classes=10),
        (2, 3, 64, 64),
        ['encoder.layers.encoder_layer_2.ln_1', 'encoder.layers.encoder_layer_1', 'encoder.ln', 'encoder.layers.encoder_layer_0.mlp', 'conv_proj'],
        4007,
        'torchvision VisionTransformer(image_size=64, patch_size=16, num_layers=3, num_heads=12, hidden_dim=36, mlp_dim=72, num_classes=10): '
        "vit_b_16's structure and head count at a reduced size; head redrawn (torchvision zero-initialises it)",
        {'arch': 'vit_b_16', 'imageSize': 64, 'patchSize': 16, 'numLayers': 3, 'numHeads': 12, 'hiddenDim': 36, 'mlpDim': 72, 'numClasses': 10},
        ['heads.head'], transformer_like=True)

    # The timm transcription computes torchvision's function under the name mapping.
    timm_same = TimmViT(img_size=64, patch_size=16, num_classes=10, embed_dim=36, depth=3, num_heads=12, mlp_ratio=2.0)
    timm_same.load_state_dict({tv_to_timm_vit_name(k): v for k, v in tv.state_dict().items()}, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7)).double()
    with torch.no_grad():
        d = (timm_same.double().eval()(x) - tv.double().eval()(x)).abs().max().item()
    assert d < 1e-12 and tv(x).abs().max().item() > 0.1, d
    print(f'timm ViT transcription vs torchvision (mapped names): max |diff| = {d:.2e}')

    torch.manual_seed(4008)
    make_fixture(
        'deit_distilled_timm', TimmViT(img_size=64, patch_size=16, num_classes=10, embed_dim=24, depth=2, num_heads=3, distilled=True),
        (2, 3, 64, 64), ['blocks.1.norm1', 'blocks.0', 'norm'], 4008,
        'Hand transcription of timm 1.0 VisionTransformerDistilled (timm names: cls_token, dist_token, pos_embed, blocks.N, head, head_dist) '
        "with img_size=64, patch_size=16, embed_dim=24, depth=2, num_heads=3 (deit_tiny's head count), mlp_ratio 4, 10 classes; eval-mode "
        'logits (head(x[:, 0]) + head_dist(x[:, 1])) / 2',
        {'arch': 'deit_tiny_distilled_patch16_224', 'imageSize': 64, 'patchSize': 16, 'depth': 2, 'numHeads': 3, 'embedDim': 24, 'numClasses': 10},
        ['head', 'head_dist'], transformer_like=True)


def make_one_channel_resnet():
    torch.manual_seed(4009)
    make_fixture(
        'resnet18_1ch', ReducedResNet(BasicBlock, [2, 2, 2, 2], planes=[4, 8, 16, 32], stem_width=4, num_classes=10, in_channels=1),
        (2, 1, 64, 64), ['layer4', 'layer4.0', 'conv1'], 4009,
        "pytorch-grad-cam's tests/test_one_channel.py case at reduced width: torchvision ResNet-18 (BasicBlock [2,2,2,2]) whose conv1 "
        'takes one channel (Conv2d(1, 4, 7, 2, 3)), stem 4, planes 4/8/16/32, 10 classes',
        {'arch': 'resnet18', 'inChannels': 1, 'numClasses': 10}, ['fc'])


# ---------------------------------------------------------------------------------------------------
# The public LR-ASPP segmentation fixture, a subset

def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {'F64': np.float64, 'F32': np.float32, 'I64': np.int64, 'U8': np.uint8}
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=dtypes[v['dtype']]).reshape(v['shape']).copy())
    return out


def copy_segmentation_subset(shared):
    src = os.path.join(shared, 'segmentation', 'segmentation_lraspp_mobilenet_v3_large_public')
    t = read_safetensors(src + '.safetensors')
    with open(src + '.json') as f:
        side = json.load(f)
    # A pixel grid with stride 3 (coprime with the ×16 upsampling, so every phase of it is covered).
    grid = (slice(None), slice(None), slice(None, None, 3), slice(None, None, 3))
    subset = {
        'input': t['input'],
        'category': t['category'],
        'logits64_stride3': t['logits64'][grid].contiguous(),
        'A/backbone.12': t['A/backbone.12'],
        'G/seg/backbone.12': t['G/seg/backbone.12'],
        'HA/seg/backbone.12': t['HA/seg/backbone.12'],
        'A/backbone.16/image0': t['A/backbone.16'][:1].contiguous(),
        'G/seg/backbone.16/image0': t['G/seg/backbone.16'][:1].contiguous(),
        'HA/seg/backbone.16/image0': t['HA/seg/backbone.16'][:1].contiguous(),
        'target_value/seg': t['target_value/seg'],
        'mask': t['mask'],
    }
    DTYPES = arch_fixtures.DTYPES
    DTYPES.setdefault(torch.uint8, 'U8')
    size = write_safetensors(os.path.join(OUT, 'seg_lraspp_public.safetensors'), subset)
    shutil.copyfile(src + '.weights.safetensors', os.path.join(OUT, 'seg_lraspp_public.weights.safetensors'))
    with open(src + '.weights.safetensors', 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert sha == side['weights_sha256'], 'shared weights differ from the sidecar sha256'
    write_json('seg_lraspp_public.json', {
        'fixture': 'seg_lraspp_public',
        'made_by': 'scripts/make-model-fixtures.py (copied from the shared fixture, unchanged values)',
        'source': 'shared/fixtures/segmentation/segmentation_lraspp_mobilenet_v3_large_public.{safetensors,json,weights.safetensors}',
        'subset': 'input, category, mask, target_value/seg; logits64 on the pixel grid [::3, ::3] (logits64_stride3); A, G/seg, HA/seg at '
                  'backbone.12 for both images and at backbone.16 for image 0 only (the 960-channel tensors are the bulk of the file)',
        'weights_file': 'seg_lraspp_public.weights.safetensors',
        'weights_sha256': sha,
        'model': side['model'],
        'versions': side['versions'],
        'reference_code': side['reference_code'],
        'target': side['target'],
        'segmentation': side['segmentation'],
        'fd_check': side['fd_check'],
        'HA_size': side['HA_size'],
        'logits_f32_vs_f64': side['logits_f32_vs_f64'],
        'hardsigmoid_patch': side['hardsigmoid_patch'],
        'tensors': {k: list(v.shape) for k, v in subset.items()},
    })
    print(f'seg_lraspp_public: subset {size} B, weights copied')


# ---------------------------------------------------------------------------------------------------
# Full-size facts

def full_size_facts():
    M = torchvision.models
    S = torchvision.models.segmentation
    timm_vit = lambda d, depth, heads, patch=16, distilled=False: (lambda: TimmViT(patch_size=patch, embed_dim=d, depth=depth, num_heads=heads, distilled=distilled))
    builders = {
        'mobilenet_v3_large': M.mobilenet_v3_large, 'mobilenet_v3_small': M.mobilenet_v3_small,
        'lraspp_mobilenet_v3_large': lambda: S.lraspp_mobilenet_v3_large(weights_backbone=None),
        'deeplabv3_resnet50': lambda: S.deeplabv3_resnet50(weights_backbone=None),
        'deeplabv3_resnet50+aux': lambda: S.deeplabv3_resnet50(weights_backbone=None, aux_loss=True),
        'deeplabv3_mobilenet_v3_large': lambda: S.deeplabv3_mobilenet_v3_large(weights_backbone=None),
        'deeplabv3_mobilenet_v3_large+aux': lambda: S.deeplabv3_mobilenet_v3_large(weights_backbone=None, aux_loss=True),
        'fcn_resnet50': lambda: S.fcn_resnet50(weights_backbone=None),
        'fcn_resnet50+aux': lambda: S.fcn_resnet50(weights_backbone=None, aux_loss=True),
        'vit_b_16': M.vit_b_16, 'vit_b_32': M.vit_b_32, 'vit_l_16': M.vit_l_16, 'vit_l_32': M.vit_l_32, 'vit_h_14': M.vit_h_14,
        # timm: the transcription above.
        'vit_tiny_patch16_224': timm_vit(192, 12, 3), 'vit_small_patch16_224': timm_vit(384, 12, 6),
        'vit_base_patch16_224': timm_vit(768, 12, 12), 'vit_base_patch32_224': timm_vit(768, 12, 12, patch=32),
        'vit_large_patch16_224': timm_vit(1024, 24, 16),
        'deit_tiny_patch16_224': timm_vit(192, 12, 3), 'deit_small_patch16_224': timm_vit(384, 12, 6), 'deit_base_patch16_224': timm_vit(768, 12, 12),
        'deit_tiny_distilled_patch16_224': timm_vit(192, 12, 3, distilled=True),
        'deit_small_distilled_patch16_224': timm_vit(384, 12, 6, distilled=True),
        'deit_base_distilled_patch16_224': timm_vit(768, 12, 12, distilled=True),
    }
    full_lists = {'mobilenet_v3_large', 'mobilenet_v3_small', 'lraspp_mobilenet_v3_large', 'deeplabv3_resnet50+aux',
                  'deeplabv3_mobilenet_v3_large+aux', 'fcn_resnet50+aux', 'vit_b_16', 'vit_base_patch16_224', 'deit_tiny_distilled_patch16_224'}
    facts = {}
    for name, build in builders.items():
        torch.manual_seed(0)
        model = build()
        lines, elements, digest = sd_digest(model)
        params = sum(p.numel() for p in model.parameters())
        entry = {'num_parameters': params, 'state_dict_entries': len(lines), 'state_dict_elements': elements, 'state_dict_sha256': digest}
        if name in full_lists:
            entry['state_dict'] = lines
        facts[name] = entry
        print(f'{name}: {params} parameters, {len(lines)} state_dict entries')
        del model
    # The transcription's ViT-B/16 is torchvision's vit_b_16 under the name mapping.
    tv_lines = sorted(f'{tv_to_timm_vit_name(k)} {",".join(str(d) for d in v.shape)}' for k, v in M.vit_b_16().state_dict().items())
    assert tv_lines == facts['vit_base_patch16_224']['state_dict'], 'torchvision vit_b_16 names mapped to timm differ from the transcription'
    assert facts['vit_base_patch16_224']['num_parameters'] == facts['vit_b_16']['num_parameters']
    return facts


# ---------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shared', default=os.path.join(HERE, '..', '..', 'shared', 'fixtures'), help='the shared fixtures folder (for the LR-ASPP subset)')
    parser.add_argument('--only', default='', help='comma-separated subset of: resize,mobilenet,segmentation,vit,onechannel,seg_public,full_size')
    args = parser.parse_args()
    torch.set_num_threads(1)  # reproducible float32 sums
    steps = {
        'resize': make_resize_fixture, 'mobilenet': make_mobilenet_v3, 'segmentation': make_segmentation, 'vit': make_vit,
        'onechannel': make_one_channel_resnet, 'seg_public': lambda: copy_segmentation_subset(args.shared),
        'full_size': lambda: write_json('arch_full_size_family.json', {
            'made_by': 'scripts/make-model-fixtures.py',
            'versions': {**VERSIONS, 'timm_transcribed': '1.0 (vision_transformer.py, deit.py)'},
            'note': 'state_dict lines are "name d0,d1,..." sorted, without num_batches_tracked; sha256 over the lines joined by \\n. '
                    'num_parameters counts nn.Parameters (not BN running statistics). "+aux" = built with aux_loss=True. '
                    'Segmentation models with weights_backbone=None, num_classes 21. timm entries come from the transcription in this script.',
            'architectures': full_size_facts(),
        }),
    }
    only = [s for s in args.only.split(',') if s]
    for name, step in steps.items():
        if not only or name in only:
            step()


if __name__ == '__main__':
    sys.exit(main())
