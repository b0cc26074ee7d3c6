#!/usr/bin/env python3
"""Writes tests/fixtures/clip/: parity fixtures for nn/clip.c and nn/mlp_encoder.c.

1. tiny_s{0,1,2}/: a transformers CLIPTextModel in tiny configurations (hidden
   32/32/48, 2-3 layers, 4/2/6 heads, eager attention) with random weights,
   as a folder config.json + model.safetensors:
     s0 is written by save_pretrained (transformers >= 5: keys WITHOUT the
        "text_model." prefix), s1 and s2 by hand with the SD1.5 "text_model.*"
        keys (s1 also holds the int64 text_model.embeddings.position_ids buffer
        older files carry, which the loader must ignore).
   tiny_s{k}/io.safetensors holds the inputs, outputs and gradients:
     meta I32 [4] = (B, L, K, id_token), ids I32 [B, L], id [B, K] (raw, NOT
     normalised), dy [B, L, D], y [B, L, D], d_id [B, K], grad.<key> (every
     parameter, text_model.* names), and for s0 also y_plain / grad_plain.<key>
     (the plain CLIPTextModel, no injection, same dy).
   tiny_bin/: s0's weights as torch.save(state_dict) pytorch_model.bin with the
   text_model.* keys (the layout of Arc2Face's encoder/pytorch_model.bin).
   Vocabulary: 1100 entries instead of 49408 (a 49408 x 32 table is 6 MB).
   The Arc2Face placeholder 1014 fits as is; the other ids of
   "photo of a id person" are mapped into the small vocabulary: BOS 49406 ->
   V-2, EOS/pad 49407 -> V-1, words >= V-2 -> id % 1000 (photo 1125 -> 125,
   person 2533 -> 533). K (the ID width) is smaller than hidden so the
   zero padding K -> hidden is exercised (Arc2Face: 512 -> 768).
   The ID injection is Arc2Face's (arc2face/utils.py::project_face_embs with
   CLIPTextModelWrapper): raw token embeddings, rows where input_ids == 1014
   overwritten by F.pad(id / ||id||, (0, D-K)), then embeddings(inputs_embeds=)
   (adds the position embeddings), the encoder with the causal additive mask
   (finfo.min above the diagonal, as _make_causal_mask) and final_layer_norm.
   The L2 normalisation is the pipeline's step before the wrapper; the C model
   does it by default (ClipText.id_normalize), so d_id is w.r.t. the raw vector.
   Rows: s0 two pipeline rows; s1 a pipeline row and the empty prompt (no
   placeholder: plain text row, as CFG's unconditional branch); s2 three rows,
   one with the placeholder twice at other positions among random tokens.
2. layer768.safetensors: one full-width CLIPEncoderLayer (768, 12 heads, 3072,
   77 tokens, causal, eps 1e-5), B = 1, whose weights, input x and upstream
   gradient dy come from gen() below, which tests/test_clip.c recomputes
   bit-exactly (power-of-two scales, so every value is exact in fp32). Stored:
   y, dx [1, 77, 768]; per parameter gidx.<key> I32 [64] flat indices (PyTorch
   layout), gval.<key> [64] the gradient there, gsum.<key> [1] the sum of all
   elements and gabs.<key> [1] the sum of |g| (to scale the sum's tolerance).
3. mlp_m{0,1,2}.json + mlp_m{0,1,2}.safetensors: the MLP ablation encoder
   (nn/mlp_encoder.h) as a torch nn.Sequential of Linear / activation
   (GELU exact, SiLU, ReLU) [+ LayerNorm over token_dim], weights saved as
   mlp.layers.{i}.* / mlp.norm.*, with io.x [B, in], io.y [B, T, D], io.dy,
   io.dx and io.grad.<key>.
"""
import json
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "clip")
V = 1100
ID_TOKEN = 1014
PROMPT = [49406, 1125, 539, 320, 1014, 2533, 49407]  # "photo of a id person"
META = {"source": "tools/ref/make_clip_fixtures.py, torch " + torch.__version__}


def small_id(t):
    if t == 49406:
        return V - 2
    if t == 49407:
        return V - 1
    return t if t < V - 2 else t % 1000


def padded(tokens, L=77):
    ids = [small_id(t) for t in tokens][:L]
    return ids + [V - 1] * (L - len(ids))


def causal_mask(B, L, dtype):
    m = torch.full((L, L), torch.finfo(dtype).min).triu(1)  # _make_causal_mask
    return m[None, None].expand(B, 1, L, L)


