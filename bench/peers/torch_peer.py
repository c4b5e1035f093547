#!/usr/bin/env python3
"""PyTorch peer of bench/peers.ts (Debian's python3-torch; never run in CI).

    /usr/bin/python3 bench/peers/torch_peer.py [--threads 2] [--runs 7]      # JSON lines on stdout
    /usr/bin/python3 bench/peers/torch_peer.py --export DIR                   # ONNX models for onnx_peer.ts

Tasks (the same as bench/peers.ts): torchvision ResNet-18 forward at 224x224, batch 1 and 8 (random
weights, eval mode); fp32 matmul 1024^3; the CNN-head HVP: A = layer3's output, head = layer4 -> avgpool
-> fc -> ReST utility (2 o_c - logsumexp(o)) for the predicted class, G = dU/dA and H.A by double
backward. Times are medians after warm-up.
"""
import argparse
import json
import statistics
import time

import torch
import torchvision


def median_ms(fn, runs, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def emit(task, **fields):
    print(json.dumps({"bench": "peers", "engine": "pytorch", "adapter": f"torch {torch.__version__}, {torch.get_num_threads()} threads", "task": task, **fields}), flush=True)


def run(threads, runs):
    torch.set_num_threads(threads)
    model = resnet18()
    for batch in (1, 8):
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            ms = median_ms(lambda: model(x), runs)
        emit(f"resnet18-b{batch}", ms=round(ms, 2), ms_per_image=round(ms / batch, 2))
    a = torch.rand(1024, 1024) - 0.5
    b = torch.rand(1024, 1024) - 0.5
    ms = median_ms(lambda: torch.mm(a, b), runs * 3)
    emit("matmul1024", ms=round(ms, 3), gflops=round(2 * 1024**3 / ms / 1e6, 2))

    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        prefix = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3)
        A0 = prefix(x)
        c = int(model(x).argmax(1)[0])

    def head_terms():
        A = A0.clone().requires_grad_(True)
        logits = model.fc(torch.flatten(model.avgpool(model.layer4(A)), 1))
        u = (2 * logits[:, c] - torch.logsumexp(logits, 1)).sum()
        (g,) = torch.autograd.grad(u, A, create_graph=True)
        (ha,) = torch.autograd.grad((g * A0).sum(), A)
        return g, ha

    ms = median_ms(head_terms, runs)
    emit("cnn-head-hvp", ms=round(ms, 2), ms_per_image=round(ms, 2))


def export(directory):
    import os

    os.makedirs(directory, exist_ok=True)
    model = resnet18()
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, os.path.join(directory, "resnet18.onnx"), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)

    class MatMul(torch.nn.Module):
        def forward(self, a, b):
            return torch.matmul(a, b)

    m = torch.rand(1024, 1024)
    torch.onnx.export(MatMul(), (m, m), os.path.join(directory, "matmul.onnx"), input_names=["a", "b"], output_names=["c"], opset_version=13)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--export")
    args = parser.parse_args()
    if args.export:
        export(args.export)
    else:
        run(args.threads, args.runs)
