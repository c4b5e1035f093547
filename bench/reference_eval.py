"""PyTorch reference timing for bench/eval.ts: the ShapleyCAM fork's own evaluation (development only, never CI).

Reproduces the evaluation loop of caihuaiguang/pytorch-shapley-cam's metrics/ADCC.py as described in
shared/fixtures/README.md "Case 4" (the fork itself is not in the repository; this is our own rewrite of that
loop): for each method, ONE batch of all images (the fork's ImageNet script batches its images the same way),
explanation target ReST of the predicted class at `layer3`, metric score the softmax probability of the
predicted class on the normalised input x, x ⊙ m and x ⊙ (1 − m), and the map recomputed on x ⊙ m for Coherency.
  Y = s(x), O = s(x ⊙ m), D = s(x ⊙ (1 − m)); AD = max(0, Y − O)/Y, IC = [O > Y], ADD = max(0, Y − D)/Y,
  Com = mean |m|, Coh = (Pearson(m, m') + 1)/2 (scipy.stats.pearsonr), ADCC from the means of Coh, Com, AD.
Maps as pytorch-grad-cam builds them: ReLU of the weighted channel sum, min-max scaled per image, resized to
the input (bilinear). GradCAM: w = mean G; HiResCAM: Σ_k G ⊙ A; GradCAM++: pytorch-grad-cam's α weights;
ShapleyCAM: w = mean (G − ½ H·A), the Hessian-vector product by double backward as the fork does.

    /usr/bin/python3 bench/reference_eval.py [--data test/fixtures/cifar10-sample] [--repeat 3] [--threads N]
Prints one JSON line per method and one for the whole evaluation (the median of --repeat runs after a warm-up),
plus the dataset metrics (for a sanity check against our eval's results.json).
"""
import argparse, json, os, time
import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from PIL import Image

from reference_shapleycam import ResNet20, read_safetensors, rest

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
METHODS = ['gradcam', 'hirescam', 'gradcam++', 'shapleycam']


def load_images(folder):
    labels = json.load(open(os.path.join(folder, 'labels.json')))
    files = sorted(labels)
    x = torch.stack([(torch.from_numpy(np.asarray(Image.open(os.path.join(folder, f)).convert('RGB'), dtype=np.float32) / 255).permute(2, 0, 1) - MEAN) / STD for f in files])
    return files, x


def cam(model, layer, x, method, classes=None):
    """Final maps (B, H, W) in [0, 1] and the predicted classes."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__('a', o))
    logits = model(x)
    handle.remove()
    a = store['a']
    if classes is None:
        classes = logits.argmax(1)
    second = method == 'shapleycam'
    g, = torch.autograd.grad(rest(logits, classes), a, create_graph=second)
    if second:
        ha, = torch.autograd.grad(g, a, grad_outputs=a.detach())
        g, a = (g - 0.5 * ha).detach(), a.detach()
    else:
        a = a.detach()
    if method == 'hirescam':
        raw = (g * a).sum(1)
    else:
        if method == 'gradcam++':
            g2, g3 = g ** 2, g ** 3
            alpha = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g3 + 1e-7)
            alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
            w = (torch.relu(g) * alpha).sum((2, 3))
        else:
            w = g.mean((2, 3))
        raw = (w[:, :, None, None] * a).sum(1)
    m = torch.relu(raw)
    m = m - m.flatten(1).min(1).values[:, None, None]
    m = m / (1e-7 + m.flatten(1).max(1).values[:, None, None])
    m = F.interpolate(m[:, None], size=x.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
    return m, classes


def scores(model, x, classes):
    with torch.no_grad():
        return torch.softmax(model(x), 1).gather(1, classes[:, None])[:, 0]


def evaluate(model, layer, x, method):
    m, classes = cam(model, layer, x, method)
    Y = scores(model, x, classes)
    O = scores(model, x * m[:, None], classes)
    D = scores(model, x * (1 - m[:, None]), classes)
    m2, _ = cam(model, layer, x * m[:, None], method, classes)
    mn, m2n = m.flatten(1).numpy(), m2.flatten(1).numpy()
    coh = []
    for a, b in zip(mn, m2n):
        r = scipy.stats.pearsonr(a, b)[0] if a.std() > 0 and b.std() > 0 and np.isfinite(a).all() and np.isfinite(b).all() else np.nan
        coh.append(0.0 if np.isnan(r) else (r + 1) / 2)
    Y, O, D = Y.numpy().astype(np.float64), O.numpy().astype(np.float64), D.numpy().astype(np.float64)
    AD = np.maximum(0, Y - O) / Y
    Com = np.abs(mn).mean(1)
    res = {'AD': AD.mean(), 'IC': (O > Y).mean(), 'ADD': (np.maximum(0, Y - D) / Y).mean(), 'Com': Com.mean(), 'Coh': float(np.mean(coh))}
    parts = [res['Coh'], 1 - res['Com'], 1 - res['AD']]
    res['ADCC'] = 3 / sum(1 / p for p in parts) if min(parts) > 0 else 0.0
    return {k: round(float(v), 5) for k, v in res.items()}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser()
    p.add_argument('--data', default=os.path.join(here, '..', 'test', 'fixtures', 'cifar10-sample'))
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = ResNet20()
    model.load_state_dict(read_safetensors(os.path.join(here, '..', 'models', 'weights', 'resnet20_cifar10.safetensors')), strict=False)
    model.eval()
    adapter = f'torch {torch.__version__}, {torch.get_num_threads()} threads'
    t0 = time.perf_counter()
    files, x = load_images(args.data)
    load_s = time.perf_counter() - t0
    evaluate(model, model.layer3, x, 'gradcam')  # warm-up
    per_method = {m: [] for m in METHODS}
    totals = []
    metrics = {}
    for _ in range(args.repeat):
        t_all = time.perf_counter()
        for m in METHODS:
            t = time.perf_counter()
            metrics[m] = evaluate(model, model.layer3, x, m)
            per_method[m].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - t_all)
    med = lambda ts: sorted(ts)[len(ts) // 2]
    for m in METHODS:
        print(json.dumps({'bench': 'eval-reference', 'method': m, 'images': len(files), 'adapter': adapter, 'seconds': round(med(per_method[m]), 3), **metrics[m]}))
    print(json.dumps({'bench': 'eval-reference', 'method': ','.join(METHODS), 'images': len(files), 'adapter': adapter,
                      'seconds': round(med(totals) + load_s, 3), 'load_seconds': round(load_s, 3)}))


if __name__ == '__main__':
    main()
