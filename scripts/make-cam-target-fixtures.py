#!/usr/bin/env python3
"""Reference fixtures for CAM targets and models: segmentation maps, ViT CAMs, a one-channel model, metrics.

Not a dependency of the project or of CI: it only produces committed files in test/fixtures:
    seg_lraspp_maps_public.{safetensors,json}  the final maps of gradcam/hirescam/shapleycam/layercam/
                                               seg-eigencam under the segmentation target and Seg-Eigen-CAM's
                                               sign margins, copied unchanged from the shared public
                                               segmentation fixture (its inputs, mask and terms are in
                                               seg_lraspp_public.*, made by scripts/make-model-fixtures.py)
    family_metrics_public.{safetensors,json}   the confidence, Complexity/Coherency, ROAD and ARCC metrics of
                                               the shared family fixture (ResNet-20), copied unchanged
    cam_vit_b16.{safetensors,json}             CAMs of the reduced torchvision ViT-B/16 of arch_vit_b16.* at two
                                               encoder layers: float64 A, G, H·A of the ReST target on the patch
                                               grid, and upstream pytorch-grad-cam's GradCAM, ShapleyCAM, LayerCAM
                                               and ScoreCAM maps (float32 model, the ViT tutorial's
                                               reshape_transform)
    cam_one_channel.{safetensors,json}         pytorch-grad-cam's tests/test_one_channel.py on the one-channel
                                               ResNet-18 of arch_resnet18_1ch.*: its GradCAM at layer4

Run with Debian's PyTorch 1.13 / torchvision 0.14 and an export of upstream pytorch-grad-cam at commit 084273b
(see scripts/upstream_gradcam.py):
    /usr/bin/python3 scripts/make-cam-target-fixtures.py --shared ../shared/fixtures --upstream /tmp/pgc \
        --both-png /tmp/both.png [--only seg_maps,metrics,vit,onechannel]
`--both-png` is upstream's examples/both.png at that commit (git show 084273b:examples/both.png).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures')

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, HERE)
import upstream_gradcam  # noqa: E402
from upstream_gradcam import load_script  # noqa: E402

model_fixtures = load_script('model_fixtures', 'make-model-fixtures.py')
read_safetensors = model_fixtures.read_safetensors
write_safetensors = model_fixtures.write_safetensors
VERSIONS = model_fixtures.VERSIONS
model_fixtures.arch_fixtures.DTYPES.setdefault(torch.uint8, 'U8')


def write_json(name, obj):
    with open(os.path.join(OUT, name), 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


def copy_subset(src, names, out_name, description, extra=None):
    t = read_safetensors(src + '.safetensors')
    subset = {n: t[n] for n in names}
    size = write_safetensors(os.path.join(OUT, out_name + '.safetensors'), subset)
    write_json(out_name + '.json', {
        'fixture': out_name,
        'made_by': 'scripts/make-cam-target-fixtures.py (copied from the shared fixture, unchanged values)',
        'source': os.path.basename(src) + '.safetensors',
        'description': description,
        **(extra or {}),
        'tensors': {k: {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape)} for k, v in subset.items()},
    })
    print(f'{out_name}: {size} B')


def make_seg_maps(shared):
    src = os.path.join(shared, 'segmentation', 'segmentation_lraspp_mobilenet_v3_large_public')
    layers = ('backbone.16', 'backbone.12')
    names = [f'cam/{m}/seg/{layer}' for layer in layers for m in ('GradCAM', 'HiResCAM', 'ShapleyCAM_mean', 'LayerCAM', 'SegEigenCAM')]
    names += [f'segeigen_sign_margin/{layer}' for layer in layers]
    copy_subset(src, names, 'seg_lraspp_maps_public',
                'final maps (B, H, W) of upstream GradCAM, HiResCAM, ShapleyCAM (key ShapleyCAM_mean), LayerCAM and SegEigenCAM '
                'under SemanticSegmentationTarget(category 19, mask) at backbone.16 and backbone.12, float32 model, and '
                "SegEigenCAM's sign margins (|max p| - |min p|)/max(|max p|, |min p|) per image (its sign rule is decided "
                'far from a tie where they are large); the input, mask and terms are in seg_lraspp_public.*')


def make_metrics(shared):
    src = os.path.join(shared, 'family', 'family_resnet20_public')
    methods = ('GradCAM', 'ShapleyCAM')
    metrics = ('CamMultImageConfidenceChange', 'DropInConfidence', 'IncreaseInConfidence', 'Complexity', 'Coherency',
               'ROADMostRelevantFirst', 'ROADLeastRelevantFirst', 'ROADCombined', 'ARCC')
    noise0 = ('ROADMostRelevantFirst', 'ROADLeastRelevantFirst', 'ROADCombined', 'ARCC')
    names = ['input', 'logits', 'pred', 'label']
    names += [f'metric_maps/{m}' for m in methods]
    names += [f'metric/{k}/{m}' for k in metrics for m in methods]
    names += [f'metric_noise0/{k}/{m}' for k in noise0 for m in methods]
    with open(src + '.json') as f:
        side = json.load(f)
    copy_subset(src, names, 'family_metrics_public',
                "pytorch_grad_cam.metrics on the pretrained CIFAR-10 ResNet-20 (the zoo's resnet20_cifar10), 4 CIFAR images, "
                'maps metric_maps/* (GradCAM and ShapleyCAM at layer3, ReST target), every metric with '
                'ClassifierOutputSoftmaxTarget(pred); ROAD* and ARCC with torch.manual_seed(0) (metric/*) and with the '
                "imputer's noise 0 (metric_noise0/*); ROADMostRelevantFirst/LeastRelevantFirst at their default percentiles "
                '(80 and 20), ROADCombined and ARCC over [20, 40, 60, 80]',
                {'metrics_sidecar': side['metrics']})


# ---------------------------------------------------------------------------------------------------
# ViT

VIT_LAYERS = ['encoder.layers.encoder_layer_0', 'encoder.layers.encoder_layer_2.ln_1']


def vit_grid(t, grid=4):
    """pytorch-grad-cam's ViT reshape_transform: drop the class token, patch tokens to (B, C, h, w)."""
    return t[:, 1:, :].reshape(t.size(0), grid, grid, t.size(2)).permute(0, 3, 1, 2)


