// conv2d.cu: NHWC convolution: the dispatcher cuda_conv2d_fwd/bwd (see conv2d.h)
// over four paths, and the "im2col" path itself.
//
// Paths: "tc" (tensor-core implicit GEMM, conv_tc.cu, bf16 only), "im2col"
// (below), "cudnn" (cuDNN's legacy convolution API, NHWC, only when built with
// A2F_HAVE_CUDNN and the padding is symmetric), "cudnn-graph" (cuDNN through its
// graph API, cudnn_conv.cu: any padding; forced only until a GPU has checked it).
// Policy (cuda_conv2d_force or the A2F_CONV environment variable,
// auto|tc|im2col|cudnn|cudnn-graph, default auto):
//   forced: that path where it applies, else tc (bf16) / im2col (f32);
//   auto under the SIMT emulator: tc for bf16, im2col for f32;
//   auto on a GPU: the first call for a (shape, dtype, pass, candidate set) runs every
//     candidate twice on scratch outputs and keeps the faster second run in a small
//     table (so that first call is slower and allocates scratch memory). Candidates
//     are the paths that keep the backend's numerics: tc (bf16), im2col, and cuDNN
//     for fwd without residual (bias preloaded into y, beta = 1: one rounding), for
//     bwd data (beta = 1), and for bwd weight in f32 only (cuDNN writes a bf16 dw
//     for bf16 data; forced cudnn does that into a scratch and adds it to dw).
// A residual (cuda_conv2d_fwd_res) is fused into the tc epilogue; the other paths
// add it afterwards (a second rounding), so auto uses tc for bf16 with residual.
//
// im2col path: im2col + cuBLAS GEMM (the CPU version, kernels/cpu/conv2d.c, has the
// same structure).
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
#include "conv_tc.h"
#include "cudnn_conv.h"

#include <stdlib.h>
#include <string.h>
#ifdef A2F_HAVE_CUDNN
#include <cudnn.h>
#endif

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

