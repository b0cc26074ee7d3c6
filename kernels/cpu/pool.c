// pool.c: 2-D max / average pooling (NHWC, PyTorch semantics incl. ceil_mode
// and count_include_pad), global average pooling and per-channel scaling
// (the squeeze-excitation gate).
//
// Window of output (oh, ow): rows oh*sh - ph .. + KH - 1, cols likewise,
// clipped to the input. Channels are the innermost loop everywhere, so the
// work per window position is one contiguous, vectorisable row of C values.
#include <math.h>
#include <string.h>

#include "../common.h"
#include "ops.h"

#define PAR_MIN 32768  // below this many elements (or flops) threads cost more than they save

// PyTorch pooling_output_shape (dilation 1): floor or ceil of
// (in + 2p - k) / s, plus one; in ceil mode the last window must start
// inside the input or the left padding, else it is dropped.
static int pool_out_size(int in, int k, int pad, int stride, int ceil_mode) {
    CHECK(k >= 1 && stride >= 1 && pad >= 0 && 2 * pad <= k);  // PyTorch: pad <= k/2
    int num = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
    CHECK(num >= 0);
    int out = num / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

int pool2d_out_h(const Pool2dShape *s) { return pool_out_size(s->H, s->KH, s->ph, s->sh, s->ceil_mode); }
int pool2d_out_w(const Pool2dShape *s) { return pool_out_size(s->W, s->KW, s->pw, s->sw, s->ceil_mode); }

// x [B,H,W,C] -> y, argmax [B,Ho,Wo,C]. Padding acts as -inf. Scan order is
// row-major over the window and the first maximum wins (strict >), NaN
// propagates, as in PyTorch's CPU kernel.
void maxpool2d_fwd(float *y, int32_t *argmax, const float *x, const Pool2dShape *s) {
    const int H = s->H, W = s->W, C = s->C;
    const int Ho = pool2d_out_h(s), Wo = pool2d_out_w(s);
    const size_t work = (size_t)s->B * Ho * Wo * C * s->KH * s->KW;
#pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN)
    for (int b = 0; b < s->B; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int h0 = oh * s->sh - s->ph, w0 = ow * s->sw - s->pw;
                int h1 = A2F_MIN(h0 + s->KH, H), w1 = A2F_MIN(w0 + s->KW, W);
                h0 = A2F_MAX(h0, 0), w0 = A2F_MAX(w0, 0);
                size_t o = (((size_t)b * Ho + oh) * Wo + ow) * C;
                float *yo = y + o;
                int32_t *ao = argmax + o;
                for (int c = 0; c < C; c++) yo[c] = -INFINITY, ao[c] = h0 * W + w0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        const float *xi = x + (((size_t)b * H + h) * W + w) * C;
                        int32_t idx = h * W + w;
                        for (int c = 0; c < C; c++)
                            if (xi[c] > yo[c] || isnan(xi[c])) yo[c] = xi[c], ao[c] = idx;
                    }
            }
}

// dx [B,H,W,C] += dy routed to the saved argmax. Windows overlap when the
// stride is smaller than the kernel, so threads split over (b) only and each
// owns its image's dx plane.
void maxpool2d_bwd(float *dx, const float *dy, const int32_t *argmax, const Pool2dShape *s) {
    const int HW = s->H * s->W, C = s->C;
    const int HoWo = pool2d_out_h(s) * pool2d_out_w(s);
#pragma omp parallel for schedule(static) if ((size_t)s->B * HoWo * C > PAR_MIN)
    for (int b = 0; b < s->B; b++) {
        float *dxb = dx + (size_t)b * HW * C;
        for (int p = 0; p < HoWo; p++) {
            size_t o = ((size_t)b * HoWo + p) * C;
            for (int c = 0; c < C; c++) {
                int32_t idx = argmax[o + c];
                CHECK(idx >= 0 && idx < HW);
                dxb[(size_t)idx * C + c] += dy[o + c];
            }
        }
    }
}

// Window bounds and divisor of output (oh, ow), PyTorch avg_pool2d rules:
// the count_include_pad divisor is the window clipped to the padded input
// (H + ph on the far side), the other divisor counts real elements only.
typedef struct {
    int h0, h1, w0, w1;
    float inv;  // 1 / divisor
} AvgWin;