def rest(logits, classes):
    return 2 * logits.gather(1, classes[:, None])[:, 0] - torch.logsumexp(logits, 1)


def float64_terms(model, x, layer, classes, transform):
    """A, G = ∂L/∂A and H·A (double backward) at the layer's native output, L = Σ_b ReST_b; then transformed."""
    mod = dict(model.named_modules())[layer]
    captured = {}

    def hook(_m, _i, out):
        captured['A'] = out
        return out

    h = mod.register_forward_hook(hook)
    logits = model(x)
    h.remove()
    A = captured['A']
    L = rest(logits, classes).sum()
    (G,) = torch.autograd.grad(L, A, create_graph=True)
    (HA,) = torch.autograd.grad(G, A, grad_outputs=A.detach())
    return {k: transform(v.detach()) for k, v in (('A', A), ('G', G), ('HA', HA))}


def make_vit(upstream):
    pgc = upstream_gradcam.import_upstream(upstream)
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST
    from torchvision.models.vision_transformer import VisionTransformer

    gradcam_check = {}

    model = VisionTransformer(image_size=64, patch_size=16, num_layers=3, num_heads=12, hidden_dim=36, mlp_dim=72, num_classes=10)
    w = read_safetensors(os.path.join(OUT, 'arch_vit_b16.weights.safetensors'))
    model.load_state_dict(w, strict=True)
    model.eval()
    x = read_safetensors(os.path.join(OUT, 'arch_vit_b16.safetensors'))['input']
    with torch.no_grad():
        logits32 = model(x)
    pred = logits32.argmax(1)
    tensors = {'pred': pred}
    model64 = VisionTransformer(image_size=64, patch_size=16, num_layers=3, num_heads=12, hidden_dim=36, mlp_dim=72, num_classes=10).double().eval()
    model64.load_state_dict({k: v.double() for k, v in w.items()}, strict=True)
    for layer in VIT_LAYERS:
        for k, v in float64_terms(model64, x.double(), layer, pred, vit_grid).items():
            tensors[f'{k}/ReST/{layer}'] = v.contiguous()
    targets = [ClassifierOutputReST(int(c)) for c in pred]
    methods = {'GradCAM': pgc.GradCAM, 'LayerCAM': pgc.LayerCAM, 'ScoreCAM': pgc.ScoreCAM}
    for layer in VIT_LAYERS:
        target_layer = dict(model.named_modules())[layer]
        for key, cls in methods.items():
            cam = cls(model=model, target_layers=[target_layer], reshape_transform=vit_grid)
            tensors[f'cam/{key}/ReST/{layer}'] = torch.from_numpy(cam(input_tensor=x, targets=targets)).float()
            cam.activations_and_grads.release()
        # Upstream ShapleyCAM keeps its activations undetached and then skips the reshape_transform for them
        # (BaseCAM.get_cam_image raises "Invalid activation shape. Get 3."), so it cannot run on a ViT at 084273b.
        # Its map is formed here from the float64 terms with its own definition and upstream's post-processing:
        # ReLU(Σ_k mean_hw(G − ½·H·A)_k · A_k), scale_cam_image to the input size, then the layer aggregation.
        t = {k: tensors[f'{k}/ReST/{layer}'].numpy() for k in ('A', 'G', 'HA')}
        weights = (t['G'] - 0.5 * t['HA']).mean(axis=(2, 3))
        raw = np.maximum((weights[:, :, None, None] * t['A']).sum(axis=1), 0)
        scaled = scale_cam_image(raw, (x.shape[3], x.shape[2]))
        tensors[f'cam/ShapleyCAM/ReST/{layer}'] = torch.from_numpy(scale_cam_image(np.maximum(scaled, 0))).float()
        # The same construction for GradCAM, checked against upstream's GradCAM on the float32 model.
        g_raw = np.maximum((t['G'].mean(axis=(2, 3))[:, :, None, None] * t['A']).sum(axis=1), 0)
        g_map = scale_cam_image(np.maximum(scale_cam_image(g_raw, (x.shape[3], x.shape[2])), 0))
        gradcam_check[layer] = float(np.abs(g_map - tensors[f'cam/GradCAM/ReST/{layer}'].numpy()).max())
    margin = (logits32.topk(2, 1).values[:, 0] - logits32.topk(2, 1).values[:, 1]).min().item()
    size = write_safetensors(os.path.join(OUT, 'cam_vit_b16.safetensors'), tensors)
    write_json('cam_vit_b16.json', {
        'fixture': 'cam_vit_b16', 'made_by': 'scripts/make-cam-target-fixtures.py', 'versions': VERSIONS,
        'upstream': {'repository': 'jacobgil/pytorch-grad-cam', 'commit': upstream_gradcam.UPSTREAM_COMMIT},
        'model': 'the reduced torchvision VisionTransformer of arch_vit_b16.* (its weights and input)',
        'layers': VIT_LAYERS,
        'target': 'ClassifierOutputReST(pred), pred = argmax of the float32 logits; L = sum over the batch',
        'reshape_transform': "x[:, 1:, :].reshape(B, 4, 4, C).permute(0, 3, 1, 2) (class token dropped; the ViT tutorial's)",
        'terms': 'A/G/HA: float64 model, double backward at the layer output (tokens), then the reshape_transform',
        'maps': 'cam/<M>/ReST/<layer>: upstream classes GradCAM, LayerCAM, ScoreCAM on the float32 model; ShapleyCAM (upstream '
                "cannot run it on a ViT: its undetached activations skip the reshape_transform) formed from the float64 A, G, "
                "H·A with upstream's scale_cam_image post-processing",
        'gradcam_from_float64_terms_vs_upstream_max_abs': gradcam_check,
        'top2_logit_margin_f32': margin,
        'tensors': {k: list(v.shape) for k, v in tensors.items()},
    })
    print(f'cam_vit_b16: {size} B, top-2 margin {margin:.3g}')


