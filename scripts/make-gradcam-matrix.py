#!/usr/bin/env python3
"""pytorch-grad-cam's tests/test_run_all_models.py matrix, as references for test/gradcam-matrix.test.ts.

Upstream's test runs every CAM class on torchvision's resnet18 (target layers layer4[-1] and layer4[-2] at
once) and vgg11 (features[-1]) with pretrained weights, on examples/both.png resized to 32×32 (batch 2) and
to 32 wide × 40 high (batch 1), for the predicted class and class 100, with and without eigen_smooth, and
checks only the shapes. Here the same matrix runs on seeded random weights at reduced widths (the weights
are committed; ImageNet's 1000 classes kept, so class 100 exists), for every method upstream has — also those
this project does not have yet, so the test extends itself when they land — and the maps are stored:

    test/fixtures/gradcam_matrix.{safetensors,json}           inputs and maps (identical maps stored once)
    test/fixtures/gradcam_matrix_<model>.weights.safetensors  the weights (torch state_dict names, F32)

The JSON lists every case: model, input, class, eigen_smooth, upstream class, our CLI name (the mapping
table), the predicted classes, and the keys of the stored map and of the maps the other projection signs
give (methods that project on a first principal component — EigenCAM, EigenGradCAM, eigen_smooth, KPCA-CAM —
get the sign LAPACK/sklearn happen to return; a port is accepted with any sign per layer), or the error
upstream raised. Targets are upstream's: ClassifierOutputTarget (the raw logit), as in its test.

Conditioning. At 2×1 target layers a per-layer map has two values, so min-max normalisation makes it a ramp
up, a ramp down or zero, and the mean of two layers' ramps can be constant: the final min-max then divides
float32 rounding (~6e-8) by 1e-7 and upstream's map is noise (as two nearly equal raw values are in a
per-layer normalisation). Projections have the same weakness where the top two eigenvalues they solve for
(nearly) coincide: the first principal direction is then (nearly) arbitrary. For every stored map the
generator records, per image, the smallest relative range (max − min)/max|·| that any of upstream's
normalisations saw (scale_cam_image; FullGrad's per-channel ones) and the smallest relative eigengap
(λ₁ − λ₂)/λ₁ of any projection: `conditioning`. The test compares values only where it is ≥ 1e-3, and
checks the rest for the properties alone.

Layer order. Upstream's ActivationsAndGradients collects activations and gradients in the order the layers
run, while AblationCAM hooks and replaces target_layers[i]: with layers given out of forward order (the test's
layer4[-1], layer4[-2]) it pairs one layer's ablation weights with the other layer's activations. The mean
over layers does not depend on their order, so the reference for AblationCAM is upstream run with the layers
in forward order; the map of the order as given is kept beside it (`upstream_layer_order_map`).

Run with Debian's PyTorch 1.13 / torchvision 0.14 and an export of upstream pytorch-grad-cam at 084273b
(scripts/upstream_gradcam.py says how):
    /usr/bin/python3 scripts/make-gradcam-matrix.py --upstream /tmp/pgc --both-png /tmp/both.png
"""

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import sys

import numpy as np
import torch
import torchvision.models.resnet as torchvision_resnet

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures')

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, HERE)
import upstream_gradcam  # noqa: E402
from upstream_gradcam import load_script  # noqa: E402

model_fixtures = load_script('model_fixtures', 'make-model-fixtures.py')
arch_fixtures = model_fixtures.arch_fixtures

