// conv2d.cu: NHWC convolution as im2col + cuBLAS GEMM (see conv2d.h; the CPU
// version, kernels/cpu/conv2d.c, has the same structure).
//
// With weights [Cout, Kd], Kd = KH*KW*Cin, the convolution is the GEMM
//   y[P, Cout] = col[P, Kd] @ w[Cout, Kd]^T (+ bias),  P = B*Ho*Wo,
// where row p of col is output pixel p's receptive field (NHWC makes each (kh, kw)
// tap one contiguous run of Cin values). col is built for tiles of at most
// tile_pixels() output pixels in dev_workspace(), so scratch memory is bounded.
// 1x1 stride-1 unpadded convolutions use x itself as col.
// Backward, per tile:
//   dw[Cout, Kd]  += dy_tile^T @ col_tile        (GEMM, T operands, fp32 output)
//   dcol[n, Kd]    = dy_tile @ w                 (GEMM, fp32 output)
//   dx            += col2im(dcol): one thread per input element whose last reader is
//                    in this tile gathers all its readers' taps (from this tile's and
//                    the previous tile's dcol; no atomics: deterministic), so every
//                    dx element is loaded, added to in fp32 and rounded exactly once
//   dbias[Cout]   += column sums of dy           (cuda_bias_grad, linear.cu)
#include "common.cuh"
#include "conv2d.h"
#include "device.h"
#include "gemm.h"
#include "linear.h"

#define COL_BUDGET (8L << 20)  // col elements per tile (bf16: 16 MiB; backward adds 2 x 32 MiB of fp32 dcol)
#define MIN_TILE 256            // output pixels per tile at least (keeps GEMM M efficient)

static long g_tile_pixels = 0;  // tests: fixed tile size

extern "C" void cuda_conv2d_set_tile_pixels(long pixels) { g_tile_pixels = pixels > 0 ? pixels : 0; }

static int out_h(const Conv2dShape *s) { return (s->H + s->pt + s->pb - s->KH) / s->sh + 1; }
static int out_w(const Conv2dShape *s) { return (s->W + s->pl + s->pr - s->KW) / s->sw + 1; }

static int shape_ok(const Conv2dShape *s) {
    return s->B > 0 && s->H > 0 && s->W > 0 && s->Cin > 0 && s->Cout > 0 && s->KH > 0 && s->KW > 0 && s->sh > 0 &&
           s->sw > 0 && s->pt >= 0 && s->pb >= 0 && s->pl >= 0 && s->pr >= 0 && s->H + s->pt + s->pb >= s->KH &&
           s->W + s->pl + s->pr >= s->KW;
}

static int is_pointwise(const Conv2dShape *s) {
    return s->KH == 1 && s->KW == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 && s->pb == 0 && s->pl == 0 &&
           s->pr == 0;
}

// Output pixels per tile: the budget, at least MIN_TILE, and at least
// (ceil(KH/sh) + 1) * Wo, which col2im_add needs (readers of one input element span
// fewer pixels than that).
static long tile_pixels(const Conv2dShape *s, long P) {
    const long kd = (long)s->KH * s->KW * s->Cin, Wo = out_w(s);
    long t = g_tile_pixels > 0 ? g_tile_pixels : (COL_BUDGET / kd > MIN_TILE ? COL_BUDGET / kd : MIN_TILE);
    const long span = ((s->KH + s->sh - 1) / s->sh + 1) * Wo;
    if (t < span) t = span;
    return t < P ? t : P;
}

