// resize.c: OpenCV-exact bilinear resize and insightface's letterbox (see resize.h).
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"

// Source index and 11-bit weights of each destination coordinate (OpenCV's
// resize coefficient table). clamp_w: reset the weight at the edges (columns);
// rows keep it and clamp the index when used.
static void coeffs(int *ofs, int32_t *a, int dn, int sn, int clamp_w) {
    const double scale = (double)sn / dn;
    for (int d = 0; d < dn; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (clamp_w && s < 0) s = 0, f = 0.0f;
        if (clamp_w && s >= sn - 1) s = sn - 1, f = 0.0f;
        ofs[d] = s;
        a[2 * d] = (int32_t)lrintf((1.0f - f) * 2048.0f);
        a[2 * d + 1] = (int32_t)lrintf(f * 2048.0f);
    }
}

int resize_bilinear_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int C) {
    if (dw < 1 || dh < 1 || sw < 1 || sh < 1 || C < 1) {
        a2f_set_error("resize: bad sizes %dx%d -> %dx%d (%d channels)", sw, sh, dw, dh, C);
        return -1;
    }
    int *xo = xmalloc(sizeof(int) * dw), *yo = xmalloc(sizeof(int) * dh);
    int32_t *xa = xmalloc(sizeof(int32_t) * 2 * dw), *ya = xmalloc(sizeof(int32_t) * 2 * dh);
    coeffs(xo, xa, dw, sw, 1);
    coeffs(yo, ya, dh, sh, 0);
    const size_t rowlen = (size_t)dw * C;
#pragma omp parallel if ((size_t)dh * rowlen > 65536)
    {
        int32_t *r0 = xmalloc(sizeof(int32_t) * rowlen), *r1 = xmalloc(sizeof(int32_t) * rowlen);
#pragma omp for schedule(static)
        for (int dy = 0; dy < dh; dy++) {
            int y0 = yo[dy], y1 = y0 + 1;
            y0 = y0 < 0 ? 0 : y0 > sh - 1 ? sh - 1 : y0;
            y1 = y1 < 0 ? 0 : y1 > sh - 1 ? sh - 1 : y1;
            for (int k = 0; k < 2; k++) {  // horizontal pass of source rows y0, y1
                const uint8_t *s = src + (size_t)(k ? y1 : y0) * sw * C;
                int32_t *r = k ? r1 : r0;
                for (int dx = 0; dx < dw; dx++) {
                    const int x0 = xo[dx], x1 = x0 + 1 < sw ? x0 + 1 : x0;  // a1 = 0 when clamped
                    for (int c = 0; c < C; c++)
                        r[(size_t)dx * C + c] = s[(size_t)x0 * C + c] * xa[2 * dx] + s[(size_t)x1 * C + c] * xa[2 * dx + 1];
                }
            }
            const int32_t b0 = ya[2 * dy], b1 = ya[2 * dy + 1];
            uint8_t *o = dst + (size_t)dy * rowlen;
            for (size_t i = 0; i < rowlen; i++) {  // OpenCV's SIMD vertical kernel (int16 mulhi)
                int32_t v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
                v = (v + 2) >> 2;
                o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        free(r0), free(r1);
    }
    free(xo), free(yo), free(xa), free(ya);
    return 0;
}

int letterbox_u8(uint8_t *dst, int det_w, int det_h, const uint8_t *src, int H, int W, double *det_scale) {
    if (H < 1 || W < 1 || det_w < 1 || det_h < 1) {
        a2f_set_error("letterbox: bad sizes (image %dx%d, canvas %dx%d)", W, H, det_w, det_h);
        return -1;
    }
    const double im_ratio = (double)H / W, model_ratio = (double)det_h / det_w;
    int nw, nh;
    if (im_ratio > model_ratio) nh = det_h, nw = (int)(nh / im_ratio);
    else nw = det_w, nh = (int)(nw * im_ratio);
    if (nw < 1 || nh < 1) {
        a2f_set_error("letterbox: image %dx%d is too elongated for a %dx%d canvas (resized to %dx%d)", W, H, det_w,
                      det_h, nw, nh);
        return -1;
    }
    uint8_t *tmp = xmalloc((size_t)nw * nh * 3);
    if (resize_bilinear_u8(tmp, nw, nh, src, W, H, 3) != 0) {
        free(tmp);
        return -1;
    }
    memset(dst, 0, (size_t)det_w * det_h * 3);
    for (int y = 0; y < nh; y++) memcpy(dst + (size_t)y * det_w * 3, tmp + (size_t)y * nw * 3, (size_t)nw * 3);
    free(tmp);
    *det_scale = (double)nh / H;
    return 0;
}
