// align.c: similarity-transform estimation and OpenCV-4.x-exact 8-bit
// bilinear warpAffine for the ArcFace crop (see align.h for the formulas).
#include "align.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "../kernels/common.h"

const float ALIGN_ARCFACE_DST[5][2] = {
    {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {41.5493f, 92.3655f}, {70.7299f, 92.2041f},
};

int align_template(int size, float dst[5][2]) {
    float ratio, dx = 0;
    if (size > 0 && size % 112 == 0)
        ratio = (float)size / 112.0f;
    else if (size > 0 && size % 128 == 0)
        ratio = (float)size / 128.0f, dx = 8.0f * ratio;
    else {
        a2f_set_error("align: crop size %d is not a multiple of 112 or 128", size);
        return -1;
    }
    // insightface: dst = arcface_dst * ratio (float32 array times a Python float), then dst[:, 0] += diff_x
    for (int i = 0; i < 5; i++) {
        dst[i][0] = ALIGN_ARCFACE_DST[i][0] * ratio + dx;
        dst[i][1] = ALIGN_ARCFACE_DST[i][1] * ratio;
    }
    return 0;
}

int align_estimate(const float (*src)[2], const float (*dst)[2], int n, double M[6]) {
    double ms[2] = {0, 0}, md[2] = {0, 0};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            if (!isfinite(src[i][k]) || !isfinite(dst[i][k])) {
                a2f_set_error("align: keypoint %d is not finite", i);
                return -1;
            }
            ms[k] += src[i][k], md[k] += dst[i][k];
        }
    for (int k = 0; k < 2; k++) ms[k] /= n, md[k] /= n;
    double ss = 0, sa = 0, sb = 0;
    for (int i = 0; i < n; i++) {
        double x = src[i][0] - ms[0], y = src[i][1] - ms[1];
        double u = dst[i][0] - md[0], v = dst[i][1] - md[1];
        ss += x * x + y * y;
        sa += x * u + y * v;
        sb += x * v - y * u;
    }
    if (n < 2 || !(ss > 0)) {
        a2f_set_error("align: the %d keypoints coincide (no similarity transform)", n);
        return -1;
    }
    double a = sa / ss, b = sb / ss;
    M[0] = a, M[1] = -b, M[2] = md[0] - (a * ms[0] - b * ms[1]);
    M[3] = b, M[4] = a, M[5] = md[1] - (b * ms[0] + a * ms[1]);
    return 0;
}

// cvRound of a double with saturation to int (saturate_cast<int>(double)).
static inline int64_t sat_round(double v) {
    if (!(v == v)) return 0;
    if (v >= (double)INT_MAX) return INT_MAX;
    if (v <= (double)INT_MIN) return INT_MIN;
    return (int64_t)lrint(v);  // current rounding mode: nearest, ties to even
}
static inline int sat_short(int64_t v) {
    return v > SHRT_MAX ? SHRT_MAX : v < SHRT_MIN ? SHRT_MIN : (int)v;
}

enum { AB_BITS = 10, AB_SCALE = 1 << AB_BITS, INTER_BITS = 5, TAB = 1 << INTER_BITS, COEF_BITS = 15 };

void align_warp_affine(const uint8_t *src, int H, int W, int C, const double Min[6], uint8_t *dst, int dh, int dw) {
    // Inverse map (destination -> source), as OpenCV without WARP_INVERSE_MAP.
    double M[6] = {Min[0], Min[1], Min[2], Min[3], Min[4], Min[5]};
    double D = M[0] * M[4] - M[1] * M[3];
    D = D != 0 ? 1.0 / D : 0.0;
    double A11 = M[4] * D, A22 = M[0] * D;
    M[0] = A11, M[1] *= -D, M[3] *= -D, M[4] = A22;
    double b1 = -M[0] * M[2] - M[1] * M[5], b2 = -M[3] * M[2] - M[4] * M[5];
    M[2] = b1, M[5] = b2;

    // Bilinear weights [fy][fx][4] (taps (0,0), (0,1), (1,0), (1,1)): exact
    // products of multiples of 1/32, times 2^15; 32768 saturates to 32767 and
    // OpenCV's sum fix-up adds the missing 1 to the last tap.
    static int wtab[TAB][TAB][4];
    static int init = 0;
    if (!init) {
        for (int i = 0; i < TAB; i++)
            for (int j = 0; j < TAB; j++) {
                int w[4] = {(TAB - i) * (TAB - j) * 32, (TAB - i) * j * 32, i * (TAB - j) * 32, i * j * 32};
                if (w[0] == 32768) w[0] = 32767, w[3] += 1;
                for (int k = 0; k < 4; k++) wtab[i][j][k] = w[k];
            }
        init = 1;
    }

    const int round_delta = AB_SCALE / TAB / 2;  // 16
    for (int y = 0; y < dh; y++) {
        int64_t X0 = sat_round((M[1] * y + M[2]) * AB_SCALE) + round_delta;
        int64_t Y0 = sat_round((M[4] * y + M[5]) * AB_SCALE) + round_delta;
        for (int x = 0; x < dw; x++) {
            int64_t X = (X0 + sat_round(M[0] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            int64_t Y = (Y0 + sat_round(M[3] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
            int sx = sat_short(X >> INTER_BITS), sy = sat_short(Y >> INTER_BITS);
            const int *w = wtab[Y & (TAB - 1)][X & (TAB - 1)];
            uint8_t *o = dst + ((size_t)y * dw + x) * C;
            for (int c = 0; c < C; c++) {
                int64_t acc = 0;
                for (int k = 0; k < 4; k++) {
                    int yy = sy + (k >> 1), xx = sx + (k & 1);
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                        acc += (int64_t)w[k] * src[((size_t)yy * W + xx) * C + c];
                }
                int64_t v = (acc + (1 << (COEF_BITS - 1))) >> COEF_BITS;
                o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

int align_norm_crop(const uint8_t *rgb, int H, int W, const float kps[10], int size, uint8_t *out, double Mout[6]) {
    float dst[5][2];
    double M[6];
    if (align_template(size, dst)) return -1;
    if (align_estimate((const float(*)[2])kps, (const float(*)[2])dst, 5, M)) return -1;
    align_warp_affine(rgb, H, W, 3, M, out, size, size);
    if (Mout)
        for (int i = 0; i < 6; i++) Mout[i] = M[i];
    return 0;
}
