#!/usr/bin/env python3
"""onnx2safetensors.py: ONNX model -> safetensors (PyTorch layouts), for the
released face models (arcface.onnx, antelopev2 glintr100.onnx,
scrfd_10g_bnkps.onnx).

Usage: onnx2safetensors.py IN.onnx OUT.safetensors [--arch auto|iresnet|scrfd|generic]

--arch iresnet (auto-detected): the graph is walked in node order and mapped by
  TOPOLOGY AND SHAPE, not by initializer name (exported names are numeric or
  onnx::Conv_NNN), to the insightface arcface_torch IResNet state-dict keys
  (shared/reference/keys/keys_iresnet100.txt for IResNet-100; any layer counts
  work: [3,4,14,3] gives IResNet-50):
    stem     Conv(3x3, 3->C) [BN] PRelu            -> conv1, bn1, prelu
    block    BN Conv3x3 [BN] PRelu Conv3x3 [BN] [Conv1x1 [BN]] Add
             -> layerS.B.{bn1, conv1, bn2, prelu, conv2, bn3, downsample.0, downsample.1}
             (a block with a downsample starts the next stage)
    head     BN Flatten Gemm [BN]                   -> bn2, fc, features
  torch.onnx.export folds eval-mode BatchNorm into the preceding Conv (the conv
  then has a bias and no BN follows). Such BNs are UNFOLDED with identity
  statistics: weight 1, bias = the conv bias, running_mean 0, running_var
  1 - eps, so (x - 0) / sqrt(var + eps) * 1 + bias == x + bias exactly as the
  folded graph computes; the conv weight keeps the folded values. The number
  of unfolded BNs is recorded in the metadata ("bn_unfolded"). Identity nodes
  (the exporter de-duplicates equal initializers through them) are resolved.
  num_batches_tracked is written as int64 0 so the key set equals torch's.
--arch scrfd (auto-detected when the IResNet walk fails): the SCRFD detector
  (scrfd_10g_bnkps.onnx; mmdet ResNetV1e + PAFPN + SCRFDHead) is recognised by
  DATA FLOW from the graph input, not by node order or names: stem = three
  Conv(3x3)+Relu then MaxPool(k2 s2); blocks = Conv3x3 Relu Conv3x3 Add(input |
  [AveragePool(k=s, count_include_pad=0)] Conv1x1) Relu, a block with a shortcut
  conv starts a stage (4 stages, strides 1, 2, 2, 2); neck = the 1x1 Conv
  readers of stages 2-4 (laterals), the Add of an upsampled (Resize) level
  (top-down), the 3x3 readers of those (fpn), the stride-2 Conv + Add
  (bottom-up) and the stride-1 readers of the sums (pafpn); head = per level a
  chain of Conv3x3+Relu (tower) until three Convs read the same tensor: their
  widths A, 4A, 10A make them cls, reg, kps; the cls path must hold the Sigmoid,
  and a constant scalar Mul on the reg path is the bbox Scale, FOLDED into
  head.strideS.reg.{weight,bias} (w * s, b * s; the values go to the metadata
  as bbox_scale, "bbox_scale_folded": "reg"). Unfolded BatchNormalization after
  a Conv is folded here. Key names: nn/scrfd.h (backbone.stem.K, backbone.
  layerS.I.{conv1,conv2,downsample}, neck.{lateral,fpn,down,pafpn}.I,
  head.strideS.{tower.J,cls,reg,kps}; .weight [O, I, k, k] and .bias).
--arch generic (fallback): every float initializer and float Constant under
  its ONNX name, unchanged (ONNX Conv weights are already [O, I, kH, kW]).

Input normalisation: the nodes between the graph input and the first Conv are
inspected: Sub/Add/Mul/Div by constants there mean the normalisation is
INSIDE the graph (MXNet-converted models: insightface then feeds raw 0..255
pixels, mean 0 std 1); otherwise it is OUTSIDE and the caller must apply
(x - 127.5) / 127.5 (insightface's rule, which also looks at the first 8 node
names for Sub/_minus + Mul/_mul). Recorded in __metadata__ as
input_norm = inside|outside, input_mean, input_std (what the caller applies;
for SCRFD outside means (x - 127.5) / 128, insightface's detector values)
and, when inside, graph_norm (the ops found).

Errors: one line "onnx2safetensors: error: ..." on stderr, exit 1.
The output is written atomically (temp file, fsync, rename).
"""
import argparse
import os
import sys

