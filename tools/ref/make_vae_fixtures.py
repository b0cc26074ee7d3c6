#!/usr/bin/env python3
"""Writes tests/fixtures/vae/: diffusers AutoencoderKL in tiny configurations
with random weights, for tests/test_vae.c and tests/gpu/test_vae_cuda.c.

Per configuration NAME:
  NAME/config.json + NAME/diffusion_pytorch_model[.fp16].safetensors
      the model as diffusers' save_pretrained writes it (new attention names);
  NAME_io.safetensors  (all activations NHWC, float32)
      io.x [B,H,W,Cin]           image input
      io.moments [B,h,w,2L]      quant_conv output (the posterior parameters)
      io.mean, io.logvar         the posterior (logvar clamped to [-30, 20])
      io.eps, io.sample          a given noise and mean + exp(0.5 logvar) * eps
      io.enc.dy, io.enc.grad.x   gradient of sum(moments * enc.dy) w.r.t. x ...
      io.enc.grad.<key>          ... and every encoder / quant_conv parameter
      io.z [B,h2,w2,L]           decoder input (the unscaled latent)
      io.dec [B,H2,W2,Cout]      decoder output
      io.dec.dy, io.dec.grad.z   gradient of sum(dec * dec.dy) w.r.t. z ...
      io.dec.grad.<key>          ... and every decoder / post_quant_conv parameter
  a_old.safetensors: the weights of "a" under the OLD attention names
      (query/key/value/proj_attn) with [C, C, 1, 1] attention weights.

"a": block_out_channels (8, 16), fp32 weights, image 16x12, latents 3x5.
"b": block_out_channels (8, 16, 16), weights rounded to fp16 and saved with
     variant fp16 (so the loader's .fp16 path is exercised; the reference is
     computed in fp32 with the rounded weights), odd image 14x10 (the
     asymmetric downsample padding matters), latents 5x3.
Both: layers_per_block 1, norm_num_groups 4, latent_channels 4, batch 2.
"""
import json
import os

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "vae")


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def make(name, seed, blocks, img_hw, lat_hw, fp16):
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                        up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks,
                        layers_per_block=1, norm_num_groups=4, latent_channels=4, sample_size=32).float()
    with torch.no_grad():
        for k, p in vae.named_parameters():
            if "norm" in k and k.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif k.endswith("bias"):
                p.normal_(0, 0.1)
            if fp16:
                p.copy_(p.half().float())
    B = 2
    x = torch.randn(B, 3, *img_hw, requires_grad=True)
    io = {"io.x": nhwc(x)}
    # encoder: moments, posterior, sampling with a given eps
    moments = vae.quant_conv(vae.encoder(x))
    post = vae.encode(x).latent_dist
    eps = torch.randn_like(post.mean)
    io["io.moments"] = nhwc(moments)
    io["io.mean"], io["io.logvar"] = nhwc(post.mean), nhwc(post.logvar)
    io["io.eps"], io["io.sample"] = nhwc(eps), nhwc(post.mean + post.std * eps)
    dm = torch.randn_like(moments)
    vae.zero_grad()
    (moments * dm).sum().backward()
    io["io.enc.dy"], io["io.enc.grad.x"] = nhwc(dm), nhwc(x.grad)
    for k, p in vae.named_parameters():
        if k.startswith("encoder.") or k.startswith("quant_conv."):
            io["io.enc.grad." + k] = p.grad.detach().contiguous()
    # decoder
    z = torch.randn(B, 4, *lat_hw, requires_grad=True)
    vae.zero_grad()
    dec = vae.decode(z).sample
    dy = torch.randn_like(dec)
    (dec * dy).sum().backward()
    io["io.z"], io["io.dec"], io["io.dec.dy"], io["io.dec.grad.z"] = nhwc(z), nhwc(dec), nhwc(dy), nhwc(z.grad)
    for k, p in vae.named_parameters():
        if k.startswith("decoder.") or k.startswith("post_quant_conv."):
            io["io.dec.grad." + k] = p.grad.detach().contiguous()
    meta = {"source": "tools/ref/make_vae_fixtures.py, torch " + torch.__version__}
    save_file(io, os.path.join(ROOT, name + "_io.safetensors"), metadata=meta)
    d = os.path.join(ROOT, name)
    if fp16:
        vae.half().save_pretrained(d, variant="fp16", safe_serialization=True)
    else:
        vae.save_pretrained(d, safe_serialization=True)
    return vae


def main():
    os.makedirs(ROOT, exist_ok=True)
    vae = make("a", 1, (8, 16), (16, 12), (3, 5), False)
    make("b", 2, (8, 16, 16), (14, 10), (5, 3), True)
    # the OLD attention names and 1x1-conv-shaped attention weights
    old = {}
    ren = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    for k, v in vae.state_dict().items():
        v = v.detach().contiguous()
        if ".attentions.0." in k:
            for new, o in ren.items():
                if ".attentions.0." + new + "." in k:
                    k = k.replace(".attentions.0." + new + ".", ".attentions.0." + o + ".")
                    if v.ndim == 2:
                        v = v[:, :, None, None].contiguous()
        old[k] = v
    save_file(old, os.path.join(ROOT, "a_old.safetensors"), metadata={"format": "pt"})
    for n in ("a", "b"):
        with open(os.path.join(ROOT, n, "config.json")) as f:
            json.load(f)
    print("wrote", ROOT)


if __name__ == "__main__":
    main()
