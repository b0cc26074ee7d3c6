#!/usr/bin/env python3
"""make_scrfd_fixtures.py: reference fixtures for the SCRFD face detector
(nn/scrfd.h, infer/detect.h, infer/resize.h), tests/test_scrfd.c and
tests/gpu/test_scrfd_cuda.c. Run from the repository root:

    python3 tools/ref/make_scrfd_fixtures.py

What it does (facts: shared/reference/face-detection-alignment.md 1-4):
  1. Builds SCRFD-10G-KPS as mmdet does (ResNetV1e deep stem + avg_down
     BasicBlocks, PAFPN without norm/act, SCRFDHead with per-stride BN towers,
     sigmoid cls, Scale on bbox, 2 anchors), in the export form of insightface's
     scrfd2onnx.py (outputs score8/16/32, bbox8/16/32, kps8/16/32 as [rows, C]
     after permute(2,3,0,1)), with random conv weights, random BatchNorm
     statistics and affine parameters (not identity), random Scale values, eval
     mode. The committed fixture uses a reduced-width variant of the same
     architecture (same depths: blocks 3,4,2,3, 3-conv towers, 2 anchors;
     widths below); the real widths are exercised by
     tools/ref/test_onnx2safetensors.py.
  2. Exports it with torch.onnx.export (opset 11, dynamic H/W, constant folding:
     conv+BN folded, as in the released file) and converts it with
     tools/onnx2safetensors.py -> tests/fixtures/scrfd/scrfd_small.safetensors
     (our key names, Scale folded into reg).
  3. Picks the cls biases so that a handful of anchors per stride score above
     0.5 (with a clear margin around the threshold) and the reg biases so that
     boxes are a few strides wide and overlap (NMS has work to do).
  4. io.safetensors:
     - img [90, 131, 3] (a synthetic RGB image with drawn shapes; images are U8),
       letterboxed at det size 160x160 (insightface's detect(): keep aspect,
       cv2.resize INTER_LINEAR, top-left paste): det_img [160, 160, 3], det_new
       (new_w, new_h; det_scale = new_h / H);
     - the blob = cv2.dnn.blobFromImage(BGR det_img, 1/128, mean 127.5,
       swapRB=True) is checked here to equal (RGB det_img - 127.5) / 128 exactly
       and not stored (the C test rebuilds it from det_img);
     - out.{0..8}: the torch model's 9 outputs on the blob;
     - faces [n, 15] (x1 y1 x2 y2 score kps10) from a numpy reimplementation of
       insightface RetinaFace.detect's decode + NMS (thresh 0.5, nms 0.4) on those
       outputs, and largest = Arc2Face's pick (sorted by area, [-1]);
     - ncand: candidates above the threshold before NMS;
     - a tall image letterbox (img2 [131, 90, 3] -> det_img2, det_new2);
     - resize cases rs{k}.src / rs{k}.dst = cv2.resize(src, (dw, dh)) on random
       uint8 images (down, up, 2x down, identity, odd sizes).
"""
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "scrfd")
TOOL = os.path.join(ROOT, "tools", "onnx2safetensors.py")

FULL = dict(stem=(28, 28, 56), blocks=(3, 4, 2, 3), planes=(56, 88, 88, 224), neck=56, feat=80, tower=3, anchors=2)
SMALL = dict(stem=(8, 8, 8), blocks=(3, 4, 2, 3), planes=(8, 16, 16, 24), neck=8, feat=8, tower=3, anchors=2)
STRIDES = (8, 16, 32)


# ------------------------------------------------------------ the network (mmdet structure)

def conv_bn_relu(i, o, k=3, s=1, relu=True):
    layers = [nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o)]
    return nn.Sequential(*(layers + [nn.ReLU()] if relu else layers))


