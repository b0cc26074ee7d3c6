#!/usr/bin/env python3
"""Writes tests/fixtures/align/* for tests/test_align.c: the ArcFace 5-point
alignment exactly as insightface python-package/insightface/utils/face_align.py
(estimate_norm + norm_crop), run with scikit-image and OpenCV 4.x.

Needs scikit-image and opencv-python-headless 4.x (checked with 4.10-4.12;
OpenCV 5 computes warpAffine in floating point, not in the fixed point the C
code reproduces, so the script refuses it):
    pip install --target /tmp/cv4 'opencv-python-headless==4.12.0.88' 'numpy<2.3'
    PYTHONPATH=/tmp/cv4 python3 tools/ref/make_align_fixtures.py

Files:
  photo.png                 173 x 141 synthetic RGB image (smooth shapes + noise)
  noise.png                 61 x 47 uniform random RGB (worst case for rounding)
  crop_<k>.png              norm_crop(photo, kps[k], size[k]) from cv2 (BGR in
                            cv2, converted back to RGB: per-channel op)
  warp_noise_<k>.png        cv2.warpAffine(noise, Mw[k], (dw[k], dh[k]))
  align.safetensors:
    est.src  F32 [E, 5, 2]  source points for the estimation cases
    est.dst  F32 [E, 5, 2]  destination points
    est.M    F64 [E, 2, 3]  SimilarityTransform().estimate(src, dst).params[:2] on
                            the float32 points (skimage then computes in float32)
    est.M64  F64 [E, 2, 3]  the same from float64 copies of the points
    crop.kps F32 [K, 5, 2]  keypoints on photo.png
    crop.size I32 [K]       crop sizes
    crop.M   F64 [K, 2, 3]  estimate_norm(kps, size)
    warp.M   F64 [N, 2, 3]  random affine maps for noise.png
    warp.hw  I32 [N, 2]     output (height, width)
"""
import os
import warnings

import numpy as np
import torch
from safetensors.torch import save_file
from PIL import Image

import cv2
from skimage import transform as trans

if int(cv2.__version__.split(".")[0]) != 4:
    raise SystemExit("need OpenCV 4.x (fixed-point warpAffine), got %s; see the docstring" % cv2.__version__)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "align")

arcface_dst = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32)


def estimate_norm(lmk, image_size=112):  # insightface face_align.estimate_norm
    assert lmk.shape == (5, 2)
    assert image_size % 112 == 0 or image_size % 128 == 0
    if image_size % 112 == 0:
        ratio = float(image_size) / 112.0
        diff_x = 0
    else:
        ratio = float(image_size) / 128.0
        diff_x = 8.0 * ratio
    dst = arcface_dst * ratio
    dst[:, 0] += diff_x
    tform = trans.SimilarityTransform()
    tform.estimate(lmk, dst)
    return tform.params[0:2, :]


def norm_crop(img, landmark, image_size=112):  # insightface face_align.norm_crop
    M = estimate_norm(landmark, image_size)
    return cv2.warpAffine(img, M, (image_size, image_size), borderValue=0.0), M


def similarity(s, th, tx, ty):
    return np.array([[s * np.cos(th), -s * np.sin(th), tx], [s * np.sin(th), s * np.cos(th), ty]])


def apply(M, p):
    return p @ M[:, :2].T + M[:, 2]


