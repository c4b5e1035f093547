"""PyTorch reference timing for bench/shapleycam.ts, on the same machine (development only, never CI).

Runs ShapleyCAM (G and H·A by double backward, as the reference implementation does) and GradCAM on the
CIFAR ResNet-20 (shipped weights) and on torchvision resnet18/resnet50 (random weights, 224×224), in
float32 on the CPU, and prints JSON lines shaped like bench/shapleycam.ts's.

    /usr/bin/python3 bench/reference_shapleycam.py [--models resnet20,resnet18] [--batches 1,8]
Needs Debian's python3-torch and python3-torchvision.
"""
import argparse, json, struct, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(e['shape']).copy())
    return out


class Block(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = stride != 1 or cin != planes
        self.planes = planes

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.planes // 4, self.planes // 4)) if self.down else x
        return F.relu(out + sc)


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, layers = 16, []
        for s, planes in enumerate([16, 32, 64]):
            blocks = []
            for i in range(3):
                blocks.append(Block(cin, planes, 2 if s > 0 and i == 0 else 1))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.avg_pool2d(out, out.size(3)).flatten(1))


def rest(logits, classes):
    oc = logits.gather(1, classes[:, None])[:, 0]
    return (2 * oc - torch.logsumexp(logits, 1)).sum()


def cam(model, layer, x, second_order):
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__('a', o))
    logits = model(x)
    handle.remove()
    a = store['a']
    classes = logits.argmax(1)
    u = rest(logits, classes)
    g, = torch.autograd.grad(u, a, create_graph=second_order)
    w = g
    if second_order:
        ha, = torch.autograd.grad(g, a, grad_outputs=a.detach())
        w = g - 0.5 * ha
    m = F.relu((w.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    m = F.interpolate(m, size=x.shape[-2:], mode='bilinear', align_corners=False)
    return m.detach()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--models', default='resnet20,resnet18,resnet50')
    p.add_argument('--batches', default='1,8')
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    for name in args.models.split(','):
        if name == 'resnet20':
            model, size = ResNet20(), 32
            model.load_state_dict(read_safetensors('models/weights/resnet20_cifar10.safetensors'), strict=False)
            layer = model.layer3
        else:
            model, size = getattr(torchvision.models, name)(), 224
            layer = model.layer4
        model.eval()
        for batch in map(int, args.batches.split(',')):
            x = torch.sin(torch.arange(batch * 3 * size * size, dtype=torch.float32) * 0.37).reshape(batch, 3, size, size)
            res = {}
            for label, so in (('ms_per_image', True), ('gradcam_ms_per_image', False)):
                cam(model, layer, x, so)
                ts = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    cam(model, layer, x, so)
                    ts.append(time.perf_counter() - t)
                res[label] = round(sorted(ts)[len(ts) // 2] * 1000 / batch, 2)
            print(json.dumps({'bench': 'shapleycam', 'model': name, 'batch': batch, 'backend': 'pytorch-cpu',
                              'adapter': f'torch {torch.__version__}, {torch.get_num_threads()} threads', **res}))


if __name__ == '__main__':
    main()
