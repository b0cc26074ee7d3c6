#!/usr/bin/env python3
"""make_misc_fixtures.py: PyTorch reference fixtures for the misc CPU ops
(attention, pooling, shape, embedding, loss) -> tests/fixtures/misc/*.safetensors.

Each fixture holds inputs, an upstream gradient, the forward outputs and the
input gradients autograd computes, all in fp32. Images are NHWC (permuted from
PyTorch's NCHW) so the C tests read them as is.

Files are safetensors (read through tests/fixture.h): float tensors are
stored as F32, integer ones (dims, argmax indices, ids) as I32.

Needs torch and diffusers (for get_timestep_embedding).
Usage: python3 tools/ref/make_misc_fixtures.py [outdir]
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.numpy import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "misc")


class Fixture:
    def __init__(self):
        self.recs = []

    def add(self, name, t):
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        a = a.astype("<i4") if a.dtype.kind in "iu" else a.astype("<f4")
        assert name not in (n for n, _ in self.recs), name
        self.recs.append((name, np.ascontiguousarray(a)))

    def write(self, fname):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, fname)
        save_file(dict(self.recs), path, metadata={"source": "tools/ref/make_misc_fixtures.py"})
        print("%-40s %7d bytes, %d arrays" % (path, os.path.getsize(path), len(self.recs)))


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def grads(out, inputs, g):
    return torch.autograd.grad(out, inputs, g)


# ---------------------------------------------------------------- attention
def attention(fx, tag, B, H, Nq, Nk, D, causal):
    q = torch.randn(B, Nq, H * D, requires_grad=True)
    k = torch.randn(B, Nk, H * D, requires_grad=True)
    v = torch.randn(B, Nk, H * D, requires_grad=True)

    def heads(t, n):  # [B, n, H*D] -> [B, H, n, D]
        return t.view(B, n, H, D).transpose(1, 2)

    o = F.scaled_dot_product_attention(heads(q, Nq), heads(k, Nk), heads(v, Nk), is_causal=causal)
    o = o.transpose(1, 2).reshape(B, Nq, H * D)
    do = torch.randn_like(o)
    dq, dk, dv = grads(o, (q, k, v), do)
    # lse of the scaled (masked) scores, in float64
    s = heads(q, Nq).double() @ heads(k, Nk).double().transpose(-1, -2) / D ** 0.5
    if causal:
        s = s.masked_fill(torch.ones(Nq, Nk, dtype=torch.bool).triu(1), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # [B, H, Nq]
    fx.add(tag + ".dims", torch.tensor([B, H, Nq, Nk, D, int(causal)], dtype=torch.int32))
    for n, t in (("q", q), ("k", k), ("v", v), ("o", o), ("lse", lse), ("do", do), ("dq", dq), ("dk", dk), ("dv", dv)):
        fx.add(tag + "." + n, t)


# ---------------------------------------------------------------- pool
def pool_case(fx, tag, B, C, H, W, k, s, p, ceil, tie=False):
    if tie:  # small integers: many equal maxima, tests the first-max rule
        x = torch.randint(0, 3, (B, C, H, W)).float().requires_grad_()
    else:
        x = torch.randn(B, C, H, W, requires_grad=True)
    fx.add(tag + ".dims", torch.tensor([B, C, H, W, k, s, p, ceil], dtype=torch.int32))
    fx.add(tag + ".x", nhwc(x))
    y, idx = F.max_pool2d(x, k, s, p, ceil_mode=bool(ceil), return_indices=True)
    g = torch.randn_like(y)
    (dx,) = grads(y, (x,), g)
    fx.add(tag + ".dy", nhwc(g))
    fx.add(tag + ".max_y", nhwc(y))
    fx.add(tag + ".max_idx", nhwc(idx).int())
    fx.add(tag + ".max_dx", nhwc(dx))
    for cip in (0, 1):
        y = F.avg_pool2d(x, k, s, p, ceil_mode=bool(ceil), count_include_pad=bool(cip))
        (dx,) = grads(y, (x,), g)
        fx.add(tag + ".avg%d_y" % cip, nhwc(y))
        fx.add(tag + ".avg%d_dx" % cip, nhwc(dx))


def pools(fx):
    pool_case(fx, "p0", 2, 3, 7, 6, 3, 2, 1, 1)  # ceil: last window partly past the padding
    pool_case(fx, "p1", 1, 5, 5, 5, 2, 2, 0, 0)  # floor, last row/col dropped
    pool_case(fx, "p2", 2, 2, 5, 7, 2, 2, 1, 1)  # ceil with the "start inside input+pad" drop
    pool_case(fx, "p3", 1, 4, 9, 8, 3, 1, 1, 0)  # stride 1, overlapping windows
    pool_case(fx, "p4", 2, 3, 8, 9, 3, 3, 1, 1)  # ceil, stride = kernel
    pool_case(fx, "tie", 2, 3, 6, 7, 3, 2, 1, 1, tie=True)
    # global average pool (adaptive 1x1) and squeeze-excitation scaling
    x = torch.randn(3, 5, 4, 7, requires_grad=True)
    y = F.adaptive_avg_pool2d(x, 1)
    g = torch.randn_like(y)
    (dx,) = grads(y, (x,), g)
    fx.add("gap.x", nhwc(x)), fx.add("gap.y", y.flatten(1)), fx.add("gap.dy", g.flatten(1)), fx.add("gap.dx", nhwc(dx))
    s = torch.randn(3, 5, requires_grad=True)
    y = x * s[:, :, None, None]
    g = torch.randn_like(y)
    dx, ds = grads(y, (x, s), g)
    fx.add("cs.s", s), fx.add("cs.y", nhwc(y)), fx.add("cs.dy", nhwc(g)), fx.add("cs.dx", nhwc(dx)), fx.add("cs.ds", ds)


# ---------------------------------------------------------------- shape / embed
def shape_embed(fx):
    x = torch.randn(2, 3, 5, 4, requires_grad=True)  # NCHW
    y = F.interpolate(x, scale_factor=2.0, mode="nearest")
    g = torch.randn_like(y)
    (dx,) = grads(y, (x,), g)
    fx.add("up.x", nhwc(x)), fx.add("up.y", nhwc(y)), fx.add("up.dy", nhwc(g)), fx.add("up.dx", nhwc(dx))

    a = torch.randn(2, 3, 3, 5, requires_grad=True)
    b = torch.randn(2, 7, 3, 5, requires_grad=True)
    y = torch.cat([a, b], dim=1)
    g = torch.randn_like(y)
    da, db = grads(y, (a, b), g)
    for n, t in (("a", a), ("b", b), ("y", y), ("dy", g), ("da", da), ("db", db)):
        fx.add("cat." + n, nhwc(t))

    table = torch.randn(11, 6, requires_grad=True)
    ids = torch.tensor([3, 0, 10, 3, 7, 3, 1], dtype=torch.long)  # repeats accumulate
    y = F.embedding(ids, table)
    g = torch.randn_like(y)
    (dt,) = grads(y, (table,), g)
    fx.add("emb.ids", ids.int()), fx.add("emb.table", table), fx.add("emb.y", y), fx.add("emb.dy", g)
    fx.add("emb.dtable", dt)

    # diffusers' own get_timestep_embedding
    cases = [(320, True, 0.0, 10000.0), (7, False, 1.0, 10000.0), (64, False, 1.0, 100.0), (13, True, 0.5, 10000.0)]
    t = torch.tensor([0.0, 1.0, 999.0, 500.5, 37.0, 261.0], requires_grad=True)
    for i, (dim, flip, shift, mp) in enumerate(cases):
        y = get_timestep_embedding(t, dim, flip_sin_to_cos=flip, downscale_freq_shift=shift, scale=1,
                                   max_period=int(mp) if mp == int(mp) else mp)
        g = torch.randn_like(y)
        (dt,) = grads(y, (t,), g)
        tag = "temb%d" % i
        fx.add(tag + ".cfg", torch.tensor([dim, int(flip), shift, mp], dtype=torch.float32))
        fx.add(tag + ".t", t), fx.add(tag + ".y", y), fx.add(tag + ".dy", g), fx.add(tag + ".dt", dt)


# ---------------------------------------------------------------- loss
def losses(fx):
    a = torch.randn(5, 13, requires_grad=True)
    b = torch.randn(5, 13, requires_grad=True)
    loss = F.mse_loss(a, b)
    da, db = grads(loss * 0.7, (a, b), None)  # upstream gradient dloss = 0.7
    fx.add("mse.a", a), fx.add("mse.b", b), fx.add("mse.loss", loss.reshape(1))
    fx.add("mse.da", da), fx.add("mse.db", db)

    # F.normalize, eps = 1e-3; rows 2 and 4 are scaled below eps (clamped)
    x = torch.randn(6, 9)
    x[2] *= 1e-5
    x[4] *= 2e-5
    x.requires_grad_()
    y = F.normalize(x, dim=-1, eps=1e-3)
    g = torch.randn_like(y)
    (dx,) = grads(y, (x,), g)
    fx.add("l2.x", x), fx.add("l2.y", y), fx.add("l2.dy", g), fx.add("l2.dx", dx)

    # cosine similarity, default eps, then eps = 1e-2 with clamped rows
    for tag, eps, small in (("cos0", 1e-8, ()), ("cos1", 1e-2, (1, 3))):
        a = torch.randn(7, 11)
        b = torch.randn(7, 11)
        for r in small:
            a[r] *= 1e-4
        b[3] *= 1e-4  # row 3: both clamped when eps = 1e-2
        a.requires_grad_(), b.requires_grad_()
        y = F.cosine_similarity(a, b, dim=-1, eps=eps)
        g = torch.randn_like(y)
        da, db = grads(y, (a, b), g)
        fx.add(tag + ".eps", torch.tensor([eps]))
        for n, t in (("a", a), ("b", b), ("y", y), ("dy", g), ("da", da), ("db", db)):
            fx.add(tag + "." + n, t)


def main():
    torch.manual_seed(20240611)
    fx = Fixture()
    attention(fx, "self", 2, 2, 7, 7, 8, False)
    attention(fx, "causal", 2, 3, 9, 9, 16, True)
    attention(fx, "cross", 2, 2, 5, 77, 8, False)
    attention(fx, "d40", 1, 2, 5, 5, 40, False)
    attention(fx, "d64", 1, 1, 3, 4, 64, True)
    attention(fx, "d80", 1, 1, 3, 3, 80, False)
    attention(fx, "d160", 1, 1, 3, 5, 160, False)
    fx.write("attention.safetensors")
    fx = Fixture()
    pools(fx)
    fx.write("pool.safetensors")
    fx = Fixture()
    shape_embed(fx)
    fx.write("shape_embed.safetensors")
    fx = Fixture()
    losses(fx)
    fx.write("loss.safetensors")


if __name__ == "__main__":
    main()
