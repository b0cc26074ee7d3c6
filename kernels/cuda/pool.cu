// pool.cu: 2-D max / average pooling, global average pooling and per-channel
// scaling, forward and backward (see pool.h; reference kernels/cpu/pool.c).
//
// NHWC throughout: a thread owns V contiguous channels of one spatial position
// (16-byte vectors when C % V == 0 and the pointers are aligned, else V = 1),
// so a warp reads contiguous memory along C. Windows are scanned row-major as
// in the CPU op, so max pooling picks the same element (first maximum, NaN
// propagates) and the fp32 window sums add in the same order.
// Backward passes gather (each input element visits the output windows that
// contain it, in (oh, ow) order) instead of scattering with atomics: the
// result is deterministic, and in fp32 it adds in the CPU op's order.
// Reductions over HW (global pool, dsc) split HW into fixed chunks when the
// grid would be small; the chunk partials are added in order by a second pass.
#include <cuda_runtime.h>

#include "common.cuh"
#include "device.h"
#include "pool.h"

namespace {  // internal linkage: helpers and kernels cannot collide with other .cu files

static bool aligned_to(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

// Geometry of a 2-D pooling, passed by value to the kernels.
struct PoolGeom {
    int B, H, W, C, KH, KW, sh, sw, ph, pw, Ho, Wo, cip;
};

// Same formula as pool_out_size in kernels/cpu/pool.c (PyTorch, dilation 1);
// -1 for an invalid configuration instead of aborting.
static int pool_out(int in, int k, int pad, int stride, int ceil_mode) {
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k) return -1;
    int num = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
    if (num < 0) return -1;
    int out = num / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

static int make_geom(PoolGeom *g, const Pool2dShape *s) {
    if (!s || s->B < 0 || s->H < 1 || s->W < 1 || s->C < 1) return -1;
    g->B = s->B, g->H = s->H, g->W = s->W, g->C = s->C;
    g->KH = s->KH, g->KW = s->KW, g->sh = s->sh, g->sw = s->sw, g->ph = s->ph, g->pw = s->pw;
    g->cip = s->count_include_pad;
    g->Ho = pool_out(s->H, s->KH, s->ph, s->sh, s->ceil_mode);
    g->Wo = pool_out(s->W, s->KW, s->pw, s->sw, s->ceil_mode);
    return (g->Ho < 1 || g->Wo < 1) ? -1 : 0;
}

// Output rows oh whose window [oh*sh - ph, oh*sh - ph + KH) contains input row h.
__device__ __forceinline__ void windows_containing(int h, int K, int st, int pad, int nout, int &lo, int &hi) {
    const int a = h + pad - K + 1;  // oh*st >= a
    lo = a <= 0 ? 0 : (a + st - 1) / st;
    hi = min(nout - 1, (h + pad) / st);
}

// Item i of a [B, NH, NW, L] grid (L = C / V lanes of V channels): batch, row, column, lane.
struct GridPos {
    int b, h, w, lane;
};
__device__ __forceinline__ GridPos grid_pos(size_t i, int L, int NH, int NW) {
    GridPos p;
    p.lane = (int)(i % L);
    size_t t = i / L;
    p.w = (int)(t % NW);
    t /= NW;
    p.h = (int)(t % NH);
    p.b = (int)(t / NH);
    return p;
}

// Input item i of a [B, H, W, L] grid and the output windows [oh0, oh1] x [ow0, ow1] that contain it.
struct InWindows {
    GridPos p;
    int oh0, oh1, ow0, ow1;
};
__device__ __forceinline__ InWindows in_windows(const PoolGeom &g, size_t i, int L) {
    InWindows r;
    r.p = grid_pos(i, L, g.H, g.W);
    windows_containing(r.p.h, g.KH, g.sh, g.ph, g.Ho, r.oh0, r.oh1);
    windows_containing(r.p.w, g.KW, g.sw, g.pw, g.Wo, r.ow0, r.ow1);
    return r;
}

// ------------------------------------------------------------------ max pool

// y, argmax [B,Ho,Wo,C] <- x [B,H,W,C]; one thread per (b, oh, ow, V channels).
template <typename T, int V>
__global__ void maxpool_fwd_kernel(T *__restrict__ y, int32_t *__restrict__ argmax, const T *__restrict__ x,
                                   PoolGeom g) {
    const int L = g.C / V;
    const size_t n = (size_t)g.B * g.Ho * g.Wo * L;
    GRID_STRIDE(i, n) {
        const GridPos p = grid_pos(i, L, g.Ho, g.Wo);
        const int lane = p.lane, ow = p.w, oh = p.h, b = p.b;
        int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
        const int h1 = min(h0 + g.KH, g.H), w1 = min(w0 + g.KW, g.W);
        h0 = max(h0, 0), w0 = max(w0, 0);
        float best[V];
        VecV<int32_t, V> am;
#pragma unroll
        for (int k = 0; k < V; k++) best[k] = -INFINITY, am.v[k] = h0 * g.W + w0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                float v[V];
                ldv<T, V>(x + (((size_t)b * g.H + h) * g.W + w) * g.C + (size_t)lane * V, v);
                const int32_t idx = h * g.W + w;
#pragma unroll
                for (int k = 0; k < V; k++)  // v != v: a NaN wins (as isnan in pool.c)
                    if (v[k] > best[k] || v[k] != v[k]) best[k] = v[k], am.v[k] = idx;
            }
        const size_t o = i * V;
        stv<T, V>(y + o, best);
        *reinterpret_cast<VecV<int32_t, V> *>(argmax + o) = am;
    }
}

// dx [B,H,W,C] += sum of dy over the windows whose argmax is this element.
template <typename T, int V>
__global__ void maxpool_bwd_kernel(T *__restrict__ dx, const T *__restrict__ dy, const int32_t *__restrict__ argmax,
                                   PoolGeom g) {
    const int L = g.C / V;
    const size_t n = (size_t)g.B * g.H * g.W * L;
    GRID_STRIDE(i, n) {
        const InWindows iw = in_windows(g, i, L);
        const int32_t idx = iw.p.h * g.W + iw.p.w;
        float acc[V];
        ldv<T, V>(dx + i * V, acc);
        for (int oh = iw.oh0; oh <= iw.oh1; oh++)
            for (int ow = iw.ow0; ow <= iw.ow1; ow++) {
                const size_t o = (((size_t)iw.p.b * g.Ho + oh) * g.Wo + ow) * g.C + (size_t)iw.p.lane * V;
                const VecV<int32_t, V> am = *reinterpret_cast<const VecV<int32_t, V> *>(argmax + o);
                bool any = false;
#pragma unroll
                for (int k = 0; k < V; k++) any |= am.v[k] == idx;
                if (!any) continue;
                float d[V];
                ldv<T, V>(dy + o, d);
#pragma unroll
                for (int k = 0; k < V; k++)
                    if (am.v[k] == idx) acc[k] += d[k];
            }
        stv<T, V>(dx + i * V, acc);
    }
}

// ------------------------------------------------------------------ average pool

// Window of output (oh, ow) clipped to the input, and 1 / divisor (as avg_window in pool.c).
struct AvgWin {
    int h0, h1, w0, w1;
    float inv;
};
__device__ __forceinline__ AvgWin avg_window(const PoolGeom &g, int oh, int ow) {
    AvgWin a;
    const int h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int h1 = min(h0 + g.KH, g.H + g.ph), w1 = min(w0 + g.KW, g.W + g.pw);
    const int padded = (h1 - h0) * (w1 - w0);
    a.h0 = max(h0, 0), a.w0 = max(w0, 0);
    a.h1 = min(h1, g.H), a.w1 = min(w1, g.W);
    const int real = (a.h1 - a.h0) * (a.w1 - a.w0);
    const int div = g.cip ? padded : real;
    a.inv = div > 0 ? 1.0f / (float)div : 0.0f;
    return a;
}

template <typename T, int V>
__global__ void avgpool_fwd_kernel(T *__restrict__ y, const T *__restrict__ x, PoolGeom g) {
    const int L = g.C / V;
    const size_t n = (size_t)g.B * g.Ho * g.Wo * L;
    GRID_STRIDE(i, n) {
        const GridPos p = grid_pos(i, L, g.Ho, g.Wo);
        const int lane = p.lane, ow = p.w, oh = p.h, b = p.b;
        const AvgWin a = avg_window(g, oh, ow);
        float acc[V];
#pragma unroll
        for (int k = 0; k < V; k++) acc[k] = 0.0f;
        for (int h = a.h0; h < a.h1; h++)
            for (int w = a.w0; w < a.w1; w++) {
                float v[V];
                ldv<T, V>(x + (((size_t)b * g.H + h) * g.W + w) * g.C + (size_t)lane * V, v);
#pragma unroll
                for (int k = 0; k < V; k++) acc[k] += v[k];
            }
#pragma unroll
        for (int k = 0; k < V; k++) acc[k] *= a.inv;
        stv<T, V>(y + i * V, acc);
    }
}

template <typename T, int V>
__global__ void avgpool_bwd_kernel(T *__restrict__ dx, const T *__restrict__ dy, PoolGeom g) {
    const int L = g.C / V;
    const size_t n = (size_t)g.B * g.H * g.W * L;
    GRID_STRIDE(i, n) {
        const InWindows iw = in_windows(g, i, L);
        float acc[V];
        ldv<T, V>(dx + i * V, acc);
        for (int oh = iw.oh0; oh <= iw.oh1; oh++)
            for (int ow = iw.ow0; ow <= iw.ow1; ow++) {
                const float inv = avg_window(g, oh, ow).inv;
                float d[V];
                ldv<T, V>(dy + (((size_t)iw.p.b * g.Ho + oh) * g.Wo + ow) * g.C + (size_t)iw.p.lane * V, d);
#pragma unroll
                for (int k = 0; k < V; k++) acc[k] += __fmul_rn(d[k], inv);  // no FMA: the CPU op's rounding
            }
        stv<T, V>(dx + i * V, acc);
    }
}

// ------------------------------------------------------------------ reductions over HW

#define RED_TARGET_BLOCKS 512  // fill a 132-SM part; depends on the shape only (determinism)
#define RED_MIN_ROWS 64        // rows per chunk at least

// Sums over positions p in chunk blockIdx.y of MODE 0: a, MODE 1: a * b for 32
// channels of batch blockIdx.z. Block (32, 8): row group ty takes rows p = ty (mod 8).
// nchunk == 1: out [B, C] (T) = sum / div (+ out when accumulate); else part [B, nchunk, C].
template <typename T, int MODE>
__global__ void hw_reduce_kernel(T *__restrict__ out, float *__restrict__ part, const T *__restrict__ a,
                                 const T *__restrict__ bb, int HW, int C, int chunk, float div, int accumulate) {
    __shared__ float sm[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x, k = blockIdx.y, nchunk = gridDim.y, b = blockIdx.z;
    const int p0 = k * chunk, p1 = min(HW, p0 + chunk);
    float acc = 0.0f;
    if (c < C)
        for (int p = p0 + threadIdx.y; p < p1; p += 8) {
            const size_t o = ((size_t)b * HW + p) * C + c;
            if (MODE == 0) acc += to_f32(a[o]);
            else acc = fmaf(to_f32(a[o]), to_f32(bb[o]), acc);
        }
    sm[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) return;
    float t = sm[0][threadIdx.x];
    for (int q = 1; q < 8; q++) t += sm[q][threadIdx.x];
    if (nchunk > 1) {
        part[((size_t)b * nchunk + k) * C + c] = t;
        return;
    }
    float r = t / div;
    if (accumulate) r += to_f32(out[(size_t)b * C + c]);
    out[(size_t)b * C + c] = from_f32<T>(r);
}

// out [B, C] = sum_k part [B, nchunk, C] / div (+ out), chunks in order.
template <typename T>
__global__ void hw_reduce_final_kernel(T *__restrict__ out, const float *__restrict__ part, int B, int C, int nchunk,
                                      float div, int accumulate) {
    GRID_STRIDE(i, (size_t)B * C) {
        const size_t b = i / C, c = i % C;
        float t = 0.0f;
        for (int k = 0; k < nchunk; k++) t += part[(b * nchunk + k) * C + c];
        float r = t / div;
        if (accumulate) r += to_f32(out[i]);
        out[i] = from_f32<T>(r);
    }
}

template <typename T, int MODE>
static int hw_reduce(T *out, const T *a, const T *bb, int B, int HW, int C, float div, int accumulate,
                     cudaStream_t s) {
    const int ctiles = (C + 31) / 32;
    const long base = (long)B * ctiles;
    long want = (RED_TARGET_BLOCKS + base - 1) / base;
    long maxchunks = (HW + RED_MIN_ROWS - 1) / RED_MIN_ROWS;
    int nchunk = (int)(want < maxchunks ? want : maxchunks);
    if (nchunk < 1) nchunk = 1;
    int chunk = (HW + nchunk - 1) / nchunk;
    nchunk = (HW + chunk - 1) / chunk;
    if (B > 65535) return (int)cudaErrorInvalidValue;
    float *part = nullptr;
    if (nchunk > 1) {
        part = (float *)dev_workspace((size_t)B * nchunk * C * sizeof(float));
        if (!part) return (int)cudaErrorMemoryAllocation;
    }
    hw_reduce_kernel<T, MODE><<<dim3(ctiles, nchunk, B), dim3(32, 8), 0, s>>>(out, part, a, bb, HW, C, chunk, div,
                                                                              accumulate);
    if (nchunk > 1)
        hw_reduce_final_kernel<T><<<grid_for((size_t)B * C, 256), 256, 0, s>>>(out, part, B, C, nchunk, div,
                                                                               accumulate);
    return (int)cudaGetLastError();
}

// ------------------------------------------------------------------ broadcast elementwise over [B, HW, C]

// MODE 0: out = x * sc[b, c]; MODE 1: out += x * sc[b, c]; MODE 2: out += sc[b, c] * mul.
// out, x [B, HW, C]; sc [B, C]. Batch b = blockIdx.y; m = HW * C / V vectors per batch.
template <typename T, int V, int MODE>
__global__ void bcast_kernel(T *__restrict__ out, const T *__restrict__ x, const T *__restrict__ sc, int C, size_t m,
                             float mul) {
    const int L = C / V;
    const size_t b = blockIdx.y;
    T *ob = out + b * m * V;
    const T *xb = x ? x + b * m * V : nullptr;
    const T *sb = sc + b * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < m; i += (size_t)gridDim.x * blockDim.x) {
        const int lane = (int)(i % (unsigned)L);
        float sv[V], v[V], o[V];
        ldv<T, V>(sb + (size_t)lane * V, sv);
        if (MODE != 2) ldv<T, V>(xb + i * V, v);
        if (MODE != 0) ldv<T, V>(ob + i * V, o);
#pragma unroll
        for (int k = 0; k < V; k++) {
            if (MODE == 0) o[k] = v[k] * sv[k];
            else if (MODE == 1) o[k] += v[k] * sv[k];
            else o[k] += sv[k] * mul;
        }
        stv<T, V>(ob + i * V, o);
    }
}

// ------------------------------------------------------------------ launchers

// 16-byte vectors when C allows and every pointer is aligned (argmax: V ints).
template <typename T> static int pool_vec(int C, const void *const *ptrs, int n, const int32_t *argmax) {
    const int V = 16 / (int)sizeof(T);
    if (C % V) return 1;
    for (int i = 0; i < n; i++)
        if (ptrs[i] && !aligned_to(ptrs[i], 16)) return 1;
    if (argmax && !aligned_to(argmax, sizeof(int32_t) * V)) return 1;
    return V;
}

#define POOL_THREADS 256
#define VEC_DISPATCH(T, vec, FN, ...)                          \
    do {                                                       \
        if ((vec) > 1) FN<T, 16 / sizeof(T)>(__VA_ARGS__);     \
        else FN<T, 1>(__VA_ARGS__);                            \
    } while (0)

template <typename T, int V>
static void maxpool_fwd_launch(T *y, int32_t *am, const T *x, const PoolGeom &g, cudaStream_t s) {
    const size_t n = (size_t)g.B * g.Ho * g.Wo * (g.C / V);
    maxpool_fwd_kernel<T, V><<<grid_for(n, POOL_THREADS), POOL_THREADS, 0, s>>>(y, am, x, g);
}
template <typename T, int V>
static void maxpool_bwd_launch(T *dx, const T *dy, const int32_t *am, const PoolGeom &g, cudaStream_t s) {
    const size_t n = (size_t)g.B * g.H * g.W * (g.C / V);
    maxpool_bwd_kernel<T, V><<<grid_for(n, POOL_THREADS), POOL_THREADS, 0, s>>>(dx, dy, am, g);
}
template <typename T, int V> static void avgpool_fwd_launch(T *y, const T *x, const PoolGeom &g, cudaStream_t s) {
    const size_t n = (size_t)g.B * g.Ho * g.Wo * (g.C / V);
    avgpool_fwd_kernel<T, V><<<grid_for(n, POOL_THREADS), POOL_THREADS, 0, s>>>(y, x, g);
}
template <typename T, int V> static void avgpool_bwd_launch(T *dx, const T *dy, const PoolGeom &g, cudaStream_t s) {
    const size_t n = (size_t)g.B * g.H * g.W * (g.C / V);
    avgpool_bwd_kernel<T, V><<<grid_for(n, POOL_THREADS), POOL_THREADS, 0, s>>>(dx, dy, g);
}
template <typename T, int V, int MODE>
static void bcast_launch(T *out, const T *x, const T *sc, int B, int HW, int C, float mul, cudaStream_t s) {
    const size_t m = (size_t)HW * (C / V);
    unsigned gx = grid_for(m, POOL_THREADS);
    if (gx > 65535u) gx = 65535u;  // grid-stride covers the rest
    bcast_kernel<T, V, MODE><<<dim3(gx, B), POOL_THREADS, 0, s>>>(out, x, sc, C, m, mul);
}
template <typename T, int V>
static void bcast_mul(T *out, const T *x, const T *sc, int B, int HW, int C, float, cudaStream_t s) {
    bcast_launch<T, V, 0>(out, x, sc, B, HW, C, 0.0f, s);
}
template <typename T, int V>
static void bcast_muladd(T *out, const T *x, const T *sc, int B, int HW, int C, float, cudaStream_t s) {
    bcast_launch<T, V, 1>(out, x, sc, B, HW, C, 0.0f, s);
}
template <typename T, int V>
static void bcast_add(T *out, const T *x, const T *sc, int B, int HW, int C, float mul, cudaStream_t s) {
    bcast_launch<T, V, 2>(out, x, sc, B, HW, C, mul, s);
}

}  // namespace

