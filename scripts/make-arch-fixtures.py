#!/usr/bin/env python3
"""Reference fixtures for the torchvision/timm architectures (models/archs/*.ts).

Not a dependency of the project or of CI: it only produces the committed files
    test/fixtures/arch_<name>.safetensors          input, logits (F32), logits64 (F64), A/<layer> (F64)
    test/fixtures/arch_<name>.weights.safetensors  the state_dict (torch names, F32)
    test/fixtures/arch_<name>.json                 configuration, layers, versions
    test/fixtures/arch_full_size.json              full-size parameter counts and state_dict name digests

Run with Debian's PyTorch 1.13 / torchvision 0.14 (python3-torch, python3-torchvision):
    /usr/bin/python3 scripts/make-arch-fixtures.py

Reduced models are built with torchvision's own classes and builder arguments (smaller widths/depths),
random weights (BatchNorm affine parameters random and running statistics calibrated on random batches,
so they matter), a seeded random input, and references from the same model in float32 and float64.

timm is not installed here (no PyPI): `TimmSwin` below is a hand transcription of the forward pass and
module names of timm 1.0.29.dev0 (huggingface/pytorch-image-models commit aa4b585,
timm/models/swin_transformer.py, Apache-2.0), used (a) for a fixture in timm's naming whose sizes exercise
timm-specific behaviour (window clamped to the feature size, roll-then-pad) and (b) for the full-size timm
state_dict names. The script checks that the transcription equals torchvision's SwinTransformer on a
configuration where the two libraries compute the same function.
"""

import hashlib
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vgg import VGG, make_layers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures')


# ---------------------------------------------------------------------------------------------------
# safetensors writer (the format: u64 header length, JSON header, raw little-endian data)

DTYPES = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}


def write_safetensors(path, tensors, metadata=None):
    header = {}
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return os.path.getsize(path)


# ---------------------------------------------------------------------------------------------------
# timm Swin (hand transcription of timm 1.0.29.dev0; names and forward as timm's)