static int im2col_fwd(DType dt, void *y, const void *x, const void *w, const void *bias, const Conv2dShape *sh,
                      cudaStream_t s) {
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

// dx +=, dw += by im2col + GEMM (dbias: the dispatcher, cuda_conv2d_bwd).
static int im2col_bwd(DType dt, void *dx, float *dw, const void *dy, const void *x, const void *w,
                      const Conv2dShape *sh, cudaStream_t s) {
    if (!shape_ok(sh)) return (int)cudaErrorInvalidValue;
    const int Ho = out_h(sh), Wo = out_w(sh), Cout = sh->Cout, kd = sh->KH * sh->KW * sh->Cin;
    const long P = (long)sh->B * Ho * Wo;
    if (P > 0x7fffffffL) return (int)cudaErrorInvalidValue;
    int rc;
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

// ---------------------------------------------------------------- small kernels
namespace {

// y [P, C] (T) = bias [C] broadcast over rows (cuDNN path: conv then adds with beta = 1).
template <typename T>
__global__ void fill_bias_kernel(T *__restrict__ y, const T *__restrict__ bias, size_t n, int C) {
    GRID_STRIDE(i, n) y[i] = bias[i % C];
}
// y [n] (T) = round(y + r) (residual added after a non-fused path).
template <typename T>
__global__ void add_inplace_kernel(T *__restrict__ y, const T *__restrict__ r, size_t n) {
    GRID_STRIDE(i, n) y[i] = from_f32<T>(to_f32(y[i]) + to_f32(r[i]));
}
// dw [n] (float) += t [n] (T).
template <typename T>
__global__ void acc_f32_kernel(float *__restrict__ dw, const T *__restrict__ t, size_t n) {
    GRID_STRIDE(i, n) dw[i] += to_f32(t[i]);
}

}  // namespace

// ---------------------------------------------------------------- cuDNN path
enum { PATH_TC = 0, PATH_IM2COL = 1, PATH_CUDNN = 2, PATH_CUDNN_GRAPH = 3, NPATHS = 4 };
static const char *const g_path_name[NPATHS] = {"tc", "im2col", "cudnn", "cudnn-graph"};

static bool same_shape(const Conv2dShape *a, const Conv2dShape *b) { return memcmp(a, b, sizeof *a) == 0; }

#ifdef A2F_HAVE_CUDNN
#define DNN_WS_LIMIT ((size_t)1 << 30)  // largest cuDNN workspace an algorithm may ask for

static cudnnHandle_t g_dnn;
static int g_dnn_state = 0;  // 0 untried, 1 ready, -1 unavailable

static bool dnn_ready() {
    if (!g_dnn_state) g_dnn_state = cudnnCreate(&g_dnn) == CUDNN_STATUS_SUCCESS ? 1 : -1;
    return g_dnn_state == 1;
}

static bool dnn_applies(const Conv2dShape *s) { return s->pt == s->pb && s->pl == s->pr && dnn_ready(); }

struct DnnDesc {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t c = nullptr;
    ~DnnDesc() {
        if (x) cudnnDestroyTensorDescriptor(x);
        if (y) cudnnDestroyTensorDescriptor(y);
        if (w) cudnnDestroyFilterDescriptor(w);
        if (c) cudnnDestroyConvolutionDescriptor(c);
    }
};

// Descriptors of x [B,H,W,Cin], y [B,Ho,Wo,Cout], w [Cout,KH,KW,Cin] (NHWC = KRSC), all dt.
static bool dnn_desc(DnnDesc &d, const Conv2dShape *s, DType dt) {
    const cudnnDataType_t t = dt == DT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    return cudnnCreateTensorDescriptor(&d.x) == CUDNN_STATUS_SUCCESS &&
           cudnnCreateTensorDescriptor(&d.y) == CUDNN_STATUS_SUCCESS &&
           cudnnCreateFilterDescriptor(&d.w) == CUDNN_STATUS_SUCCESS &&
           cudnnCreateConvolutionDescriptor(&d.c) == CUDNN_STATUS_SUCCESS &&
           cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, t, s->B, s->Cin, s->H, s->W) == CUDNN_STATUS_SUCCESS &&
           cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, t, s->B, s->Cout, out_h(s), out_w(s)) ==
               CUDNN_STATUS_SUCCESS &&
           cudnnSetFilter4dDescriptor(d.w, t, CUDNN_TENSOR_NHWC, s->Cout, s->Cin, s->KH, s->KW) ==
               CUDNN_STATUS_SUCCESS &&
           cudnnSetConvolution2dDescriptor(d.c, s->pt, s->pl, s->sh, s->sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT) == CUDNN_STATUS_SUCCESS &&
           // f32: plain FMA (no TF32); bf16: tensor cores, which CUDNN_DEFAULT_MATH does not
           // offer cudnnFind* (measured on an H200: 0.5-25 TFLOP/s with it, as PyTorch sets this)
           cudnnSetConvolutionMathType(d.c, dt == DT_BF16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH) ==
               CUDNN_STATUS_SUCCESS;
}

// Chosen algorithm per (shape, dtype, pass): the fastest deterministic one cudnnFind*
// reports (f32: without TF32), with a workspace of at most DNN_WS_LIMIT.
struct DnnAlgo {
    Conv2dShape s;
    DType dt;
    int which, algo, ok;
    cudnnMathType_t math;
    size_t ws;
};
#define DNN_CACHE 256
static DnnAlgo g_dnn_algo[DNN_CACHE];
static int g_dnn_n = 0, g_dnn_next = 0;

template <typename Perf>
static bool dnn_pick(const Perf *perf, int n, DType dt, DnnAlgo *a) {
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        if (perf[i].memory > DNN_WS_LIMIT) continue;
        if (dt == DT_F32 && perf[i].mathType != CUDNN_FMA_MATH) continue;
        a->algo = (int)perf[i].algo, a->math = perf[i].mathType, a->ws = perf[i].memory, a->ok = 1;
        return true;
    }
    return false;
}

