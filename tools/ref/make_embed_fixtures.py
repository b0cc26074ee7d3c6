#!/usr/bin/env python3
"""Writes tests/fixtures/embed/* for tests/test_embed.c: the recognizer half
of the identity pipeline as insightface's ArcFaceONNX + Arc2Face run it, on a
tiny insightface IResNet (the module of make_iresnet_fixtures.py) with random
weights, and embedding files in the formats embed_read_vector accepts.

  tiny_arcface.safetensors   state dict (F16 to keep it small; the reference
                             uses the same F16-rounded values), layers [1,1,1,1],
                             widths [8,8,8,8], stem 8, 512-d, 112x112 input
  crop_a.png, crop_b.png     112x112 RGB "aligned crops"
  expected.safetensors:
    raw_a, raw_b   F32 [512]   model((crop - 127.5) / 127.5) on the RGB crop, NCHW
                               (= blobFromImages(1/127.5, 127.5, swapRB) of the BGR crop)
    norm_a, norm_b F32 [512]   raw / ||raw||  (Arc2Face's id_emb / torch.norm(id_emb))
    mean_ab        F32 [512]   normalize(norm_a + norm_b)  (mean of two, renormalised)
    vec            F32 [512]   the vector stored in the emb_* files below
  emb_f4.npy        np.save of float32 (512,)
  emb_f8_1x512.npy  np.save of float64 (1, 512)
  emb_v2.npy, emb_v3.npy  numpy.lib.format.write_array version (2, 0) / (3, 0)
  emb_id.safetensors one F32 tensor "id" [1, 512]
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_iresnet_fixtures import IResNet, randomize  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "embed")


def crop_image(rng):
    y, x = np.mgrid[0:112, 0:112].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(x / rng.uniform(5, 15)), 255 * (x + y) / 224,
                    128 + 100 * np.cos(y / rng.uniform(5, 15))], 2)
    img += rng.normal(0, 10, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    model = IResNet([1, 1, 1, 1], [8, 8, 8, 8], 8, 512, (112, 112))
    randomize(model, g)
    with torch.no_grad():  # weights rounded to F16 (the file) and back, so both sides use them
        for p in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            p.copy_(p.half().float())
    model.eval()
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(OUT, "tiny_arcface.safetensors"))

    rng = np.random.default_rng(3)
    exp = {}
    for tag in ("a", "b"):
        crop = crop_image(rng)
        Image.fromarray(crop).save(os.path.join(OUT, "crop_%s.png" % tag))
        x = (torch.from_numpy(crop).float() - 127.5) / 127.5
        with torch.no_grad():
            raw = model(x.permute(2, 0, 1)[None].contiguous())[0]
        exp["raw_" + tag] = raw.contiguous()
        exp["norm_" + tag] = (raw / torch.norm(raw)).contiguous()
    m = (exp["norm_a"].double() + exp["norm_b"].double()) / 2
    exp["mean_ab"] = (m / torch.norm(m)).float().contiguous()

    vec = rng.normal(0, 1, 512)
    exp["vec"] = torch.from_numpy(vec.astype(np.float32))
    save_file(exp, os.path.join(OUT, "expected.safetensors"))
    np.save(os.path.join(OUT, "emb_f4.npy"), vec.astype(np.float32))
    np.save(os.path.join(OUT, "emb_f8_1x512.npy"), vec.astype(np.float64).reshape(1, 512))
    for ver in (2, 3):
        with open(os.path.join(OUT, "emb_v%d.npy" % ver), "wb") as f:
            np.lib.format.write_array(f, vec.astype(np.float32), version=(ver, 0))
    save_file({"id": torch.from_numpy(vec.astype(np.float32).reshape(1, 512))}, os.path.join(OUT, "emb_id.safetensors"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
