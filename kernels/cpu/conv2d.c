// conv2d.c: NHWC 2-D convolution, forward and backward, on top of gemm().
//
// With weights [Cout, KH, KW, Cin] the convolution is a GEMM over output
// pixels: y[P, Cout] = col[P, Kd] @ w[Cout, Kd]^T, P = B*Ho*Wo, Kd = KH*KW*Cin,
// where row p of col holds the receptive field of output pixel p (im2col;
// NHWC makes every (kh, kw) tap one contiguous run of Cin values).
// The col matrix is never built for the whole batch: output pixels are taken
// in tiles of at most COL_BUDGET / Kd pixels (but >= MIN_TILE), so scratch
// memory is bounded (a few MiB) whatever the image size.
// 1x1 stride-1 unpadded convolutions skip im2col: x itself is the col matrix.
// Backward, per tile:
//   dw[Cout, Kd]   += dy_tile^T @ col_tile                       (gemm)
//   dcol[pt, Kd]    = dy_tile @ w                               (gemm)
//   dx             += col2im(dcol): gathered per input pixel, so threads
//                     never write the same dx element (deterministic)
//   dbias[Cout]    += sum over pixels of dy (double accumulation)
#include <string.h>

#include "../common.h"
#include "ops.h"

#define COL_BUDGET (4L << 20)  // floats of im2col scratch per buffer (16 MiB)
#define MIN_TILE 256           // pixels; keeps the GEMM M dimension efficient
#define PAR_MIN (1L << 15)     // floats moved below which a loop stays on one thread

int conv2d_out_h(const Conv2dShape *s) { return (s->H + s->pt + s->pb - s->KH) / s->sh + 1; }
int conv2d_out_w(const Conv2dShape *s) { return (s->W + s->pl + s->pr - s->KW) / s->sw + 1; }

static void check_shape(const Conv2dShape *s) {
    CHECK(s->B > 0 && s->H > 0 && s->W > 0 && s->Cin > 0 && s->Cout > 0 && s->KH > 0 && s->KW > 0);
    CHECK(s->sh > 0 && s->sw > 0 && s->pt >= 0 && s->pb >= 0 && s->pl >= 0 && s->pr >= 0);
    CHECK(s->H + s->pt + s->pb >= s->KH && s->W + s->pl + s->pr >= s->KW);
}

static int is_pointwise(const Conv2dShape *s) {
    return s->KH == 1 && s->KW == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 && s->pb == 0 && s->pl == 0 &&
           s->pr == 0;
}

// Grow-only per-thread scratch (two buffers: col and dcol).
static _Thread_local float *tl_buf[2];
static _Thread_local size_t tl_cap[2];

static float *scratch(int which, size_t n) {
    if (tl_cap[which] < n) {
        free(tl_buf[which]);
        tl_buf[which] = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
        CHECKM(tl_buf[which] != NULL, "conv2d: out of memory for im2col scratch");
        tl_cap[which] = n;
    }
    return tl_buf[which];
}

static long tile_pixels(const Conv2dShape *s, long P) {
    long kd = (long)s->KH * s->KW * s->Cin;
    long t = A2F_MAX(COL_BUDGET / kd, MIN_TILE);
    return A2F_MIN(t, P);
}

// col [n, Kd]: row i = receptive field of output pixel p0 + i, zeros in the padding.
// x [B, H, W, Cin].
static void im2col(float *col, const float *x, const Conv2dShape *s, int Ho, int Wo, long p0, long n) {
    const int Cin = s->Cin, KW = s->KW;
    const long kd = (long)s->KH * KW * Cin;
#pragma omp parallel for schedule(static) if (n * kd > PAR_MIN)
    for (long i = 0; i < n; i++) {
        long p = p0 + i;
        int b = (int)(p / ((long)Ho * Wo)), r = (int)(p % ((long)Ho * Wo));
        int oh = r / Wo, ow = r % Wo;
        float *d = col + i * kd;
        for (int kh = 0; kh < s->KH; kh++, d += (long)KW * Cin) {
            int ih = oh * s->sh - s->pt + kh;
            if (ih < 0 || ih >= s->H) {
                memset(d, 0, sizeof(float) * KW * Cin);
                continue;
            }
            const float *xrow = x + ((long)b * s->H + ih) * s->W * Cin;
            for (int kw = 0; kw < KW; kw++) {
                int iw = ow * s->sw - s->pl + kw;
                if (iw < 0 || iw >= s->W)
                    memset(d + kw * Cin, 0, sizeof(float) * Cin);
                else
                    memcpy(d + kw * Cin, xrow + (long)iw * Cin, sizeof(float) * Cin);
            }
        }
    }
}