namespace {

// col [n, Kd] (T): row i = receptive field of output pixel p0 + i, zeros in the
// padding. Each thread copies V consecutive channels of one tap (V = 16 bytes / T
// when Cin * sizeof(T) is a multiple of 16 and x is 16-byte aligned, else 1).
// x [B, H, W, Cin] (T).
template <typename T, int V>
__global__ void im2col_kernel(T *__restrict__ col, const T *__restrict__ x, Conv2dShape s, int Ho, int Wo, long p0,
                              long n) {
    const int cv = s.Cin / V, taps = s.KH * s.KW;
    const long kd = (long)taps * s.Cin;
    GRID_STRIDE(i, (size_t)n * taps * cv) {
        const int c = (int)(i % cv) * V;
        const size_t t = i / cv;
        const int tap = (int)(t % taps);
        const long pix = (long)(t / taps);
        const long p = p0 + pix;
        const int b = (int)(p / ((long)Ho * Wo));
        const int r = (int)(p % ((long)Ho * Wo));
        const int oh = r / Wo, ow = r % Wo, kh = tap / s.KW, kw = tap % s.KW;
        const int ih = oh * s.sh - s.pt + kh, iw = ow * s.sw - s.pl + kw;
        T *dst = col + pix * kd + (long)tap * s.Cin + c;
        const bool inside = ih >= 0 && ih < s.H && iw >= 0 && iw < s.W;
        const T *src = x + (((size_t)b * s.H + ih) * s.W + iw) * s.Cin + c;
        if constexpr (V * sizeof(T) == 16) {
            uint4 v = make_uint4(0, 0, 0, 0);
            if (inside) v = *(const uint4 *)src;
            *(uint4 *)dst = v;
        } else {
            for (int k = 0; k < V; k++) dst[k] = inside ? src[k] : from_f32<T>(0.0f);
        }
    }
}

template <typename T>
static void im2col(T *col, const T *x, const Conv2dShape *s, int Ho, int Wo, long p0, long n, cudaStream_t st) {
    const int vec = 16 / (int)sizeof(T);
    const bool vector_ok = (s->Cin % vec) == 0 && ((uintptr_t)x % 16) == 0 && ((uintptr_t)col % 16) == 0;
    const size_t items = (size_t)n * s->KH * s->KW * (vector_ok ? s->Cin / vec : s->Cin);
    if (vector_ok)
        im2col_kernel<T, 16 / sizeof(T)><<<grid_for(items, 256), 256, 0, st>>>(col, x, *s, Ho, Wo, p0, n);
    else
        im2col_kernel<T, 1><<<grid_for(items, 256), 256, 0, st>>>(col, x, *s, Ho, Wo, p0, n);
}

// dx [B, H, W, Cin] (T) += col2im of the output-pixel gradients dcol [., Kd] (float)
// for the input elements whose LAST reading output pixel lies in the current tile
// [p0, p0 + n): every input element is finished in exactly one tile and rounded once.
// Its other readers lie in the same tile or the previous one (dcol_prev, tile
// starting at pprev0): tiles are at least (ceil(KH/sh) + 1) * Wo pixels long, more
// than the pixel-index span of one input element's readers. Threads cover the input
// rows [r_lo, r_lo + nrows) (row = b*H + ih) the tile can touch; each gathers its taps
// in fixed (kh, kw) order (no atomics: deterministic).
template <typename T>
__global__ void col2im_add_kernel(T *__restrict__ dx, const float *__restrict__ dcol,
                                  const float *__restrict__ dcol_prev, Conv2dShape s, int Ho, int Wo, long p0, long n,
                                  long pprev0, long r_lo, long nrows) {
    const long kd = (long)s.KH * s.KW * s.Cin, pl = p0 + n - 1;
    GRID_STRIDE(i, (size_t)nrows * s.W * s.Cin) {
        const int c = (int)(i % s.Cin);
        const size_t q = i / s.Cin;
        const int iw = (int)(q % s.W);
        const long row = r_lo + (long)(q / s.W);
        const int b = (int)(row / s.H), ih = (int)(row % s.H);
        // last reader: the largest oh (ow) with oh*sh in [ih + pt - KH + 1, ih + pt] and oh < Ho
        const int th = ih + s.pt, tw = iw + s.pl;
        if (th < 0 || tw < 0) continue;
        const int oh_max = min(th / s.sh, Ho - 1), ow_max = min(tw / s.sw, Wo - 1);
        if (oh_max * s.sh < th - s.KH + 1 || ow_max * s.sw < tw - s.KW + 1) continue;  // no reader at all
        const long p_last = ((long)b * Ho + oh_max) * Wo + ow_max;
        if (p_last < p0 || p_last > pl) continue;  // finished by another tile
        float g = 0.0f;
        for (int kh = 0; kh < s.KH; kh++) {
            const int h = th - kh;  // = oh * sh
            if (h < 0 || h % s.sh) continue;
            const int oh = h / s.sh;
            if (oh >= Ho) continue;
            for (int kw = 0; kw < s.KW; kw++) {
                const int w = tw - kw;
                if (w < 0 || w % s.sw) continue;
                const int ow = w / s.sw;
                if (ow >= Wo) continue;
                const long p = ((long)b * Ho + oh) * Wo + ow;
                const long tap = ((long)kh * s.KW + kw) * s.Cin + c;
                g += p >= p0 ? dcol[(p - p0) * kd + tap] : dcol_prev[(p - pprev0) * kd + tap];
            }
        }
        T *d = dx + ((size_t)row * s.W + iw) * s.Cin + c;
        *d = from_f32<T>(to_f32(*d) + g);
    }
}

template <typename T>
static void col2im_add(T *dx, const float *dcol, const float *dcol_prev, const Conv2dShape *s, int Ho, int Wo,
                       long p0, long n, long pprev0, cudaStream_t st) {
    const int H = s->H;
    const long hw = (long)Ho * Wo, pl = p0 + n - 1;
    const int b0 = (int)(p0 / hw), oh0 = (int)((p0 % hw) / Wo);
    const int b1 = (int)(pl / hw), oh1 = (int)((pl % hw) / Wo);
    int lo = oh0 * s->sh - s->pt, hi = oh1 * s->sh - s->pt + s->KH - 1;
    const long r_lo = (long)b0 * H + (lo > 0 ? lo : 0);
    const long r_hi = (long)b1 * H + (hi < H - 1 ? hi : H - 1);
    const long nrows = r_hi - r_lo + 1;
    if (nrows <= 0) return;
    const size_t items = (size_t)nrows * s->W * s->Cin;
    col2im_add_kernel<T><<<grid_for(items, 256), 256, 0, st>>>(dx, dcol, dcol_prev, *s, Ho, Wo, p0, n, pprev0, r_lo,
                                                               nrows);
}

}  // namespace