static const DnnAlgo *dnn_algo(DnnDesc &d, const Conv2dShape *s, DType dt, int which) {
    for (int i = 0; i < g_dnn_n; i++)
        if (g_dnn_algo[i].dt == dt && g_dnn_algo[i].which == which && same_shape(&g_dnn_algo[i].s, s))
            return g_dnn_algo[i].ok ? &g_dnn_algo[i] : nullptr;
    DnnAlgo a = {};
    a.s = *s, a.dt = dt, a.which = which;
    int n = 0;
    if (which == 0) {
        cudnnConvolutionFwdAlgoPerf_t perf[16];
        if (cudnnFindConvolutionForwardAlgorithm(g_dnn, d.x, d.w, d.c, d.y, 16, &n, perf) == CUDNN_STATUS_SUCCESS)
            dnn_pick(perf, n, dt, &a);
    } else if (which == 1) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[16];
        if (cudnnFindConvolutionBackwardDataAlgorithm(g_dnn, d.w, d.y, d.c, d.x, 16, &n, perf) ==
            CUDNN_STATUS_SUCCESS)
            dnn_pick(perf, n, dt, &a);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[16];
        if (cudnnFindConvolutionBackwardFilterAlgorithm(g_dnn, d.x, d.y, d.c, d.w, 16, &n, perf) ==
            CUDNN_STATUS_SUCCESS)
            dnn_pick(perf, n, dt, &a);
    }
    cudaGetLastError();  // Find may leave a recorded error from algorithms it rejected
    DnnAlgo *slot = g_dnn_n < DNN_CACHE ? &g_dnn_algo[g_dnn_n++] : &g_dnn_algo[g_dnn_next++ % DNN_CACHE];
    *slot = a;
    return slot->ok ? slot : nullptr;
}

static int dnn_status(cudnnStatus_t st) {
    if (st == CUDNN_STATUS_SUCCESS) return (int)cudaGetLastError();
    fprintf(stderr, "conv2d cudnn: %s\n", cudnnGetErrorString(st));
    return st == CUDNN_STATUS_ALLOC_FAILED ? (int)cudaErrorMemoryAllocation : (int)cudaErrorNotSupported;
}

// which 0: y = conv(x, w) (+ bias, preloaded with beta = 1); 1: dx += (beta = 1);
// 2: dw += (f32: beta = 1; bf16: into a bf16 scratch, then added in fp32).
static int dnn_run(int which, DType dt, void *out, const void *a, const void *b, const void *bias,
                   const Conv2dShape *s, cudaStream_t st) {
    DnnDesc d;
    if (!dnn_desc(d, s, dt)) return (int)cudaErrorNotSupported;
    if (cudnnSetStream(g_dnn, st) != CUDNN_STATUS_SUCCESS) return (int)cudaErrorNotSupported;
    const DnnAlgo *al = dnn_algo(d, s, dt, which);
    if (!al) return (int)cudaErrorNotSupported;
    if (cudnnSetConvolutionMathType(d.c, al->math) != CUDNN_STATUS_SUCCESS) return (int)cudaErrorNotSupported;
    const size_t esz = dt == DT_BF16 ? 2 : 4, nw = (size_t)s->Cout * s->KH * s->KW * s->Cin;
    const bool scratch_dw = which == 2 && dt == DT_BF16;
    const size_t wsb = (al->ws + 255) & ~(size_t)255;
    char *ws = (char *)dev_workspace(wsb + (scratch_dw ? nw * esz : 0) + 1);
    if (!ws) return (int)cudaErrorMemoryAllocation;
    const float one = 1.0f, zero = 0.0f;
    if (which == 0) {
        const size_t ny = (size_t)s->B * out_h(s) * out_w(s) * s->Cout;
        if (bias) DISPATCH_T(dt, fill_bias_kernel<T><<<grid_for(ny, 256), 256, 0, st>>>((T *)out, (const T *)bias,
                                                                                          ny, s->Cout));
        return dnn_status(cudnnConvolutionForward(g_dnn, &one, d.x, a, d.w, b, d.c, (cudnnConvolutionFwdAlgo_t)al->algo,
                                                  ws, al->ws, bias ? &one : &zero, d.y, out));
    }
    if (which == 1)  // a = dy, b = w
        return dnn_status(cudnnConvolutionBackwardData(g_dnn, &one, d.w, b, d.y, a, d.c,
                                                       (cudnnConvolutionBwdDataAlgo_t)al->algo, ws, al->ws, &one, d.x,
                                                       out));
    // a = dy, b = x
    void *dst = scratch_dw ? (void *)(ws + wsb) : out;
    int rc = dnn_status(cudnnConvolutionBackwardFilter(g_dnn, &one, d.x, b, d.y, a, d.c,
                                                       (cudnnConvolutionBwdFilterAlgo_t)al->algo, ws, al->ws,
                                                       scratch_dw ? &zero : &one, d.w, dst));
    if (rc || !scratch_dw) return rc;
    acc_f32_kernel<bf16><<<grid_for(nw, 256), 256, 0, st>>>((float *)out, (const bf16 *)dst, nw);
    return (int)cudaGetLastError();
}
#else
static bool dnn_applies(const Conv2dShape *) { return false; }
static int dnn_run(int, DType, void *, const void *, const void *, const void *, const Conv2dShape *, cudaStream_t) {
    return (int)cudaErrorNotSupported;
}
#endif

