#!/usr/bin/env python3
"""Writes assets/demo/: a tiny, UNTRAINED model in the released Arc2Face file
layout, for `make demo` and for the pipeline parity test (tests/test_pipeline.c,
fixtures from tools/ref/make_pipeline_fixtures.py).

Everything is written by diffusers' / transformers' own save_pretrained, so
loading it also checks that we read the released layout:

  assets/demo/model/arc2face/   UNet2DConditionModel   (HF FoivosPar/Arc2Face: arc2face/)
                 config.json, diffusion_pytorch_model.safetensors (F16 tensors)
  assets/demo/model/encoder/    CLIPTextModel          (HF FoivosPar/Arc2Face: encoder/)
                 config.json, model.safetensors (F16 tensors)
  assets/demo/base/vae/         AutoencoderKL          (SD1.5 folder: vae/)
  assets/demo/base/scheduler/scheduler_config.json     SD1.5's PNDM config, verbatim
  assets/demo/id.npy            a 512-d float32 "ArcFace" vector (random, norm ~25
                                like a raw ArcFace output; the pipeline normalises it)

The base folder has no tokenizer/: SD1.5's tokenizer is the standard CLIP BPE
bundled at assets/tokenizer/ (the CLI uses it when BASE/tokenizer is absent).

Sizes (the CLIP vocabulary must be the real 49408 tokens so real token ids
work): CLIP hidden 32, 2 layers, 4 heads; UNet block_out (32, 64), one layer per
block, cross_attention_dim 32; VAE 4 levels (8x downsampling, as SD) of 8-16
channels. Weights are diffusers' / transformers' random init, norms and biases
perturbed so that nothing is trivially zero, rounded to fp16 and stored as F16
(the F16 files hold the values exactly; all references compute in fp32).
The ID vector (512-d) is longer than the tiny hidden size: upstream's
F.pad(face_embs, (0, hidden - 512)) with a negative pad CROPS it to the first
`hidden` components, which the C pipeline reproduces.
"""
import json
import os

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "demo")

# SD1.5's scheduler/scheduler_config.json (stable-diffusion-v1-5/stable-diffusion-v1-5).
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

HIDDEN = 32


def perturb_round(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if p.ndim == 1 and k.endswith("weight"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g) / max(1.0, p[0].numel() ** 0.5))
            p.copy_(p.half().float())


def main():
    torch.manual_seed(0)
    model_dir, base_dir = os.path.join(ROOT, "model"), os.path.join(ROOT, "base")

    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        norm_num_groups=8, attention_head_dim=8, cross_attention_dim=HIDDEN,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    perturb_round(unet, 1)
    unet.half().save_pretrained(os.path.join(model_dir, "arc2face"))

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         bos_token_id=0, eos_token_id=2, pad_token_id=1)
    enc = CLIPTextModel(cfg)
    perturb_round(enc, 2)
    enc.half().save_pretrained(os.path.join(model_dir, "encoder"))

    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16),
                        layers_per_block=1, norm_num_groups=4, latent_channels=4, sample_size=128)
    perturb_round(vae, 3)
    vae.half().save_pretrained(os.path.join(base_dir, "vae"))

    os.makedirs(os.path.join(base_dir, "scheduler"), exist_ok=True)
    with open(os.path.join(base_dir, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SD15_SCHEDULER, f, indent=2)
        f.write("\n")

    rng = np.random.default_rng(7)
    v = rng.standard_normal(512).astype(np.float32)
    v *= np.float32(25.0 / np.linalg.norm(v))
    np.save(os.path.join(ROOT, "id.npy"), v.astype(np.float32))

    total = 0
    for d, _, files in os.walk(ROOT):
        for fn in files:
            os.chmod(os.path.join(d, fn), 0o644)  # save_pretrained writes some files 0600
            total += os.path.getsize(os.path.join(d, fn))
    print(f"wrote {ROOT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