extern "C" int cuda_conv2d_fwd(DType dt, void *y, const void *x, const void *w, const void *bias,
                               const Conv2dShape *sh, cudaStream_t s) {
    if (!shape_ok(sh)) return (int)cudaErrorInvalidValue;
    const int Ho = out_h(sh), Wo = out_w(sh), Cout = sh->Cout, kd = sh->KH * sh->KW * sh->Cin;
    const long P = (long)sh->B * Ho * Wo;
    if (P > 0x7fffffffL) return (int)cudaErrorInvalidValue;
    // y[P, Cout] = x[P, Cin] @ w[Cout, Cin]^T + bias
    if (is_pointwise(sh)) return cuda_gemm_bias(dt, 0, 1, (int)P, Cout, kd, x, kd, w, kd, bias, y, Cout, s);
    const long tp = tile_pixels(sh, P);
    DISPATCH_T(dt, {
        T *col = (T *)dev_workspace((size_t)tp * kd * sizeof(T));  // [tp, Kd]
        if (!col) return (int)cudaErrorMemoryAllocation;
        for (long p0 = 0; p0 < P; p0 += tp) {
            const long n = P - p0 < tp ? P - p0 : tp;
            im2col<T>(col, (const T *)x, sh, Ho, Wo, p0, n, s);
            int rc = (int)cudaGetLastError();
            if (!rc) rc = cuda_gemm_bias(dt, 0, 1, (int)n, Cout, kd, col, kd, w, kd, bias, (T *)y + p0 * Cout, Cout, s);
            if (rc) return rc;
        }
    });
    return (int)cudaGetLastError();
}