# ---------------------------------------------------------------------------------------------------
# One-channel ResNet-18 (tests/test_one_channel.py)

def make_one_channel(upstream, both_png):
    import cv2
    pgc = upstream_gradcam.import_upstream(upstream)
    from torchvision.models.resnet import BasicBlock

    model = model_fixtures.ReducedResNet(BasicBlock, [2, 2, 2, 2], planes=[4, 8, 16, 32], stem_width=4, num_classes=10, in_channels=1)
    missing, unexpected = model.load_state_dict(read_safetensors(os.path.join(OUT, 'arch_resnet18_1ch.weights.safetensors')), strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing), (missing, unexpected)
    model.eval()
    # The upstream test: cv2.imread (BGR), channel 0, float32 without scaling or normalisation, batch of 16.
    # Here at half size (112×112, cv2 INTER_AREA) to keep the committed map small.
    img = cv2.resize(cv2.imread(both_png), (112, 112), interpolation=cv2.INTER_AREA)[:, :, 0]
    x = torch.from_numpy(np.float32(img)).unsqueeze(0).unsqueeze(0).repeat(16, 1, 1, 1)
    with pgc.GradCAM(model=model, target_layers=[model.layer4]) as cam:
        maps = cam(input_tensor=x, targets=None)
    with torch.no_grad():
        logits = model(x[:1])
    top2 = logits.topk(2, 1).values[0]
    assert np.abs(maps - maps[:1]).max() == 0, 'the 16 identical rows gave different maps'
    tensors = {'image': torch.from_numpy(img.copy()), 'logits': logits, 'cam/GradCAM/layer4': torch.from_numpy(maps[:1]).float()}
    size = write_safetensors(os.path.join(OUT, 'cam_one_channel.safetensors'), tensors)
    write_json('cam_one_channel.json', {
        'fixture': 'cam_one_channel', 'made_by': 'scripts/make-cam-target-fixtures.py', 'versions': VERSIONS,
        'upstream': {'repository': 'jacobgil/pytorch-grad-cam', 'commit': upstream_gradcam.UPSTREAM_COMMIT, 'test': 'tests/test_one_channel.py'},
        'model': 'the one-channel reduced ResNet-18 of arch_resnet18_1ch.* (Conv2d(1, 4, 7, 2, 3) as conv1)',
        'input': "upstream examples/both.png, cv2.imread (BGR), resized to 112x112 (INTER_AREA), channel 0 (blue) as float32 "
                 "0..255 without normalisation (the test's input), stored as U8 'image'; the test repeats it 16 times",
        'method': 'GradCAM(model, target_layers=[model.layer4]), targets=None (the predicted class: ClassifierOutputTarget)',
        'cam': "cam/GradCAM/layer4 (1, 112, 112): every one of the 16 rows (identical)",
        'predicted_class': int(logits.argmax()), 'top2_logit_margin': (top2[0] - top2[1]).item(),
        'tensors': {k: list(v.shape) for k, v in tensors.items()},
    })
    print(f'cam_one_channel: {size} B, class {int(logits.argmax())}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=os.path.join(HERE, '..', '..', 'shared', 'fixtures'))
    parser.add_argument('--upstream', default='/tmp/pgc')
    parser.add_argument('--both-png', default='/tmp/both.png')
    parser.add_argument('--only', default='', help='comma-separated subset of: seg_maps,metrics,vit,onechannel')
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = {
        'seg_maps': lambda: make_seg_maps(args.shared),
        'metrics': lambda: make_metrics(args.shared),
        'vit': lambda: make_vit(args.upstream),
        'onechannel': lambda: make_one_channel(args.upstream, args.both_png),
    }
    only = [p for p in args.only.split(',') if p] or list(parts)
    for name in only:
        parts[name]()


if __name__ == '__main__':
    main()