# Our CLI name → upstream class, for every method upstream has. `layers`: how many target layers it needs
# at least; `eigen`: whether upstream's class takes eigen_smooth (RefineCAM passes it on as aug_smooth, an
# upstream bug; guided backprop is not a BaseCAM).
METHODS = [
    # name,            upstream,                  kind
    ('gradcam', 'GradCAM', 'cam'),
    ('hirescam', 'HiResCAM', 'cam'),
    ('gradcam-e', 'GradCAMElementWise', 'cam'),
    ('gradcam++', 'GradCAMPlusPlus', 'cam'),
    ('xgradcam', 'XGradCAM', 'cam'),
    ('layercam', 'LayerCAM', 'cam'),
    ('shapleycam', 'ShapleyCAM', 'cam'),
    ('eigencam', 'EigenCAM', 'cam'),
    ('eigengradcam', 'EigenGradCAM', 'cam'),
    ('scorecam', 'ScoreCAM', 'cam'),
    ('ablationcam', 'AblationCAM', 'cam'),
    ('random', 'RandomCAM', 'cam'),
    ('fullgrad', 'FullGrad', 'cam'),
    ('kpca-cam', 'KPCA_CAM', 'cam'),
    ('fem', 'FEM', 'cam'),
    ('finer-cam', 'FinerCAM', 'finer'),
    ('seg-eigencam', 'SegEigenCAM', 'cam'),
    ('refine-cam', 'RefineCAM', 'refine'),
    ('guided-backprop', 'GuidedBackpropReLUModel', 'guided'),
    ('guided-gradcam', 'GuidedBackpropReLUModel × GradCAM', 'guided-gradcam'),
]

# Methods whose map is a first-principal-component projection of unspecified sign, and the function of
# upstream's that computes it (patched to flip signs per call).
PROJECTIONS = {'EigenCAM': 'get_2d_projection', 'EigenGradCAM': 'get_2d_projection', 'KPCA_CAM': 'get_2d_projection_kernel'}
# Upstream's modules that import a projection function by name: each gets the patched one. With eigen_smooth
# every BaseCAM method projects through the one its own module imported (HiResCAM, GradCAMElementWise and
# LayerCAM theirs, the others base_cam's, FinerCAM its base's), FullGrad through fullgrad_cam's.
PROJECTION_MODULES = ['base_cam', 'eigen_cam', 'eigen_grad_cam', 'kpca_cam', 'hirescam', 'grad_cam_elementwise', 'layer_cam', 'fullgrad_cam', 'seg_eigen_cam']
# Every projection function, and how its spectrum is read for the conditioning (see Conditioning).
PROJECTION_FUNCTIONS = ['get_2d_projection', 'get_2d_projection_kernel', 'get_2d_projection_with_sign_correction']


def projection_function(upstream, kind, eigen):
    """The projection function whose sign a case's map depends on, if any. SegEigenCAM fixes its own sign
    (and ignores eigen_smooth); RefineCAM and the guided methods have no eigen_smooth cases."""
    if upstream in PROJECTIONS:
        return PROJECTIONS[upstream]
    if eigen and kind in ('cam', 'finer') and upstream != 'SegEigenCAM':
        return 'get_2d_projection'
    return None


def projection_calls(upstream, layers):
    """How many projections one run makes: one per target layer; FullGrad projects its combined maps once."""
    return 1 if upstream == 'FullGrad' else len(layers)


INPUTS = [('2x3x32x32', 2, 32, 32), ('1x3x40x32', 1, 32, 40)]  # (key, batch, width, height) as upstream's test
CLASSES = [None, 100]
# Beyond upstream's matrix: at its inputs the target layers are 1×1 and 2×1, where most maps are zero or a
# ramp. At 48×48 ResNet-18's layer4 is 2×2, so every method's values are compared on maps with structure, the
# two layers' aggregation included (ResNet-18 only, predicted class, no eigen_smooth: the fixture stays small).
EXTRA_INPUT = ('1x3x48x48', 1, 48, 48)
EXTRA_MODEL = 'resnet18'


