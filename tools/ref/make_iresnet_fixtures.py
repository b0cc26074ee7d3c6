#!/usr/bin/env python3
"""Writes tests/fixtures/iresnet/<case>.safetensors for tests/test_iresnet.c.

Two architectures, written here with the upstream module names so that the
state-dict keys are the upstream ones (neither package is a pip dependency):
  - IResNet: insightface recognition/arcface_torch/backbones/iresnet.py
    (IBasicBlock: bn1 -> conv1 -> bn2 -> prelu -> conv2(stride) -> bn3, plus
    downsample = conv1x1(stride) + BN; head bn2 -> flatten (NCHW) -> dropout
    -> fc -> features BatchNorm1d with features.weight frozen);
  - IR-SE: TreB1eN/InsightFace_Pytorch model.py Backbone(mode='ir_se')
    (input_layer, body.N.{res_layer,shortcut_layer}, output_layer, l2_norm).
Tiny configurations: reduced widths (the C side takes widths in its config)
and a small non-square input, so fc has in = C4 * (H/16) * (W/16) inputs.

Each file holds the state dict (PyTorch names and layouts, num_batches_tracked
included as int64) and, under io.*:
  io.x                 input, NHWC [B, H, W, 3]
  io.dy                upstream gradient of the output [B, E]
  io.eval.y / io.eval.dx / io.eval.grad.<key>    model.eval(): forward, backward
  io.train.y / io.train.dx / io.train.grad.<key> model.train(): forward (batch
                       statistics), backward
  io.train.run.<bn>.running_mean / running_var   running stats after that
                       one training forward (momentum 0.1, unbiased variance)
Backward is of sum(y * dy). Frozen features.weight has no gradient entry."""
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file


# ---------------------------------------------------------------- insightface IResNet

def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)


def conv1x1(i, o, stride=1):
    return nn.Conv2d(i, o, 1, stride=stride, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers, widths, stem, emb, in_hw, dropout=0.0):
        super().__init__()
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-05)
        self.prelu = nn.PReLU(stem)
        self.layer1 = self._make_layer(widths[0], layers[0], 2)
        self.layer2 = self._make_layer(widths[1], layers[1], 2)
        self.layer3 = self._make_layer(widths[2], layers[2], 2)
        self.layer4 = self._make_layer(widths[3], layers[3], 2)
        self.bn2 = nn.BatchNorm2d(widths[3], eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        fc_scale = (in_hw[0] // 16) * (in_hw[1] // 16)
        self.fc = nn.Linear(widths[3] * fc_scale, emb)
        self.features = nn.BatchNorm1d(emb, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(IBasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        return self.features(x)


# ---------------------------------------------------------------- TreB1eN IR-SE

class SEModule(nn.Module):
    def __init__(self, channels, reduction):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class BottleneckIRSE(nn.Module):
    def __init__(self, in_channel, depth, stride):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class IRSE(nn.Module):
    def __init__(self, layers, widths, stem, emb, in_hw):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(stem),
                                         nn.PReLU(stem))
        fc_scale = (in_hw[0] // 16) * (in_hw[1] // 16)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(widths[3]), nn.Dropout(0.0), Flatten(),
                                          nn.Linear(widths[3] * fc_scale, emb), nn.BatchNorm1d(emb))
        units, cin = [], stem
        for n, d in zip(layers, widths):
            units.append(BottleneckIRSE(cin, d, 2))
            units += [BottleneckIRSE(d, d, 1) for _ in range(n - 1)]
            cin = d
        self.body = nn.Sequential(*units)

    def forward(self, x):
        x = self.output_layer(self.body(self.input_layer(x)))
        return x / torch.norm(x, 2, 1, True)


# ---------------------------------------------------------------- fixtures

def randomize(model, g):
    """Non-trivial BN affine/statistics and PReLU slopes (default init is 1/0/0/1/0.25)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.3 + 0.1)


def run(model, x, dy, train, tag, out):
    model.train(train)
    model.zero_grad(set_to_none=True)
    xg = x.clone().requires_grad_(True)
    y = model(xg)
    y.backward(dy)
    out[f"io.{tag}.y"] = y.detach().contiguous()
    out[f"io.{tag}.dx"] = xg.grad.permute(0, 2, 3, 1).contiguous()
    for k, p in model.named_parameters():
        if p.grad is not None:
            out[f"io.{tag}.grad.{k}"] = p.grad.contiguous()


def make(kind, seed, B, H, W, layers, widths, stem, emb):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1000 + seed)
    if kind == "iresnet":
        model = IResNet(layers, widths, stem, emb, (H, W))
    else:
        model = IRSE(layers, widths, stem, emb, (H, W))
    randomize(model, g)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    x = torch.randn(B, 3, H, W, generator=g)
    dy = torch.randn(B, emb, generator=g)
    out = dict(sd)
    out["io.x"] = x.permute(0, 2, 3, 1).contiguous()
    out["io.dy"] = dy
    run(model, x, dy, False, "eval", out)
    run(model, x, dy, True, "train", out)
    for k, v in model.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            out["io.train.run." + k] = v.detach().clone().contiguous()
    # strict reload without num_batches_tracked (the C side does not store it)
    fresh = IResNet(layers, widths, stem, emb, (H, W)) if kind == "iresnet" else IRSE(layers, widths, stem, emb, (H, W))
    fresh.load_state_dict({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, strict=True)
    return out


CASES = [
    # name, kind, seed, B, H, W, layers, widths, stem, emb
    ("iresnet_s0", "iresnet", 0, 3, 32, 48, [1, 2, 1, 1], [8, 16, 16, 32], 8, 16),
    ("iresnet_s1", "iresnet", 1, 4, 48, 32, [2, 1, 1, 1], [8, 8, 16, 16], 8, 12),
    ("irse_s0", "irse", 0, 3, 32, 48, [1, 2, 1, 1], [16, 32, 32, 48], 16, 16),
    ("irse_s1", "irse", 1, 4, 48, 32, [2, 1, 1, 1], [16, 16, 32, 32], 16, 8),
]

if __name__ == "__main__":
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "iresnet")
    os.makedirs(root, exist_ok=True)
    for name, kind, seed, B, H, W, layers, widths, stem, emb in CASES:
        out = make(kind, seed, B, H, W, layers, widths, stem, emb)
        path = os.path.join(root, name + ".safetensors")
        save_file(out, path, metadata={"source": "tools/ref/make_iresnet_fixtures.py, torch " + torch.__version__})
        print("wrote", path, os.path.getsize(path), "bytes")
