#!/usr/bin/env python3
"""test_onnx2safetensors.py: tool test for tools/onnx2safetensors.py (not part of
`make test`: it needs torch and onnx). Run from the repository root:

    python3 tools/ref/test_onnx2safetensors.py [--full]

Builds the insightface arcface_torch IResNet (copied structure, see
shared/reference/architectures.md 4.1) in tiny configurations with random
weights AND random BatchNorm statistics, exports it with torch.onnx.export
(opset 11, as arcface_torch's torch2onnx.py does), converts, and checks:
  1. BN folded by the exporter (default constant folding): the key set and
     shapes equal the torch state dict, the metadata says input_norm outside,
     layers, bn_unfolded > 0, and a fresh IResNet loaded (strict) from the
     converted file gives the original model's output (max rel err <= 1e-5).
  2. No constant folding (BN nodes kept): the converted tensors equal the
     original state dict exactly.
  3. Default-initialised BNs (equal initializers, de-duplicated by the exporter
     through Identity nodes).
  4. Normalisation inside the graph ((x - 127.5) / 127.5 in front): input_norm
     inside, graph_norm records it, weights still map.
  5. A non-IResNet graph falls back to generic ONNX names.
  6. Bad inputs (missing file, garbage) exit 1 with one error line.
  7. `build/arc2face convert X.onnx Y.safetensors` (when the binary exists;
     $A2F_BIN overrides) produces the same file contents, and
     `arc2face forward --model iresnet` on the converted weights reproduces
     the torch model's output (max rel err <= 1e-4, fp32 CPU).
  8. SCRFD (tools/ref/make_scrfd_fixtures.py's mmdet-structured SCRFD-10G-KPS at
     the REAL widths, random weights, non-identity BN, random Scale values),
     exported with dynamic H/W (BN folded) and converted by auto-detection:
     arch scrfd, 116 tensors holding 4,225,934 values (the released file's
     4,225,937 folded floats less the 3 Scale scalars, folded into reg; the
     torch model has the documented 4,229,905 trainable parameters), layers
     3,4,2,3, the Scale values in the metadata, and a plain-torch forward of the
     converted weights (our names) reproduces the model's 9 outputs at 640x640
     (bbox/kps max rel err <= 1e-5; scores <= 1e-4 absolute: the random
     untrained net has activations up to ~1e4, so the float32 rounding of the
     folded weights moves logits noticeably unless the predictors are rescaled
     to O(1) outputs, as tune_biases does; measured ~2e-6). Also a small SCRFD exported WITHOUT
     constant folding (BatchNormalization nodes kept, folded by the tool), and
     --arch scrfd refusing an IResNet graph in one line.
  --full: also exports a random full IResNet-100 at 112x112 and checks the key
     list against shared/reference/keys/keys_iresnet100.txt (about 1 minute).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = os.path.join(ROOT, "tools", "onnx2safetensors.py")
KEYS100 = os.path.join(ROOT, "..", "shared", "reference", "keys", "keys_iresnet100.txt")


def conv3x3(i, o, s=1):
    return nn.Conv2d(i, o, 3, s, 1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        if self.downsample is not None:
            identity = self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers, widths=(64, 128, 256, 512), emb=512, hw=112):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
        self.prelu = nn.PReLU(widths[0])
        for i, (n, w) in enumerate(zip(layers, widths)):
            setattr(self, f"layer{i + 1}", self._make(w, n))
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        f = hw // 16
        self.fc = nn.Linear(widths[-1] * f * f, emb)
        self.features = nn.BatchNorm1d(emb, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make(self, planes, n):
        ds = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        blocks = [IBasicBlock(self.inplanes, planes, 2, ds)]
        self.inplanes = planes
        blocks += [IBasicBlock(planes, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.fc(self.dropout(torch.flatten(self.bn2(x), 1)))
        return self.features(x)


class Normalised(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - 127.5) / 127.5)


def randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                if mod.weight.requires_grad:
                    mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.num_batches_tracked.zero_()
            if isinstance(mod, nn.PReLU):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) * 0.5)
    return m.eval()


FAILS = []


def check(cond, msg):
    print(("ok    " if cond else "FAIL  ") + msg)
    if not cond:
        FAILS.append(msg)


def run_tool(src, dst, *extra):
    return subprocess.run([sys.executable, TOOL, src, dst, *extra], capture_output=True, text=True)


def load(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def export(m, path, hw, fold=True):
    x = torch.randn(1, 3, hw, hw)
    torch.onnx.export(m, x, path, input_names=["data"], opset_version=11, dynamo=False,
                      do_constant_folding=fold, keep_initializers_as_inputs=False)


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def case_folded(tmp):
    layers, widths, hw = [1, 2, 1, 2], (8, 8, 16, 16), 32
    torch.manual_seed(0)
    m = randomise(IResNet(layers, widths, emb=16, hw=hw), 1)
    onnx_path, out = os.path.join(tmp, "a.onnx"), os.path.join(tmp, "a.safetensors")
    export(m, onnx_path, hw)
    r = run_tool(onnx_path, out)
    check(r.returncode == 0, f"folded: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, meta = load(out)
    sd = m.state_dict()
    check(set(t) == set(sd), f"folded: key set equals the torch state dict ({len(t)} vs {len(sd)})")
    check(all(t[k].shape == sd[k].shape for k in sd if k in t), "folded: shapes equal")
    check(meta.get("input_norm") == "outside" and meta.get("input_mean") == "127.5", f"folded: norm outside {meta}")
    check(meta.get("layers") == "1,2,1,2" and int(meta.get("bn_unfolded", 0)) > 0, "folded: layers and unfolded BN count")
    m2 = IResNet(layers, widths, emb=16, hw=hw).eval()
    m2.load_state_dict({k: v for k, v in t.items()}, strict=True)
    x = torch.randn(3, 3, hw, hw)
    with torch.no_grad():
        e = rel_err(m2(x), m(x))
    check(e <= 1e-5, f"folded: reloaded model matches, max rel err {e:.2e}")
    case_forward(tmp, m, out, hw)
    return out, onnx_path


def case_forward(tmp, m, weights, hw):
    """`arc2face forward --model iresnet` on the converted weights vs the torch model."""
    binary = os.environ.get("A2F_BIN") or os.path.join(ROOT, "build", "arc2face")
    if not os.access(binary, os.X_OK):
        print("skip  forward (build/arc2face missing)")
        return
    from safetensors.torch import save_file
    x = torch.randn(3, 3, hw, hw)
    inp, out = os.path.join(tmp, "fin.safetensors"), os.path.join(tmp, "fout.safetensors")
    save_file({"image": x}, inp)
    r = subprocess.run([binary, "forward", "--model", "iresnet", "--weights", weights, "--inputs", inp, "--out", out],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"arc2face forward --model iresnet ran ({r.stderr.strip()})")
    if r.returncode == 0:
        got, _ = load(out)
        with torch.no_grad():
            e = rel_err(got["out"], m(x))
        check(e <= 1e-4, f"arc2face forward --model iresnet = torch, max rel err {e:.2e}")


def case_unfolded(tmp):
    layers, widths, hw = [2, 1, 1, 1], (8, 16, 16, 8), 16
    torch.manual_seed(3)
    m = randomise(IResNet(layers, widths, emb=8, hw=hw), 4)
    p, out = os.path.join(tmp, "b.onnx"), os.path.join(tmp, "b.safetensors")
    export(m, p, hw, fold=False)
    r = run_tool(p, out, "--arch", "iresnet")
    check(r.returncode == 0, f"unfolded: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, meta = load(out)
    sd = m.state_dict()
    same = set(t) == set(sd) and all(torch.equal(t[k], sd[k]) for k in sd)
    check(same and meta.get("bn_unfolded") == "0", "unfolded: every tensor equals the state dict exactly")


def case_default_init(tmp):
    torch.manual_seed(5)
    m = IResNet([1, 1, 1, 1], (8, 8, 8, 8), emb=8, hw=16).eval()  # default BN: equal initializers
    p, out = os.path.join(tmp, "c.onnx"), os.path.join(tmp, "c.safetensors")
    export(m, p, 16)
    r = run_tool(p, out)
    check(r.returncode == 0, f"dedup: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, _ = load(out)
    m2 = IResNet([1, 1, 1, 1], (8, 8, 8, 8), emb=8, hw=16).eval()
    m2.load_state_dict(t, strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        e = rel_err(m2(x), m(x))
    check(e <= 1e-5, f"dedup (Identity initializers): reloaded model matches, max rel err {e:.2e}")


def case_norm_inside(tmp):
    torch.manual_seed(6)
    net = randomise(IResNet([1, 1, 1, 1], (8, 8, 8, 8), emb=8, hw=16), 7)
    m = Normalised(net).eval()
    p, out = os.path.join(tmp, "d.onnx"), os.path.join(tmp, "d.safetensors")
    export(m, p, 16)
    r = run_tool(p, out)
    check(r.returncode == 0, f"norm inside: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, meta = load(out)
    check(meta.get("input_norm") == "inside" and "127.5" in meta.get("graph_norm", ""),
          f"norm inside: detected ({meta.get('graph_norm')})")
    m2 = IResNet([1, 1, 1, 1], (8, 8, 8, 8), emb=8, hw=16).eval()
    m2.load_state_dict(t, strict=True)
    x = torch.rand(2, 3, 16, 16) * 255
    with torch.no_grad():
        e = rel_err(m2((x - 127.5) / 127.5), m(x))
    check(e <= 1e-5, f"norm inside: weights map, max rel err {e:.2e}")


def case_generic(tmp):
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    p, out = os.path.join(tmp, "e.onnx"), os.path.join(tmp, "e.safetensors")
    export(m, p, 8)
    r = run_tool(p, out)
    check(r.returncode == 0, f"generic: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, meta = load(out)
    check(meta.get("arch") == "generic" and len(t) == 4, f"generic: fallback with ONNX names {sorted(t)}")
    r = run_tool(p, out, "--arch", "iresnet")
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and "not an IResNet" in r.stderr,
          f"generic: --arch iresnet refused in one line ({r.stderr.strip()})")


def case_errors(tmp):
    r = run_tool(os.path.join(tmp, "missing.onnx"), os.path.join(tmp, "x.safetensors"))
    check(r.returncode == 1 and r.stderr.count("\n") == 1 and "no such file" in r.stderr, f"missing file: {r.stderr.strip()}")
    bad = os.path.join(tmp, "bad.onnx")
    open(bad, "wb").write(b"\xff\xff\xff garbage")
    r = run_tool(bad, os.path.join(tmp, "x.safetensors"))
    check(r.returncode == 1 and r.stderr.count("\n") == 1, f"garbage file: {r.stderr.strip()}")


def case_cli(tmp, folded):
    binary = os.environ.get("A2F_BIN") or os.path.join(ROOT, "build", "arc2face")
    if not os.access(binary, os.X_OK) or not folded:
        print("skip  CLI (build/arc2face missing)")
        return
    out_ref, onnx_path = folded
    out = os.path.join(tmp, "cli.safetensors")
    r = subprocess.run([binary, "convert", onnx_path, out], capture_output=True, text=True)
    check(r.returncode == 0, f"arc2face convert .onnx ran ({r.stderr.strip()})")
    if r.returncode == 0:
        a, _ = load(out)
        b, _ = load(out_ref)
        check(set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), "arc2face convert .onnx = tool output")


def case_scrfd(tmp, iresnet_onnx):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_scrfd_fixtures as S
    m = S.build(S.FULL, 3)
    x = torch.randn(1, 3, 640, 640, generator=torch.Generator().manual_seed(9))
    S.tune_biases(m, x)
    check(sum(p.numel() for p in m.parameters()) == 4229905, "scrfd: torch model has 4,229,905 trainable parameters")
    p, out = os.path.join(tmp, "scrfd.onnx"), os.path.join(tmp, "scrfd.safetensors")
    S.export(m, p)
    r = run_tool(p, out)
    check(r.returncode == 0, f"scrfd: tool ran ({r.stderr.strip()[-300:]})")
    if r.returncode:
        return
    t, meta = load(out)
    n = sum(v.numel() for v in t.values())
    check(meta.get("arch") == "scrfd" and meta.get("layers") == "3,4,2,3" and meta.get("anchors") == "2"
          and meta.get("tower") == "3,3,3" and meta.get("input_std") == "128",
          f"scrfd: auto-detected ({meta.get('arch')}, {meta.get('layers')}, input_std {meta.get('input_std')})")
    check(len(t) == 116 and n == 4225934, f"scrfd: 116 tensors, 4,225,934 values ({len(t)}, {n})")
    want = ",".join(repr(float(sc.detach().float())) for sc in m.scales)
    check(meta.get("bbox_scale") == want, f"scrfd: bbox_scale {meta.get('bbox_scale')} == {want}")
    T = {k: v.numpy() for k, v in t.items()}
    with torch.no_grad():
        a, b = m(x), S.folded_forward(T, x, S.FULL)
    shapes = [tuple(v.shape) for v in a]
    check(shapes == [(12800, 1), (3200, 1), (800, 1), (12800, 4), (3200, 4), (800, 4), (12800, 10), (3200, 10),
                     (800, 10)], f"scrfd: output shapes at 640 {shapes}")
    es = max(float((u - v).abs().max()) for u, v in zip(b[:3], a[:3]))
    eb = max(rel_err(u, v) for u, v in zip(b[3:], a[3:]))
    check(es <= 1e-4 and eb <= 1e-5, f"scrfd: converted weights reproduce the model (scores {es:.2e}, bbox/kps {eb:.2e})")
    # BN kept in the graph (no constant folding): folded by the tool
    m2 = S.build(S.SMALL, 5)
    S.tune_biases(m2, torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(10)))  # O(1) predictor outputs
    p2, out2 = os.path.join(tmp, "scrfd_bn.onnx"), os.path.join(tmp, "scrfd_bn.safetensors")
    torch.onnx.export(m2, torch.randn(1, 3, 64, 64), p2, input_names=["input.1"], opset_version=11, dynamo=False,
                      do_constant_folding=False, dynamic_axes={"input.1": {2: "h", 3: "w"}})
    r = run_tool(p2, out2, "--arch", "scrfd")
    check(r.returncode == 0, f"scrfd unfolded BN: tool ran ({r.stderr.strip()[-300:]})")
    if r.returncode == 0:
        t2, _ = load(out2)
        x2 = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(10))
        with torch.no_grad():
            a, b = m2(x2), S.folded_forward({k: v.numpy() for k, v in t2.items()}, x2, S.SMALL)
        es = max(float((u - v).abs().max()) for u, v in zip(b[:3], a[:3]))
        eb = max(rel_err(u, v) for u, v in zip(b[3:], a[3:]))
        check(es <= 1e-4 and eb <= 1e-5, f"scrfd unfolded BN: folded by the tool (scores {es:.2e}, bbox/kps {eb:.2e})")
    if iresnet_onnx:
        r = run_tool(iresnet_onnx, os.path.join(tmp, "x.safetensors"), "--arch", "scrfd")
        check(r.returncode == 1 and r.stderr.count("\n") == 1 and "not an SCRFD graph" in r.stderr,
              f"scrfd: --arch scrfd refuses an IResNet in one line ({r.stderr.strip()})")


def case_full(tmp):
    torch.manual_seed(0)
    m = IResNet([3, 13, 30, 3]).eval()
    p, out = os.path.join(tmp, "r100.onnx"), os.path.join(tmp, "r100.safetensors")
    export(m, p, 112)
    r = run_tool(p, out)
    check(r.returncode == 0, f"r100: tool ran ({r.stderr.strip()})")
    if r.returncode:
        return
    t, meta = load(out)
    want = {}
    for line in open(KEYS100):
        if line.strip():
            k, s = line.rstrip("\n").split("\t")
            want[k] = [int(x) for x in s.strip("[]").split(",") if x.strip()]
    check(set(t) == set(want), f"r100: key set equals keys_iresnet100.txt ({len(t)} vs {len(want)})")
    check(all(list(t[k].shape) == want[k] for k in want if k in t), "r100: shapes equal keys_iresnet100.txt")
    check(meta.get("layers") == "3,13,30,3", f"r100: layers {meta.get('layers')}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folded = case_folded(tmp)
        case_unfolded(tmp)
        case_default_init(tmp)
        case_norm_inside(tmp)
        case_generic(tmp)
        case_errors(tmp)
        case_cli(tmp, folded)
        case_scrfd(tmp, folded[1] if folded else None)
        if "--full" in sys.argv:
            case_full(tmp)
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