import numpy as np


def die(msg):
    print(f"onnx2safetensors: error: {msg}", file=sys.stderr)
    sys.exit(1)


try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    die("the 'onnx' Python package is missing (pip install onnx)")


def save_file(tensors, path, metadata):
    """Writes safetensors (format: shared/reference/file-formats.md section 4) without
    the safetensors package: header sorted by name, padded with spaces to 8 bytes."""
    import json
    import struct
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
             np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8"}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C", copy=False) if np.ndim(tensors[name]) == 0 else np.ascontiguousarray(tensors[name])
        if a.dtype not in codes:
            die(f"tensor {name}: dtype {a.dtype} cannot be written")
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Graph:
    """Constants (initializers, Constant nodes, resolved through Identity) and producers."""

    def __init__(self, model):
        g = model.graph
        self.g = g
        self.const = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.alias = {}
        for n in g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.const[n.output[0]] = numpy_helper.to_array(a.t)
            elif n.op_type == "Identity":
                self.alias[n.output[0]] = n.input[0]
            else:
                self.fold(n)
        self.inputs = [i.name for i in g.input if i.name not in self.const]

    def fold(self, n):
        """Shape-only ops on constants (Unsqueeze of a PReLU slope without constant folding, ...)."""
        if n.op_type not in ("Unsqueeze", "Squeeze", "Reshape", "Flatten", "Cast") or not n.input:
            return
        x = self.get(n.input[0])
        if x is None:
            return
        if n.op_type == "Unsqueeze":
            axes = attr(n, "axes")
            if axes is None and len(n.input) > 1:
                axes = self.get(n.input[1])
            if axes is None:
                return
            y = x
            for a in sorted(int(v) % (x.ndim + len(axes)) for v in np.ravel(axes)):
                y = np.expand_dims(y, a)
        elif n.op_type == "Squeeze":
            axes = attr(n, "axes")
            if axes is None and len(n.input) > 1:
                axes = self.get(n.input[1])
            y = np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(int(v) for v in np.ravel(axes)))
        elif n.op_type == "Reshape":
            shape = self.get(n.input[1]) if len(n.input) > 1 else None
            if shape is None:
                return
            shape = [x.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(np.ravel(shape))]
            y = x.reshape(shape)
        elif n.op_type == "Flatten":
            ax = attr(n, "axis", 1)
            y = x.reshape(int(np.prod(x.shape[:ax])), -1)
        else:
            return  # Cast: leave to the consumer (weights are float already)
        self.const[n.output[0]] = y

    def resolve(self, name):
        seen = 0
        while name in self.alias and seen < 1000:
            name, seen = self.alias[name], seen + 1
        return name

    def get(self, name):
        return self.const.get(self.resolve(name))

    def is_const(self, name):
        return self.get(name) is not None


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


# ------------------------------------------------------------ normalisation

def detect_norm(G):
    """Ops with constant operands applied to the input before the first Conv."""
    ops = []
    for n in G.g.node:
        if n.op_type == "Conv":
            break
        if n.op_type in ("Sub", "Add", "Mul", "Div") and len(n.input) == 2:
            c = [G.get(i) for i in n.input]
            k = 1 if c[1] is not None else 0 if c[0] is not None else -1
            if k >= 0 and c[k].dtype.kind == "f":
                v = np.asarray(c[k], dtype=np.float64).ravel()
                ops.append(f"{n.op_type.lower()} {','.join(f'{x:g}' for x in np.unique(v))}")
    names = [n.name for n in G.g.node[:8]]
    insight = any(s.startswith(("Sub", "_minus")) for s in names) and any(s.startswith(("Mul", "_mul")) for s in names)
    inside = bool(ops) or insight
    meta = {"input_norm": "inside" if inside else "outside",
            "input_mean": "0" if inside else "127.5", "input_std": "1" if inside else "127.5"}
    if ops:
        meta["graph_norm"] = "; ".join(ops)
    return meta