extern "C" int cuda_conv2d_have_cudnn(void) {
#ifdef A2F_HAVE_CUDNN
    return dnn_ready() ? 1 : 0;
#else
    return 0;
#endif
}

// ---------------------------------------------------------------- policy
static int g_policy = -2;  // -2: not read yet; -1: auto; else a PATH_*

static int parse_path(const char *p) {
    if (!p || !*p || !strcmp(p, "auto")) return -1;
    for (int i = 0; i < NPATHS; i++)
        if (!strcmp(p, g_path_name[i])) return i;
    return -3;
}

static int policy() {
    if (g_policy == -2) {
        const int p = parse_path(getenv("A2F_CONV"));
        if (p == -3) fprintf(stderr, "A2F_CONV=%s: unknown (auto|tc|im2col|cudnn|cudnn-graph); using auto\n", getenv("A2F_CONV"));
        g_policy = p == -3 ? -1 : p;
    }
    return g_policy;
}

extern "C" int cuda_conv2d_force(const char *path) {
    if (!path) {
        g_policy = -2;
        return 0;
    }
    const int p = parse_path(path);
    if (p == -3) return -1;
    g_policy = p;
    return 0;
}

// Can `path` run pass `which` for dt? strict: auto's stricter numerics rule (see top).
static bool applies(int path, int which, DType dt, bool has_res, const Conv2dShape *s, bool strict) {
    if (path == PATH_TC) return dt == DT_BF16;
    if (path == PATH_IM2COL) return !(strict && has_res && dt == DT_BF16);
    // cuDNN through the graph API: forced only, until a GPU run of make test-gpu has
    // checked its numerics (cuDNN accepts its graphs offline: tests/cudnn/)
    if (path == PATH_CUDNN_GRAPH) return !strict && cuda_cudnn_conv_available(dt, s, which, nullptr);
    if (!dnn_applies(s)) return false;
    if (!strict) return true;
    if (which == 0) return !(has_res && dt == DT_BF16);
    if (which == 2) return dt == DT_F32;
    return true;
}

// One call of a convolution pass, for running and timing the paths.
struct ConvCall {
    DType dt;
    const Conv2dShape *s;
    const void *x, *w, *bias, *res, *dy;
    void *y, *dx;
    float *dw;
    cudaStream_t st;
};

static int add_residual(DType dt, void *y, const void *res, size_t n, cudaStream_t st) {
    DISPATCH_T(dt, add_inplace_kernel<T><<<grid_for(n, 256), 256, 0, st>>>((T *)y, (const T *)res, n));
    return (int)cudaGetLastError();
}

// Residual for the non-fused paths when y == res: y is computed into this buffer first.
static void *g_tmp;
static size_t g_tmp_bytes;
static void *tmp_buffer(size_t bytes) {
    if (bytes > g_tmp_bytes) {
        dev_free(g_tmp);
        g_tmp = dev_malloc(bytes);
        g_tmp_bytes = g_tmp ? bytes : 0;
    }
    return g_tmp;
}