def make_models():
    torch.manual_seed(5001)
    resnet = model_fixtures.ReducedResNet(torchvision_resnet.BasicBlock, [2, 2, 2, 2], planes=[4, 8, 16, 32], stem_width=4, num_classes=1000)
    torch.manual_seed(5002)
    vgg = arch_fixtures.small_vgg([4, 'M', 8, 'M', 16, 16, 'M', 32, 32, 'M', 32, 32, 'M'], False, 16, 1000)
    models = {
        'resnet18': (resnet, ['layer4.1', 'layer4.0'], 'torchvision ResNet (BasicBlock [2,2,2,2]) = resnet18 at stem 4, planes 4/8/16/32, 1000 classes'),
        'vgg11': (vgg, ['features.20'], "torchvision VGG(make_layers(cfg 'A' at widths /16)) = vgg11 with classifier hidden 16, 1000 classes"),
    }
    for i, (name, (model, _, _)) in enumerate(models.items()):
        gen = torch.Generator().manual_seed(5101 + i)
        arch_fixtures.randomize(model, gen)
        model_fixtures.calibrate_bn(model, gen, (3, 32, 32), model_fixtures.classify)
        final = 'fc' if name == 'resnet18' else 'classifier.6'
        model_fixtures.rescale_heads(model, gen, (3, 32, 32), model_fixtures.classify, [final])
        model.eval()
    return models


def read_input(both_png, batch, width, height, pgc_image):
    import cv2
    img = cv2.resize(cv2.imread(both_png), (width, height))
    return pgc_image.preprocess_image(img).repeat(batch, 1, 1, 1)


def relative_range(img):
    """(max − min)/max|·| of a map; 1 for an all-zero or one-pixel map (both normalise to exactly 0)."""
    hi, lo = float(np.max(img)), float(np.min(img))
    scale = max(abs(hi), abs(lo))
    return (hi - lo) / scale if scale > 0 and np.size(img) > 1 else 1.0


def centred_rows(activations):
    """(K, h, w) → the (h·w, K) matrix upstream's projections decompose, NaN as 0, columns centred (float64)."""
    rows = np.nan_to_num(np.asarray(activations, dtype=np.float64)).reshape(activations.shape[0], -1).T
    return rows - rows.mean(axis=0)


def eigengap(function, activations, args, kwargs):
    """The relative gap (λ₁ − λ₂)/λ₁ between the top two eigenvalues of what a projection diagonalises (the
    centred rows' singular values, or the double-centred kernel matrix of KernelPCA with upstream's default
    γ = 1/K); 1 when the top one is 0 (the projection is exactly 0) or alone."""
    X = centred_rows(activations)
    if function == 'get_2d_projection_kernel':
        from sklearn.metrics.pairwise import pairwise_kernels
        kernel = args[0] if args else kwargs.get('kernel', 'sigmoid')
        gamma = (args[1] if len(args) > 1 else kwargs.get('gamma')) or 1.0 / X.shape[1]
        K = pairwise_kernels(X, metric=kernel, gamma=gamma) if kernel in ('sigmoid', 'rbf', 'poly', 'laplacian', 'chi2') else pairwise_kernels(X, metric=kernel)
        centre = np.eye(len(K)) - 1.0 / len(K)
        values = np.sort(np.linalg.eigvalsh(centre @ K @ centre))[::-1]
    else:
        values = np.linalg.svd(X, compute_uv=False)
    if len(values) < 2 or values[0] <= 0:
        return 1.0
    return float((values[0] - max(values[1], 0.0)) / values[0])


