#!/usr/bin/env python3
"""make_rng_fixtures.py: reference data for tests/test_rng.c.

Writes tests/fixtures/rng/torch_randn.txt, torch's own float32 output of
    g = torch.Generator("cpu").manual_seed(seed); torch.randn(n, generator=g)
for each torch CPU kernel ("avx2": what AVX2 and AVX512 machines run, checked
equal here; "default": the portable kernel), selected with the
ATEN_CPU_CAPABILITY environment variable in a child process. Format:
    randn KERNEL SEED N FIRST LAST SUM HASH
followed by FIRST + LAST lines "HEX DECIMAL" (float32 bit pattern, value):
the first FIRST and the last LAST values; SUM is the double sum of all n and
HASH the 64-bit FNV-1a hash (hex) of all n float32 bit patterns (xor each
32-bit pattern in, then multiply by 1099511628211), so every value is checked.
    seq KERNEL SEED K n1 .. nK
is one generator drawing randn(n1), randn(n2), ... in turn (the cached
second Box-Muller value of the n < 16 path carries over); the values of all
draws follow, concatenated, as "HEX DECIMAL" lines.

Also writes tests/fixtures/rng/philox_words.txt from a separate pure-Python
Philox4x32-10 (written from the Salmon et al. description, not from
kernels/philox.h): "SEED OFFSET BLOCK w0 w1 w2 w3" in hex, for a cross-check.

Run from the repository root: python3 tools/ref/make_rng_fixtures.py
"""
import os
import struct
import subprocess
import sys

SEEDS = [0, 1, 42, 2024, 1234567890123]
SIZES = [1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 100, 4 * 64 * 64, 1000003]
SEQS = [(42, [3, 5, 20, 1, 2, 17]), (7, [1, 1, 15, 16, 1])]


def f32_hex(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def fnv1a_bits(x):
    h = 1469598103934665603
    for b in x.view(torch_int32()).tolist():
        h = ((h ^ (b & 0xFFFFFFFF)) * 1099511628211) & ((1 << 64) - 1)
    return h


def torch_int32():
    import torch

    return torch.int32


def dump(kernel):
    """Runs in a child with ATEN_CPU_CAPABILITY set; prints the fixture text."""
    import torch

    cap = torch.backends.cpu.get_cpu_capability()
    out = []
    for seed in SEEDS:
        for n in SIZES:
            g = torch.Generator("cpu").manual_seed(seed)
            x = torch.randn(n, generator=g, dtype=torch.float32)
            if n == 4 * 64 * 64:
                # the diffusers latent shape draws the same flat stream
                g2 = torch.Generator("cpu").manual_seed(seed)
                y = torch.randn((1, 4, 64, 64), generator=g2, dtype=torch.float32)
                assert torch.equal(x, y.reshape(-1)), "shaped randn differs from flat"
            vals = x.tolist()
            first, last = (n, 0) if n <= 100 else (64, 64)
            s = float(x.double().sum())
            out.append("randn %s %d %d %d %d %.17g %016x" % (kernel, seed, n, first, last, s, fnv1a_bits(x)))
            for v in vals[:first] + (vals[n - last:] if last else []):
                out.append("%08x %.9g" % (f32_hex(v), v))
    for seed, ns in SEQS:
        g = torch.Generator("cpu").manual_seed(seed)
        vals = []
        for n in ns:
            vals += torch.randn(n, generator=g, dtype=torch.float32).tolist()
        out.append("seq %s %d %d %s" % (kernel, seed, len(ns), " ".join(str(n) for n in ns)))
        for v in vals:
            out.append("%08x %.9g" % (f32_hex(v), v))
    return cap, "\n".join(out) + "\n"


# ---------------------------------------------------------------- Philox (independent)
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c = list(ctr)
    k0, k1 = key
    for _ in range(10):
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c[3] ^ k1) & MASK, p0 & MASK]
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return c


def philox_block(seed, offset, block):
    cnt = (offset + block) & ((1 << 64) - 1)
    return philox4x32_10([cnt & MASK, cnt >> 32, 0, 0], [seed & MASK, seed >> 32])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--dump":
        cap, text = dump(sys.argv[2])
        sys.stdout.write("# capability %s\n" % cap + text)
        return
    # Random123 KAT sanity of the Python Philox itself.
    assert philox4x32_10([0] * 4, [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert philox4x32_10([MASK] * 4, [MASK] * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    out_dir = os.path.join("tests", "fixtures", "rng")
    os.makedirs(out_dir, exist_ok=True)

    texts = {}
    for kernel, cap in [("avx2", "avx2"), ("avx2-512", "avx512"), ("default", "default")]:
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        r = subprocess.run([sys.executable, __file__, "--dump", kernel.split("-")[0]], env=env,
                           capture_output=True, text=True, check=True)
        got_cap, body = r.stdout.split("\n", 1)
        print(kernel, got_cap)
        texts[kernel] = (got_cap, body)
    if texts["avx2-512"][0].endswith("AVX512"):
        assert texts["avx2-512"][1] == texts["avx2"][1], "AVX512 kernel differs from AVX2"
    assert texts["avx2"][0].endswith("AVX2"), "this machine cannot run torch's AVX2 kernel"
    with open(os.path.join(out_dir, "torch_randn.txt"), "w") as f:
        f.write("# torch %s: torch.randn(n, generator=torch.Generator('cpu').manual_seed(seed)), float32\n"
                % __import__("torch").__version__)
        f.write(texts["avx2"][1])
        f.write(texts["default"][1])

    with open(os.path.join(out_dir, "philox_words.txt"), "w") as f:
        f.write("# seed offset block w0 w1 w2 w3 (hex), pure-Python Philox4x32-10\n")
        for seed in [0, 1, 0x123456789ABCDEF0, (1 << 64) - 1]:
            for offset in [0, 5, (1 << 32) - 1, (1 << 64) - 3]:
                for block in [0, 1, 2, 1000003]:
                    w = philox_block(seed, offset, block)
                    f.write("%x %x %x %08x %08x %08x %08x\n" % (seed, offset, block, *w))


if __name__ == "__main__":
    main()
