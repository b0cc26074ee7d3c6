// loss.cu: CUDA seeded dropout, MSE loss, row L2 normalisation and row
// cosine similarity, forward and backward (see loss.h; CPU reference
// kernels/cpu/loss.c).
//
// Dropout: one thread per Philox block (4 consecutive elements, one
// philox_block call), the keep rule and scale of loss.c, and the products as
// __fmul_rn so nvcc cannot fuse them into an FMA: the output equals the CPU's
// (f32: bit for bit; bf16: the CPU value rounded once). MSE forward is a
// two-pass reduction: a grid whose size depends only on n writes per-block
// partials (double) into dev_workspace(), one block sums them in a fixed
// order. The row ops use one block per row (fp32 sums, warp xor-butterflies,
// then warps in order): deterministic.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "../philox.h"
#include "common.cuh"
#include "device.h"
#include "loss.h"

namespace {

static inline bool al(const void *p, unsigned a) { return ((uintptr_t)p & (a - 1)) == 0; }

// ---------------------------------------------------------------- 4-element groups

// Loads / stores 4 consecutive T (16 bytes for float, 8 for bf16) when vec.
__device__ __forceinline__ void load4(const float *p, float *f) {
    float4 v = *reinterpret_cast<const float4 *>(p);
    f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
}
__device__ __forceinline__ void store4(float *p, const float *f) {
    *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
}
__device__ __forceinline__ void load4(const bf16 *p, float *f) {
    uint2 v = *reinterpret_cast<const uint2 *>(p);
    f[0] = __uint_as_float(v.x << 16), f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16), f[3] = __uint_as_float(v.y & 0xffff0000u);
}
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
__device__ __forceinline__ void store4(bf16 *p, const float *f) {
    *reinterpret_cast<uint2 *>(p) = make_uint2(pack2(f[0], f[1]), pack2(f[2], f[3]));
}

// ---------------------------------------------------------------- reductions

// Sums K values over the block (blockDim.x a multiple of 32, at most 1024);
// every thread gets the totals, warps added in warp order.
template <typename A, int K> __device__ __forceinline__ void block_sum(A *v) {
    __shared__ A sh[K][32];
    for (int k = 0; k < K; k++) v[k] = warp_sum(v[k]);
    __syncthreads();  // sh may still be read from a previous call
    if ((threadIdx.x & 31) == 0)
        for (int k = 0; k < K; k++) sh[k][threadIdx.x >> 5] = v[k];
    __syncthreads();
    const int nw = blockDim.x >> 5;
    for (int k = 0; k < K; k++) {
        A t = 0;
        for (int w = 0; w < nw; w++) t += sh[k][w];
        v[k] = t;
    }
}

// ---------------------------------------------------------------- dropout

// y [n] (acc: +=) = x [n] * keep * scale; thread per Philox block b = elements 4b .. 4b+3.
// vec: y, x aligned to 4 elements.
template <typename T>
__global__ void dropout_kernel(T *y, const T *x, size_t n, float p, float scale, uint64_t seed, uint64_t offset,
                               int acc, int vec) {
    const size_t nb = (n + 3) / 4;
    GRID_STRIDE(b, nb) {
        const Philox4 r = philox_block(seed, offset, b);
        const size_t base = b * 4;
        const bool full = vec && base + 4 <= n;
        float xv[4] = {0, 0, 0, 0}, yv[4] = {0, 0, 0, 0};
        if (full) {
            load4(x + base, xv);
            if (acc) load4(y + base, yv);
        } else {
            for (int k = 0; k < 4 && base + k < n; k++) {
                xv[k] = to_f32(x[base + k]);
                if (acc) yv[k] = to_f32(y[base + k]);
            }
        }
        for (int k = 0; k < 4; k++) {
            const bool keep = p < 1.0f && philox_word_to_uniform(r.v[k]) >= p;
            const float v = keep ? __fmul_rn(xv[k], scale) : 0.0f;
            yv[k] = acc ? __fadd_rn(yv[k], v) : v;
        }
        if (full) {
            store4(y + base, yv);
        } else {
            for (int k = 0; k < 4 && base + k < n; k++) y[base + k] = from_f32<T>(yv[k]);
        }
    }
}

