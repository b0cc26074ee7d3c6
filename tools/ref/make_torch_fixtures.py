#!/usr/bin/env python3
"""make_torch_fixtures.py: writes tests/fixtures/torch/* for tests/test_torch_bin.c.

Valid checkpoints are written by torch.save itself (zip format, pickle
protocol 2 unless named otherwise); for each NAME.bin the script also writes
NAME.ref.safetensors with the tensors the C reader must produce (same names,
dtypes, shapes and bytes; nested dict keys joined with '.').

  f32.bin        OrderedDict state dict of a tiny module (conv, linear, norm,
                 BatchNorm with an int64 num_batches_tracked) + a tensor that is
                 a view at a non-zero storage offset + a tied weight (same tensor twice)
  f16.bin        the same module in half precision
  bf16.bin       the same module in bfloat16
  pytorch_model.bin  transformers-style (archive folder 'pytorch_model/'), a
                 small MLP state dict, parameters saved as nn.Parameter
  nested.bin     Lightning-style plain dict: epoch, global_step, a nested
                 state_dict and an optimizer sub-dict with a tensor
  proto4.bin     torch.save(..., pickle_protocol=4): FRAME, SHORT_BINUNICODE,
                 MEMOIZE, STACK_GLOBAL
Must be refused (one error line each):
  malicious.bin  a dict holding an object whose __reduce__ is os.system
                 (pickled as GLOBAL 'posix system'); nothing may run
  truncated.bin  f32.bin cut in half
  compressed.bin f32.bin re-zipped with DEFLATE
  noncontig.bin  a transposed (non-contiguous) tensor
  legacy.bin     the pre-1.6 non-zip format (_use_new_zipfile_serialization=False)
  bigendian.bin  f32.bin with its byteorder record rewritten to 'big'
  missing_storage.bin  f32.bin without its archive/data/1 record
  short_storage.bin    f32.bin with archive/data/0 one byte short
(these three are re-zipped by Python's zipfile: plain local headers, no
64-byte padding, which the reader must handle too)
"""
import collections
import os
import zipfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "torch")


def path(name):
    return os.path.join(OUT, name)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(5, 6)
        self.norm = torch.nn.LayerNorm(6)


def tiny_state(dtype):
    torch.manual_seed(0)
    m = Tiny().to(dtype)
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    m.bn.num_batches_tracked += 7
    sd = m.state_dict()
    base = torch.arange(20, dtype=torch.float32).to(dtype)
    sd["view_at_offset"] = base[5:11].view(2, 3)  # storage offset 5 in a 20-element storage
    sd["tied"] = sd["fc.weight"]                  # same tensor object: BINGET in the pickle
    sd["scalar"] = torch.tensor(2.5, dtype=dtype)
    return sd


def save_with_ref(name, obj, flat):
    torch.save(obj, path(name))
    ref = {k: v.detach().clone().contiguous() for k, v in flat.items()}
    save_file(ref, path(name.replace(".bin", ".ref.safetensors")))


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, torch.Tensor):
            out[key] = v
        elif isinstance(v, dict):
            out.update(flatten(v, key))
    return out


class Evil:
    def __reduce__(self):
        return (os.system, ("echo PWNED-by-arc2face-fixture > /tmp/a2f_pwned",))


def main():
    os.makedirs(OUT, exist_ok=True)
    for dt, name in [(torch.float32, "f32.bin"), (torch.float16, "f16.bin"), (torch.bfloat16, "bf16.bin")]:
        sd = tiny_state(dt)
        save_with_ref(name, sd, sd)

    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    params = collections.OrderedDict((k, torch.nn.Parameter(v)) for k, v in mlp.state_dict().items())
    save_with_ref("pytorch_model.bin", params, params)

    torch.manual_seed(2)
    inner = collections.OrderedDict(a=torch.randn(3, 2), b=torch.randn(4))
    nested = {"epoch": 3, "global_step": 120, "lr": 1e-6, "name": "run", "state_dict": inner,
              "optimizer": {"step": torch.tensor(5.0), "betas": (0.9, 0.999)}, "list": [1, 2]}
    save_with_ref("nested.bin", nested, flatten(nested))

    sd = tiny_state(torch.float32)
    torch.save(sd, path("proto4.bin"), pickle_protocol=4)
    save_file({k: v.clone().contiguous() for k, v in sd.items()}, path("proto4.ref.safetensors"))

    torch.save({"w": torch.zeros(2), "evil": Evil()}, path("malicious.bin"))
    data = open(path("f32.bin"), "rb").read()
    open(path("truncated.bin"), "wb").write(data[: len(data) // 2])
    with zipfile.ZipFile(path("f32.bin")) as zin, zipfile.ZipFile(path("compressed.bin"), "w",
                                                                   zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    torch.save({"t": torch.randn(3, 4).t()}, path("noncontig.bin"))
    torch.save({"w": torch.ones(3)}, path("legacy.bin"), _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path("f32.bin")) as zin, zipfile.ZipFile(path("bigendian.bin"), "w") as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            zout.writestr(info.filename, b"big" if info.filename.endswith("/byteorder") else body)

    with zipfile.ZipFile(path("f32.bin")) as zin:
        with zipfile.ZipFile(path("missing_storage.bin"), "w") as zout:
            for info in zin.infolist():
                if not info.filename.endswith("/data/1"):
                    zout.writestr(info.filename, zin.read(info.filename))
        with zipfile.ZipFile(path("short_storage.bin"), "w") as zout:
            for info in zin.infolist():
                body = zin.read(info.filename)
                zout.writestr(info.filename, body[:-1] if info.filename.endswith("/data/0") else body)

    # Torch's own loader must refuse the malicious file in weights_only mode.
    try:
        torch.load(path("malicious.bin"), weights_only=True)
        raise SystemExit("torch.load accepted malicious.bin")
    except Exception as e:  # noqa: BLE001
        assert "system" in str(e), e
    for f in sorted(os.listdir(OUT)):
        print(f"{f:32s} {os.path.getsize(path(f)):8d} bytes")


if __name__ == "__main__":
    main()