class BasicBlock(nn.Module):
    """mmdet BasicBlock: conv1 (stride) BN ReLU conv2 BN, + identity / downsample(x), ReLU."""

    def __init__(self, cin, cout, stride, downsample):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.norm2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNetV1e(nn.Module):
    """deep_stem, avg_down, no_pool33 (MaxPool k2 s2), BasicBlocks, strides 1,2,2,2, out C2..C5."""

    def __init__(self, stem, blocks, planes):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, stem[0], 3, 2), conv_bn_relu(stem[0], stem[1]),
                                  conv_bn_relu(stem[1], stem[2]))
        self.maxpool = nn.MaxPool2d(2, 2, 0)
        cin, layers = stem[2], []
        for n, p, s in zip(blocks, planes, (1, 2, 2, 2)):
            ds = None
            if s != 1 or cin != p:  # mmdet ResLayer with avg_down
                pool = [nn.AvgPool2d(s, s, ceil_mode=True, count_include_pad=False)] if s != 1 else []
                ds = nn.Sequential(*pool, nn.Conv2d(cin, p, 1, 1, bias=False), nn.BatchNorm2d(p))
            blk = [BasicBlock(cin, p, s, ds)] + [BasicBlock(p, p, 1, None) for _ in range(1, n)]
            layers.append(nn.Sequential(*blk))
            cin = p
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        x = self.maxpool(self.stem(x))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


class PAFPN(nn.Module):
    """in C3..C5 (start_level 1), plain convs with bias (norm_cfg=None, act_cfg=None)."""

    def __init__(self, planes, n):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, n, 1) for c in planes[1:])
        self.fpn = nn.ModuleList(nn.Conv2d(n, n, 3, 1, 1) for _ in range(3))
        self.down = nn.ModuleList(nn.Conv2d(n, n, 3, 2, 1) for _ in range(2))
        self.pafpn = nn.ModuleList(nn.Conv2d(n, n, 3, 1, 1) for _ in range(2))

    def forward(self, feats):
        lat = [conv(feats[i + 1]) for i, conv in enumerate(self.lateral)]
        for i in (2, 1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        inter = [self.fpn[i](lat[i]) for i in range(3)]
        for i in range(2):
            inter[i + 1] = inter[i + 1] + self.down[i](inter[i])
        return [inter[0]] + [self.pafpn[i - 1](inter[i]) for i in range(1, 3)]


class SCRFD(nn.Module):
    """ResNetV1e + PAFPN + SCRFDHead (cls_reg_share, no stride sharing, BN towers, Scale on bbox),
    forward = the ONNX export form."""

    def __init__(self, stem, blocks, planes, neck, feat, tower, anchors):
        super().__init__()
        self.A = anchors
        self.backbone = ResNetV1e(stem, blocks, planes)
        self.neck = PAFPN(planes, neck)
        self.towers = nn.ModuleList(
            nn.Sequential(*[conv_bn_relu(neck if j == 0 else feat, feat) for j in range(tower)]) for _ in STRIDES)
        self.cls = nn.ModuleList(nn.Conv2d(feat, anchors, 3, 1, 1) for _ in STRIDES)
        self.reg = nn.ModuleList(nn.Conv2d(feat, 4 * anchors, 3, 1, 1) for _ in STRIDES)
        self.kps = nn.ModuleList(nn.Conv2d(feat, 10 * anchors, 3, 1, 1) for _ in STRIDES)
        self.scales = nn.ParameterList(nn.Parameter(torch.tensor([1.0])) for _ in STRIDES)

    def forward(self, x):
        P = self.neck(self.backbone(x))
        scores, bboxes, kpss = [], [], []
        for l in range(3):
            f = self.towers[l](P[l])
            c, b, k = self.cls[l](f), self.reg[l](f) * self.scales[l], self.kps[l](f)
            scores.append(c.permute(2, 3, 0, 1).reshape(-1, 1).sigmoid())
            bboxes.append(b.permute(2, 3, 0, 1).reshape(-1, 4))
            kpss.append(k.permute(2, 3, 0, 1).reshape(-1, 10))
        return tuple(scores + bboxes + kpss)


def randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                fan = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (1.4 / fan ** 0.5))
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.2)
        for s in m.scales:
            s.copy_(torch.rand(1, generator=g) * 0.6 + 0.7)
    return m.eval()