def synthetic_photo(rng, h=141, w=173):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    img[..., 1] = 255 * x / w
    img[..., 2] = 255 * y / h
    for _ in range(12):  # discs with hard edges
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 25)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    warnings.simplefilter("ignore", FutureWarning)  # skimage 0.26: estimate -> from_estimate
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)
    t = {}

    # ---- estimation: keypoints near the template under random similarities + noise,
    # a mirrored face (reflection: det(A) < 0), collinear points, large coordinates.
    src, dst, Ms = [], [], []
    for k in range(8):
        M = similarity(rng.uniform(0.3, 6), rng.uniform(-np.pi, np.pi), rng.uniform(-50, 900), rng.uniform(-50, 700))
        p = (apply(M, arcface_dst.astype(np.float64)) + rng.normal(0, 2, (5, 2))).astype(np.float32)
        src.append(p), dst.append(arcface_dst)
    mir = arcface_dst.copy()
    mir[:, 0] = 200 - mir[:, 0]
    src.append(mir), dst.append(arcface_dst)
    line = np.stack([np.linspace(10, 90, 5), np.linspace(20, 60, 5)], 1).astype(np.float32)
    src.append(line), dst.append(arcface_dst)
    src.append((arcface_dst * 37.5 + np.float32(3000)).astype(np.float32)), dst.append(arcface_dst)
    src.append(rng.uniform(0, 500, (5, 2)).astype(np.float32)), dst.append(rng.uniform(0, 300, (5, 2)).astype(np.float32))
    M64s = []
    for s, d in zip(src, dst):
        tf = trans.SimilarityTransform()
        tf.estimate(s, d)  # float32 points, as insightface: skimage computes in float32
        Ms.append(tf.params[:2])
        tf = trans.SimilarityTransform()
        tf.estimate(s.astype(np.float64), d.astype(np.float64))  # the same in float64
        M64s.append(tf.params[:2])
    t["est.src"] = torch.from_numpy(np.stack(src))
    t["est.dst"] = torch.from_numpy(np.stack(dst))
    t["est.M"] = torch.from_numpy(np.stack(Ms))
    t["est.M64"] = torch.from_numpy(np.stack(M64s))

    # ---- crops of the synthetic photo (face scale up and down, rotated, partly outside)
    photo = synthetic_photo(rng)
    Image.fromarray(photo).save(os.path.join(OUT, "photo.png"))
    bgr = photo[:, :, ::-1].copy()  # as insightface sees it
    cases = [  # (scale, angle, tx, ty, size)
        (0.8, 0.1, 40, 30, 112), (1.6, -0.4, 10, 5, 112), (0.45, 0.0, 60, 50, 112), (1.2, 2.8, 150, 130, 112),
        (1.0, 0.3, -40, 60, 112), (0.9, -0.2, 30, 20, 128), (1.1, 0.05, 20, 10, 224),
    ]
    kps_all, sizes, cMs = [], [], []
    for k, (s, th, tx, ty, size) in enumerate(cases):
        kps = (apply(similarity(s, th, tx, ty), arcface_dst.astype(np.float64)) + rng.normal(0, 1.5, (5, 2))).astype(
            np.float32)
        crop, M = norm_crop(bgr, kps, size)
        Image.fromarray(crop[:, :, ::-1]).save(os.path.join(OUT, "crop_%d.png" % k))
        kps_all.append(kps), sizes.append(size), cMs.append(M)
    t["crop.kps"] = torch.from_numpy(np.stack(kps_all))
    t["crop.size"] = torch.tensor(sizes, dtype=torch.int32)
    t["crop.M"] = torch.from_numpy(np.stack(cMs))

    # ---- raw warps of uniform noise: every fixed-point rounding shows
    noise = rng.integers(0, 256, (47, 61, 3), dtype=np.uint8)
    Image.fromarray(noise).save(os.path.join(OUT, "noise.png"))
    wMs, hw = [], []
    for k in range(6):
        dh, dw = int(rng.integers(20, 70)), int(rng.integers(20, 70))
        # a random inverse map (dst -> src) taking the output centre near the
        # image centre, so most taps land inside and some outside
        A = rng.uniform(-1.5, 1.5, (2, 2))
        c = np.array([61 / 2, 47 / 2]) + rng.normal(0, 8, 2) - A @ np.array([dw / 2, dh / 2])
        M = cv2.invertAffineTransform(np.concatenate([A, c[:, None]], 1))
        if k == 0:
            M = similarity(1.0, 0.0, 0.5, -0.25)  # pure sub-pixel shift
        if k == 1:
            M = similarity(2.0, 0.0, 0.0, 0.0)  # exact 2x zoom
        out = cv2.warpAffine(noise, M, (dw, dh), borderValue=0.0)
        Image.fromarray(out).save(os.path.join(OUT, "warp_noise_%d.png" % k))
        wMs.append(M), hw.append((dh, dw))
    t["warp.M"] = torch.from_numpy(np.stack(wMs))
    t["warp.hw"] = torch.tensor(hw, dtype=torch.int32)
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(OUT, "align.safetensors"))
    print("wrote", OUT, "with OpenCV", cv2.__version__)


if __name__ == "__main__":
    main()
