#!/usr/bin/env python3
"""make_adamw_fixture.py: PyTorch reference for the AdamW optimizer
(kernels/cpu/optim.h, tests/test_optim.c) -> tests/fixtures/optim/adamw.safetensors.

For each case TAG, a flat float32 parameter of N elements runs STEPS steps of
torch.optim.AdamW (single-tensor CPU path: foreach=False, fused=False) with
weight_decay 1e-2, betas (0.9, 0.999), eps 1e-8 and the case's lr. The grad of
step s is TAG.g{s} * TAG.scale (computed by torch in float32, as the C code
does), so the scaled case checks the gradient-scale argument. Stored, all F32:
    TAG.p0, TAG.scale [1], TAG.g1..gS (raw grads), and after each step s:
    TAG.p{s}, TAG.m{s}, TAG.v{s} (param, exp_avg, exp_avg_sq).
Grads mix magnitudes (1e-6 .. 10) and include exact zeros so that sqrt(v) is
near eps for some elements. N = 259 is not a multiple of the vector width,
so both torch's vectorised and scalar tails are exercised.

Usage: python3 tools/ref/make_adamw_fixture.py [outdir]
"""
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "optim")
N, STEPS = 259, 5
CASES = [("lr1e3", 1e-3, 1.0), ("lr1e6", 1e-6, 1.0), ("scaled", 1e-3, 0.37)]


def grads(gen, n):
    g = torch.randn(n, generator=gen)
    mag = 10.0 ** torch.randint(-6, 2, (n,), generator=gen).float()  # 1e-6 .. 10
    g = g * mag
    g[torch.rand(n, generator=gen) < 0.05] = 0.0
    return g.float()


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    recs = {}
    for tag, lr, scale in CASES:
        p0 = torch.randn(N, generator=gen).float()
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                                foreach=False, fused=False)
        recs[tag + ".p0"] = p0.numpy().copy()
        recs[tag + ".scale"] = np.array([scale], dtype="<f4")
        for s in range(1, STEPS + 1):
            g = grads(gen, N)
            recs["%s.g%d" % (tag, s)] = g.numpy().copy()
            p.grad = g * torch.tensor(scale, dtype=torch.float32)
            opt.step()
            st = opt.state[p]
            recs["%s.p%d" % (tag, s)] = p.detach().numpy().copy()
            recs["%s.m%d" % (tag, s)] = st["exp_avg"].numpy().copy()
            recs["%s.v%d" % (tag, s)] = st["exp_avg_sq"].numpy().copy()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "adamw.safetensors")
    recs = {k: np.ascontiguousarray(v.astype("<f4")) for k, v in recs.items()}
    save_file(recs, path, metadata={"source": "tools/ref/make_adamw_fixture.py", "torch": torch.__version__})
    print("%-40s %7d bytes, %d arrays" % (path, os.path.getsize(path), len(recs)))


if __name__ == "__main__":
    main()