static int run_path(int path, int which, const ConvCall &c) {
    const Conv2dShape *s = c.s;
    if (which == 0) {
        if (path == PATH_TC) return cuda_conv_tc_fwd(c.y, c.x, c.w, c.bias, c.res, s, c.st);
        const size_t ny = (size_t)s->B * out_h(s) * out_w(s) * s->Cout, bytes = ny * dtype_size(c.dt);
        void *y = c.y;
        if (c.res && c.res == c.y) {
            if (!(y = tmp_buffer(bytes))) return (int)cudaErrorMemoryAllocation;
        }
        int rc = path == PATH_IM2COL         ? im2col_fwd(c.dt, y, c.x, c.w, c.bias, s, c.st)
                 : path == PATH_CUDNN_GRAPH ? cuda_cudnn_conv_run(0, c.dt, y, c.x, c.w, c.bias, s, c.st)
                                            : dnn_run(0, c.dt, y, c.x, c.w, c.bias, s, c.st);
        if (!rc && c.res) rc = y == c.y ? add_residual(c.dt, c.y, c.res, ny, c.st)
                                        : add_residual(c.dt, c.y, y, ny, c.st);  // c.y holds res
        return rc;
    }
    if (which == 1) {
        if (path == PATH_TC) return cuda_conv_tc_bwd_data(c.dx, c.dy, c.w, s, c.st);
        if (path == PATH_IM2COL) return im2col_bwd(c.dt, c.dx, nullptr, c.dy, c.x, c.w, s, c.st);
        if (path == PATH_CUDNN_GRAPH) return cuda_cudnn_conv_run(1, c.dt, c.dx, c.dy, c.w, nullptr, s, c.st);
        return dnn_run(1, c.dt, c.dx, c.dy, c.w, nullptr, s, c.st);
    }
    if (path == PATH_TC) return cuda_conv_tc_bwd_weight(c.dw, c.dy, c.x, s, c.st);
    if (path == PATH_IM2COL) return im2col_bwd(c.dt, nullptr, c.dw, c.dy, c.x, c.w, s, c.st);
    if (path == PATH_CUDNN_GRAPH) return cuda_cudnn_conv_run(2, c.dt, c.dw, c.dy, c.x, nullptr, s, c.st);
    return dnn_run(2, c.dt, c.dw, c.dy, c.x, nullptr, s, c.st);
}

// auto's table: winner per (shape, dtype, pass, candidate mask).
struct Choice {
    Conv2dShape s;
    DType dt;
    int which, mask, path;
};
#define CHOICES 512
static Choice g_choice[CHOICES];
static int g_nchoice = 0, g_choice_next = 0;

static const Choice *find_choice(const Conv2dShape *s, DType dt, int which, int mask) {
    for (int i = g_nchoice - 1; i >= 0; i--) {
        const Choice &c = g_choice[i];
        if (c.dt == dt && c.which == which && (mask < 0 || c.mask == mask) && same_shape(&c.s, s)) return &c;
    }
    return nullptr;
}

// Times each candidate (twice; the second run counts) on scratch outputs.
// Timed runs per candidate after its warm-up: one run of a ~20 us kernel is noisy
// (seen on an H200: single-run choices that the benchmark's medians contradicted).
#define TUNE_RUNS 3

static int time_paths(int which, const ConvCall &c, int mask) {
    const Conv2dShape *s = c.s;
    const size_t esz = dtype_size(c.dt);
    const size_t bytes = which == 0   ? (size_t)s->B * out_h(s) * out_w(s) * s->Cout * esz
                         : which == 1 ? (size_t)s->B * s->H * s->W * s->Cin * esz
                                      : (size_t)s->Cout * s->KH * s->KW * s->Cin * sizeof(float);
    void *scratch = dev_malloc(bytes);
    if (!scratch) return -1;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    ConvCall t = c;
    if (which == 0) t.y = scratch;
    if (which == 1) t.dx = scratch;
    if (which == 2) t.dw = (float *)scratch;
    if (which > 0) cudaMemsetAsync(scratch, 0, bytes, c.st);
    int best = -1;
    float best_ms = 0.0f;
    for (int p = 0; p < NPATHS; p++) {
        if (!(mask >> p & 1)) continue;
        int rc = run_path(p, which, t);  // warm-up (algorithm search, module load)
        cudaEventRecord(e0, c.st);
        for (int r = 0; r < TUNE_RUNS && !rc; r++) rc = run_path(p, which, t);
        cudaEventRecord(e1, c.st);
        if (cudaEventSynchronize(e1) != cudaSuccess) rc = 1;
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, e0, e1);
        cudaGetLastError();
        if (!rc && (best < 0 || ms < best_ms)) best = p, best_ms = ms;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    dev_free(scratch);
    return best;
}

