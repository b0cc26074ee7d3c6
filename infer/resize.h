// resize.h: image resizing with OpenCV's conventions, so that detection and
// alignment see the same pixels insightface feeds its models.
//
// resize_bilinear_u8 reproduces cv2.resize(src, (dw, dh)) with the default
// INTER_LINEAR on 8-bit images BIT-EXACTLY (checked against OpenCV 5.0 on
// random images, also 2x downscales, which OpenCV sends to INTER_AREA: its
// result is identical there). The convention:
//  - half-pixel centres: source x = (dx + 0.5) * (sw / dw) - 0.5, computed in
//    float; sx = floor(x), fx = x - sx; at the left edge (sx < 0) sx = 0,
//    fx = 0; at the right (sx >= sw - 1) sx = sw - 1, fx = 0. Rows the same,
//    except the weights are not reset at the edges: the row indices are
//    clamped to [0, sh - 1] instead;
//  - 11-bit fixed-point weights: a0 = round((1 - fx) * 2048), a1 = round(fx * 2048)
//    (round half to even, as cvRound);
//  - horizontal pass in int32: r = src[sx] * a0 + src[sx + 1] * a1;
//  - vertical pass as OpenCV's SIMD kernel: v = ((r0 >> 4) * b0 >> 16) +
//    ((r1 >> 4) * b1 >> 16), out = sat_u8((v + 2) >> 2) (arithmetic shifts).
//    (OpenCV's scalar fallback rounds (r0 b0 + r1 b1 + 2^21) >> 22 instead,
//    which differs by 1 on ~10% of the pixels; the SIMD form is what runs.)
// letterbox_u8 is insightface's RetinaFace/SCRFD.detect letterbox.
#pragma once
#include <stdint.h>

// dst [dh, dw, C] = resize(src [sh, sw, C]) (uint8, interleaved channels,
// C >= 1). sw, sh, dw, dh >= 1. 0, or -1 with the error set (bad sizes).
int resize_bilinear_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int C);

// insightface letterbox into a det_w x det_h canvas: im_ratio = H / W (double),
// model_ratio = det_h / det_w; if im_ratio > model_ratio then new_h = det_h,
// new_w = int(new_h / im_ratio) else new_w = det_w, new_h = int(new_w * im_ratio)
// (truncation); the image is resized to new_w x new_h (resize_bilinear_u8) and
// pasted at the top-left of a zero canvas dst [det_h, det_w, 3].
// *det_scale = new_h / H (double). 0, or -1 with the error set (a side would be 0).
int letterbox_u8(uint8_t *dst, int det_w, int det_h, const uint8_t *src, int H, int W, double *det_scale);