class Conditioning:
    """Wraps upstream's scale_cam_image wherever it is imported, recording per image the relative range of
    every map it normalises (all-zero and one-pixel maps count as well conditioned: they give exactly zero),
    and FullGrad's scale_accross_batch_and_channels, which normalises each channel map of each image. There
    an exactly constant channel map is common (a bias gradient broadcast from a global pool is the same at
    every position) and normalises to exactly 0 in any arithmetic, so only a non-zero range counts; a
    near-constant one (with eigen_smooth, a sum of normalised maps that nearly cancel) is float32 noise that
    the normalisation blows up to [0, 1].
    Projections (PROJECTION_FUNCTIONS, wherever imported) record per image the relative gap between the top
    two eigenvalues they solve for: where it is small the first principal direction is barely defined (two
    equal eigenvalues leave it arbitrary within their plane), and float32 rounding or the solver decides it."""

    def __init__(self, modules, channel_modules, projection_modules):
        self.modules = [m for m in modules if hasattr(m, 'scale_cam_image')]
        self.original = self.modules[0].scale_cam_image
        self.channel_modules = channel_modules
        self.original_channels = channel_modules[0].scale_accross_batch_and_channels
        self.projections = {f: [m for m in projection_modules if hasattr(m, f)] for f in PROJECTION_FUNCTIONS}
        self.original_projections = {f: getattr(ms[0], f) for f, ms in self.projections.items() if ms}
        self.per_image = None

    def record(self, ranges):
        if self.per_image is None or len(self.per_image) != len(ranges):
            self.per_image = ranges
        else:
            self.per_image = [min(a, b) for a, b in zip(self.per_image, ranges)]

    def scale_cam_image(self, cam, target_size=None):
        self.record([relative_range(img) for img in cam])
        return self.original(cam, target_size)

    def scale_accross_batch_and_channels(self, tensor, target_size):
        self.record([min([r for r in map(relative_range, maps) if r > 0], default=1.0) for maps in tensor])
        return self.original_channels(tensor, target_size)

    def projection(self, function):
        original = self.original_projections[function]

        def recorded(activation_batch, *args, **kwargs):
            self.record([eigengap(function, a, args, kwargs) for a in activation_batch])
            return original(activation_batch, *args, **kwargs)
        return recorded

    @contextlib.contextmanager
    def recording(self):
        self.per_image = None
        for m in self.modules:
            m.scale_cam_image = self.scale_cam_image
        for m in self.channel_modules:
            m.scale_accross_batch_and_channels = self.scale_accross_batch_and_channels
        for f, ms in self.projections.items():
            recorded = self.projection(f) if ms else None
            for m in ms:
                setattr(m, f, recorded)
        try:
            yield self
        finally:
            for m in self.modules:
                m.scale_cam_image = self.original
            for m in self.channel_modules:
                m.scale_accross_batch_and_channels = self.original_channels
            for f, ms in self.projections.items():
                for m in ms:
                    setattr(m, f, self.original_projections[f])


@contextlib.contextmanager
def projection_signs(modules, function, signs):
    """Upstream's projection function with its k-th call (k-th target layer, mod len(signs)) times signs[k]."""
    calls = [0]
    originals = {m: getattr(m, function) for m in modules if hasattr(m, function)}
    original = next(iter(originals.values()))

    def flipped(*args, **kwargs):
        sign = signs[calls[0] % len(signs)]
        calls[0] += 1
        return original(*args, **kwargs) * sign

    for m in originals:
        setattr(m, function, flipped)
    try:
        yield
    finally:
        for m, f in originals.items():
            setattr(m, function, f)


class Store:
    """Maps stored once per distinct content; an all-zero map is recorded as such, not stored."""

    def __init__(self):
        self.tensors = {}

    def put(self, array):
        a = np.ascontiguousarray(array, dtype=np.float32)
        if not np.any(a):
            return {'zero': True, 'shape': list(a.shape)}
        key = 'map/' + hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()[:16]
        self.tensors.setdefault(key, torch.from_numpy(a.copy()))
        return {'key': key}


def forward_order(model, layers, x):
    """The layers sorted by when they run."""
    seen = []
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_hook(lambda *_a, n=n: seen.append(n)) for n in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return sorted(layers, key=seen.index)