template <typename T>
int dropout(void *y, const void *x, size_t n, float p, uint64_t seed, uint64_t offset, int acc, cudaStream_t s) {
    if (!(p >= 0.0f && p <= 1.0f)) return (int)cudaErrorInvalidValue;
    if (n == 0 || !y) return 0;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;  // as loss.c, in fp32 on the host
    const unsigned a = 4 * sizeof(T);
    const int vec = al(y, a) && al(x, a);
    dropout_kernel<T><<<grid_for((n + 3) / 4, 256), 256, 0, s>>>((T *)y, (const T *)x, n, p, scale, seed, offset,
                                                                  acc, vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- MSE

#define MSE_THREADS 256
#define MSE_MAX_BLOCKS 1024

// part [gridDim.x] = per-block sums of (a - b)^2 over a grid-stride loop of 4-element groups.
template <typename T> __global__ void mse_partial_kernel(double *part, const T *a, const T *b, size_t n, int vec) {
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t ng = vec ? n / 4 : 0;
    float acc = 0.0f;
    for (size_t i = tid; i < ng; i += stride) {
        float fa[4], fb[4];
        load4(a + i * 4, fa);
        load4(b + i * 4, fb);
        for (int k = 0; k < 4; k++) {
            const float d = fa[k] - fb[k];
            acc = fmaf(d, d, acc);
        }
    }
    for (size_t i = ng * 4 + tid; i < n; i += stride) {
        const float d = to_f32(a[i]) - to_f32(b[i]);
        acc = fmaf(d, d, acc);
    }
    double v[1] = {(double)acc};
    block_sum<double, 1>(v);
    if (threadIdx.x == 0) part[blockIdx.x] = v[0];
}

// loss [1] = (sum of part [np]) / n, one block.
__global__ void mse_final_kernel(float *loss, const double *part, int np, size_t n) {
    double v[1] = {0.0};
    for (int k = threadIdx.x; k < np; k += blockDim.x) v[0] += part[k];
    block_sum<double, 1>(v);
    if (threadIdx.x == 0) *loss = (float)(v[0] / (double)n);
}

template <typename T> int mse_fwd(float *loss, const void *a, const void *b, size_t n, cudaStream_t s) {
    if (n == 0) return (int)cudaErrorInvalidValue;  // the mean of nothing
    const int vec = al(a, 4 * sizeof(T)) && al(b, 4 * sizeof(T));
    // about 4 groups of 4 per thread before a block is added; depends only on n
    size_t g = (n + MSE_THREADS * 16 - 1) / (MSE_THREADS * 16);
    if (g > MSE_MAX_BLOCKS) g = MSE_MAX_BLOCKS;
    if (g < 1) g = 1;
    double *part = (double *)dev_workspace(g * sizeof(double));
    if (!part) return (int)cudaErrorMemoryAllocation;
    mse_partial_kernel<T><<<(unsigned)g, MSE_THREADS, 0, s>>>(part, (const T *)a, (const T *)b, n, vec);
    mse_final_kernel<<<1, MSE_THREADS, 0, s>>>(loss, part, (int)g, n);
    return (int)cudaGetLastError();
}

// da [n] += k (a - b); db [n] -= k (a - b), k = 2 dloss / n.
template <typename T>
__global__ void mse_bwd_kernel(T *da, T *db, const T *a, const T *b, float k, size_t n, int vec) {
    const size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (size_t)gridDim.x * blockDim.x;
    const size_t ng = vec ? n / 4 : 0;
    for (size_t i = tid; i < ng; i += stride) {
        float fa[4], fb[4], g[4], f[4];
        load4(a + i * 4, fa);
        load4(b + i * 4, fb);
        for (int j = 0; j < 4; j++) g[j] = __fmul_rn(k, fa[j] - fb[j]);
        if (da) {
            load4(da + i * 4, f);
            for (int j = 0; j < 4; j++) f[j] += g[j];
            store4(da + i * 4, f);
        }
        if (db) {
            load4(db + i * 4, f);
            for (int j = 0; j < 4; j++) f[j] -= g[j];
            store4(db + i * 4, f);
        }
    }
    for (size_t i = ng * 4 + tid; i < n; i += stride) {
        const float g = __fmul_rn(k, to_f32(a[i]) - to_f32(b[i]));
        if (da) da[i] = from_f32<T>(to_f32(da[i]) + g);
        if (db) db[i] = from_f32<T>(to_f32(db[i]) - g);
    }
}

template <typename T>
int mse_bwd(void *da, void *db, float dloss, const void *a, const void *b, size_t n, cudaStream_t s) {
    if (n == 0 || (!da && !db)) return 0;
    const float k = 2.0f * dloss / (float)n;  // as loss.c
    const unsigned al4 = 4 * sizeof(T);
    const int vec = al(da, al4) && al(db, al4) && al(a, al4) && al(b, al4);
    size_t items = vec ? n / 4 : n;
    if (vec && n % 4 > items) items = n % 4;
    mse_bwd_kernel<T><<<grid_for(items, 256), 256, 0, s>>>((T *)da, (T *)db, (const T *)a, (const T *)b, k, n, vec);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- L2 normalise

static int row_threads(int D) { return D >= 2048 ? 512 : D >= 512 ? 256 : D > 64 ? 128 : 32; }

// One block per row of x, y [N, D].
template <typename T> __global__ void l2norm_fwd_kernel(T *y, const T *x, int D, float eps) {
    const T *xr = x + (size_t)blockIdx.x * D;
    T *yr = y + (size_t)blockIdx.x * D;
    float v[1] = {0.0f};
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float t = to_f32(xr[d]);
        v[0] = fmaf(t, t, v[0]);
    }
    block_sum<float, 1>(v);
    const float inv = 1.0f / fmaxf(sqrtf(v[0]), eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x) yr[d] = from_f32<T>(to_f32(xr[d]) * inv);
}

// dx [N, D] += dy / n - x (x . dy) / n^3 with n = ||x|| > eps, else dy / eps.
template <typename T> __global__ void l2norm_bwd_kernel(T *dx, const T *dy, const T *x, int D, float eps) {
    const size_t o = (size_t)blockIdx.x * D;
    float v[2] = {0.0f, 0.0f};  // ||x||^2, x . dy
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float t = to_f32(x[o + d]), g = to_f32(dy[o + d]);
        v[0] = fmaf(t, t, v[0]);
        v[1] = fmaf(t, g, v[1]);
    }
    block_sum<float, 2>(v);
    const float nrm = sqrtf(v[0]);
    if (nrm > eps) {
        const float inv = 1.0f / nrm, c = v[1] * inv * inv * inv;  // no n^3: it could underflow
        for (int d = threadIdx.x; d < D; d += blockDim.x)
            dx[o + d] = from_f32<T>(to_f32(dx[o + d]) + (to_f32(dy[o + d]) * inv - to_f32(x[o + d]) * c));
    } else {
        const float inv = 1.0f / eps;
        for (int d = threadIdx.x; d < D; d += blockDim.x)
            dx[o + d] = from_f32<T>(to_f32(dx[o + d]) + to_f32(dy[o + d]) * inv);
    }
}

template <typename T> int l2norm_fwd(void *y, const void *x, int N, int D, float eps, cudaStream_t s) {
    if (N < 0 || D <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    l2norm_fwd_kernel<T><<<N, row_threads(D), 0, s>>>((T *)y, (const T *)x, D, eps);
    return (int)cudaGetLastError();
}

template <typename T>
int l2norm_bwd(void *dx, const void *dy, const void *x, int N, int D, float eps, cudaStream_t s) {
    if (N < 0 || D <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || !dx) return 0;
    l2norm_bwd_kernel<T><<<N, row_threads(D), 0, s>>>((T *)dx, (const T *)dy, (const T *)x, D, eps);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- cosine similarity

// One block per row: y [N] = a . b / (max(||a||, eps) max(||b||, eps)).
template <typename T> __global__ void cosine_fwd_kernel(float *y, const T *a, const T *b, int D, float eps) {
    const size_t o = (size_t)blockIdx.x * D;
    float v[3] = {0.0f, 0.0f, 0.0f};  // a.b, a.a, b.b
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float p = to_f32(a[o + d]), q = to_f32(b[o + d]);
        v[0] = fmaf(p, q, v[0]);
        v[1] = fmaf(p, p, v[1]);
        v[2] = fmaf(q, q, v[2]);
    }
    block_sum<float, 3>(v);
    if (threadIdx.x == 0) y[blockIdx.x] = v[0] / (fmaxf(sqrtf(v[1]), eps) * fmaxf(sqrtf(v[2]), eps));
}

// da += dy (b / (ca cb) - y a / (ca ||a||)), db symmetric; ca = max(||a||, eps).
template <typename T>
__global__ void cosine_bwd_kernel(T *da, T *db, const float *dy, const T *a, const T *b, int D, float eps) {
    const size_t o = (size_t)blockIdx.x * D;
    float v[3] = {0.0f, 0.0f, 0.0f};
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float p = to_f32(a[o + d]), q = to_f32(b[o + d]);
        v[0] = fmaf(p, q, v[0]);
        v[1] = fmaf(p, p, v[1]);
        v[2] = fmaf(q, q, v[2]);
    }
    block_sum<float, 3>(v);
    const float ra = sqrtf(v[1]), rb = sqrtf(v[2]);
    const float ca = fmaxf(ra, eps), cb = fmaxf(rb, eps);
    const float iab = 1.0f / (ca * cb), y = v[0] * iab, g = dy[blockIdx.x];
    const float ka = ra > 0.0f ? y / (ca * ra) : 0.0f, kb = rb > 0.0f ? y / (cb * rb) : 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float p = to_f32(a[o + d]), q = to_f32(b[o + d]);
        if (da) da[o + d] = from_f32<T>(to_f32(da[o + d]) + g * (q * iab - ka * p));
        if (db) db[o + d] = from_f32<T>(to_f32(db[o + d]) + g * (p * iab - kb * q));
    }
}

