#!/usr/bin/env python3
"""Reference outputs for cam/algorithm/postprocess.ts, cam/rendering/colormap.ts and cam/rendering/image.ts.

Writes test/fixtures/postprocess_reference.json with:
  - jet_lut_rgb: cv2.applyColorMap(0..255, COLORMAP_JET), converted to RGB
  - resize: cv2.resize(INTER_LINEAR) and torch interpolate (bilinear,
    align_corners False/True) of small float32 maps
  - show_cam: show_cam_on_image (pytorch-grad-cam's function, restated below
    because the package itself is not installed) on a small random image
  - scale_cam / aggregate: scale_cam_image + aggregate_multi_layers semantics
  - pil: torchvision Resize(int) / CenterCrop on PIL images + ToTensor/Normalize

Needs numpy, opencv, torch, torchvision, PIL (Debian: python3-opencv
python3-torch python3-torchvision python3-pil). Run from the repository root:
  /usr/bin/python3 scripts/make-postprocess-fixture.py
"""
import json
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "postprocess_reference.json")
rng = np.random.default_rng(1234)


def flist(a):
    # float32 data: shortest decimal that round-trips through float32 (keeps
    # the file small); parse and Math.fround() to get the exact value back.
    a = np.asarray(a)
    if a.dtype == np.float32:
        return [float(np.format_float_positional(x, unique=True, trim="-")) for x in a.reshape(-1)]
    return [float(x) for x in a.astype(np.float64).reshape(-1)]


def ilist(a):
    return [int(x) for x in np.asarray(a).reshape(-1)]


def show_cam_on_image(img, mask, use_rgb=False, colormap=cv2.COLORMAP_JET, image_weight=0.5):
    # Same steps as pytorch_grad_cam.utils.image.show_cam_on_image.
    heatmap = cv2.applyColorMap(np.uint8(255 * mask), colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    if np.max(img) > 1:
        raise Exception("The input image should np.float32 in the range [0, 1]")
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def scale_cam_image(cam, target_size=None):
    # Same steps as pytorch_grad_cam.utils.image.scale_cam_image.
    result = []
    for img in cam:
        img = img - np.min(img)
        img = img / (1e-7 + np.max(img))
        if target_size is not None:
            img = cv2.resize(np.float32(img), target_size)
        result.append(img)
    return np.float32(result)


out = {"versions": {"cv2": cv2.__version__, "numpy": np.__version__, "torch": torch.__version__}}

# --- jet LUT -----------------------------------------------------------------
lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_JET)
out["jet_lut_rgb"] = ilist(cv2.cvtColor(lut, cv2.COLOR_BGR2RGB))

# --- bilinear resize -----------------------------------------------------------
resize_cases = []
for (h, w, H, W) in [(2, 2, 4, 4), (7, 7, 32, 32), (5, 3, 11, 8), (4, 6, 4, 9), (9, 8, 4, 5), (3, 4, 1, 1)]:
    m = rng.standard_normal((h, w)).astype(np.float32)
    t = torch.from_numpy(m)[None, None]
    resize_cases.append({
        "h": h, "w": w, "H": H, "W": W,
        "src": flist(m),
        "cv2": flist(cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR)),
        "torch_false": flist(F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()),
        "torch_true": flist(F.interpolate(t, size=(H, W), mode="bilinear", align_corners=True)[0, 0].numpy()),
    })
out["resize"] = resize_cases

# --- show_cam_on_image -------------------------------------------------------------
sh, sw = 5, 6
img_u8 = rng.integers(0, 256, size=(sh, sw, 3), dtype=np.uint8)
mask = rng.random((sh, sw)).astype(np.float32)
mask[0, 0] = 0.0
mask[0, 1] = 1.0
out["show_cam"] = {
    "h": sh, "w": sw,
    "img": ilist(img_u8),
    "mask": flist(mask),
    "w05": ilist(show_cam_on_image(np.float32(img_u8) / 255, mask, use_rgb=True)),
    "w03": ilist(show_cam_on_image(np.float32(img_u8) / 255, mask, use_rgb=True, image_weight=0.3)),
}

# --- scale_cam_image + aggregate_multi_layers ------------------------------------------
# two layers, batch of two, activations-size maps 3x4 and 6x8, target 10x12 (W=12, H=10)
layers = [rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 6, 8)).astype(np.float32)]
H, W = 10, 12
per_layer = []
for cam in layers:
    cam = np.maximum(cam, 0)
    per_layer.append(scale_cam_image(cam, (W, H))[:, None, :])
cat = np.concatenate(per_layer, axis=1)
cat = np.maximum(cat, 0)
agg = scale_cam_image(np.mean(cat, axis=1))
out["scale_cam"] = {
    "H": H, "W": W,
    "layers": [{"h": int(c.shape[1]), "w": int(c.shape[2]), "maps": [flist(c[b]) for b in range(c.shape[0])]} for c in layers],
    "scaled": [[flist(p[b, 0]) for b in range(p.shape[0])] for p in per_layer],
    "aggregated": [flist(agg[b]) for b in range(agg.shape[0])],
}

# --- torchvision preprocessing on PIL images ---------------------------------------------
mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
pil_cases = []
synthetic = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)  # H=17, W=23
cat_png = np.asarray(Image.open(os.path.join(ROOT, "test", "fixtures", "images", "cat_0000.png")).convert("RGB"))
for name, arr, size, crop in [
    ("synthetic", synthetic, 10, [8, 9]),
    ("synthetic", synthetic, 30, [25, 26]),
    ("synthetic", synthetic, 7, 7),
    ("cat_0000.png", cat_png, 20, 16),
    ("cat_0000.png", cat_png, 37, 33),
]:
    pil = Image.fromarray(arr)
    resized = transforms.Resize(size)(pil)
    cropped = transforms.CenterCrop(crop)(resized)
    tensor = transforms.Normalize(mean, std)(transforms.ToTensor()(cropped))
    case = {
        "name": name, "size": size, "crop": crop,
        "resized_w": resized.size[0], "resized_h": resized.size[1],
        "resized": ilist(np.asarray(resized)),
        "cropped_w": cropped.size[0], "cropped_h": cropped.size[1],
        "cropped": ilist(np.asarray(cropped)),
    }
    if cropped.size[0] * cropped.size[1] <= 16 * 16:
        case["normalized"] = flist(tensor.numpy())
    if name == "synthetic":
        case["src_w"], case["src_h"], case["src"] = 23, 17, ilist(arr)
    pil_cases.append(case)
# odd crop offsets: round-half-even in CenterCrop (H - h) / 2 = 2.5 -> 2, 0.5 -> 0
crop_img = rng.integers(0, 256, size=(9, 8, 3), dtype=np.uint8)
out["center_crop"] = {
    "src_w": 8, "src_h": 9, "src": ilist(crop_img),
    "cases": [
        {"h": h, "w": w, "out": ilist(np.asarray(transforms.CenterCrop((h, w))(Image.fromarray(crop_img))))}
        for (h, w) in [(4, 7), (8, 3), (9, 8), (12, 11)]
    ],
}
out["pil"] = {"mean": mean, "std": std, "cases": pil_cases}

with open(OUT, "w") as fh:
    json.dump(out, fh, separators=(",", ":"))
print("wrote", OUT, os.path.getsize(OUT), "bytes")