// The path for pass `which` of call c.
static int choose(int which, const ConvCall &c) {
    const bool has_res = which == 0 && c.res;
    const int pol = policy();
    if (pol >= 0) {
        if (applies(pol, which, c.dt, has_res, c.s, false)) return pol;
        return c.dt == DT_BF16 ? PATH_TC : PATH_IM2COL;
    }
#ifdef SIMT_EMULATOR
    return c.dt == DT_BF16 ? PATH_TC : PATH_IM2COL;
#else
    int mask = 0;
    for (int p = 0; p < NPATHS; p++)
        if (applies(p, which, c.dt, has_res, c.s, true)) mask |= 1 << p;
    if (!(mask & (mask - 1))) return mask ? __builtin_ctz(mask) : PATH_IM2COL;
    const Choice *ch = find_choice(c.s, c.dt, which, mask);
    if (ch) return ch->path;
    int best = time_paths(which, c, mask);
    if (best < 0) best = c.dt == DT_BF16 ? PATH_TC : PATH_IM2COL;
    Choice *slot = g_nchoice < CHOICES ? &g_choice[g_nchoice++] : &g_choice[g_choice_next++ % CHOICES];
    *slot = Choice{*c.s, c.dt, which, mask, best};
    return best;
#endif
}

extern "C" const char *cuda_conv2d_path(const Conv2dShape *s, int which) {
    const int pol = policy();
    if (pol >= 0) return g_path_name[applies(pol, which, DT_BF16, false, s, false) ? pol : PATH_TC];
#ifdef SIMT_EMULATOR
    return g_path_name[PATH_TC];
#else
    const Choice *ch = find_choice(s, DT_BF16, which, -1);
    return ch ? g_path_name[ch->path] : "untimed";
#endif
}

// ---------------------------------------------------------------- launchers
extern "C" int cuda_conv2d_fwd_res(DType dt, void *y, const void *x, const void *w, const void *bias,
                                   const void *res, const Conv2dShape *sh, cudaStream_t s) {
    if (!shape_ok(sh)) return (int)cudaErrorInvalidValue;
    if (dt != DT_F32 && dt != DT_BF16) return (int)cudaErrorInvalidValue;
    ConvCall c = {dt, sh, x, w, bias, res, nullptr, y, nullptr, nullptr, s};
    return run_path(choose(0, c), 0, c);
}

extern "C" int cuda_conv2d_fwd(DType dt, void *y, const void *x, const void *w, const void *bias,
                               const Conv2dShape *sh, cudaStream_t s) {
    return cuda_conv2d_fwd_res(dt, y, x, w, bias, nullptr, sh, s);
}

extern "C" int cuda_conv2d_bwd(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x,
                               const void *w, const Conv2dShape *sh, cudaStream_t s) {
    if (!shape_ok(sh)) return (int)cudaErrorInvalidValue;
    if (dt != DT_F32 && dt != DT_BF16) return (int)cudaErrorInvalidValue;
    const long P = (long)sh->B * out_h(sh) * out_w(sh);
    int rc;
    if (dbias && (rc = cuda_bias_grad(dt, dbias, dy, P, sh->Cout, s))) return rc;
    ConvCall c = {dt, sh, x, w, nullptr, nullptr, dy, nullptr, dx, dw, s};
    const int pd = dx ? choose(1, c) : -1, pw = dw ? choose(2, c) : -1;
    if (pd == PATH_IM2COL && pw == PATH_IM2COL) return im2col_bwd(dt, dx, dw, dy, x, w, sh, s);  // one im2col pass
    if (dx && (rc = run_path(pd, 1, c))) return rc;
    if (dw && (rc = run_path(pw, 2, c))) return rc;
    return (int)cudaGetLastError();
}
