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
    seg_lraspp_family.{safetensors,json}       the family's methods under the segmentation target on image 0 of
                                               seg_lraspp_public: upstream FullGrad, KPCA-CAM, FEM, RefineCAM,
                                               GradCAM with eigen_smooth (both projection signs), guided
                                               backpropagation and Guided Grad-CAM of the target, and aug_smooth
                                               with the mask mirrored with the input
    cam_vit_family.{safetensors,json}          the same methods on the reduced ViT of cam_vit_b16 (ReST target,
                                               the ViT tutorial's reshape_transform), and scikit-learn's NMF error
                                               for DFF on a ViT block

Run with Debian's PyTorch 1.13 / torchvision 0.14 and an export of upstream pytorch-grad-cam at commit 084273b
(see scripts/upstream_gradcam.py):
    /usr/bin/python3 scripts/make-cam-target-fixtures.py --shared ../shared/fixtures --upstream /tmp/pgc \
        --both-png /tmp/both.png [--only seg_maps,metrics,vit,onechannel,seg_family,vit_family]
`--both-png` is upstream's examples/both.png at that commit (git show 084273b:examples/both.png).
"""

import argparse
import contextlib
import copy
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


def sidecar(name, **fields):
    """Writes test/fixtures/<name>.json: what made the fixture, from which upstream commit, and `fields`."""
    write_json(name + '.json', {
        'fixture': name, 'made_by': 'scripts/make-cam-target-fixtures.py', 'versions': VERSIONS,
        'upstream': {'repository': 'jacobgil/pytorch-grad-cam', 'commit': upstream_gradcam.UPSTREAM_COMMIT}, **fields,
    })


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
    sidecar(
        'cam_vit_b16',
        model='the reduced torchvision VisionTransformer of arch_vit_b16.* (its weights and input)',
        layers=VIT_LAYERS,
        target='ClassifierOutputReST(pred), pred = argmax of the float32 logits; L = sum over the batch',
        reshape_transform="x[:, 1:, :].reshape(B, 4, 4, C).permute(0, 3, 1, 2) (class token dropped; the ViT tutorial's)",
        terms='A/G/HA: float64 model, double backward at the layer output (tokens), then the reshape_transform',
        maps='cam/<M>/ReST/<layer>: upstream classes GradCAM, LayerCAM, ScoreCAM on the float32 model; ShapleyCAM (upstream '
             "cannot run it on a ViT: its undetached activations skip the reshape_transform) formed from the float64 A, G, "
             "H·A with upstream's scale_cam_image post-processing",
        gradcam_from_float64_terms_vs_upstream_max_abs=gradcam_check,
        top2_logit_margin_f32=margin,
        tensors={k: list(v.shape) for k, v in tensors.items()},
    )
    print(f'cam_vit_b16: {size} B, top-2 margin {margin:.3g}')


# ---------------------------------------------------------------------------------------------------
# The family's methods (FullGrad, KPCA-CAM, FEM, Seg-Eigen-CAM, RefineCAM, smoothing, guided backpropagation,
# DFF) on a segmentation network and on a ViT, through upstream's classes where it allows.

@contextlib.contextmanager
def projection_sign(module, sign):
    """Upstream's get_2d_projection (as `module` imported it) times `sign`: its sign is whatever LAPACK gives,
    so both are stored and a port is compared with either, per image."""
    original = module.get_2d_projection
    module.get_2d_projection = lambda a: original(a) * sign
    try:
        yield
    finally:
        module.get_2d_projection = original


def run_cam(cls, model, layers, x, targets, reshape_transform=None, **kwargs):
    cam = cls(model=model, target_layers=layers, reshape_transform=reshape_transform)
    try:
        return torch.from_numpy(np.float32(cam(input_tensor=x, targets=targets, **kwargs)))
    finally:
        for c in getattr(cam, 'base_cam_per_layer', [cam]):
            c.activations_and_grads.release()


def guided_gradient(model, x, score):
    """Upstream's guided backpropagation (its GuidedBackpropReLUasModule in place of every nn.ReLU) of
    score(model(x)), summed over the batch: what GuidedBackpropReLUModel computes for a scalar target."""
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUasModule
    from pytorch_grad_cam.utils.find_layers import replace_all_layer_type_recursive
    replace_all_layer_type_recursive(model, torch.nn.ReLU, GuidedBackpropReLUasModule())
    try:
        xg = x.clone().requires_grad_(True)
        score(model(xg)).backward()
        return xg.grad.detach()
    finally:
        replace_all_layer_type_recursive(model, GuidedBackpropReLUasModule, torch.nn.ReLU())


class SegmentationOutput(torch.nn.Module):
    """The tutorial's wrapper: model(x)['out']."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)['out']


def in_both_precisions(model, x, maps):
    """maps(model, x) → {key: tensor} on the float32 model and on a float64 copy: the float64 maps (what this
    project's float64 CPU backend computes; some of these methods amplify float32 rounding well past the
    checker's bounds, e.g. Grad-CAM++'s denominators on LR-ASPP) and, per key, max |float32 − float64|."""
    m32 = maps(model, x)
    m64 = maps(copy.deepcopy(model).double(), x.double())
    spread = {k: float((m32[k].double() - m64[k].double()).abs().max()) for k in m64}
    return {k: v.float() for k, v in m64.items()}, spread


def make_seg_family(upstream):
    pgc = upstream_gradcam.import_upstream(upstream)
    import pytorch_grad_cam.base_cam as base_cam
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    missing, unexpected = net.load_state_dict(read_safetensors(os.path.join(OUT, 'seg_lraspp_public.weights.safetensors')), strict=False)
    assert not unexpected and all(k.endswith('num_batches_tracked') for k in missing), (missing, unexpected)
    model = SegmentationOutput(net).eval()
    ref = read_safetensors(os.path.join(OUT, 'seg_lraspp_public.safetensors'))
    x = ref['input'][:1].contiguous()
    category = int(ref['category'][0])
    with torch.no_grad():
        out = model(x)
    mask = np.float32((out[0].argmax(0) == category).numpy())
    assert np.array_equal(mask, ref['mask'][0].numpy()), 'the mask of image 0 is not the fixture\'s'

    def maps(model, x):
        mods = dict(model.model.named_modules())
        high, low = mods['backbone.16'], mods['backbone.12']
        targets = [SemanticSegmentationTarget(category, mask)]
        t = {}
        t['cam/FullGrad'] = run_cam(pgc.FullGrad, model, [], x, targets)
        t['cam/KPCA_CAM/backbone.16'] = run_cam(pgc.KPCA_CAM, model, [high], x, targets)
        t['cam/FEM/backbone.16'] = run_cam(pgc.FEM, model, [high], x, targets)
        t['cam/RefineCAM/backbone.12+backbone.16'] = run_cam(pgc.RefineCAM, model, [low, high], x, targets)
        for sign, suffix in ((1, ''), (-1, '/flipped')):
            with projection_sign(base_cam, sign):
                t[f'cam/GradCAM/backbone.16/eigen_smooth{suffix}'] = run_cam(pgc.GradCAM, model, [high], x, targets, eigen_smooth=True)
        # Upstream's GuidedBackpropReLUModel back-propagates output[0, c], which is a map here (it raises); its
        # guided ReLUs on the segmentation target itself are what this project computes.
        guided = guided_gradient(model, x, lambda o: targets[0](o[0]))
        t['guided/GuidedBackprop'] = guided
        t['cam/GuidedGradCAM/backbone.16'] = run_cam(pgc.GradCAM, model, [high], x, targets)[:, None] * guided
        # aug_smooth as BaseCAM.forward_augmentation_smoothing does it (ttach's HorizontalFlip × Multiply(0.9, 1,
        # 1.1), each final map de-augmented, the mean), except that a mirrored input gets the mirrored mask:
        # upstream keeps the target's mask in the original frame, so it scores a flipped output on the wrong pixels.
        smoothed = []
        for flip in (False, True):
            for factor in (0.9, 1, 1.1):
                xa = (x.flip(3) if flip else x) * factor
                ta = [SemanticSegmentationTarget(category, np.ascontiguousarray(mask[:, ::-1]) if flip else mask)]
                m = run_cam(pgc.GradCAM, model, [high], xa, ta)
                smoothed.append(m.flip(2) if flip else m)
        t['cam/GradCAM/backbone.16/aug_smooth_mirrored_mask'] = torch.stack(smoothed).mean(0)
        return t

    tensors, spread = in_both_precisions(model, x, maps)
    size = write_safetensors(os.path.join(OUT, 'seg_lraspp_family.safetensors'), tensors)
    sidecar(
        'seg_lraspp_family',
        model="lraspp_mobilenet_v3_large with seg_lraspp_public's weights, model(x)['out'], cast to float64 for the maps",
        input='image 0 of seg_lraspp_public (1, 3, 128, 128)',
        target=f'SemanticSegmentationTarget({category}, mask), mask = argmax(out) == {category} of the float32 model (the fixture\'s)',
        category=category,
        maps='cam/<M>/<layers>: upstream classes on the float64 model (RefineCAM: base GradCAM++; FullGrad: every bias '
             'layer); cam/GradCAM/backbone.16/eigen_smooth[/flipped]: both signs of the projection; guided/GuidedBackprop: '
             "the input gradient of the target through upstream's guided ReLU modules (upstream's GuidedBackpropReLUModel "
             'cannot take a dense output); cam/GuidedGradCAM: GradCAM x it; aug_smooth_mirrored_mask: upstream aug_smooth '
             'by hand with the mask mirrored for mirrored inputs',
        float32_model_max_abs_difference=spread,
        tensors={k: list(v.shape) for k, v in tensors.items()},
    )
    print(f'seg_lraspp_family: {size} B; float32 spread {json.dumps(spread)}')


def make_vit_family(upstream):
    pgc = upstream_gradcam.import_upstream(upstream)
    import pytorch_grad_cam.base_cam as base_cam
    from pytorch_grad_cam.feature_factorization.deep_feature_factorization import dff
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST
    from torchvision.models.vision_transformer import VisionTransformer

    model = VisionTransformer(image_size=64, patch_size=16, num_layers=3, num_heads=12, hidden_dim=36, mlp_dim=72, num_classes=10)
    model.load_state_dict(read_safetensors(os.path.join(OUT, 'arch_vit_b16.weights.safetensors')), strict=True)
    model.eval()
    x = read_safetensors(os.path.join(OUT, 'arch_vit_b16.safetensors'))['input']
    with torch.no_grad():
        pred = model(x).argmax(1)
    targets = [ClassifierOutputReST(int(c)) for c in pred]

    def maps(model, x):
        mods = dict(model.named_modules())
        layers = [mods[name] for name in VIT_LAYERS]
        t = {}
        for name, layer in zip(VIT_LAYERS, layers):
            for key, cls in (('KPCA_CAM', pgc.KPCA_CAM), ('FEM', pgc.FEM), ('SegEigenCAM', pgc.SegEigenCAM)):
                t[f'cam/{key}/ReST/{name}'] = run_cam(cls, model, [layer], x, targets, vit_grid)
            for sign, suffix in ((1, ''), (-1, '/flipped')):
                with projection_sign(base_cam, sign):
                    t[f'cam/GradCAM/ReST/{name}/eigen_smooth{suffix}'] = run_cam(pgc.GradCAM, model, [layer], x, targets, vit_grid, eigen_smooth=True)
        # FullGrad reads the bias layers (here conv_proj, the patch embedding), not token sequences: no reshape_transform.
        t['cam/FullGrad/ReST'] = run_cam(pgc.FullGrad, model, [], x, targets)
        t['cam/RefineCAM/ReST/' + '+'.join(VIT_LAYERS)] = run_cam(pgc.RefineCAM, model, layers, x, targets, vit_grid)
        # GELUs, no nn.ReLU: upstream's guided backpropagation is the plain input gradient of each image's logit.
        t['guided/GuidedBackprop'] = guided_gradient(model, x, lambda o: o.gather(1, pred[:, None]).sum())
        return t

    tensors, spread = in_both_precisions(model, x, maps)
    tensors['pred'] = pred
    mods = dict(model.named_modules())
    # DFF on the last layer's patch grid: scikit-learn's NMF error, the bound a port's NMF is held to (5% above).
    dff_layer = VIT_LAYERS[-1]
    captured = {}
    hook = mods[dff_layer].register_forward_hook(lambda _m, _i, o: captured.setdefault('A', o.detach()))
    with torch.no_grad():
        model(x)
    hook.remove()
    A = vit_grid(captured['A']).numpy()
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ConvergenceWarning)
        concepts, explanations = dff(A.copy(), n_components=4)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    shifted = A.transpose(1, 0, 2, 3).reshape(A.shape[1], -1)
    offset = shifted.min(axis=1, keepdims=True)
    H = explanations.transpose(1, 0, 2, 3).reshape(4, -1)
    dff_error = float(np.linalg.norm(shifted - offset - (concepts - offset) @ H) / np.linalg.norm(shifted - offset))
    size = write_safetensors(os.path.join(OUT, 'cam_vit_family.safetensors'), tensors)
    sidecar(
        'cam_vit_family',
        model='the reduced torchvision VisionTransformer of arch_vit_b16.* (its weights and input), cast to float64 for the maps',
        layers=VIT_LAYERS,
        target='ClassifierOutputReST(pred), pred = argmax of the float32 logits',
        float32_model_max_abs_difference=spread,
        reshape_transform="x[:, 1:, :].reshape(B, 4, 4, C).permute(0, 3, 1, 2) (the ViT tutorial's)",
        maps='cam/<M>/ReST/<layer>: upstream KPCA_CAM, FEM, SegEigenCAM, GradCAM with eigen_smooth (both projection '
             'signs); FullGrad (every bias layer: conv_proj); RefineCAM over both layers (base GradCAM++); '
             'guided/GuidedBackprop: the input gradient of the logit (no ReLU to guide)',
        dff={'layer': dff_layer, 'concepts': 4, 'nmf': "upstream dff(): sklearn NMF(init='random', random_state=0)",
            'relative_error_fro': dff_error, 'sklearn_converged': converged},
        tensors={k: list(v.shape) for k, v in tensors.items()},
    )
    print(f'cam_vit_family: {size} B, DFF relative error {dff_error:.6f}')


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
    sidecar(
        'cam_one_channel',
        upstream={'repository': 'jacobgil/pytorch-grad-cam', 'commit': upstream_gradcam.UPSTREAM_COMMIT, 'test': 'tests/test_one_channel.py'},
        model='the one-channel reduced ResNet-18 of arch_resnet18_1ch.* (Conv2d(1, 4, 7, 2, 3) as conv1)',
        input="upstream examples/both.png, cv2.imread (BGR), resized to 112x112 (INTER_AREA), channel 0 (blue) as float32 "
              "0..255 without normalisation (the test's input), stored as U8 'image'; the test repeats it 16 times",
        method='GradCAM(model, target_layers=[model.layer4]), targets=None (the predicted class: ClassifierOutputTarget)',
        cam="cam/GradCAM/layer4 (1, 112, 112): every one of the 16 rows (identical)",
        predicted_class=int(logits.argmax()), top2_logit_margin=(top2[0] - top2[1]).item(),
        tensors={k: list(v.shape) for k, v in tensors.items()},
    )
    print(f'cam_one_channel: {size} B, class {int(logits.argmax())}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=os.path.join(HERE, '..', '..', 'shared', 'fixtures'))
    parser.add_argument('--upstream', default='/tmp/pgc')
    parser.add_argument('--both-png', default='/tmp/both.png')
    parser.add_argument('--only', default='', help='comma-separated subset of: seg_maps,metrics,vit,onechannel,seg_family,vit_family')
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = {
        'seg_maps': lambda: make_seg_maps(args.shared),
        'metrics': lambda: make_metrics(args.shared),
        'vit': lambda: make_vit(args.upstream),
        'onechannel': lambda: make_one_channel(args.upstream, args.both_png),
        'seg_family': lambda: make_seg_family(args.upstream),
        'vit_family': lambda: make_vit_family(args.upstream),
    }
    only = [p for p in args.only.split(',') if p] or list(parts)
    for name in only:
        parts[name]()


if __name__ == '__main__':
    main()