def timm_window_partition(x, ws):
    B, H, W, C = x.shape
    x = x.view(B, H // ws[0], ws[0], W // ws[1], ws[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws[0], ws[1], C)


def timm_window_reverse(windows, ws, H, W):
    C = windows.shape[-1]
    x = windows.view(-1, H // ws[0], W // ws[1], ws[0], ws[1], C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)


def timm_relative_position_index(win_h, win_w):
    coords = torch.stack(torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing='ij'))
    coords_flatten = torch.flatten(coords, 1)
    rel = coords_flatten[:, :, None] - coords_flatten[:, None, :]
    rel = rel.permute(1, 2, 0).contiguous()
    rel[:, :, 0] += win_h - 1
    rel[:, :, 1] += win_w - 1
    rel[:, :, 0] *= 2 * win_w - 1
    return rel.sum(-1)


class TimmWindowAttention(nn.Module):
    def __init__(self, dim, num_heads, window_size):
        super().__init__()
        self.window_size = window_size
        self.window_area = window_size[0] * window_size[1]
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))
        self.register_buffer('relative_position_index', timm_relative_position_index(*window_size), persistent=False)
        self.qkv = nn.Linear(dim, head_dim * num_heads * 3)
        self.attn_drop = nn.Dropout(0.)
        self.proj = nn.Linear(head_dim * num_heads, dim)
        self.proj_drop = nn.Dropout(0.)
        self.softmax = nn.Softmax(dim=-1)

    def _get_rel_pos_bias(self):
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(self.window_area, self.window_area, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn + self._get_rel_pos_bias()
        if mask is not None:
            num_win = mask.shape[0]
            attn = attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.softmax(attn)
        x = attn @ v
        x = x.transpose(1, 2).reshape(B_, N, -1)
        return self.proj_drop(self.proj(x))


class TimmMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(0.)

    def forward(self, x):
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class TimmSwinBlock(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, window_size, shift_size, mlp_ratio=4.):
        super().__init__()
        self.input_resolution = input_resolution
        # _calc_window_shift, always_partition=False
        ws = [r if r <= w else w for r, w in zip(input_resolution, window_size)]
        ss = [0 if r <= w else s for r, w, s in zip(input_resolution, ws, shift_size)]
        self.window_size, self.shift_size = tuple(ws), tuple(ss)
        self.window_area = ws[0] * ws[1]
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TimmWindowAttention(dim, num_heads, self.window_size)
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TimmMlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = nn.Identity()
        self.register_buffer('attn_mask', self.get_attn_mask(), persistent=False)

    def get_attn_mask(self):
        if not any(self.shift_size):
            return None
        H, W = self.input_resolution
        H = math.ceil(H / self.window_size[0]) * self.window_size[0]
        W = math.ceil(W / self.window_size[1]) * self.window_size[1]
        img_mask = torch.zeros((1, H, W, 1))
        cnt = 0
        for h in ((0, -self.window_size[0]), (-self.window_size[0], -self.shift_size[0]), (-self.shift_size[0], None)):
            for w in ((0, -self.window_size[1]), (-self.window_size[1], -self.shift_size[1]), (-self.shift_size[1], None)):
                img_mask[:, h[0]:h[1], w[0]:w[1], :] = cnt
                cnt += 1
        mask_windows = timm_window_partition(img_mask, self.window_size).view(-1, self.window_area)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))

    def _attn(self, x):
        B, H, W, C = x.shape
        has_shift = any(self.shift_size)
        shifted_x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2)) if has_shift else x
        pad_h = (self.window_size[0] - H % self.window_size[0]) % self.window_size[0]
        pad_w = (self.window_size[1] - W % self.window_size[1]) % self.window_size[1]
        shifted_x = F.pad(shifted_x, (0, 0, 0, pad_w, 0, pad_h))
        _, Hp, Wp, _ = shifted_x.shape
        x_windows = timm_window_partition(shifted_x, self.window_size).view(-1, self.window_area, C)
        mask = self.attn_mask.to(x.dtype) if self.attn_mask is not None else None
        attn_windows = self.attn(x_windows, mask=mask)
        attn_windows = attn_windows.view(-1, self.window_size[0], self.window_size[1], C)
        shifted_x = timm_window_reverse(attn_windows, self.window_size, Hp, Wp)
        shifted_x = shifted_x[:, :H, :W, :].contiguous()
        return torch.roll(shifted_x, shifts=self.shift_size, dims=(1, 2)) if has_shift else shifted_x

    def forward(self, x):
        B, H, W, C = x.shape
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = x.reshape(B, -1, C)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.reshape(B, H, W, C)