template <typename T>
int cosine_fwd(float *y, const void *a, const void *b, int N, int D, float eps, cudaStream_t s) {
    if (N < 0 || D <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    cosine_fwd_kernel<T><<<N, row_threads(D), 0, s>>>(y, (const T *)a, (const T *)b, D, eps);
    return (int)cudaGetLastError();
}

template <typename T>
int cosine_bwd(void *da, void *db, const float *dy, const void *a, const void *b, int N, int D, float eps,
               cudaStream_t s) {
    if (N < 0 || D <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || (!da && !db)) return 0;
    cosine_bwd_kernel<T><<<N, row_threads(D), 0, s>>>((T *)da, (T *)db, dy, (const T *)a, (const T *)b, D, eps);
    return (int)cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------- launchers

extern "C" int cuda_dropout_fwd(DType dt, void *y, const void *x, size_t n, float p, uint64_t seed, uint64_t offset,
                                cudaStream_t s) {
    DISPATCH_T(dt, return dropout<T>(y, x, n, p, seed, offset, 0, s));
    return 0;
}

extern "C" int cuda_dropout_bwd(DType dt, void *dx, const void *dy, size_t n, float p, uint64_t seed, uint64_t offset,
                                cudaStream_t s) {
    DISPATCH_T(dt, return dropout<T>(dx, dy, n, p, seed, offset, 1, s));
    return 0;
}

extern "C" int cuda_mse_loss_fwd(DType dt, float *loss, const void *a, const void *b, size_t n, cudaStream_t s) {
    DISPATCH_T(dt, return mse_fwd<T>(loss, a, b, n, s));
    return 0;
}

extern "C" int cuda_mse_loss_bwd(DType dt, void *da, void *db, float dloss, const void *a, const void *b, size_t n,
                                 cudaStream_t s) {
    DISPATCH_T(dt, return mse_bwd<T>(da, db, dloss, a, b, n, s));
    return 0;
}

extern "C" int cuda_l2norm_fwd(DType dt, void *y, const void *x, int N, int D, float eps, cudaStream_t s) {
    DISPATCH_T(dt, return l2norm_fwd<T>(y, x, N, D, eps, s));
    return 0;
}

extern "C" int cuda_l2norm_bwd(DType dt, void *dx, const void *dy, const void *x, int N, int D, float eps,
                               cudaStream_t s) {
    DISPATCH_T(dt, return l2norm_bwd<T>(dx, dy, x, N, D, eps, s));
    return 0;
}

extern "C" int cuda_cosine_sim_fwd(DType dt, float *y, const void *a, const void *b, int N, int D, float eps,
                                   cudaStream_t s) {
    DISPATCH_T(dt, return cosine_fwd<T>(y, a, b, N, D, eps, s));
    return 0;
}

extern "C" int cuda_cosine_sim_bwd(DType dt, void *da, void *db, const float *dy, const void *a, const void *b, int N,
                                   int D, float eps, cudaStream_t s) {
    DISPATCH_T(dt, return cosine_bwd<T>(da, db, dy, a, b, N, D, eps, s));
    return 0;
}