# ------------------------------------------------------------ IResNet mapping

class NotIResNet(Exception):
    pass


def tokens(G):
    """Parametric ops in node order: conv, bn, prelu, fc, add (residual)."""
    out = []
    for n in G.g.node:
        t = n.op_type
        if t == "Conv":
            w = G.get(n.input[1])
            if w is None:
                raise NotIResNet(f"Conv {n.name} has a non-constant weight")
            b = G.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            out.append(dict(kind="conv", node=n, w=w, b=b, stride=tuple(attr(n, "strides", [1, 1]))))
        elif t == "BatchNormalization":
            vals = [G.get(i) for i in n.input[1:5]]
            if any(v is None for v in vals):
                raise NotIResNet(f"BatchNormalization {n.name} has non-constant parameters")
            out.append(dict(kind="bn", node=n, vals=vals, eps=float(attr(n, "epsilon", 1e-5))))
        elif t == "PRelu":
            s = G.get(n.input[1])
            if s is None:
                raise NotIResNet(f"PRelu {n.name} has a non-constant slope")
            out.append(dict(kind="prelu", node=n, w=s.reshape(-1)))
        elif t == "Gemm":
            w, c = G.get(n.input[1]), G.get(n.input[2]) if len(n.input) > 2 else None
            if w is None or attr(n, "transA", 0):
                raise NotIResNet(f"Gemm {n.name} is not x @ W^T + b")
            if not attr(n, "transB", 0):
                w = w.T
            alpha, beta = attr(n, "alpha", 1.0), attr(n, "beta", 1.0)
            out.append(dict(kind="fc", node=n, w=np.ascontiguousarray(w * alpha),
                            b=None if c is None else c.reshape(-1) * beta))
        elif t == "MatMul" and G.is_const(n.input[1]):
            out.append(dict(kind="fc", node=n, w=np.ascontiguousarray(G.get(n.input[1]).T), b=None))
        elif t == "Add" and out and out[-1]["kind"] == "fc" and out[-1]["b"] is None and G.is_const(n.input[1]) \
                and n.input[0] == out[-1]["node"].output[0]:
            out[-1]["b"] = G.get(n.input[1]).reshape(-1)
            out[-1]["node"] = n
        elif t == "Add" and not G.is_const(n.input[0]) and not G.is_const(n.input[1]):
            out.append(dict(kind="add", node=n))
    return out


class Writer:
    def __init__(self):
        self.t = {}
        self.unfolded = 0

    def put(self, key, arr, dtype=np.float32):
        if key in self.t:
            raise NotIResNet(f"key {key} produced twice")
        self.t[key] = np.array(arr, dtype=dtype, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)

    def bn(self, key, tok=None, channels=None, bias=None, eps=1e-5):
        if tok is not None:
            w, b, m, v = tok["vals"]
        else:  # folded into the conv before it: identity statistics (see the module docstring)
            self.unfolded += 1
            w = np.ones(channels, np.float32)
            b = np.zeros(channels, np.float32) if bias is None else bias
            m = np.zeros(channels, np.float32)
            v = np.full(channels, 1.0 - eps, np.float32)
        for name, val in zip(("weight", "bias", "running_mean", "running_var"), (w, b, m, v)):
            self.put(f"{key}.{name}", np.asarray(val).reshape(-1))
        self.put(f"{key}.num_batches_tracked", np.array(0, np.int64), np.int64)


