#!/usr/bin/env python3
"""Writes tests/fixtures/unet/: reference results of diffusers' own
UNet2DConditionModel, ResnetBlock2D and Transformer2DModel, for
tests/test_unet.c and tests/gpu/test_unet_cuda.c.

Tiny whole UNets (folders tiny_<cfg>_s<seed>/):
  config.json                              written by diffusers' save_pretrained
  diffusion_pytorch_model.fp16.safetensors the weights: diffusers' init, norms and
                                           biases perturbed, every value rounded to
                                           fp16 so the F16 file holds them exactly
                                           (the model runs in fp32 on those values)
  io.safetensors                           io.sample, io.timestep, io.ehs, io.out,
                                           io.dy, io.dsample, io.dehs, io.grad.<key>
Activations are stored NHWC ([B, H, W, C]); parameter gradients in PyTorch
layout, of sum(out * dy).

Tiny single blocks (resnet_*.safetensors, t2d_tiny.safetensors): weights +
io.* in one file, as tests/fixtures/nn/core.safetensors.

Full-size SD1.5 blocks (full_resnet.safetensors, full_t2d.safetensors):
weights and inputs come from gen() below (reimplemented in the C test), so
the file stores only sampled elements of the output / input gradients and,
per parameter, sampled gradient elements (io.gidx.* holds the indices into
the PyTorch-layout flattened tensor).
"""
import json
import os
import numpy as np
import torch
from safetensors.torch import save_file
from diffusers import UNet2DConditionModel
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "unet")
torch.set_grad_enabled(True)
M64 = (1 << 64) - 1


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def perturb(model, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if p.ndim == 1 and k.endswith("weight"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            else:  # keep diffusers' init scale, but make zero-init tensors non-trivial
                p.add_(0.05 * torch.randn(p.shape, generator=g) / max(1.0, p[0].numel() ** 0.5))
            p.copy_(p.half().float())  # exactly representable in the F16 file


def grads(model):
    return {"io.grad." + k: p.grad.detach().contiguous() for k, p in model.named_parameters()}


# ----------------------------------------------------------------- tiny UNets
CONFIGS = {
    # 2 levels, 1 layer per block, 4 heads (attention_head_dim quirk), 77-token context
    "a": dict(block_out_channels=(16, 24), layers_per_block=1, norm_num_groups=8, attention_head_dim=4,
              cross_attention_dim=16, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), sample_size=8),
    # 3 levels, 2 layers per block, per-level heads, 5-token context
    "b": dict(block_out_channels=(8, 16, 16), layers_per_block=2, norm_num_groups=4, attention_head_dim=(2, 4, 2),
              cross_attention_dim=12,
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), sample_size=8,
              flip_sin_to_cos=False, freq_shift=1),
}
# (config, seed, B, H, W, context tokens)
CASES = [("a", 0, 2, 8, 6, 77), ("a", 1, 2, 5, 7, 77), ("b", 0, 2, 7, 5, 5), ("b", 1, 3, 8, 6, 5)]


def tiny_unet(cfg, seed, B, H, W, Nc):
    torch.manual_seed(seed)
    m = UNet2DConditionModel(**CONFIGS[cfg]).float()
    perturb(m, seed)
    d = os.path.join(OUT, "tiny_%s_s%d" % (cfg, seed))
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d, safe_serialization=True, variant="fp16")  # writes config.json too
    # save_pretrained wrote fp32 values under the fp16 name: rewrite the weights as F16 (exact)
    sd = {k: v.detach().half().contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(d, "diffusion_pytorch_model.fp16.safetensors"))
    cd = m.config.cross_attention_dim
    x = torch.randn(B, m.config.in_channels, H, W, requires_grad=True)
    t = torch.tensor([999.0, 3.5, 500.25][:B])
    ehs = torch.randn(B, Nc, cd, requires_grad=True)
    out = m(x, t, ehs).sample
    dy = torch.randn_like(out)
    (out * dy).sum().backward()
    io = {"io.sample": nhwc(x), "io.timestep": t.contiguous(), "io.ehs": ehs.detach().contiguous(),
          "io.out": nhwc(out), "io.dy": nhwc(dy), "io.dsample": nhwc(x.grad), "io.dehs": ehs.grad.contiguous(),
          "io.shape": torch.tensor([B, H, W, Nc], dtype=torch.int32)}
    io.update(grads(m))
    save_file(io, os.path.join(d, "io.safetensors"))


# ----------------------------------------------------------------- tiny blocks
def tiny_resnet(name, cin, cout, temb, eps, B, H, W):
    torch.manual_seed(7)
    m = ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, groups=4, eps=eps).float()
    perturb(m, 7)
    x = torch.randn(B, cin, H, W, requires_grad=True)
    te = torch.randn(B, temb, requires_grad=True) if temb else None
    y = m(x, te)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    io = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
    io.update({"io.x": nhwc(x), "io.y": nhwc(y), "io.dy": nhwc(dy), "io.dx": nhwc(x.grad)})
    if temb:
        io.update({"io.temb": te.detach().contiguous(), "io.dtemb": te.grad.contiguous()})
    io.update(grads(m))
    save_file(io, os.path.join(OUT, name + ".safetensors"))