class TimmPatchMerging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        B, H, W, C = x.shape
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        _, H, W, _ = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class TimmStage(nn.Module):
    def __init__(self, dim, out_dim, input_resolution, depth, downsample, num_heads, window_size):
        super().__init__()
        self.output_resolution = tuple(i // 2 for i in input_resolution) if downsample else input_resolution
        shift = tuple(w // 2 for w in window_size)
        self.downsample = TimmPatchMerging(dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            TimmSwinBlock(out_dim, self.output_resolution, num_heads, window_size, (0, 0) if i % 2 == 0 else shift)
            for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class TimmPatchEmbed(nn.Module):
    def __init__(self, patch, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, patch, patch)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class TimmHead(nn.Module):
    def __init__(self, features, num_classes):
        super().__init__()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x):
        return self.fc(x.mean((1, 2)))


class TimmSwin(nn.Module):
    def __init__(self, img_size=224, patch_size=4, num_classes=1000, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7):
        super().__init__()
        self.patch_embed = TimmPatchEmbed(patch_size, embed_dim)
        grid = img_size // patch_size
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        layers = []
        in_dim = dims[0]
        scale = 1
        for i in range(len(depths)):
            layers.append(TimmStage(in_dim, dims[i], (grid // scale, grid // scale), depths[i], i > 0, num_heads[i], (window_size, window_size)))
            in_dim = dims[i]
            if i > 0:
                scale *= 2
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = TimmHead(dims[-1], num_classes)

    def forward(self, x):
        return self.head(self.norm(self.layers(self.patch_embed(x))))


def tv_to_timm_name(name):
    """The mapping implemented in models/archs/swin.ts (torchvisionToTimmSwinName)."""
    import re
    if name.endswith('relative_position_index'):
        return None
    m = re.match(r'^features\.0\.0\.(weight|bias)$', name)
    if m:
        return f'patch_embed.proj.{m[1]}'
    m = re.match(r'^features\.0\.2\.(weight|bias)$', name)
    if m:
        return f'patch_embed.norm.{m[1]}'
    m = re.match(r'^features\.(\d+)\.(.*)$', name)
    if m:
        idx, rest = int(m[1]), m[2]
        if idx % 2 == 1:
            r = re.match(r'^(\d+)\.(.*)$', rest)
            inner = re.sub(r'^mlp\.0\.', 'mlp.fc1.', re.sub(r'^mlp\.3\.', 'mlp.fc2.', r[2]))
            return f'layers.{(idx - 1) // 2}.blocks.{r[1]}.{inner}'
        return f'layers.{idx // 2}.downsample.{rest}'
    if name.startswith('norm.'):
        return name
    if name.startswith('head.'):
        return 'head.fc.' + name[5:]
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------------
# Reduced torchvision models

class SmallResNet(ResNet):
    """torchvision ResNet with configurable stem width and stage planes (same modules, forward and names)."""

    def __init__(self, block, layers, planes, stem_width, num_classes, groups=1, width_per_group=64):
        nn.Module.__init__(self)
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = stem_width
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')


def small_vgg(cfg, batch_norm, hidden, num_classes):
    model = VGG(make_layers(cfg, batch_norm=batch_norm), num_classes=num_classes)
    channels = [v for v in cfg if v != 'M'][-1]
    # Same structure as torchvision's classifier (names classifier.0/3/6), smaller hidden width.
    model.classifier = nn.Sequential(
        nn.Linear(channels * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(hidden, num_classes))
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 1 / math.sqrt(m.in_features))
    return model


# ---------------------------------------------------------------------------------------------------
# Random weights

def randomize(model, gen, transformer_like=False):
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                if transformer_like:
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith('layer_scale'):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)


def calibrate_bn(model, gen, size, batches=4):
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(8, 3, size, size, generator=gen))
    model.eval()
    with torch.no_grad():
        for m in bns:  # perturb so that the statistics are not just "whatever the data gave"
            m.running_mean.add_(torch.randn(m.running_mean.shape, generator=gen) * 0.05)
            m.running_var.mul_(torch.rand(m.running_var.shape, generator=gen) * 0.4 + 0.8)


def final_linear(model):
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


def rescale_head(model, gen, size, target_std=3.0):
    """Scale the classifier so that logits are O(target_std): a softmax neither flat nor saturated."""
    model.eval()
    fc = final_linear(model)
    with torch.no_grad():
        logits = model(torch.randn(16, 3, size, size, generator=gen))
        s = (logits - logits.mean(0)).std().item()
        fc.weight.mul_(target_std / max(s, 1e-6))
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=gen) * 0.5)


def state_dict_f32(model):
    """The state_dict as torch saves it: float tensors as F32, integer buffers (BatchNorm's
    num_batches_tracked, torchvision Swin's relative_position_index) kept as I64."""
    out = {}
    for k, v in model.state_dict().items():
        out[k] = v.detach().clone() if v.dtype == torch.int64 else v.detach().float().clone()
    return out


def capture(model, x, layers):
    acts = {}
    hooks = []
    mods = dict(model.named_modules())
    for name in layers:
        hooks.append(mods[name].register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out.detach().clone())))
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    return y, acts


def leaf_modules(model):
    return [[n, type(m).__name__] for n, m in model.named_modules() if n and not list(m.children())]