def conv_with_bn(W, toks, i, conv_key, bn_key, eps):
    """toks[i] is a conv; writes it and its BN (real when the next token reads its output). Returns next index."""
    c = toks[i]
    if c["kind"] != "conv":
        raise NotIResNet(f"expected a Conv for {conv_key}, found {c['kind']}")
    W.put(f"{conv_key}.weight", c["w"])
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    if nxt and nxt["kind"] == "bn" and nxt["node"].input[0] == c["node"].output[0]:
        if c["b"] is not None and np.any(c["b"]):
            raise NotIResNet(f"{conv_key} has a bias and a BatchNorm")
        W.bn(bn_key, nxt)
        return i + 2
    W.bn(bn_key, None, c["w"].shape[0], c["b"], eps)
    return i + 1


def map_iresnet(G):
    toks = tokens(G)
    if not toks or toks[0]["kind"] != "conv" or toks[0]["w"].shape[1] != 3:
        raise NotIResNet("the graph does not start with a 3-channel Conv")
    bns = [t for t in toks if t["kind"] == "bn"]
    eps = bns[0]["eps"] if bns else 1e-5
    W = Writer()
    i = conv_with_bn(W, toks, 0, "conv1", "bn1", eps)
    if i >= len(toks) or toks[i]["kind"] != "prelu":
        raise NotIResNet("no PRelu after the stem")
    W.put("prelu.weight", toks[i]["w"])
    i += 1
    stage, block, layers = 0, 0, []
    while i < len(toks) and toks[i]["kind"] == "bn" and i + 1 < len(toks) and toks[i + 1]["kind"] == "conv":
        seg_end = next((k for k in range(i, len(toks)) if toks[k]["kind"] == "add"), None)
        if seg_end is None:
            raise NotIResNet("a block without a residual Add")
        seg = toks[i:seg_end]
        has_ds = any(t["kind"] == "conv" and t["w"].shape[2:] == (1, 1) for t in seg)
        if has_ds or stage == 0:
            stage, block = stage + 1, 0
            layers.append(0)
        p = f"layer{stage}.{block}"
        W.bn(f"{p}.bn1", seg[0])
        k = conv_with_bn(W, seg, 1, f"{p}.conv1", f"{p}.bn2", eps)
        if k >= len(seg) or seg[k]["kind"] != "prelu":
            raise NotIResNet(f"{p}: no PRelu after conv1")
        W.put(f"{p}.prelu.weight", seg[k]["w"])
        k = conv_with_bn(W, seg, k + 1, f"{p}.conv2", f"{p}.bn3", eps)
        if has_ds:
            k = conv_with_bn(W, seg, k, f"{p}.downsample.0", f"{p}.downsample.1", eps)
        if k != len(seg):
            raise NotIResNet(f"{p}: unexpected {seg[k]['kind']} in a block")
        layers[-1] += 1
        block += 1
        i = seg_end + 1
    rest = toks[i:]
    kinds = [t["kind"] for t in rest]
    if kinds not in (["bn", "fc", "bn"], ["bn", "fc"]) or not layers:
        raise NotIResNet(f"head is {kinds}, want bn, fc[, bn]")
    W.bn("bn2", rest[0])
    fc = rest[1]
    W.put("fc.weight", fc["w"])
    W.put("fc.bias", fc["b"] if fc["b"] is not None else np.zeros(fc["w"].shape[0], np.float32))
    if len(rest) == 3:
        W.bn("features", rest[2])
    else:
        W.bn("features", None, fc["w"].shape[0], None, eps)
    meta = {"arch": "iresnet", "layers": ",".join(map(str, layers)), "bn_unfolded": str(W.unfolded),
            "key_names": "insightface"}
    return W.t, meta


# ------------------------------------------------------------ SCRFD mapping

class NotSCRFD(Exception):
    pass


SCRFD_STRIDES = (8, 16, 32)
# Ops the head's outputs pass through on their way to the graph outputs (export form:
# sigmoid / Scale, then permute + reshape to [rows, C]).
SCRFD_TAIL_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Identity", "Sigmoid", "Mul")


