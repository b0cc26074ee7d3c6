#!/usr/bin/env python3
"""Writes tests/fixtures/pipeline/: diffusers' StableDiffusionPipeline run on
the tiny Arc2Face-shaped demo model (assets/demo, from tools/make_demo_model.py)
exactly as upstream Arc2Face runs it, for tests/test_pipeline.c.

Per case (one file CASE.safetensors, all float32, latents NHWC [n, h, w, 4]):
  id          [512]         the raw ID vector (assets/demo/id.npy)
  cond        [77, D]       upstream conditioning: project_face_embs (the prompt
                            "photo of a id person", raw token embeddings with the
                            "id" row replaced by F.pad(id / |id|, (0, D - 512)) --
                            a crop for the tiny D = 32 --, position embeddings,
                            causal encoder, final_layer_norm)
  uncond      [77, D]       the negative: the encoder on "" (what diffusers does
                            when no negative is given, i.e. upstream), or for the
                            "zero" case the prompt with a zero ID vector
  latents0    [n, h, w, 4]  torch.randn([n, 4, h, w], generator=
                            torch.Generator("cpu").manual_seed(seed)) (NCHW -> NHWC),
                            the latents handed to the pipeline
  latents.K   [n, h, w, 4]  the latents after step K (callback_on_step_end)
  image       [n, H, W, 3]  output_type="np": (decode / 2 + 0.5).clamp(0, 1),
                            before the uint8 rounding
  step_t      [steps]       the scheduler's timesteps
The scheduler is built as upstream does: XScheduler.from_config(SD1.5's
scheduler_config.json). Case parameters are repeated in tests/test_pipeline.c.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
DEMO = os.path.join(ROOT, "assets", "demo")
OUT = os.path.join(ROOT, "tests", "fixtures", "pipeline")
PROMPT = "photo of a id person"

# name: (scheduler class, steps, guidance, n images, seed, H, W, negative)
CASES = {
    "dpm10": (DPMSolverMultistepScheduler, 10, 3.0, 2, 0, 64, 64, "empty"),
    "ddim6": (DDIMScheduler, 6, 3.0, 1, 3, 64, 48, "empty"),
    "euler8_zero": (EulerDiscreteScheduler, 8, 3.0, 1, 5, 64, 64, "zero"),
    "dpm5_nocfg": (DPMSolverMultistepScheduler, 5, 1.0, 1, 9, 64, 64, "empty"),
}


def causal_mask(B, L, dtype):
    m = torch.full((L, L), torch.finfo(dtype).min).triu(1)  # _make_causal_mask
    return m[None, None].expand(B, 1, L, L)


@torch.no_grad()
def project_face_embs(enc, tok, idv):
    """arc2face/utils.py::project_face_embs with CLIPTextModelWrapper's forward."""
    ids = tok(PROMPT, truncation=True, padding="max_length", max_length=tok.model_max_length,
              return_tensors="pt").input_ids
    arcface_token_id = tok.encode("id", add_special_tokens=False)[0]
    assert arcface_token_id == 1014 and ids[0, 4] == 1014, ids
    tm = getattr(enc, "text_model", enc)  # transformers >= 5 flattens CLIPTextModel
    face = idv / torch.norm(idv, dim=1, keepdim=True)
    face = F.pad(face, (0, enc.config.hidden_size - 512), "constant", 0)
    te = tm.embeddings.token_embedding(ids)
    te[ids == arcface_token_id] = face
    h = tm.embeddings(inputs_embeds=te)
    h = tm.encoder(inputs_embeds=h, attention_mask=causal_mask(1, ids.shape[1], h.dtype)).last_hidden_state
    return tm.final_layer_norm(h)


def nhwc(t):
    return t.detach().float().permute(0, 2, 3, 1).contiguous()


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = CLIPTokenizer(os.path.join(ROOT, "assets", "tokenizer", "vocab.json"),
                        os.path.join(ROOT, "assets", "tokenizer", "merges.txt"), model_max_length=77)
    enc = CLIPTextModel.from_pretrained(os.path.join(DEMO, "model", "encoder"), torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(DEMO, "model", "arc2face"),
                                                torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(DEMO, "base", "vae"), torch_dtype=torch.float32).eval()
    with open(os.path.join(DEMO, "base", "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)
    idv = torch.from_numpy(np.load(os.path.join(DEMO, "id.npy")).astype(np.float32)).reshape(1, 512)
    cond = project_face_embs(enc, tok, idv)
    for name, (cls, steps, g, n, seed, H, W, negative) in CASES.items():
        sched = cls.from_config(sched_cfg)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=enc, tokenizer=tok, unet=unet, scheduler=sched,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        if negative == "zero":
            # The --negative zero option (not upstream; AdaFace-style): the prompt with a zero ID
            # row. Upstream's normalisation would make 0/0 = NaN, so the row is set directly.
            ids = tok(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
            tm = getattr(enc, "text_model", enc)  # transformers >= 5 flattens CLIPTextModel
            with torch.no_grad():
                te = tm.embeddings.token_embedding(ids)
                te[ids == 1014] = 0.0
                h = tm.embeddings(inputs_embeds=te)
                h = tm.encoder(inputs_embeds=h, attention_mask=causal_mask(1, 77, h.dtype)).last_hidden_state
                uncond = tm.final_layer_norm(h)
        else:
            with torch.no_grad():  # what diffusers' encode_prompt does when no negative is given
                uncond = pipe.encode_prompt("", "cpu", 1, True, negative_prompt=None,
                                            prompt_embeds=cond)[1]
        gen = torch.Generator("cpu").manual_seed(seed)
        lat0 = torch.randn([n, 4, H // 8, W // 8], generator=gen, dtype=torch.float32)
        rec = {}

        def cb(p, i, t, kw):
            rec[f"latents.{i}"] = nhwc(kw["latents"])
            return kw

        kwargs = dict(prompt_embeds=cond, num_inference_steps=steps, guidance_scale=g, num_images_per_prompt=n,
                      height=H, width=W, latents=lat0.clone(), output_type="np", callback_on_step_end=cb)
        if negative == "zero":
            kwargs["negative_prompt_embeds"] = uncond  # else diffusers encodes "" itself, as upstream
        with torch.no_grad():
            img = pipe(**kwargs).images
        t = {"id": idv.reshape(512).contiguous(), "cond": cond[0].contiguous(), "uncond": uncond[0].contiguous(),
             "latents0": nhwc(lat0), "image": torch.from_numpy(np.ascontiguousarray(img)).float(),
             "step_t": pipe.scheduler.timesteps.float().contiguous()}
        t.update(rec)
        assert len(rec) == steps
        save_file(t, os.path.join(OUT, name + ".safetensors"),
                  metadata={"source": "tools/ref/make_pipeline_fixtures.py, diffusers StableDiffusionPipeline"})
        os.chmod(os.path.join(OUT, name + ".safetensors"), 0o644)
        print(name, "image", tuple(img.shape), "range", float(img.min()), float(img.max()),
              "final |latents|max", float(rec[f"latents.{steps - 1}"].abs().max()))


if __name__ == "__main__":
    main()