extern "C" int cuda_maxpool2d_fwd(DType dt, void *y, int32_t *argmax, const void *x, const Pool2dShape *shape,
                                  cudaStream_t s) {
    PoolGeom g;
    if (make_geom(&g, shape) != 0 || !argmax) return (int)cudaErrorInvalidValue;
    if (g.B == 0) return 0;
    const void *p[] = {y, x};
    DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(g.C, p, 2, argmax), maxpool_fwd_launch, (T *)y, argmax, (const T *)x,
                                g, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_maxpool2d_bwd(DType dt, void *dx, const void *dy, const int32_t *argmax,
                                  const Pool2dShape *shape, cudaStream_t s) {
    PoolGeom g;
    if (make_geom(&g, shape) != 0) return (int)cudaErrorInvalidValue;
    if (g.B == 0 || !dx) return 0;
    const void *p[] = {dx, dy};
    DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(g.C, p, 2, argmax), maxpool_bwd_launch, (T *)dx, (const T *)dy,
                                argmax, g, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_avgpool2d_fwd(DType dt, void *y, const void *x, const Pool2dShape *shape, cudaStream_t s) {
    PoolGeom g;
    if (make_geom(&g, shape) != 0) return (int)cudaErrorInvalidValue;
    if (g.B == 0) return 0;
    const void *p[] = {y, x};
    DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(g.C, p, 2, nullptr), avgpool_fwd_launch, (T *)y, (const T *)x, g, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_avgpool2d_bwd(DType dt, void *dx, const void *dy, const Pool2dShape *shape, cudaStream_t s) {
    PoolGeom g;
    if (make_geom(&g, shape) != 0) return (int)cudaErrorInvalidValue;
    if (g.B == 0 || !dx) return 0;
    const void *p[] = {dx, dy};
    DISPATCH_T(dt,
               VEC_DISPATCH(T, pool_vec<T>(g.C, p, 2, nullptr), avgpool_bwd_launch, (T *)dx, (const T *)dy, g, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_global_avgpool_fwd(DType dt, void *y, const void *x, int B, int HW, int C, cudaStream_t s) {
    if (B < 0 || HW < 1 || C < 1) return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    DISPATCH_T(dt, return hw_reduce<T, 0>((T *)y, (const T *)x, nullptr, B, HW, C, (float)HW, 0, s));
    return 0;
}

extern "C" int cuda_global_avgpool_bwd(DType dt, void *dx, const void *dy, int B, int HW, int C, cudaStream_t s) {
    if (B < 0 || B > 65535 || HW < 1 || C < 1) return (int)cudaErrorInvalidValue;
    if (B == 0 || !dx) return 0;
    const void *p[] = {dx, dy};
    const float inv = 1.0f / (float)HW;
    DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(C, p, 2, nullptr), bcast_add, (T *)dx, nullptr, (const T *)dy, B, HW,
                                C, inv, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_channel_scale_fwd(DType dt, void *y, const void *x, const void *sc, int B, int HW, int C,
                                      cudaStream_t s) {
    if (B < 0 || B > 65535 || HW < 1 || C < 1) return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    const void *p[] = {y, x, sc};
    DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(C, p, 3, nullptr), bcast_mul, (T *)y, (const T *)x, (const T *)sc, B,
                                HW, C, 0.0f, s));
    return (int)cudaGetLastError();
}

extern "C" int cuda_channel_scale_bwd(DType dt, void *dx, void *dsc, const void *dy, const void *x, const void *sc,
                                      int B, int HW, int C, cudaStream_t s) {
    if (B < 0 || B > 65535 || HW < 1 || C < 1) return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    if (dx) {
        const void *p[] = {dx, dy, sc};
        DISPATCH_T(dt, VEC_DISPATCH(T, pool_vec<T>(C, p, 3, nullptr), bcast_muladd, (T *)dx, (const T *)dy,
                                    (const T *)sc, B, HW, C, 0.0f, s));
    }
    if (dsc) {
        int st = 0;
        DISPATCH_T(dt, st = hw_reduce<T, 1>((T *)dsc, (const T *)dy, (const T *)x, B, HW, C, 1.0f, 1, s));
        if (st) return st;
    }
    return (int)cudaGetLastError();
}