extern "C" int cuda_conv2d_bwd(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x,
                               const void *w, const Conv2dShape *sh, cudaStream_t s) {
    if (!shape_ok(sh)) return (int)cudaErrorInvalidValue;
    const int Ho = out_h(sh), Wo = out_w(sh), Cout = sh->Cout, kd = sh->KH * sh->KW * sh->Cin;
    const long P = (long)sh->B * Ho * Wo;
    if (P > 0x7fffffffL) return (int)cudaErrorInvalidValue;
    int rc;
    // first: it uses dev_workspace() itself, which the tiles below then hold
    if (dbias && (rc = cuda_bias_grad(dt, dbias, dy, P, Cout, s))) return rc;
    if (is_pointwise(sh)) {
        // dx[P, Cin] += dy[P, Cout] @ w[Cout, Cin];  dw[Cout, Cin] += dy^T @ x
        if (dx && (rc = cuda_gemm(dt, 0, 0, (int)P, kd, Cout, 1.0f, dy, Cout, w, kd, 1.0f, dx, kd, s))) return rc;
        if (dw && (rc = cuda_gemm_f32out(dt, 1, 0, Cout, kd, (int)P, 1.0f, dy, Cout, x, kd, 1.0f, dw, kd, s)))
            return rc;
        return (int)cudaGetLastError();
    }
    if (!dx && !dw) return (int)cudaGetLastError();
    const long tp = tile_pixels(sh, P);
    DISPATCH_T(dt, {
        // workspace: col [tp, Kd] (T), then two dcol [tp, Kd] (float) buffers (this tile's
        // and the previous one's), each at a 256-byte boundary
        const size_t col_bytes = ((size_t)tp * kd * sizeof(T) + 255) & ~(size_t)255;
        const size_t dcol_bytes = ((size_t)tp * kd * sizeof(float) + 255) & ~(size_t)255;
        char *ws = (char *)dev_workspace(col_bytes + (dx ? 2 * dcol_bytes : 0));
        if (!ws) return (int)cudaErrorMemoryAllocation;
        T *col = (T *)ws;
        float *dcols[2] = {(float *)(ws + col_bytes), (float *)(ws + col_bytes + dcol_bytes)};
        const T *dyT = (const T *)dy;
        for (long p0 = 0, t = 0; p0 < P; p0 += tp, t++) {
            float *dcol = dcols[t & 1], *dcol_prev = dcols[(t + 1) & 1];
            const long n = P - p0 < tp ? P - p0 : tp;
            const T *dyt = dyT + p0 * Cout;  // [n, Cout]
            if (dw) {
                im2col<T>(col, (const T *)x, sh, Ho, Wo, p0, n, s);
                if ((rc = (int)cudaGetLastError())) return rc;
                // dw[Cout, Kd] += dy_tile^T [Cout, n] @ col [n, Kd]
                if ((rc = cuda_gemm_f32out(dt, 1, 0, Cout, kd, (int)n, 1.0f, dyt, Cout, col, kd, 1.0f, dw, kd, s)))
                    return rc;
            }
            if (dx) {
                // dcol[n, Kd] = dy_tile [n, Cout] @ w [Cout, Kd]
                if ((rc = cuda_gemm_f32out(dt, 0, 0, (int)n, kd, Cout, 1.0f, dyt, Cout, w, kd, 0.0f, dcol, kd, s)))
                    return rc;
                col2im_add<T>((T *)dx, dcol, dcol_prev, sh, Ho, Wo, p0, n, p0 - tp, s);
                if ((rc = (int)cudaGetLastError())) return rc;
            }
        }
    });
    return (int)cudaGetLastError();
}