def run_method(pgc, kind, upstream, model, layers, x, targets, cls, eigen):
    mods = dict(model.named_modules())
    target_layers = [mods[n] for n in layers]
    if kind == 'cam':
        cam = getattr(pgc, upstream)(model=model, target_layers=target_layers)
        try:
            return cam(input_tensor=x, targets=targets, eigen_smooth=eigen)
        finally:
            cam.activations_and_grads.release()
    if kind == 'finer':
        # FinerCAM picks its own targets; --class N makes N the main class (upstream's target_idx).
        cam = pgc.FinerCAM(model=model, target_layers=target_layers)
        return cam(input_tensor=x, targets=None, eigen_smooth=eigen, target_idx=cls)
    if kind == 'refine':
        if len(layers) < 2:
            raise ValueError('RefineCAM needs two or more target layers')
        if eigen:
            raise ValueError('RefineCAM passes eigen_smooth on as aug_smooth (upstream bug); not generated')
        cam = pgc.RefineCAM(model=model, target_layers=target_layers)
        return cam(input_tensor=x, targets=targets)
    if kind in ('guided', 'guided-gradcam'):
        if eigen:
            raise ValueError('guided backprop has no eigen_smooth')
        guided = pgc.GuidedBackpropReLUModel(model=model, device='cpu')
        logits = model(x).detach()
        classes = [cls if cls is not None else int(logits[b].argmax()) for b in range(x.shape[0])]
        # One image at a time (upstream uses image 0 of what it is given), (H, W, 3) → (3, H, W).
        g = np.stack([guided(x[b:b + 1], target_category=c).transpose(2, 0, 1) for b, c in enumerate(classes)])
        if kind == 'guided':
            return g
        cam = pgc.GradCAM(model=model, target_layers=target_layers)
        try:
            grad = cam(input_tensor=x, targets=targets)
        finally:
            cam.activations_and_grads.release()
        return grad[:, None, :, :] * g
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--upstream', default='/tmp/pgc')
    parser.add_argument('--both-png', default='/tmp/both.png')
    args = parser.parse_args()
    torch.set_num_threads(1)
    pgc = upstream_gradcam.import_upstream(args.upstream)
    import importlib
    import pytorch_grad_cam.base_cam as base_cam
    import pytorch_grad_cam.utils.image as pgc_image
    import pytorch_grad_cam.refine_cam as refine_cam
    import pytorch_grad_cam.fullgrad_cam as fullgrad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    projection_modules = [importlib.import_module(f'pytorch_grad_cam.{m}') for m in PROJECTION_MODULES]
    conditioning = Conditioning([base_cam, refine_cam, fullgrad_cam], [fullgrad_cam], projection_modules)

    models = make_models()
    store = Store()
    inputs = {key: read_input(args.both_png, b, w, h, pgc_image) for key, b, w, h in INPUTS + [EXTRA_INPUT]}
    tensors = {f'input/{key}': x for key, x in inputs.items()}
    cases = []
    info = {}
    for name, (model, layers, description) in models.items():
        weights_file = f'gradcam_matrix_{name}.weights.safetensors'
        arch_fixtures.write_safetensors(os.path.join(OUT, weights_file), arch_fixtures.state_dict_f32(model), {'format': 'pt'})
        info[name] = {'arch': name, 'description': description, 'layers': layers, 'weights_file': weights_file,
                      'num_parameters': sum(p.numel() for p in model.parameters()), 'inputs': {}}
        for key, x in inputs.items():
            if key == EXTRA_INPUT[0] and name != EXTRA_MODEL:
                continue
            with torch.no_grad():
                logits = model(x)
            top2 = logits.topk(2, 1).values
            info[name]['inputs'][key] = {'pred': logits.argmax(1).tolist(), 'top2_margin': (top2[:, 0] - top2[:, 1]).min().item(),
                                         'logit_100': logits[:, 100].tolist()}
            extra = key == EXTRA_INPUT[0]
            for cls, eigen, (ours, upstream, kind) in itertools.product([None] if extra else CLASSES, [False] if extra else [False, True], METHODS):
                targets = None if cls is None else [ClassifierOutputTarget(cls) for _ in range(x.shape[0])]
                case = {'model': name, 'input': key, 'class': cls, 'eigen_smooth': eigen, 'method': ours, 'upstream': upstream, **({'beyond_upstream_test': True} if extra else {})}
                torch.manual_seed(0)
                np.random.seed(0)
                run_layers = forward_order(model, layers, x) if upstream == 'AblationCAM' else layers

                def run(signs=None):
                    with conditioning.recording():
                        if signs is None:
                            result = store.put(run_method(pgc, kind, upstream, model, run_layers, x, targets, cls, eigen))
                        else:
                            with projection_signs(projection_modules, function, signs):
                                result = store.put(run_method(pgc, kind, upstream, model, run_layers, x, targets, cls, eigen))
                    if conditioning.per_image is not None:
                        result['conditioning'] = conditioning.per_image
                    return result

                function = projection_function(upstream, kind, eigen)
                try:
                    case['map'] = run()
                    if run_layers != layers:
                        case['layers_run_in_forward_order'] = run_layers
                        case['upstream_layer_order_map'] = store.put(run_method(pgc, kind, upstream, model, layers, x, targets, cls, eigen))
                except Exception as e:  # what upstream refuses is recorded, not hidden
                    case['error'] = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
                    cases.append(case)
                    continue
                if function:
                    signs = itertools.product([1, -1], repeat=projection_calls(upstream, layers))
                    case['sign_alternatives'] = [run(s) for s in signs if any(x == -1 for x in s)]
                cases.append(case)
            print(f'{name} {key}: done')
    size = arch_fixtures.write_safetensors(os.path.join(OUT, 'gradcam_matrix.safetensors'), tensors | store.tensors)
    with open(os.path.join(OUT, 'gradcam_matrix.json'), 'w') as f:
        json.dump({
            'fixture': 'gradcam_matrix', 'made_by': 'scripts/make-gradcam-matrix.py', 'versions': model_fixtures.VERSIONS,
            'upstream': {'repository': 'jacobgil/pytorch-grad-cam', 'commit': upstream_gradcam.UPSTREAM_COMMIT, 'test': 'tests/test_run_all_models.py'},
            'inputs': "upstream examples/both.png, cv2.imread (BGR) and cv2.resize to (width, height), preprocess_image (mean = std = 0.5), "
                      "repeated batch times: input/2x3x32x32 and input/1x3x40x32 (upstream's), input/1x3x48x48 (added, ResNet-18 only: 2×2 target layers)",
            'targets': 'ClassifierOutputTarget(class) (the raw logit; class = the argmax when none is given); FinerCAM picks its own '
                       '(target_idx = class); guided backprop back-propagates the logit of the class',
            'random_init': 'torch.manual_seed(5001/5002) then torchvision init; BN affine U(0.5,1.5)/N(0,0.2) and running stats '
                           'calibrated on random batches; the final Linear rescaled so logits have std ~3 (scripts/make-model-fixtures.py helpers)',
            'methods': [{'name': n, 'upstream': u, 'kind': k} for n, u, k in METHODS],
            'models': info,
            'maps': "case.map: {key} of a stored (B,H,W) map ((B,3,H,W) for guided methods) or {zero: true, shape}; "
                    'case.sign_alternatives: the maps the other projection signs give (any sign per layer is accepted); '
                    'map.conditioning: per image, the smallest relative range (max - min)/max|.| of a map upstream normalised or relative eigengap of a projection it made; '
                    'case.upstream_layer_order_map: AblationCAM with the layers in the order given (see the generator on layer order)',
            'cases': cases,
        }, f, indent=1)
        f.write('\n')
    errors = sum('error' in c for c in cases)
    print(f'gradcam_matrix: {len(cases)} cases ({errors} refused by upstream), {len(store.tensors)} distinct maps, {size} B')


if __name__ == '__main__':
    main()