def tiny_t2d():
    torch.manual_seed(8)
    C, heads, cd, B, H, W, Nc = 16, 2, 12, 2, 5, 3, 7
    m = Transformer2DModel(num_attention_heads=heads, attention_head_dim=C // heads, in_channels=C,
                           norm_num_groups=4, cross_attention_dim=cd).float()
    perturb(m, 8)
    x = torch.randn(B, C, H, W, requires_grad=True)
    ctx = torch.randn(B, Nc, cd, requires_grad=True)
    y = m(x, encoder_hidden_states=ctx).sample
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    io = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
    io.update({"io.x": nhwc(x), "io.y": nhwc(y), "io.dy": nhwc(dy), "io.dx": nhwc(x.grad),
               "io.ctx": ctx.detach().contiguous(), "io.dctx": ctx.grad.contiguous()})
    io.update(grads(m))
    save_file(io, os.path.join(OUT, "t2d_tiny.safetensors"))


# ----------------------------------------------------------------- full-size blocks
def fnv1a(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & M64
    return h


def gen(key, n, scale, offset=0.0):
    """Uniform [-1, 1) * scale + offset from splitmix64(fnv1a(key) + (i + 1) * golden), as in tests/test_unet.c."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a(key)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)  # exact 24-bit fraction
    return ((2.0 * u - 1.0) * scale + offset).astype(np.float32)


def gen_params(model):
    with torch.no_grad():
        for k, p in model.named_parameters():
            n = p.numel()
            if p.ndim >= 2:
                v = gen(k, n, 1.0 / np.sqrt(n // p.shape[0]))
            elif k.endswith("weight"):
                v = gen(k, n, 0.2, 1.0)
            else:
                v = gen(k, n, 0.1)
            p.copy_(torch.from_numpy(v).reshape(p.shape))


NSAMP = 512


def sample_idx(n):
    k = min(n, NSAMP)
    return torch.tensor([(j * 7919 + 13) % n for j in range(k)], dtype=torch.int64) if n > NSAMP else torch.arange(n)


def sampled(t):
    f = t.detach().reshape(-1)
    idx = sample_idx(f.numel())
    return f[idx].contiguous(), idx.to(torch.int32)


def full_store(m, named):
    io = {}
    for name, t in named.items():
        io["io." + name], io["io.idx." + name] = sampled(t)
        io["io.absmax." + name] = t.detach().abs().max().reshape(1)
    for k, p in m.named_parameters():
        io["io.grad." + k], io["io.gidx." + k] = sampled(p.grad)
        io["io.gabsmax." + k] = p.grad.abs().max().reshape(1)
    return io


def full_resnet():
    B, cin, cout, temb, H, W = 1, 320, 640, 1280, 16, 12
    m = ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, groups=32, eps=1e-5).float()
    gen_params(m)
    x = torch.from_numpy(gen("input.x", B * H * W * cin, 1.0)).reshape(B, H, W, cin).permute(0, 3, 1, 2)
    x = x.contiguous().requires_grad_(True)
    te = torch.from_numpy(gen("input.temb", B * temb, 1.0)).reshape(B, temb).requires_grad_(True)
    y = m(x, te)
    dy = torch.from_numpy(gen("input.dy", B * H * W * cout, 1.0)).reshape(B, H, W, cout).permute(0, 3, 1, 2)
    (y * dy).sum().backward()
    io = full_store(m, {"y": nhwc(y), "dx": nhwc(x.grad), "dtemb": te.grad})
    save_file(io, os.path.join(OUT, "full_resnet.safetensors"))


def full_t2d():
    B, C, heads, cd, Nc, H, W = 1, 640, 8, 768, 77, 16, 12
    m = Transformer2DModel(num_attention_heads=heads, attention_head_dim=C // heads, in_channels=C,
                           norm_num_groups=32, cross_attention_dim=cd).float()
    gen_params(m)
    x = torch.from_numpy(gen("input.x", B * H * W * C, 1.0)).reshape(B, H, W, C).permute(0, 3, 1, 2)
    x = x.contiguous().requires_grad_(True)
    ctx = torch.from_numpy(gen("input.ctx", B * Nc * cd, 1.0)).reshape(B, Nc, cd).requires_grad_(True)
    y = m(x, encoder_hidden_states=ctx).sample
    dy = torch.from_numpy(gen("input.dy", B * H * W * C, 1.0)).reshape(B, H, W, C).permute(0, 3, 1, 2)
    (y * dy).sum().backward()
    io = full_store(m, {"y": nhwc(y), "dx": nhwc(x.grad), "dctx": ctx.grad})
    save_file(io, os.path.join(OUT, "full_t2d.safetensors"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny_resnet("resnet_temb", 8, 8, 12, 1e-5, 2, 5, 3)      # UNet style: temb, no shortcut
    tiny_resnet("resnet_vae", 8, 16, None, 1e-6, 2, 3, 5)    # VAE style: no temb, shortcut
    tiny_t2d()
    for c in CASES:
        tiny_unet(*c)
    full_resnet()
    full_t2d()
    print("wrote", OUT)
