#!/usr/bin/env python3
"""Writes tests/fixtures/nn/core.safetensors: a tiny PyTorch chain
conv(3x3, 3->8, pad 1) -> GroupNorm(4, 8) -> SiLU -> Linear(8->6) over the
channels of every pixel, with its state dict under the PyTorch names
(conv.*, norm.*, proj.*, PyTorch layouts) and, under io.*, the input x and
output y (NHWC), an upstream gradient dy, the input gradient dx (NHWC) and
the parameter gradients grad.<name> (PyTorch layouts). Used by
tests/test_nn_core.c to check weight loading/saving and the layer modules."""
import os
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
conv = torch.nn.Conv2d(3, 8, 3, padding=1)
norm = torch.nn.GroupNorm(4, 8, eps=1e-5)
proj = torch.nn.Linear(8, 6)
with torch.no_grad():
    norm.weight.uniform_(0.5, 1.5)
    norm.bias.uniform_(-0.5, 0.5)
x = torch.randn(2, 3, 5, 4, requires_grad=True)          # NCHW
h = torch.nn.functional.silu(norm(conv(x)))
y = proj(h.permute(0, 2, 3, 1))                            # [B, H, W, 6]
dy = torch.randn_like(y)
y.backward(dy)
t = {"conv.weight": conv.weight, "conv.bias": conv.bias, "norm.weight": norm.weight, "norm.bias": norm.bias,
     "proj.weight": proj.weight, "proj.bias": proj.bias}
out = {k: v.detach().contiguous() for k, v in t.items()}
for k, v in t.items():
    out["io.grad." + k] = v.grad.contiguous()
out["io.x"] = x.detach().permute(0, 2, 3, 1).contiguous()
out["io.dx"] = x.grad.permute(0, 2, 3, 1).contiguous()
out["io.y"] = y.detach().contiguous()
out["io.dy"] = dy.contiguous()
path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "nn", "core.safetensors")
save_file(out, path, metadata={"source": "tools/ref/make_nn_core_fixture.py, torch " + torch.__version__})
print("wrote", path)
