// align.h: ArcFace 5-point face alignment, exactly as insightface's
// face_align.norm_crop / estimate_norm (shared/reference/face-detection-alignment.md
// section 5):
//
//   M   = SimilarityTransform().estimate(kps, arcface_dst * size/112)   (Umeyama)
//   out = cv2.warpAffine(img, M, (size, size), borderValue=0.0)          (INTER_LINEAR)
//
// Estimation is scikit-image's SimilarityTransform.estimate (Umeyama 1991 with
// scale) in double precision, written in its 2-D closed form: for demeaned
// source (x, y) and destination (u, v) points,
//   a = sum(x u + y v) / sum(x^2 + y^2),  b = sum(x v - y u) / sum(x^2 + y^2),
//   M = [[a, -b, tx], [b, a, ty]],  (tx, ty) = mean(dst) - [[a, -b], [b, a]] mean(src).
// Both minimise sum |s R p + t - q|^2 over scale s >= 0 and rotations R, so
// they agree in every non-degenerate case (including collinear points, where
// Umeyama's rank-1 branch picks the same unique rotation); coincident source
// points (rank 0: skimage returns NaN) are an error here.
//
// The warp reproduces OpenCV 4.x's 8-bit INTER_LINEAR warpAffine bit for bit
// (imgwarp.cpp WarpAffineInvoker + remapBilinear; checked against
// opencv-python-headless 4.10-4.12, which insightface installs):
//   - M (source -> destination) is inverted in double;
//   - source coordinates in fixed point: for output (x, y),
//       X = (round((M'1 y + M'2) 1024) + 16 + round(M'0 x 1024)) >> 5
//     (M' the inverse, AB_BITS = 10, round = cvRound: half to even),
//     likewise Y with M'4, M'5, M'3; the integer
//     pixel is X >> 5 and the sub-pixel position X & 31 (INTER_BITS = 5:
//     1/32-pixel steps, INTER_TAB_SIZE = 32);
//   - bilinear weights from a 32 x 32 table in 15-bit fixed point
//     (INTER_REMAP_COEF_SCALE = 32768): w = (32 - fx)(32 - fy) * 32 etc., the
//     (0, 0) entry being [32767, 0, 0, 1] (OpenCV saturates 32768 to a short
//     and moves the difference to the last tap);
//   - out = (sum w_k p_k + 16384) >> 15, clamped to 0..255;
//   - taps outside the image read the border value 0 (BORDER_CONSTANT).
// OpenCV 5 computes this warp in floating point instead; its output differs
// from 4.x (and from this) by up to a few levels where the image has strong
// gradients (sub-pixel position rounded to 1/32 pixel in 4.x).
#pragma once
#include <stdint.h>

#define ALIGN_ARCFACE_SIZE 112

// insightface arcface_dst: (x, y) of left eye, right eye, nose tip, left and
// right mouth corners in the 112 x 112 crop.
extern const float ALIGN_ARCFACE_DST[5][2];

// The template for a size x size crop (estimate_norm): size % 112 == 0 ->
// arcface_dst * size/112; else size % 128 == 0 -> * size/128 with x += 8 size/128.
// 0, or -1 with an error for other sizes.
int align_template(int size, float dst[5][2]);

// M [2][3] (row-major, double) of the similarity transform taking src[i] to
// dst[i] in the least-squares sense (see above). 0, or -1 when the source
// points coincide or are not finite.
int align_estimate(const float (*src)[2], const float (*dst)[2], int n, double M[6]);

// dst [dh, dw, C] = cv2.warpAffine(src [H, W, C], M, (dw, dh)) for uint8
// images with INTER_LINEAR and BORDER_CONSTANT 0 (any C >= 1; the channels
// are independent, so RGB and BGR give the same result per channel).
void align_warp_affine(const uint8_t *src, int H, int W, int C, const double M[6], uint8_t *dst, int dh, int dw);

// norm_crop: out [size, size, 3] aligned crop of rgb [H, W, 3] from the five
// keypoints kps [5][2] (x, y in pixels, SCRFD order). M may be NULL (else it
// receives the transform). 0 / -1.
int align_norm_crop(const uint8_t *rgb, int H, int W, const float kps[10], int size, uint8_t *out, double M[6]);
