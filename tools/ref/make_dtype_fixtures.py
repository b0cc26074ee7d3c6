#!/usr/bin/env python3
"""Writes tests/fixtures/dtype/convert.txt: float32 bit patterns and what torch
rounds them to in bfloat16 and float16 (independent reference for
kernels/tensor.c). One line per value: f32_hex bf16_hex f16_hex."""
import struct, pathlib
import torch

g = torch.Generator().manual_seed(0)
vals = [0.0, -0.0, 1.0, -1.0, 0.1, 1/3, 65504.0, 65519.9, 65520.0, 1e5, -1e5, 2**-14, 2**-24, 2**-25,
        2**-25 * 1.0001, 3 * 2**-26, 1e-8, 1e-30, 3.4e38, float("inf"), float("-inf"), 1.00390625, 1.01171875,
        1.0009765625, 1.00048828125, 1.00146484375]
vals += (torch.randn(600, generator=g) * 10).tolist()
vals += (torch.randn(300, generator=g) * 1e-5).tolist()                        # f16 subnormal range
vals += (torch.rand(300, generator=g) * 70000).tolist()                        # f16 overflow boundary
bits = torch.randint(0, 2**31, (500,), generator=g, dtype=torch.int64)          # arbitrary finite/inf patterns
vals_t = torch.tensor(vals, dtype=torch.float32)
f32 = torch.cat([vals_t.view(torch.int32).to(torch.int64) & 0xffffffff,
                 bits[(bits & 0x7f800000) != 0x7f800000]])                      # no NaNs: payloads differ by design
x = (f32.to(torch.int64) & 0xffffffff)
xf = torch.tensor([struct.unpack("<f", struct.pack("<I", int(v)))[0] for v in x.tolist()], dtype=torch.float32)
bf = xf.to(torch.bfloat16).view(torch.int16).to(torch.int64) & 0xffff
hf = xf.to(torch.float16).view(torch.int16).to(torch.int64) & 0xffff
out = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/dtype/convert.txt"
with open(out, "w") as f:
    f.write("# f32 bf16 f16 (hex bit patterns; torch %s round-to-nearest-even)\n" % torch.__version__)
    for a, b, c in zip(x.tolist(), bf.tolist(), hf.tolist()):
        f.write("%08x %04x %04x\n" % (a, b, c))
print("wrote", out, len(x), "values")
