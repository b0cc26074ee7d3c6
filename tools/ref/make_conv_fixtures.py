#!/usr/bin/env python3
"""make_conv_fixtures.py: PyTorch reference data for tests/test_conv2d.c.

For a few small convolutions, computes F.conv2d forward and the backward
(dx, dw, dbias for a random dy) in float32 and writes
tests/fixtures/conv/<name>.safetensors with F32 tensors x [B,H,W,Cin],
w [Cout,KH,KW,Cin], [bias [Cout]], y [B,Ho,Wo,Cout], dy, dx, dw, [dbias] and
I32 cfg = [B H W Cin Cout KH KW sh sw pt pb pl pr has_bias].
Activations are converted NCHW -> NHWC and weights [Cout,Cin,KH,KW] ->
[Cout,KH,KW,Cin]. Asymmetric padding is applied with F.pad before a
padding-0 conv. Run from the repository root: python3 tools/ref/make_conv_fixtures.py
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file
import torch.nn.functional as F

# name, B, H, W, Cin, Cout, KH, KW, sh, sw, (pt, pb, pl, pr), bias
CONFIGS = [
    ("s1p1_bias", 2, 9, 7, 5, 6, 3, 3, 1, 1, (1, 1, 1, 1), True),
    ("s2_asym_pad", 1, 10, 9, 4, 8, 3, 3, 2, 2, (0, 1, 0, 1), True),  # VAE encoder downsample
    ("k7s2_nobias", 2, 11, 12, 3, 4, 7, 7, 2, 2, (3, 3, 3, 3), False),
]


def main():
    out_dir = os.path.join("tests", "fixtures", "conv")
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    for name, B, H, W, Cin, Cout, KH, KW, sh, sw, (pt, pb, pl, pr), has_bias in CONFIGS:
        x = torch.randn(B, Cin, H, W, generator=g, dtype=torch.float32, requires_grad=True)
        w = (torch.randn(Cout, Cin, KH, KW, generator=g) * 0.5).requires_grad_(True)
        b = torch.randn(Cout, generator=g).requires_grad_(True) if has_bias else None
        xp = F.pad(x, (pl, pr, pt, pb))  # F.pad order: last dim first (left, right, top, bottom)
        y = F.conv2d(xp, w, b, stride=(sh, sw))
        dy = torch.randn(y.shape, generator=g)
        y.backward(dy)
        nhwc = lambda t: t.detach().permute(0, 2, 3, 1).contiguous()
        wl = lambda t: t.detach().permute(0, 2, 3, 1).contiguous()  # [Cout,Cin,KH,KW] -> [Cout,KH,KW,Cin]
        t = {"x": nhwc(x), "w": wl(w), "y": nhwc(y), "dy": nhwc(dy), "dx": nhwc(x.grad), "dw": wl(w.grad)}
        if has_bias:
            t["bias"], t["dbias"] = b.detach(), b.grad
        t = {k: v.numpy().astype("<f4") for k, v in t.items()}
        t["cfg"] = np.array([B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr, int(has_bias)], dtype="<i4")
        path = os.path.join(out_dir, name + ".safetensors")
        save_file(t, path, metadata={"source": "tools/ref/make_conv_fixtures.py, torch " + torch.__version__})
        print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