class Flow:
    """Data flow of the graph: consumers of each tensor (Identity resolved), producers."""

    def __init__(self, G):
        self.G = G
        self.cons, self.prod = {}, {}
        for n in G.g.node:
            if n.op_type in ("Constant", "Identity"):
                continue
            for i in n.input:
                if i:
                    self.cons.setdefault(G.resolve(i), []).append(n)
            for o in n.output:
                self.prod[o] = n
        self.outputs = {o.name for o in G.g.output}
        self.used = set()

    def consumers(self, t, op=None):
        return [n for n in self.cons.get(self.G.resolve(t), []) if op is None or n.op_type == op]

    def only(self, t, op, what):
        c = self.consumers(t, op)
        if len(c) != 1:
            raise NotSCRFD(f"{what}: {len(c)} {op} nodes read {t}, want 1")
        return c[0]

    def producer(self, t):
        return self.prod.get(self.G.resolve(t))

    def conv(self, n, what, k=None, stride=None):
        """(weight, bias, output tensor) of Conv n with a BatchNormalization after it folded in."""
        w = self.G.get(n.input[1])
        if w is None or w.ndim != 4:
            raise NotSCRFD(f"{what}: Conv without a constant 4-D weight")
        if attr(n, "group", 1) != 1 or any(d != 1 for d in attr(n, "dilations", [1, 1])):
            raise NotSCRFD(f"{what}: grouped or dilated Conv")
        if k is not None and tuple(w.shape[2:]) != (k, k):
            raise NotSCRFD(f"{what}: kernel {tuple(w.shape[2:])}, want {k}x{k}")
        s = tuple(attr(n, "strides", [1, 1]))
        if stride is not None and s != (stride, stride):
            raise NotSCRFD(f"{what}: stride {s}, want {stride}")
        pads = list(attr(n, "pads", [0, 0, 0, 0]))
        if k is not None and pads != [k // 2] * 4:
            raise NotSCRFD(f"{what}: pads {pads}, want {k // 2}")
        b = self.G.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        w = w.astype(np.float64)
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64).reshape(-1)
        out = n.output[0]
        bn = self.consumers(out)
        if len(bn) == 1 and bn[0].op_type == "BatchNormalization":  # not folded by the exporter: fold here
            g, beta, mean, var = [self.G.get(i) for i in bn[0].input[1:5]]
            if any(v is None for v in (g, beta, mean, var)):
                raise NotSCRFD(f"{what}: BatchNormalization with non-constant parameters")
            f = g.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(attr(bn[0], "epsilon", 1e-5)))
            w, b = w * f[:, None, None, None], (b - mean) * f + beta
            out = bn[0].output[0]
        self.used.add(id(n))
        return w.astype(np.float32), b.astype(np.float32), out

    def relu_after(self, t, what):
        return self.only(t, "Relu", what).output[0]


