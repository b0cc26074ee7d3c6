#!/usr/bin/env python3
"""bench_unet_torch.py: the PyTorch side of tools/bench/bench_unet_cpu.c.

Same models, shapes, warm-up and run counts, on the CPU in fp32 under
torch.inference_mode(), with torch.set_num_threads(THREADS) (default 2, the
cores of the development machine):

  bench_unet_torch.py unet CONFIG.json LATENT B [RUNS]  diffusers UNet2DConditionModel,
                                                        sample [B, 4, LATENT, LATENT], context [B, 77, cross]
  bench_unet_torch.py clip CONFIG.json B [RUNS]         transformers CLIPTextModel, 77 tokens
  bench_unet_torch.py iresnet r100 B [RUNS]             insightface IResNet-100 (module copied from
                                                        tools/ref/make_iresnet_fixtures.py), 112x112

Weights are the libraries' own random initialisation (timing does not depend
on the values). Prints every run (wall, user and system CPU seconds) and
"RESULT <case> median_s=..." in the C bench's format.

  bench_unet_torch.py unet CONFIG.json LATENT B [RUNS] --device cuda [--compile]
      the side of tools/bench/bench_unet_gpu.c: the UNet in bf16 on the GPU (PyTorch's
      SDPA attention, cuDNN convolutions with cudnn.benchmark), an inference step and a
      training step (forward + backward of every parameter, no optimizer), 2 warm-ups,
      RUNS (default 10) steps each timed with CUDA events; --compile wraps the model in
      torch.compile. Prints "RESULT unet_infer_... median_ms=..." as the C bench.
"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))


def cpu_times():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def time_runs(what, fn, runs):
    t0 = time.perf_counter()
    fn()
    print(f"{what}: warm-up {time.perf_counter() - t0:.3f} s; runs (wall s, user s, sys s):", end="", flush=True)
    ts = []
    for _ in range(runs):
        u0, s0 = cpu_times()
        s = time.perf_counter()
        fn()
        t = time.perf_counter() - s
        u1, s1 = cpu_times()
        ts.append(t)
        print(f" ({t:.3f} {u1 - u0:.2f} {s1 - s0:.2f})", end="", flush=True)
    print()
    ts.sort()
    return ts[len(ts) // 2]


def report(what, med, gflop=0.0):
    extra = f" gflop={gflop:.1f} gflops_per_s={gflop / med:.2f}" if gflop else ""
    print(f"RESULT {what} median_s={med:.4f}{extra} threads={torch.get_num_threads()}")


def bench_unet(config, latent, B, runs):
    from diffusers import UNet2DConditionModel

    with open(config) as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    m = UNet2DConditionModel.from_config(cfg).eval()
    nparam = sum(p.numel() for p in m.parameters())
    x = torch.randn(B, cfg["in_channels"], latent, latent)
    ehs = torch.randn(B, 77, cfg["cross_attention_dim"])
    t = torch.full((B,), 999.0)
    print(f"unet {config}: {nparam} parameters, latent {latent}x{latent}, batch {B}, attention processor "
          f"{type(m.attn_processors[next(iter(m.attn_processors))]).__name__}")
    what = f"unet_{latent}x{latent}_b{B}"
    med = time_runs(what, lambda: m(x, t, encoder_hidden_states=ehs).sample, runs)
    sd15 = cfg["block_out_channels"][0] == 320 and latent == 64
    report(what, med, 803.3 * B if sd15 else 0.0)


def bench_unet_cuda(config, latent, B, runs, compile_):
    from diffusers import UNet2DConditionModel

    torch.backends.cudnn.benchmark = True
    with open(config) as f:
        cfg = json.load(f)
    torch.manual_seed(0)
    m = UNet2DConditionModel.from_config(cfg).to("cuda", torch.bfloat16)
    f = torch.compile(m) if compile_ else m
    x = torch.randn(B, cfg["in_channels"], latent, latent, device="cuda", dtype=torch.bfloat16)
    ehs = torch.randn(B, 77, cfg["cross_attention_dim"], device="cuda", dtype=torch.bfloat16)
    dy = torch.randn(B, cfg["out_channels"], latent, latent, device="cuda", dtype=torch.bfloat16)
    t = torch.full((B,), 999.0, device="cuda")
    print(f"# bench_unet_torch: {torch.cuda.get_device_name()}, torch {torch.__version__}, unet {config}, "
          f"latent {latent}x{latent}, batch {B}, bf16{', torch.compile' if compile_ else ''}")

    def infer():
        with torch.inference_mode():
            f(x, t, encoder_hidden_states=ehs).sample

    def train():
        out = f(x, t, encoder_hidden_states=ehs).sample
        out.backward(dy)
        for p in m.parameters():
            p.grad = None

    sd15 = cfg["block_out_channels"][0] == 320 and latent == 64
    for name, fn, mult in (("infer", infer, 1), ("train", train, 3)):
        what = f"unet_{name}_{latent}x{latent}_b{B}"
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        ms = []
        for _ in range(runs):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            ms.append(e0.elapsed_time(e1))
        print(f"{what}: steps (ms): " + " ".join(f"{v:.2f}" for v in ms))
        ms.sort()
        med = ms[len(ms) // 2]
        gflop = mult * 803.3 * B if sd15 else 0.0
        extra = f" gflop={gflop:.1f} tflops={gflop / med:.1f}" if gflop else ""
        print(f"RESULT {what} median_ms={med:.3f} fastest_ms={ms[0]:.3f}{extra}"
              f" peak_mem_gib={torch.cuda.max_memory_allocated() / 2**30:.2f}", flush=True)


def bench_clip(config, B, runs):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig.from_json_file(config)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    m = CLIPTextModel(cfg).eval()
    prompt = [49406, 1125, 539, 320, 1014, 2533, 49407]
    ids = torch.tensor([prompt + [49407] * (77 - len(prompt))] * B)
    print(f"clip {config}: {sum(p.numel() for p in m.parameters())} parameters, batch {B} x 77 tokens")
    what = f"clip_b{B}_l77"
    med = time_runs(what, lambda: m(input_ids=ids).last_hidden_state, runs)
    report(what, med)


def bench_iresnet(name, B, runs):
    from make_iresnet_fixtures import IResNet

    layers = {"r18": [2, 2, 2, 2], "r34": [3, 4, 6, 3], "r50": [3, 4, 14, 3], "r100": [3, 13, 30, 3]}[name]
    torch.manual_seed(0)
    m = IResNet(layers, [64, 128, 256, 512], 64, 512, (112, 112)).eval()
    x = torch.randn(B, 3, 112, 112)
    print(f"iresnet {name}: {sum(p.numel() for p in m.parameters())} parameters, batch {B} x 112x112")
    what = f"iresnet_{name}_b{B}"
    med = time_runs(what, lambda: m(x), runs)
    report(what, med)


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    a = [v for v in sys.argv[1:] if not v.startswith("--")]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu"
    a = [v for v in a if v != device] if device != "cpu" else a
    if device == "cuda" and len(a) >= 4 and a[0] == "unet":
        runs = int(a[4]) if len(a) > 4 else 10
        bench_unet_cuda(a[1], int(a[2]), int(a[3]), runs, "--compile" in sys.argv)
        return
    if len(a) >= 4 and a[0] == "unet":
        runs = int(a[4]) if len(a) > 4 else 3
        fn = lambda: bench_unet(a[1], int(a[2]), int(a[3]), runs)
    elif len(a) >= 3 and a[0] == "clip":
        runs = int(a[3]) if len(a) > 3 else 3
        fn = lambda: bench_clip(a[1], int(a[2]), runs)
    elif len(a) >= 3 and a[0] == "iresnet":
        runs = int(a[3]) if len(a) > 3 else 3
        fn = lambda: bench_iresnet(a[1], int(a[2]), runs)
    else:
        sys.exit("usage: bench_unet_torch.py unet CONFIG LATENT B [RUNS] [--device cuda [--compile]] | "
                 "clip CONFIG B [RUNS] | iresnet NAME B [RUNS]")
    with torch.inference_mode():
        fn()


if __name__ == "__main__":
    main()
