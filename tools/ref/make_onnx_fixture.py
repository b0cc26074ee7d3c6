#!/usr/bin/env python3
"""make_onnx_fixture.py: the released-format test of ONNX weights. A tiny
insightface IResNet (layers [1, 2, 1, 1], widths (8, 8, 16, 16), 32x32 input,
random weights and BatchNorm statistics) is exported with torch.onnx.export
(opset 11, eval: the exporter folds BN into the convs, as in arcface.onnx),
converted by tools/onnx2safetensors.py, and written to
tests/fixtures/onnx/iresnet_tiny.safetensors together with io.x (an NHWC
input batch, preprocessed) and io.y (the torch model's embeddings).
tests/test_onnx_iresnet.c loads it with iresnet_load and compares."""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from test_onnx2safetensors import IResNet, export, randomise  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
layers, widths, hw, emb = [1, 2, 1, 1], (8, 8, 16, 16), 32, 16
m = randomise(IResNet(layers, widths, emb=emb, hw=hw), 7)
with tempfile.TemporaryDirectory() as tmp:
    onnx_path, st_path = os.path.join(tmp, "tiny.onnx"), os.path.join(tmp, "tiny.safetensors")
    export(m, onnx_path, hw)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "onnx2safetensors.py"), onnx_path, st_path],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit("conversion failed: " + r.stderr)
    tensors = load_file(st_path)
    from safetensors import safe_open
    with safe_open(st_path, "pt") as f:
        meta = f.metadata()
g = torch.Generator().manual_seed(3)
x = torch.randn(3, 3, hw, hw, generator=g)
with torch.no_grad():
    y = m(x)
tensors["io.x"] = x.permute(0, 2, 3, 1).contiguous()
tensors["io.y"] = y.contiguous()
meta = dict(meta or {})
meta["fixture"] = "tools/ref/make_onnx_fixture.py, torch " + torch.__version__
out = os.path.join(ROOT, "tests", "fixtures", "onnx", "iresnet_tiny.safetensors")
save_file(tensors, out, metadata=meta)
print("wrote", out, "metadata", meta)