def map_scrfd(G):
    """SCRFD (mmdet ResNetV1e + PAFPN + SCRFDHead, BN folded) by data flow from the input; see
    nn/scrfd.h for the key names. The bbox Scale (a constant scalar Mul on the reg path) is folded
    into head.strideS.reg.{weight,bias}; its values are recorded in the metadata."""
    F = Flow(G)
    T = {}

    def put(key, w, b):
        if key + ".weight" in T:
            raise NotSCRFD(f"{key} mapped twice")
        T[key + ".weight"], T[key + ".bias"] = np.ascontiguousarray(w), np.ascontiguousarray(b)

    if not G.inputs:
        raise NotSCRFD("no graph input")
    t = G.inputs[0]
    # stem: 3 x (conv3x3, ReLU), MaxPool
    for k in range(3):
        n = F.only(t, "Conv", f"stem conv {k}")
        w, b, o = F.conv(n, f"stem conv {k}", 3, 2 if k == 0 else 1)
        if k == 0 and w.shape[1] != 3:
            raise NotSCRFD("the first Conv does not read 3 channels")
        put(f"backbone.stem.{k}", w, b)
        t = F.relu_after(o, f"stem conv {k}")
    mp = F.only(t, "MaxPool", "stem max pool")
    if list(attr(mp, "kernel_shape", [])) != [2, 2] or list(attr(mp, "strides", [])) != [2, 2]:
        raise NotSCRFD("the stem pool is not MaxPool k2 s2")
    t = mp.output[0]
    # BasicBlocks: conv3x3 ReLU conv3x3 Add(identity | [AveragePool] conv1x1) ReLU
    stage_out, blocks = [], []
    while True:
        c1 = [n for n in F.consumers(t, "Conv") if G.get(n.input[1]) is not None and G.get(n.input[1]).shape[2:] == (3, 3)]
        if not c1:
            break
        if len(c1) != 1:
            raise NotSCRFD(f"{len(c1)} 3x3 convs read a block input")
        stride = int(attr(c1[0], "strides", [1, 1])[0])
        w1, b1, o = F.conv(c1[0], "block conv1", 3)
        h = F.relu_after(o, "block conv1")
        w2, b2, o = F.conv(F.only(h, "Conv", "block conv2"), "block conv2", 3, 1)
        add = F.only(o, "Add", "block residual")
        other = [i for i in add.input if G.resolve(i) != G.resolve(o)]
        if len(other) != 1:
            raise NotSCRFD("block residual Add without a second input")
        ds = None
        if G.resolve(other[0]) != G.resolve(t):
            dc = F.producer(other[0])
            if dc is not None and dc.op_type == "BatchNormalization":  # unfolded BN after the shortcut conv
                dc = F.producer(dc.input[0])
            if dc is None or dc.op_type != "Conv":
                raise NotSCRFD("block shortcut is neither the input nor a Conv")
            src = F.producer(dc.input[0])
            if stride != 1:
                if src is None or src.op_type != "AveragePool" or G.resolve(src.input[0]) != G.resolve(t) \
                        or list(attr(src, "kernel_shape", [])) != [stride, stride] \
                        or attr(src, "count_include_pad", 0) != 0:
                    raise NotSCRFD("strided block shortcut is not AveragePool(k=s, s=s, count_include_pad=0) + conv1x1")
            elif G.resolve(dc.input[0]) != G.resolve(t):
                raise NotSCRFD("block shortcut conv does not read the block input")
            ds = F.conv(dc, "block downsample", 1, 1)
        elif stride != 1:
            raise NotSCRFD("strided block without a downsample shortcut")
        if ds is not None or not blocks:
            blocks.append([])
            stage_out.append(None)
        p = f"backbone.layer{len(blocks)}.{len(blocks[-1])}"
        put(f"{p}.conv1", w1, b1)
        put(f"{p}.conv2", w2, b2)
        if ds is not None:
            put(f"{p}.downsample", ds[0], ds[1])
        blocks[-1].append(stride)
        t = F.relu_after(add.output[0], "block output")
        stage_out[-1] = t
    if len(blocks) != 4 or [s[0] for s in blocks] != [1, 2, 2, 2]:
        raise NotSCRFD(f"backbone stages {[len(b) for b in blocks]} with strides {[s[0] for s in blocks]}, "
                       "want 4 stages with strides 1, 2, 2, 2")
    # PAFPN: laterals on C3, C4, C5
    L = []
    for i, so in enumerate(stage_out):
        lat = [n for n in F.consumers(so, "Conv") if id(n) not in F.used]
        if i == 0 and lat:
            raise NotSCRFD("a lateral conv on layer1 (start_level 0 is not supported)")
        if i > 0:
            if len(lat) != 1:
                raise NotSCRFD(f"stage {i + 1}: {len(lat)} lateral convs")
            w, b, o = F.conv(lat[0], f"lateral {i - 1}", 1, 1)
            put(f"neck.lateral.{i - 1}", w, b)
            L.append(o)
    cur = [None, None, L[2]]
    for i in (1, 0):  # top-down
        add = F.only(L[i], "Add", f"top-down add {i}")
        other = [x for x in add.input if G.resolve(x) != G.resolve(L[i])]
        up = F.producer(other[0]) if len(other) == 1 else None
        if up is None or up.op_type not in ("Resize", "Upsample") or G.resolve(up.input[0]) != G.resolve(cur[i + 1]):
            raise NotSCRFD(f"top-down add {i} does not add an upsampled level {i + 1}")
        cur[i] = add.output[0]
    I = []
    for i in range(3):
        c = [n for n in F.consumers(cur[i], "Conv") if id(n) not in F.used]
        if len(c) != 1:
            raise NotSCRFD(f"fpn conv {i}: {len(c)} candidates")
        w, b, o = F.conv(c[0], f"fpn conv {i}", 3, 1)
        put(f"neck.fpn.{i}", w, b)
        I.append(o)
    for i in range(2):  # bottom-up
        c = [n for n in F.consumers(I[i], "Conv") if tuple(attr(n, "strides", [1, 1])) == (2, 2)]
        if len(c) != 1:
            raise NotSCRFD(f"downsample conv {i}: {len(c)} candidates")
        w, b, o = F.conv(c[0], f"neck downsample {i}", 3, 2)
        put(f"neck.down.{i}", w, b)
        add = F.only(o, "Add", f"bottom-up add {i}")
        if G.resolve(I[i + 1]) not in [G.resolve(x) for x in add.input]:
            raise NotSCRFD(f"bottom-up add {i} does not add fpn level {i + 1}")
        I[i + 1] = add.output[0]
    P = [I[0]]
    for i in range(2):
        c = [n for n in F.consumers(I[i + 1], "Conv") if id(n) not in F.used
             and tuple(attr(n, "strides", [1, 1])) == (1, 1)]
        if len(c) != 1:
            raise NotSCRFD(f"pafpn conv {i}: {len(c)} candidates")
        w, b, o = F.conv(c[0], f"pafpn conv {i}", 3, 1)
        put(f"neck.pafpn.{i}", w, b)
        P.append(o)
    # head per stride: tower (conv3x3 ReLU)*, then cls / reg / kps (told apart by width A, 4A, 10A)
    scales, towers = [], []
    for l, s in enumerate(SCRFD_STRIDES):
        t, j = P[l], 0
        while True:
            c = [n for n in F.consumers(t, "Conv") if id(n) not in F.used]
            if len(c) == 1:
                w, b, o = F.conv(c[0], f"stride {s} tower {j}", 3, 1)
                put(f"head.stride{s}.tower.{j}", w, b)
                t, j = F.relu_after(o, f"stride {s} tower {j}"), j + 1
            elif len(c) == 3 and j > 0:
                break
            else:
                raise NotSCRFD(f"stride {s}: {len(c)} convs read the tower level {j}")
        towers.append(j)
        preds = sorted((F.conv(n, f"stride {s} predictor", 3, 1) for n in c), key=lambda p: p[0].shape[0])
        A = preds[0][0].shape[0]
        if [p[0].shape[0] for p in preds] != [A, 4 * A, 10 * A]:
            raise NotSCRFD(f"stride {s}: predictor widths {[p[0].shape[0] for p in preds]}, want A, 4A, 10A")
        tails = []
        for (w, b, o), name in zip(preds, ("cls", "reg", "kps")):
            ops, scale, x = [], 1.0, o
            for _ in range(16):
                if x in F.outputs:
                    break
                nx = F.consumers(x)
                if len(nx) != 1 or nx[0].op_type not in SCRFD_TAIL_OPS:
                    raise NotSCRFD(f"stride {s} {name}: unexpected {[n.op_type for n in nx]} after the predictor")
                if nx[0].op_type == "Mul":
                    k = [G.get(i) for i in nx[0].input if G.resolve(i) != G.resolve(x)]
                    if len(k) != 1 or k[0] is None or k[0].size != 1:
                        raise NotSCRFD(f"stride {s} {name}: Mul by a non-scalar")
                    scale *= float(np.ravel(k[0])[0])
                ops.append(nx[0].op_type)
                x = nx[0].output[0]
            tails.append((ops, scale))
        if "Sigmoid" not in tails[0][0] or "Sigmoid" in tails[1][0] + tails[2][0]:
            raise NotSCRFD(f"stride {s}: the sigmoid is not on the cls output alone")
        if tails[0][1] != 1.0 or tails[2][1] != 1.0:
            raise NotSCRFD(f"stride {s}: a Scale on the cls or kps output")
        sc = tails[1][1]
        put(f"head.stride{s}.cls", preds[0][0], preds[0][1])
        put(f"head.stride{s}.reg", (preds[1][0].astype(np.float64) * sc).astype(np.float32),
            (preds[1][1].astype(np.float64) * sc).astype(np.float32))
        put(f"head.stride{s}.kps", preds[2][0], preds[2][1])
        scales.append(sc)
    meta = {"arch": "scrfd", "key_names": "arc2face-scrfd", "layers": ",".join(str(len(b)) for b in blocks),
            "anchors": str(A), "tower": ",".join(map(str, towers)),
            "bbox_scale": ",".join(repr(float(np.float32(x))) for x in scales), "bbox_scale_folded": "reg"}
    return T, meta