def make_fixture(name, model, size, layers, seed, description, config, transformer_like=False, extra_inputs=()):
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    randomize(model, gen, transformer_like)
    calibrate_bn(model, gen, size)
    rescale_head(model, gen, size)
    model.eval()
    weights = state_dict_f32(model)
    tensors = {}
    summary = {}
    for suffix, sz in [('', size)] + [(f'_{s}', s) for s in extra_inputs]:
        x = torch.randn(2, 3, sz, sz, generator=gen)
        with torch.no_grad():
            logits32 = model.float()(x)
        logits64, acts = capture(model.double(), x.double(), layers)
        model.float()
        tensors[f'input{suffix}'] = x
        tensors[f'logits{suffix}'] = logits32
        tensors[f'logits64{suffix}'] = logits64
        for layer, a in acts.items():
            tensors[f'A/{layer}{suffix}'] = a
        summary[f'input{suffix}'] = {
            'shape': list(x.shape),
            'logits_f32_vs_f64_rel': ((logits32.double() - logits64).abs().max() / logits64.abs().max()).item(),
            'activation_shapes': {k: list(v.shape) for k, v in acts.items()},
        }
    wsize = write_safetensors(os.path.join(OUT, f'arch_{name}.weights.safetensors'), weights, {'format': 'pt'})
    fsize = write_safetensors(os.path.join(OUT, f'arch_{name}.safetensors'), tensors)
    meta = {
        'fixture': f'arch_{name}',
        'made_by': 'scripts/make-arch-fixtures.py',
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__},
        'description': description,
        'config': config,
        'layers': layers,
        'weights_file': f'arch_{name}.weights.safetensors',
        'random_init': {
            'seed': seed,
            'norm_affine': 'weight U(0.5,1.5), bias N(0,0.2)',
            'bn_running_stats': 'calibrated on 4 random batches of 8 (cumulative), then mean += N(0,0.05), var *= U(0.8,1.2)',
            'conv_linear': ('weights N(0, 1/fan_in)' if transformer_like else "torchvision's init") + ', biases N(0,0.1)',
            'relative_position_bias_table': 'N(0,1)',
            'layer_scale': 'U(0.5,1.5)',
            'final_linear': 'rescaled so logits have std 3 over 16 random images; bias N(0,0.5)',
        },
        'num_parameters': sum(p.numel() for p in model.parameters()),
        'inputs': summary,
        'leaf_modules': leaf_modules(model),
        'tensors': {k: list(v.shape) for k, v in tensors.items()},
    }
    with open(os.path.join(OUT, f'arch_{name}.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    print(f'arch_{name}: weights {wsize} B, references {fsize} B, {meta["num_parameters"]} parameters')
    return model


# ---------------------------------------------------------------------------------------------------
# Full-size facts

def sd_digest(model):
    lines = []
    elements = 0
    for k, v in model.state_dict().items():
        if k.endswith('num_batches_tracked') or k.endswith('relative_position_index') or k.endswith('attn_mask'):
            continue
        lines.append(f'{k} {",".join(str(d) for d in v.shape)}')
        elements += v.numel()
    lines.sort()
    return lines, elements, hashlib.sha256('\n'.join(lines).encode()).hexdigest()


def full_size_facts():
    M = torchvision.models
    builders = {
        'resnet18': M.resnet18, 'resnet34': M.resnet34, 'resnet50': M.resnet50, 'resnet101': M.resnet101,
        'resnet152': M.resnet152, 'resnext50_32x4d': M.resnext50_32x4d,
        'vgg11': M.vgg11, 'vgg11_bn': M.vgg11_bn, 'vgg13': M.vgg13, 'vgg13_bn': M.vgg13_bn,
        'vgg16': M.vgg16, 'vgg16_bn': M.vgg16_bn, 'vgg19': M.vgg19, 'vgg19_bn': M.vgg19_bn,
        'mobilenet_v2': M.mobilenet_v2, 'efficientnet_b0': M.efficientnet_b0, 'convnext_tiny': M.convnext_tiny,
        'swin_t': M.swin_t, 'swin_s': M.swin_s, 'swin_b': M.swin_b,
        # timm: the transcription above; parameter counts cross-checked against torchvision's class below.
        'swin_tiny_patch4_window7_224': lambda: TimmSwin(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
        'swin_small_patch4_window7_224': lambda: TimmSwin(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
        'swin_base_patch4_window7_224': lambda: TimmSwin(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
        'swin_large_patch4_window7_224': lambda: TimmSwin(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
    }
    full_lists = {'resnet50', 'resnext50_32x4d', 'vgg16_bn', 'mobilenet_v2', 'efficientnet_b0', 'convnext_tiny', 'swin_t', 'swin_tiny_patch4_window7_224'}
    facts = {}
    for name, build in builders.items():
        torch.manual_seed(0)
        model = build()
        lines, elements, digest = sd_digest(model)
        params = sum(p.numel() for p in model.parameters())
        entry = {'num_parameters': params, 'state_dict_entries': len(lines), 'state_dict_elements': elements, 'state_dict_sha256': digest}
        if name in full_lists:
            entry['state_dict'] = lines
        if name.startswith('swin_') and '_patch4_' in name:
            ref = SwinTransformer(patch_size=[4, 4], embed_dim=model.patch_embed.proj.out_channels,
                                  depths=[len(s.blocks) for s in model.layers],
                                  num_heads=[s.blocks[0].attn.num_heads for s in model.layers], window_size=[7, 7])
            tv_params = sum(p.numel() for p in ref.parameters())
            assert tv_params == params, (name, tv_params, params)
            mapped = sorted(f'{tv_to_timm_name(k)} {",".join(str(d) for d in v.shape)}' for k, v in ref.state_dict().items() if tv_to_timm_name(k))
            assert mapped == lines, f'{name}: torchvision names mapped to timm differ from the timm transcription'
        facts[name] = entry
        print(f'{name}: {params} parameters, {len(lines)} state_dict entries')
        del model
    return facts


# ---------------------------------------------------------------------------------------------------

def main():
    torch.manual_seed(0)
    torch.set_num_threads(min(8, os.cpu_count() or 1))

    make_fixture(
        'resnet_bottleneck',
        SmallResNet(Bottleneck, [2, 1, 1, 1], planes=[8, 16, 32, 64], stem_width=16, num_classes=10),
        64, ['layer4', 'layer3'], 2001,
        'torchvision ResNet forward with Bottleneck (v1.5, stride on conv2), layers [2,1,1,1], stem width 16, planes 8/16/32/64 (outputs 32/64/128/256), 10 classes',
        {'block': 'bottleneck', 'layers': [2, 1, 1, 1], 'planes': [8, 16, 32, 64], 'stemWidth': 16, 'numClasses': 10})

    make_fixture(
        'resnext',
        SmallResNet(Bottleneck, [1, 1, 2, 1], planes=[8, 16, 32, 64], stem_width=16, num_classes=10, groups=4, width_per_group=16),
        64, ['layer4', 'layer3'], 2002,
        'torchvision ResNet forward with Bottleneck, groups=4, width_per_group=16 (ResNeXt), layers [1,1,2,1], stem 16, planes 8/16/32/64, 10 classes',
        {'block': 'bottleneck', 'layers': [1, 1, 2, 1], 'planes': [8, 16, 32, 64], 'stemWidth': 16, 'groups': 4, 'widthPerGroup': 16, 'numClasses': 10})

    vgg_cfg = [8, 'M', 16, 'M', 16, 16, 'M']
    make_fixture(
        'vgg', small_vgg(vgg_cfg, False, 32, 10), 56, ['features.10', 'features.6'], 2003,
        'torchvision VGG(make_layers(cfg, batch_norm=False)) with cfg [8,M,16,M,16,16,M], classifier hidden 32 (same structure), 10 classes; 56x56 input gives a 7x7 map (avgpool is the identity)',
        {'cfg': vgg_cfg, 'batchNorm': False, 'hidden': 32, 'numClasses': 10})

    vgg_bn_cfg = [8, 'M', 16, 16, 'M', 32, 'M', 32, 'M']
    make_fixture(
        'vgg_bn', small_vgg(vgg_bn_cfg, True, 32, 10), 64, ['features.18', 'features.13'], 2004,
        'torchvision VGG(make_layers(cfg, batch_norm=True)) with cfg [8,M,16,16,M,32,M,32,M], classifier hidden 32, 10 classes; 64x64 input gives 4x4, which AdaptiveAvgPool2d(7) upsamples with overlapping windows',
        {'cfg': vgg_bn_cfg, 'batchNorm': True, 'hidden': 32, 'numClasses': 10})

    setting, last_channel = _efficientnet_conf('efficientnet_b0', width_mult=0.25, depth_mult=0.34)
    make_fixture(
        'efficientnet', EfficientNet(setting, 0.2, last_channel=last_channel, num_classes=10), 64, ['features.8', 'features.4'], 2005,
        "torchvision EfficientNet(_efficientnet_conf('efficientnet_b0', width_mult=0.25, depth_mult=0.34), dropout 0.2, num_classes=10)",
        {'widthMult': 0.25, 'depthMult': 0.34, 'numClasses': 10})

    cn_setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 1)]
    make_fixture(
        'convnext', ConvNeXt(cn_setting, stochastic_depth_prob=0.1, num_classes=10), 64, ['features.5', 'features.3'], 2006,
        'torchvision ConvNeXt([CNBlockConfig(8,16,1), CNBlockConfig(16,32,2), CNBlockConfig(32,None,1)], stochastic_depth_prob=0.1, num_classes=10); layer_scale randomised',
        {'blockSetting': [[8, 16, 1], [16, 32, 2], [32, None, 1]], 'numClasses': 10}, transformer_like=True)

    swin_kwargs = dict(patch_size=[4, 4], embed_dim=16, depths=[2, 2, 2], num_heads=[1, 2, 4], window_size=[4, 4], num_classes=10)
    tv_swin = make_fixture(
        'swin_t', SwinTransformer(**swin_kwargs), 64, ['norm', 'features.3', 'features.1.1.attn'], 2007,
        'torchvision SwinTransformer(patch_size=[4,4], embed_dim=16, depths=[2,2,2], num_heads=[1,2,4], window_size=[4,4], num_classes=10). '
        'Input 64x64: feature maps 16/8/4 with 4x4 windows (shifted windows with the mask in stages 1-2; stage 3 is a single window, so no shift). '
        'Input 40x40 (suffix _40): maps 10/5/3, exercising padding to the window, shifts on padded maps and PatchMerging of an odd map.',
        {'patchSize': 4, 'embedDim': 16, 'depths': [2, 2, 2], 'numHeads': [1, 2, 4], 'windowSize': 4, 'numClasses': 10},
        transformer_like=True, extra_inputs=(40,))

    # The timm transcription equals torchvision's model on the 64x64 configuration (names mapped).
    timm_same = TimmSwin(img_size=64, patch_size=4, num_classes=10, embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=4)
    sd = {tv_to_timm_name(k): v for k, v in tv_swin.state_dict().items() if tv_to_timm_name(k)}
    timm_same.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7)).double()
    with torch.no_grad():
        d = (timm_same.double().eval()(x) - tv_swin.double().eval()(x)).abs().max().item()
    assert d < 1e-12, d
    print(f'timm transcription vs torchvision on 64x64 (mapped names): max |diff| = {d:.2e}')

    make_fixture(
        'swin_timm', TimmSwin(img_size=48, patch_size=4, num_classes=10, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=8),
        48, ['norm', 'layers.0', 'layers.1.blocks.1.attn'], 2008,
        'Hand transcription of timm 1.0.29.dev0 SwinTransformer (timm names) with img_size=48, patch_size=4, embed_dim=16, depths=(2,2), num_heads=(2,4), window_size=8, num_classes=10. '
        'Stage 1: 12x12 map, window 8, shift 4, rolled then padded to 16x16 (mask on the padded grid). Stage 2: 6x6 map <= window, so window 6 (6x6 -> 11x11 bias table) and no shift. '
        'torchvision would compute a different function here.',
        {'imgSize': 48, 'patchSize': 4, 'embedDim': 16, 'depths': [2, 2], 'numHeads': [2, 4], 'windowSize': 8, 'numClasses': 10},
        transformer_like=True)

    facts = full_size_facts()
    with open(os.path.join(OUT, 'arch_full_size.json'), 'w') as f:
        json.dump({
            'made_by': 'scripts/make-arch-fixtures.py',
            'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__, 'timm_transcribed': '1.0.29.dev0 (aa4b585)'},
            'note': 'state_dict lines are "name d0,d1,..." sorted, without num_batches_tracked / relative_position_index / attn_mask; sha256 over the lines joined by \\n. '
                    'num_parameters counts nn.Parameters (not BN running statistics). timm entries come from the transcription in this script.',
            'architectures': facts,
        }, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    sys.exit(main())