// dx [B, H, W, Cin] += col2im(dcol [n, Kd]) for output pixels [p0, p0+n): each
// input pixel gathers the taps of the output pixels in the tile that read it.
static void col2im_add(float *dx, const float *dcol, const Conv2dShape *s, int Ho, int Wo, long p0, long n) {
    const int Cin = s->Cin, H = s->H, W = s->W;
    const long kd = (long)s->KH * s->KW * Cin, hw = (long)Ho * Wo;
    // Input rows (b*H + ih) that the tile's first and last output rows can touch.
    long pl = p0 + n - 1;
    int b0 = (int)(p0 / hw), oh0 = (int)(p0 % hw) / Wo;
    int b1 = (int)(pl / hw), oh1 = (int)(pl % hw) / Wo;
    long r_lo = (long)b0 * H + A2F_MAX(0, oh0 * s->sh - s->pt);
    long r_hi = (long)b1 * H + A2F_MIN(H - 1, oh1 * s->sh - s->pt + s->KH - 1);
    long nrows = r_hi - r_lo + 1;
    if (nrows <= 0) return;
#pragma omp parallel for schedule(static) if (nrows * W * kd > PAR_MIN)
    for (long q = 0; q < nrows * W; q++) {
        long r = r_lo + q / W;
        int iw = (int)(q % W);
        int b = (int)(r / H), ih = (int)(r % H);
        float *d = dx + (r * W + iw) * Cin;
        for (int kh = 0; kh < s->KH; kh++) {
            int th = ih + s->pt - kh;  // = oh * sh
            if (th < 0 || th % s->sh) continue;
            int oh = th / s->sh;
            if (oh >= Ho) continue;
            for (int kw = 0; kw < s->KW; kw++) {
                int tw = iw + s->pl - kw;
                if (tw < 0 || tw % s->sw) continue;
                int ow = tw / s->sw;
                if (ow >= Wo) continue;
                long p = ((long)b * Ho + oh) * Wo + ow;
                if (p < p0 || p > pl) continue;
                const float *g = dcol + (p - p0) * kd + ((long)kh * s->KW + kw) * Cin;
                for (int c = 0; c < Cin; c++) d[c] += g[c];
            }
        }
    }
}

// y [n, Cout] = bias broadcast over rows (or 0).
static void fill_bias(float *y, const float *bias, long n, int Cout) {
#pragma omp parallel for schedule(static) if (n * Cout > PAR_MIN)
    for (long i = 0; i < n; i++) memcpy(y + i * Cout, bias, sizeof(float) * Cout);
}

void conv2d_fwd(float *y, const float *x, const float *w, const float *bias, const Conv2dShape *s) {
    check_shape(s);
    const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s), Cout = s->Cout;
    const long P = (long)s->B * Ho * Wo;
    const int kd = s->KH * s->KW * s->Cin;
    if (is_pointwise(s)) {  // y[P, Cout] = x[P, Cin] @ w[Cout, Cin]^T (+ bias)
        CHECK(P <= 0x7fffffffL);
        if (bias) fill_bias(y, bias, P, Cout);
        gemm(0, 1, (int)P, Cout, kd, 1.0f, x, kd, w, kd, bias ? 1.0f : 0.0f, y, Cout);
        return;
    }
    const long tp = tile_pixels(s, P);
    float *col = scratch(0, (size_t)tp * kd);  // [tp, Kd]
    for (long p0 = 0; p0 < P; p0 += tp) {
        long n = A2F_MIN(tp, P - p0);
        float *yt = y + p0 * Cout;  // [n, Cout]
        im2col(col, x, s, Ho, Wo, p0, n);
        if (bias) fill_bias(yt, bias, n, Cout);
        gemm(0, 1, (int)n, Cout, kd, 1.0f, col, kd, w, kd, bias ? 1.0f : 0.0f, yt, Cout);
    }
}

// dbias [Cout] += sum_p dy[p, :] over dy [P, Cout], in double; threads own column blocks.
static void bias_grad(float *dbias, const float *dy, long P, int Cout) {
    enum { CB = 16 };
#pragma omp parallel for schedule(static) if (P * Cout > PAR_MIN)
    for (int c0 = 0; c0 < Cout; c0 += CB) {
        int nc = A2F_MIN(CB, Cout - c0);
        double acc[CB] = {0};
        for (long p = 0; p < P; p++)
            for (int j = 0; j < nc; j++) acc[j] += dy[p * Cout + c0 + j];
        for (int j = 0; j < nc; j++) dbias[c0 + j] += (float)acc[j];
    }
}

void conv2d_bwd(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                const Conv2dShape *s) {
    check_shape(s);
    const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s), Cout = s->Cout;
    const long P = (long)s->B * Ho * Wo;
    const int kd = s->KH * s->KW * s->Cin;
    if (dbias) bias_grad(dbias, dy, P, Cout);
    if (!dx && !dw) return;
    if (is_pointwise(s)) {
        CHECK(P <= 0x7fffffffL);
        if (dx) gemm(0, 0, (int)P, kd, Cout, 1.0f, dy, Cout, w, kd, 1.0f, dx, kd);  // dx[P,Cin] += dy @ w
        if (dw) gemm(1, 0, Cout, kd, (int)P, 1.0f, dy, Cout, x, kd, 1.0f, dw, kd);  // dw += dy^T @ x
        return;
    }
    const long tp = tile_pixels(s, P);
    float *col = dw ? scratch(0, (size_t)tp * kd) : NULL;   // [tp, Kd]
    float *dcol = dx ? scratch(1, (size_t)tp * kd) : NULL;  // [tp, Kd]
    for (long p0 = 0; p0 < P; p0 += tp) {
        long n = A2F_MIN(tp, P - p0);
        const float *dyt = dy + p0 * Cout;  // [n, Cout]
        if (dw) {
            im2col(col, x, s, Ho, Wo, p0, n);
            gemm(1, 0, Cout, kd, (int)n, 1.0f, dyt, Cout, col, kd, 1.0f, dw, kd);
        }
        if (dx) {
            gemm(0, 0, (int)n, kd, Cout, 1.0f, dyt, Cout, w, kd, 0.0f, dcol, kd);
            col2im_add(dx, dcol, s, Ho, Wo, p0, n);
        }
    }
}