def map_generic(G):
    out = {}
    for name, v in G.const.items():
        if v.dtype.kind == "f" and v.size > 0 and name not in out:
            out[name] = np.ascontiguousarray(v)
    if not out:
        die("the model has no float initializers")
    return out, {"arch": "generic", "key_names": "onnx"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--arch", choices=("auto", "iresnet", "scrfd", "generic"), default="auto")
    a = ap.parse_args()
    try:
        model = onnx.load(a.input)
    except FileNotFoundError:
        die(f"{a.input}: no such file")
    except Exception as e:  # noqa: BLE001 -- onnx raises DecodeError and others
        die(f"{a.input}: not a readable ONNX model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    G = Graph(model)
    tensors, meta, why = None, None, {}
    if a.arch in ("auto", "iresnet"):
        try:
            tensors, meta = map_iresnet(G)
        except NotIResNet as e:
            if a.arch == "iresnet":
                die(f"{a.input}: not an IResNet graph: {e}")
            why["iresnet_mismatch"] = str(e)[:200]
    if tensors is None and a.arch in ("auto", "scrfd"):
        try:
            tensors, meta = map_scrfd(G)
        except NotSCRFD as e:
            if a.arch == "scrfd":
                die(f"{a.input}: not an SCRFD graph: {e}")
            why["scrfd_mismatch"] = str(e)[:200]
    if tensors is None:
        tensors, meta = map_generic(G)
        meta.update(why)
    norm = detect_norm(G)
    if meta["arch"] == "scrfd" and norm["input_norm"] == "outside":
        norm["input_std"] = "128"  # insightface's detector: (x - 127.5) / 128 (not the recognizer's 127.5)
    meta.update(norm)
    shape = []
    for i in G.g.input:
        if i.name in G.inputs[:1]:
            shape = [d.dim_param or str(d.dim_value) for d in i.type.tensor_type.shape.dim]
    meta.update({"format": "pt", "source": "onnx", "source_file": os.path.basename(a.input),
                 "input_shape": ",".join(shape) or "?"})
    tmp = a.output + ".tmp"
    try:
        save_file(tensors, tmp, metadata=meta)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, a.output)
    except OSError as e:
        die(f"{a.output}: cannot write: {e.strerror}")
    n = sum(int(v.size) for v in tensors.values())
    print(f"{a.output}: {len(tensors)} tensors, {n:,} values, arch {meta['arch']}"
          f"{' layers ' + meta['layers'] if 'layers' in meta else ''}, input_norm {meta['input_norm']}"
          f"{', ' + meta['bn_unfolded'] + ' folded BatchNorms unfolded' if 'bn_unfolded' in meta else ''}")


if __name__ == "__main__":
    main()