def build(cfg, seed):
    torch.manual_seed(seed)
    return randomise(SCRFD(**cfg), seed + 1)


def export(m, path, hw=(128, 128)):
    x = torch.randn(1, 3, *hw)
    torch.onnx.export(m, x, path, input_names=["input.1"], opset_version=11, dynamo=False,
                      do_constant_folding=True, keep_initializers_as_inputs=False,
                      dynamic_axes={"input.1": {2: "h", 3: "w"}})


def convert(onnx_path, out, *extra):
    r = subprocess.run([sys.executable, TOOL, onnx_path, out, *extra], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"onnx2safetensors failed: {r.stderr}")
    return r


# ------------------------------------------------------------ our key names, folded (reference for the converter)

def folded_forward(T, x, cfg):
    """The network from a converted state dict (our names, BN and Scale folded) in plain torch."""
    def conv(key, x, s=1, relu=False):
        w = torch.as_tensor(T[key + ".weight"])
        y = F.conv2d(x, w, torch.as_tensor(T[key + ".bias"]), s, w.shape[-1] // 2)
        return F.relu(y) if relu else y
    for k in range(3):
        x = conv(f"backbone.stem.{k}", x, 2 if k == 0 else 1, True)
    x = F.max_pool2d(x, 2, 2)
    C = []
    for si, (n, st) in enumerate(zip(cfg["blocks"], (1, 2, 2, 2))):
        for i in range(n):
            p, s = f"backbone.layer{si + 1}.{i}", st if i == 0 else 1
            y = conv(f"{p}.conv2", conv(f"{p}.conv1", x, s, True))
            if f"{p}.downsample.weight" in T:
                sc = F.avg_pool2d(x, s, s, ceil_mode=True, count_include_pad=False) if s != 1 else x
                y = y + conv(f"{p}.downsample", sc)
            else:
                y = y + x
            x = F.relu(y)
        C.append(x)
    L = [conv(f"neck.lateral.{i}", C[i + 1]) for i in range(3)]
    for i in (2, 1):
        L[i - 1] = L[i - 1] + F.interpolate(L[i], size=L[i - 1].shape[2:], mode="nearest")
    I = [conv(f"neck.fpn.{i}", L[i]) for i in range(3)]
    for i in range(2):
        I[i + 1] = I[i + 1] + conv(f"neck.down.{i}", I[i], 2)
    P = [I[0], conv("neck.pafpn.0", I[1]), conv("neck.pafpn.1", I[2])]
    outs = [[], [], []]
    for l, s in enumerate(STRIDES):
        f = P[l]
        for j in range(cfg["tower"]):
            f = conv(f"head.stride{s}.tower.{j}", f, 1, True)
        for o, (name, C_) in enumerate((("cls", 1), ("reg", 4), ("kps", 10))):
            y = conv(f"head.stride{s}.{name}", f).permute(2, 3, 0, 1).reshape(-1, C_)
            outs[o].append(y.sigmoid() if name == "cls" else y)
    return tuple(outs[0] + outs[1] + outs[2])


# ------------------------------------------------------------ insightface pre/post-processing (numpy, from the spec)

def letterbox(img, det_w, det_h):
    im_ratio = float(img.shape[0]) / img.shape[1]
    model_ratio = float(det_h) / det_w
    if im_ratio > model_ratio:
        new_h = det_h
        new_w = int(new_h / im_ratio)
    else:
        new_w = det_w
        new_h = int(new_w * im_ratio)
    det_scale = float(new_h) / img.shape[0]
    det_img = np.zeros((det_h, det_w, 3), dtype=np.uint8)
    det_img[:new_h, :new_w, :] = cv2.resize(img, (new_w, new_h))
    return det_img, det_scale, (new_w, new_h)


def nms(dets, thresh):
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def decode(outs, det_w, det_h, A, det_scale, thresh=0.5, nms_thresh=0.4):
    """insightface RetinaFace.detect after the network (0.7.3), batch 1."""
    scores_l, bboxes_l, kpss_l = [], [], []
    for idx, s in enumerate(STRIDES):
        scores = outs[idx]
        bbox = outs[idx + 3] * s
        kps = outs[idx + 6] * s
        h, w = det_h // s, det_w // s
        ac = np.stack(np.mgrid[:h, :w][::-1], axis=-1).astype(np.float32)
        ac = (ac * s).reshape((-1, 2))
        ac = np.stack([ac] * A, axis=1).reshape((-1, 2))
        pos = np.where(scores >= thresh)[0]
        bb = np.stack([ac[:, 0] - bbox[:, 0], ac[:, 1] - bbox[:, 1], ac[:, 0] + bbox[:, 2], ac[:, 1] + bbox[:, 3]], -1)
        kp = np.stack([ac[:, i % 2] + kps[:, i] for i in range(10)], -1).reshape((-1, 5, 2))
        scores_l.append(scores[pos])
        bboxes_l.append(bb[pos])
        kpss_l.append(kp[pos])
    scores = np.vstack(scores_l)
    order = scores.ravel().argsort()[::-1]
    bboxes = np.vstack(bboxes_l) / det_scale
    kpss = np.vstack(kpss_l) / det_scale
    pre_det = np.hstack((bboxes, scores)).astype(np.float32, copy=False)[order, :]
    keep = nms(pre_det, nms_thresh)
    det = pre_det[keep, :]
    kpss = kpss[order, :, :][keep, :, :]
    return det, kpss, len(order)


def pick_largest(det):
    """Arc2Face: sorted(faces, key=area)[-1]."""
    idx = sorted(range(len(det)), key=lambda i: (det[i][2] - det[i][0]) * (det[i][3] - det[i][1]))
    return idx[-1]


def synthetic_image(H, W, seed):
    """A face-ish drawing: gradient background, skin ellipse, eyes, mouth, a second smaller 'face'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    img = np.stack([40 + 100 * xx / W, 60 + 80 * yy / H, 120 + 0 * xx], -1)
    img = img + rng.normal(0, 6, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for (cx, cy, r, col) in ((0.4 * W, 0.5 * H, 0.3 * H, (224, 180, 150)), (0.82 * W, 0.3 * H, 0.12 * H, (200, 160, 130))):
        cv2.ellipse(img, (int(cx), int(cy)), (int(r * 0.8), int(r)), 0, 0, 360, col, -1)
        for dx in (-0.35, 0.35):
            cv2.circle(img, (int(cx + dx * r), int(cy - 0.2 * r)), max(1, int(0.12 * r)), (30, 30, 40), -1)
        cv2.line(img, (int(cx - 0.3 * r), int(cy + 0.45 * r)), (int(cx + 0.3 * r), int(cy + 0.45 * r)),
                 (150, 40, 50), max(1, int(0.06 * r)))
    return img


def tune_biases(m, blob, counts=(8, 4, 2), margin=5e-3):
    """Random deep nets give predictor outputs of arbitrary size: rescale the predictor weights
    (reg outputs std 0.3 around a bias of 2 strides, i.e. boxes ~4 strides wide that overlap; kps std
    1; cls logits std 2) and set the cls bias per stride so that exactly counts[l] (or a few more)
    anchors have logit > 0 with no logit within `margin` of 0."""
    with torch.no_grad():
        P = m.neck(m.backbone(blob))
        for l in range(3):
            f = m.towers[l](P[l])
            for conv, std, bias in ((m.reg[l], 0.3, 2.0), (m.kps[l], 1.0, None), (m.cls[l], 2.0, 0.0)):
                conv.weight.mul_(std / float((conv(f) - conv.bias[None, :, None, None]).std()))
                if bias is not None:
                    conv.bias.fill_(bias / (float(m.scales[l]) if conv is m.reg[l] else 1.0))
            z = np.sort(m.cls[l](f).flatten().numpy())[::-1]
            k = counts[l]
            while z[k - 1] - z[k] < 2 * margin:
                k += 1
            m.cls[l].bias.fill_(-float(z[k - 1] + z[k]) / 2)


def main():
    os.makedirs(OUT, exist_ok=True)
    det = 160
    img = synthetic_image(90, 131, 0)  # RGB
    bgr = img[:, :, ::-1].copy()  # insightface's input (np.array(PIL)[:, :, ::-1])
    det_img_bgr, det_scale, new1 = letterbox(bgr, det, det)
    blob = cv2.dnn.blobFromImage(det_img_bgr, 1.0 / 128, (det, det), (127.5, 127.5, 127.5), swapRB=True)
    blob_t = torch.from_numpy(blob)
    m = build(SMALL, 1)
    tune_biases(m, blob_t)
    with torch.no_grad():
        outs = [o.numpy() for o in m(blob_t)]
    dets, kpss, ncand = decode(outs, det, det, SMALL["anchors"], det_scale)
    assert len(dets) >= 2 and ncand > len(dets), (len(dets), ncand)  # NMS suppressed something
    assert len(np.unique(dets[:, 4])) == len(dets)  # no score ties
    largest = pick_largest(dets)
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "scrfd_small.onnx")
        export(m, p)
        w = os.path.join(OUT, "scrfd_small.safetensors")
        print(convert(p, w, "--arch", "scrfd").stdout.strip())
    from safetensors.numpy import load_file
    T = load_file(w)
    with torch.no_grad():
        back = folded_forward(T, blob_t, SMALL)
    err = max(float(np.abs(a.numpy() - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(back, outs))
    print(f"converted (folded) weights reproduce the model: max rel err {err:.2e}")
    assert err < 1e-5
    img2 = synthetic_image(131, 90, 1)
    det2, ds2, new2 = letterbox(img2, det, det)
    # the blob is exactly (RGB det_img - 127.5) / 128: the C test rebuilds it from det_img (not stored)
    rgb_det = np.ascontiguousarray(det_img_bgr[:, :, ::-1])
    assert np.array_equal(blob[0].transpose(1, 2, 0), (rgb_det.astype(np.float32) - 127.5) / 128)
    io = {"img": img, "det_img": rgb_det, "det_new": np.array(new1, np.int32),  # new_w, new_h: det_scale = new_h / H
          "faces": np.concatenate([dets, kpss.reshape(-1, 10)], 1).astype(np.float32),
          "largest": np.array([largest], np.int32), "ncand": np.array([ncand], np.int32),
          "img2": img2, "det_img2": det2, "det_new2": np.array(new2, np.int32)}
    for i, o in enumerate(outs):
        io[f"out.{i}"] = o.astype(np.float32)
    rng = np.random.default_rng(5)
    cases = [(37, 53, 101, 77), (90, 131, 109, 160), (64, 48, 32, 24), (21, 17, 21, 17), (50, 70, 13, 9),
             (7, 5, 40, 61)]
    for k, (sh, sw, dh, dw) in enumerate(cases):
        src = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        io[f"rs{k}.src"] = src
        io[f"rs{k}.dst"] = cv2.resize(src, (dw, dh))
    save_file(io, os.path.join(OUT, "io.safetensors"))
    for f in ("io.safetensors", "scrfd_small.safetensors"):
        os.chmod(os.path.join(OUT, f), 0o644)
    print(f"det_scale {det_scale:.6f}, {ncand} candidates, {len(dets)} faces after NMS, largest {largest}")
    for d, k in zip(dets, kpss):
        print("  ", np.round(d, 2), np.round(k[0], 2))


if __name__ == "__main__":
    main()