def encode(model, ids, idv, K):
    """Arc2Face's CLIPTextModelWrapper path (idv None: plain token embeddings)."""
    D = model.config.hidden_size
    tok = model.embeddings.token_embedding(ids)                    # return_token_embs=True
    if idv is not None:
        idn = idv / torch.norm(idv, dim=1, keepdim=True)           # the pipeline's normalisation
        pad = F.pad(idn, (0, D - K), "constant", 0)                # face_embs_padded
        mask = ids == ID_TOKEN
        rows = mask.nonzero()[:, 0]
        tok = tok.clone()
        tok[mask] = pad[rows]                                      # token_embs[input_ids==id] = ...
    h = model.embeddings(inputs_embeds=tok)                        # + position embeddings
    B, L = ids.shape
    h = model.encoder(inputs_embeds=h, attention_mask=causal_mask(B, L, h.dtype)).last_hidden_state
    return model.final_layer_norm(h)


def randomize(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def full_key(k):
    return k if k.startswith("text_model.") else "text_model." + k


def grads(model):
    out = {}
    for k, p in model.named_parameters():
        out[full_key(k)] = p.grad.detach().clone()
        p.grad = None
    return out


def tiny(seed, D, H, Fd, nl, eps, K, rows, style):
    g = torch.Generator().manual_seed(100 + seed)
    cfg = CLIPTextConfig(hidden_size=D, intermediate_size=Fd, num_hidden_layers=nl, num_attention_heads=H,
                         vocab_size=V, max_position_embeddings=77, layer_norm_eps=eps, hidden_act="quick_gelu",
                         bos_token_id=V - 2, eos_token_id=V - 1, pad_token_id=1)
    cfg._attn_implementation = "eager"
    model = CLIPTextModel(cfg).float()
    randomize(model, g)
    B, L = len(rows), 77
    ids = torch.tensor(rows, dtype=torch.long)
    idv = (3.0 * torch.randn(B, K, generator=g)).requires_grad_(True)
    dy = torch.randn(B, L, D, generator=g)
    d = os.path.join(OUT, "tiny_s%d" % seed)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if style == "save_pretrained":
        model.save_pretrained(d)
    else:
        sd = {full_key(k): v.detach().contiguous() for k, v in model.state_dict().items()}
        if style == "with_position_ids":
            sd["text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        cfg.to_json_file(os.path.join(d, "config.json"))
    if seed == 0:  # the same weights as a torch zip checkpoint, as Arc2Face ships its encoder
        db = os.path.join(OUT, "tiny_bin")
        shutil.rmtree(db, ignore_errors=True)
        os.makedirs(db)
        torch.save({full_key(k): v.detach().clone() for k, v in model.state_dict().items()},
                   os.path.join(db, "pytorch_model.bin"))
        shutil.copy(os.path.join(d, "config.json"), db)
    io = {"meta": torch.tensor([B, L, K, ID_TOKEN], dtype=torch.int32), "ids": ids.to(torch.int32),
          "id": idv.detach().clone(), "dy": dy}
    # the plain model through our path must equal CLIPTextModel itself
    plain = encode(model, ids, None, K)
    ref = model(input_ids=ids).last_hidden_state
    assert torch.allclose(plain, ref, atol=1e-5), (plain - ref).abs().max()
    if seed == 0:
        (plain * dy).sum().backward()
        io["y_plain"] = plain.detach()
        for k, v in grads(model).items():
            io["grad_plain." + k] = v
    y = encode(model, ids, idv, K)
    (y * dy).sum().backward()
    io["y"] = y.detach()
    io["d_id"] = idv.grad.detach().clone()
    for k, v in grads(model).items():
        io["grad." + k] = v
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(d, "io.safetensors"), metadata=META)


# ---------------------------------------------------------------- deterministic generator (C twin in test_clip.c)
M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def gen_u24(name, n):
    """splitmix64 of fnv1a64(name) + (i + 1) * golden, top 24 bits."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.int64)


def gen(name, shape, scale, offset=0.0):
    """offset + scale * v, v = (2 u - 2^24) / 2^24 in [-1, 1): exact in fp32 for power-of-two scales."""
    n = int(np.prod(shape))
    v = (2 * gen_u24(name, n) - (1 << 24)).astype(np.float32) / np.float32(1 << 24)
    return torch.from_numpy((v * np.float32(scale) + np.float32(offset)).astype(np.float32).reshape(shape))


def layer_scale(key):
    """(scale, offset) of each parameter of the full-width layer."""
    if "layer_norm" in key:
        return (0.125, 1.0) if key.endswith("weight") else (0.0625, 0.0)
    if key.endswith("bias"):
        return (0.03125, 0.0)
    return (0.03125, 0.0) if "fc2" in key else (0.0625, 0.0)


def layer768():
    D, H, Fd, L, B = 768, 12, 3072, 77, 1
    cfg = CLIPTextConfig(hidden_size=D, intermediate_size=Fd, num_attention_heads=H, layer_norm_eps=1e-5,
                         hidden_act="quick_gelu")
    cfg._attn_implementation = "eager"
    layer = CLIPEncoderLayer(cfg).float()
    with torch.no_grad():
        for k, p in layer.named_parameters():
            s, o = layer_scale(k)
            p.copy_(gen("layer." + k, tuple(p.shape), s, o))
    x = gen("x", (B, L, D), 1.0).requires_grad_(True)
    dy = gen("dy", (B, L, D), 1.0)
    y = layer(x, causal_mask(B, L, torch.float32))
    if isinstance(y, tuple):
        y = y[0]
    (y * dy).sum().backward()
    io = {"y": y.detach(), "dx": x.grad.detach()}
    for k, p in layer.named_parameters():
        gflat = p.grad.detach().reshape(-1).double()
        idx = torch.from_numpy(gen_u24("idx." + k, 64) % gflat.numel())
        io["gidx.layer." + k] = idx.to(torch.int32)
        io["gval.layer." + k] = gflat[idx].float()
        io["gsum.layer." + k] = gflat.sum().float().reshape(1)
        io["gabs.layer." + k] = gflat.abs().sum().float().reshape(1)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "layer768.safetensors"), metadata=META)


# ---------------------------------------------------------------- MLP ablation encoder
ACTS = {"gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "relu": torch.nn.ReLU}


def mlp(tag, seed, cfg, B):
    g = torch.Generator().manual_seed(200 + seed)
    dims = [cfg["in_dim"]] + cfg["hidden_dims"] + [cfg["num_tokens"] * cfg["token_dim"]]
    mods = []
    for i in range(len(dims) - 1):
        mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(ACTS[cfg["activation"]]())
    seq = torch.nn.Sequential(*mods)
    norm = torch.nn.LayerNorm(cfg["token_dim"], eps=cfg["layer_norm_eps"]) if cfg["final_layer_norm"] else None
    with torch.no_grad():
        for p in seq.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5 if p.ndim == 2 else 5.0))
        if norm is not None:
            norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=g))
            norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=g))
    x = (2.0 * torch.randn(B, cfg["in_dim"], generator=g)).requires_grad_(True)
    h = x / torch.norm(x, dim=1, keepdim=True) if cfg["normalize_input"] else x
    y = seq(h).reshape(B, cfg["num_tokens"], cfg["token_dim"])
    if norm is not None:
        y = norm(y)
    dy = torch.randn(y.shape, generator=g)
    (y * dy).sum().backward()
    named = {}
    linears = [m for m in seq if isinstance(m, torch.nn.Linear)]
    for i, m in enumerate(linears):
        named["mlp.layers.%d.weight" % i] = m.weight
        named["mlp.layers.%d.bias" % i] = m.bias
    if norm is not None:
        named["mlp.norm.weight"], named["mlp.norm.bias"] = norm.weight, norm.bias
    out = {k: v.detach().contiguous() for k, v in named.items()}
    for k, v in named.items():
        out["io.grad." + k] = v.grad.contiguous()
    out.update({"io.x": x.detach(), "io.y": y.detach(), "io.dy": dy, "io.dx": x.grad})
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "mlp_%s.safetensors" % tag),
              metadata=META)
    with open(os.path.join(OUT, "mlp_%s.json" % tag), "w") as f:
        json.dump(cfg, f, indent=2)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    pipe = padded(PROMPT)
    empty = padded([49406, 49407])
    rnd = np.random.default_rng(7).integers(0, V - 2, 77).tolist()
    rnd[0], rnd[3], rnd[9], rnd[40] = V - 2, ID_TOKEN, ID_TOKEN, V - 1
    rnd = [t if (t != ID_TOKEN or i in (3, 9)) else 7 for i, t in enumerate(rnd)]
    tiny(0, 32, 4, 64, 2, 1e-5, 20, [pipe, pipe], "save_pretrained")
    tiny(1, 32, 2, 48, 3, 1e-6, 24, [pipe, empty], "with_position_ids")
    tiny(2, 48, 6, 96, 2, 1e-5, 40, [pipe, rnd, pipe], "text_model")
    layer768()
    base = {"in_dim": 24, "num_tokens": 7, "token_dim": 16, "layer_norm_eps": 1e-5}
    mlp("m0", 0, dict(base, hidden_dims=[40, 56, 48], activation="gelu", final_layer_norm=True,
                      normalize_input=True), 3)
    mlp("m1", 1, dict(base, hidden_dims=[32, 32, 32], activation="silu", final_layer_norm=False,
                      normalize_input=False), 2)
    mlp("m2", 2, dict(base, hidden_dims=[36, 20], activation="relu", final_layer_norm=True,
                      normalize_input=True, layer_norm_eps=1e-6), 2)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
