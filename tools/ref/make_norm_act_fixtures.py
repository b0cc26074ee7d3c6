#!/usr/bin/env python3
"""make_norm_act_fixtures.py: PyTorch reference fixtures for kernels/cpu/norm.c
and kernels/cpu/activation.c (read by tests/test_norm.c, tests/test_activation.c).

Each case is one safetensors file tests/fixtures/normact/<case>.safetensors
(read through tests/fixture.h), all tensors F32 in their natural shapes.
Every case holds "cfg" (small integers and eps/momentum as f32, meaning given
per case below), the inputs, the upstream gradient "dy", and the references:
forward "y" and the autograd gradients "dx", "dgamma", ... Activations are
NHWC in the files; the NCHW PyTorch ops see permuted copies.

Inputs are drawn in float32 (fixed seed); the references are computed by
PyTorch in float64 from exactly those float32 values and rounded once to
float32, so they are an accurate target for the C fp32 code.

Run from the repository root:  python3 tools/ref/make_norm_act_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "normact")


def write_case(name, arrays):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    tensors = {key: np.ascontiguousarray(t.detach().to(torch.float32).numpy()) for key, t in arrays.items()}
    save_file(tensors, path, metadata={"source": "tools/ref/make_norm_act_fixtures.py"})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def f32(*shape, scale=1.0, offset=0.0):
    """float32 normal sample, returned as float64 holding exactly those values."""
    return (torch.randn(*shape, dtype=torch.float32) * scale + offset).to(torch.float64)


def r32(t):
    """round to float32 values (after an edit made in float64)."""
    return t.to(torch.float32).to(torch.float64)


def leaf(t):
    return t.clone().requires_grad_(True)


def cfg(*vals):
    return torch.tensor(vals, dtype=torch.float64)


# ---------------------------------------------------------------- norms

def groupnorm_case(name, B, HW, C, G, silu, eps=1e-5, offset=0.0, scale=1.0):
    x = f32(B, HW, C, scale=scale, offset=offset)    # NHWC [B, HW, C]
    gamma = f32(C, scale=0.5, offset=1.0)
    beta = f32(C, scale=0.5)
    dy = f32(B, HW, C)
    xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
    xn = xl.permute(0, 2, 1).reshape(B, C, HW, 1)  # NCHW with H = HW, W = 1
    y = F.group_norm(xn, G, gl, bl, eps)
    if silu:
        y = F.silu(y)
    y = y.reshape(B, C, HW).permute(0, 2, 1)        # back to [B, HW, C]
    y.backward(dy)
    # mean / rstd per (b, g), as the C op saves them
    xg = x.reshape(B, HW, G, C // G).permute(0, 2, 1, 3).reshape(B, G, -1)
    mean = xg.mean(-1)
    rstd = 1.0 / torch.sqrt(xg.var(-1, unbiased=False) + eps)
    write_case(name, dict(cfg=cfg(B, HW, C, G, silu, eps), x=x, gamma=gamma, beta=beta, dy=dy, y=y, mean=mean,
                          rstd=rstd, dx=xl.grad, dgamma=gl.grad, dbeta=bl.grad))


def layernorm_case(name, N, C, eps=1e-5, offset=0.0):
    x = f32(N, C, offset=offset)
    gamma = f32(C, scale=0.5, offset=1.0)
    beta = f32(C, scale=0.5)
    dy = f32(N, C)
    xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
    y = F.layer_norm(xl, (C,), gl, bl, eps)
    y.backward(dy)
    mean = x.mean(-1)
    rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + eps)
    write_case(name, dict(cfg=cfg(N, C, eps), x=x, gamma=gamma, beta=beta, dy=dy, y=y, mean=mean, rstd=rstd,
                          dx=xl.grad, dgamma=gl.grad, dbeta=bl.grad))


def batchnorm_case(name, B, H, W, C, training, affine, eps=1e-5, momentum=0.1):
    N = B * H * W
    x = f32(B, H, W, C, scale=1.5, offset=0.3)     # NHWC
    gamma = f32(C, scale=0.5, offset=1.0)
    beta = f32(C, scale=0.5)
    run_mean = f32(C, scale=0.2)
    run_var = r32(f32(C, scale=0.3).abs() + 0.5)
    dy = f32(B, H, W, C)
    xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
    rm, rv = run_mean.clone(), run_var.clone()      # updated in place by F.batch_norm
    y = F.batch_norm(xl.permute(0, 3, 1, 2), rm, rv, gl if affine else None, bl if affine else None,
                     training=training, momentum=momentum, eps=eps).permute(0, 2, 3, 1)
    y.backward(dy.reshape(B, H, W, C))
    arr = dict(cfg=cfg(N, C, training, affine, eps, momentum), x=x, run_mean=run_mean, run_var=run_var, dy=dy, y=y,
               dx=xl.grad, run_mean_new=rm, run_var_new=rv)
    if affine:
        arr.update(gamma=gamma, beta=beta, dgamma=gl.grad, dbeta=bl.grad)
    if training:
        xf = x.reshape(N, C)
        arr.update(mean=xf.mean(0), rstd=1.0 / torch.sqrt(xf.var(0, unbiased=False) + eps))
    write_case(name, arr)


# ---------------------------------------------------------------- activations

# Values that stress overflow / underflow / cancellation, then random ones.
EXTREMES = [-100.0, 100.0, -88.5, 88.5, -30.0, 30.0, -17.0, 17.0, -10.0, 10.0, -5.0, 5.0, -1e-3, 1e-3, -0.25, 0.75]


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)  # CLIP's QuickGELUActivation formula


def pointwise_case(name, fn, n_rand, extremes):
    xs = [torch.tensor(EXTREMES if extremes else [], dtype=torch.float32).to(torch.float64), f32(n_rand, scale=2.0)]
    x = torch.cat(xs)
    if name == "relu":  # keep away from the kink (the derivative at 0 is a convention)
        x = r32(torch.where(x.abs() < 1e-2, x + 0.5, x))
    dy = f32(x.numel())
    xl = leaf(x)
    y = fn(xl)
    y.backward(dy)
    write_case(name, dict(cfg=cfg(x.numel()), x=x, dy=dy, y=y, dx=xl.grad))


def prelu_case(name, N, C):
    x = f32(N, C, scale=2.0)
    x = r32(torch.where(x.abs() < 1e-2, x + 0.5, x))
    slope = f32(C, scale=0.3, offset=0.25)
    dy = f32(N, C)
    xl, sl = leaf(x), leaf(slope)
    # NHWC rows [N, C] -> NCHW [1, C, N, 1] so the weight is per channel
    y = F.prelu(xl.t().reshape(1, C, N, 1), sl).reshape(C, N).t()
    y.backward(dy)
    write_case(name, dict(cfg=cfg(N, C), x=x, slope=slope, dy=dy, y=y, dx=xl.grad, dslope=sl.grad))


def geglu_case(name, N, D):
    x = f32(N, 2 * D, scale=1.5)
    dy = f32(N, D)
    xl = leaf(x)
    hidden, gate = xl.chunk(2, dim=-1)  # diffusers GEGLU
    y = hidden * F.gelu(gate)
    y.backward(dy)
    write_case(name, dict(cfg=cfg(N, D), x=x, dy=dy, y=y, dx=xl.grad))


def softmax_case(name, N, C):
    x = f32(N, C, scale=3.0)
    x[0] += 1000.0  # needs max subtraction: exp(1000) overflows
    if N > 1:
        x[1] -= 1000.0
    if N > 2:
        x[2, 0] += 60.0  # one dominant entry, the rest underflow towards 0
    x = r32(x)
    dy = f32(N, C)
    xl = leaf(x)
    y = F.softmax(xl, dim=-1)
    y.backward(dy)
    write_case(name, dict(cfg=cfg(N, C), x=x, dy=dy, y=y, dx=xl.grad))


def main():
    torch.manual_seed(20240611)
    groupnorm_case("gn_b2_hw7_c6_g3", 2, 7, 6, 3, 0)
    groupnorm_case("gn_b2_hw7_c6_g3_silu", 2, 7, 6, 3, 1)
    groupnorm_case("gn_b3_hw9_c8_g2_silu_off", 3, 9, 8, 2, 1, eps=1e-6, offset=50.0, scale=0.1)
    groupnorm_case("gn_b1_hw16_c32_g32", 1, 16, 32, 32, 0)
    layernorm_case("ln_n6_c5", 6, 5)
    layernorm_case("ln_n4_c13_off", 4, 13, eps=1e-6, offset=20.0)
    batchnorm_case("bn_train_affine", 2, 3, 3, 4, True, True)
    batchnorm_case("bn_train_noaffine", 1, 5, 1, 3, True, False, eps=1e-3, momentum=0.3)
    batchnorm_case("bn_eval_affine", 2, 3, 3, 4, False, True)
    batchnorm_case("bn_eval_noaffine", 3, 1, 2, 5, False, False)
    pointwise_case("relu", F.relu, 41, False)
    pointwise_case("sigmoid", torch.sigmoid, 41, True)
    pointwise_case("silu", F.silu, 41, True)
    pointwise_case("gelu", F.gelu, 41, True)
    pointwise_case("quickgelu", quick_gelu, 41, True)
    prelu_case("prelu_n7_c3", 7, 3)
    geglu_case("geglu_n5_d6", 5, 6)
    geglu_case("geglu_n1_d1", 1, 1)
    softmax_case("softmax_n4_c7", 4, 7)
    softmax_case("softmax_n3_c1", 3, 1)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