static AvgWin avg_window(const Pool2dShape *s, int oh, int ow) {
    AvgWin a;
    int h0 = oh * s->sh - s->ph, w0 = ow * s->sw - s->pw;
    int h1 = A2F_MIN(h0 + s->KH, s->H + s->ph), w1 = A2F_MIN(w0 + s->KW, s->W + s->pw);
    int padded = (h1 - h0) * (w1 - w0);
    a.h0 = A2F_MAX(h0, 0), a.w0 = A2F_MAX(w0, 0);
    a.h1 = A2F_MIN(h1, s->H), a.w1 = A2F_MIN(w1, s->W);
    int real = (a.h1 - a.h0) * (a.w1 - a.w0);
    int div = s->count_include_pad ? padded : real;
    a.inv = div > 0 ? 1.0f / (float)div : 0.0f;
    return a;
}

// x [B,H,W,C] -> y [B,Ho,Wo,C]: window sum (fp32, at most KH*KW terms) / divisor.
void avgpool2d_fwd(float *y, const float *x, const Pool2dShape *s) {
    const int H = s->H, W = s->W, C = s->C;
    const int Ho = pool2d_out_h(s), Wo = pool2d_out_w(s);
    const size_t work = (size_t)s->B * Ho * Wo * C * s->KH * s->KW;
#pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN)
    for (int b = 0; b < s->B; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                AvgWin a = avg_window(s, oh, ow);
                float *yo = y + (((size_t)b * Ho + oh) * Wo + ow) * C;
                for (int c = 0; c < C; c++) yo[c] = 0.0f;
                for (int h = a.h0; h < a.h1; h++)
                    for (int w = a.w0; w < a.w1; w++) {
                        const float *xi = x + (((size_t)b * H + h) * W + w) * C;
                        for (int c = 0; c < C; c++) yo[c] += xi[c];
                    }
                for (int c = 0; c < C; c++) yo[c] *= a.inv;
            }
}

// dx [B,H,W,C] += dy / divisor over each window (threads over b, see maxpool2d_bwd).
void avgpool2d_bwd(float *dx, const float *dy, const Pool2dShape *s) {
    const int H = s->H, W = s->W, C = s->C;
    const int Ho = pool2d_out_h(s), Wo = pool2d_out_w(s);
    const size_t work = (size_t)s->B * Ho * Wo * C * s->KH * s->KW;
#pragma omp parallel for schedule(static) if (work > PAR_MIN)
    for (int b = 0; b < s->B; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                AvgWin a = avg_window(s, oh, ow);
                const float *g = dy + (((size_t)b * Ho + oh) * Wo + ow) * C;
                for (int h = a.h0; h < a.h1; h++)
                    for (int w = a.w0; w < a.w1; w++) {
                        float *dxi = dx + (((size_t)b * H + h) * W + w) * C;
                        for (int c = 0; c < C; c++) dxi[c] += g[c] * a.inv;
                    }
            }
}

// y [B,C] = mean over HW of x [B,HW,C] (double accumulation).
void global_avgpool_fwd(float *y, const float *x, int B, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * HW * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *xb = x + (size_t)b * HW * C + c;
            double acc = 0;
            for (int p = 0; p < HW; p++) acc += xb[(size_t)p * C];
            y[(size_t)b * C + c] = (float)(acc / HW);
        }
}

// dx [B,HW,C] += dy [B,C] / HW.
void global_avgpool_bwd(float *dx, const float *dy, int B, int HW, int C) {
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * HW * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < HW; p++) {
            float *d = dx + ((size_t)b * HW + p) * C;
            const float *g = dy + (size_t)b * C;
            for (int c = 0; c < C; c++) d[c] += g[c] * inv;
        }
}

// y [B,HW,C] = x [B,HW,C] * s [B,C] (broadcast over positions).
void channel_scale_fwd(float *y, const float *x, const float *s, int B, int HW, int C) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * HW * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < HW; p++) {
            size_t o = ((size_t)b * HW + p) * C;
            const float *sb = s + (size_t)b * C;
            for (int c = 0; c < C; c++) y[o + c] = x[o + c] * sb[c];
        }
}

// dx [B,HW,C] += dy * s; ds [B,C] += sum over positions of dy * x (double).
void channel_scale_bwd(float *dx, float *ds, const float *dy, const float *x, const float *s, int B, int HW, int C) {
    if (dx) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * HW * C > PAR_MIN)
        for (int b = 0; b < B; b++)
            for (int p = 0; p < HW; p++) {
                size_t o = ((size_t)b * HW + p) * C;
                const float *sb = s + (size_t)b * C;
                for (int c = 0; c < C; c++) dx[o + c] += dy[o + c] * sb[c];
            }
    }
    if (ds) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * HW * C > PAR_MIN)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int p = 0; p < HW; p++) {
                    size_t o = ((size_t)b * HW + p) * C + c;
                    acc += (double)dy[o] * x[o];
                }
                ds[(size_t)b * C + c] += (float)acc;
            }
    }
}
