// embed.cu: CUDA token embedding and sinusoidal timestep embedding, forward
// and backward (see embed.h; CPU reference kernels/cpu/embed.c).
//
// Lookup copies 16-byte packs of table rows when D and the pointers allow.
// The backward scatter is made deterministic without atomics: a first kernel
// links equal ids (head = first occurrence, next = following occurrence), and
// then one thread per (head id, column) walks its chain in increasing i and
// adds into dtable once, so each element is summed in the CPU's order.
// The timestep embedding reproduces embed.c's fp32 roundings (__fmul_rn /
// __fdiv_rn so nvcc cannot contract them) with exp, sin and cos in double.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "device.h"
#include "embed.h"

namespace {


// ---------------------------------------------------------------- embedding

// y [N, D] = table [V, D][ids]; n = N*D, V16 = elements per pack when vec
// (aligned, D % V16 == 0), else 1. I: index type (uint32_t when n fits).
template <typename T, typename I>
__global__ void embedding_fwd_kernel(T *y, const int32_t *ids, const T *table, size_t n, int V, int D, int vec) {
    const int P = vec ? (int)(16 / sizeof(T)) : 1;
    GRID_STRIDE(i, n / P) {
        const I e = (I)(i * P), r = e / (I)D, d = e % (I)D;
        const int32_t id = ids[r];
        const bool ok = id >= 0 && id < V;
        const T *src = table + (size_t)id * D + d;
        if (vec) {
            *reinterpret_cast<uint4 *>(y + e) = ok ? *reinterpret_cast<const uint4 *>(src) : make_uint4(0, 0, 0, 0);
        } else {
            y[e] = ok ? *src : from_f32<T>(0.0f);
        }
    }
}

// link [2N]: link[i] = 1 when i is the first occurrence of ids[i] (and the id
// is in range), else 0; link[N + i] = the next j > i with ids[j] == ids[i], or -1.
__global__ void embedding_link_kernel(int32_t *link, const int32_t *ids, int N, int V) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int32_t v = ids[i];
    int head = v >= 0 && v < V, next = -1;
    for (int j = 0; j < i && head; j++)
        if (ids[j] == v) head = 0;
    for (int j = i + 1; j < N; j++)
        if (ids[j] == v) {
            next = j;
            break;
        }
    link[i] = head;
    link[N + i] = next;
}

// grid (ceil(D / blockDim.x), min(N, 65535)), rows i strided by gridDim.y: for
// each head row i, column d: dtable [V, D][ids[i], d] += dy [N, D][j, d] over
// the chain j = i, next(i), ...
template <typename T>
__global__ void embedding_bwd_kernel(float *dtable, const T *dy, const int32_t *ids, const int32_t *link, int N,
                                     int D) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (int i = blockIdx.y; i < N; i += gridDim.y) {
        if (!link[i]) continue;
        float *o = dtable + (size_t)ids[i] * D + d;
        float acc = *o;
        for (int j = i; j >= 0; j = link[N + j]) acc += to_f32(dy[(size_t)j * D + d]);
        *o = acc;
    }
}

template <typename T>
int embedding_fwd(void *y, const int32_t *ids, const void *table, int N, int V, int D, cudaStream_t s) {
    if (N < 0 || D < 0) return (int)cudaErrorInvalidValue;
    const size_t n = (size_t)N * D;
    if (n == 0) return 0;
    const int P = 16 / sizeof(T);
    const int vec = al16(y) && al16(table) && D % P == 0;
    const unsigned g = grid_for(vec ? n / P : n, 256);
    if (n <= 0xffffffffu)
        embedding_fwd_kernel<T, uint32_t><<<g, 256, 0, s>>>((T *)y, ids, (const T *)table, n, V, D, vec);
    else
        embedding_fwd_kernel<T, size_t><<<g, 256, 0, s>>>((T *)y, ids, (const T *)table, n, V, D, vec);
    return (int)cudaGetLastError();
}

template <typename T>
int embedding_bwd(float *dtable, const void *dy, const int32_t *ids, int N, int V, int D, cudaStream_t s) {
    if (N < 0 || D < 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || D == 0 || !dtable) return 0;
    int32_t *link = (int32_t *)dev_workspace((size_t)2 * N * sizeof(int32_t));
    if (!link) return (int)cudaErrorMemoryAllocation;
    embedding_link_kernel<<<(N + 127) / 128, 128, 0, s>>>(link, ids, N, V);
    const int threads = D >= 256 ? 256 : ((D + 31) / 32) * 32;
    dim3 grid((unsigned)((D + threads - 1) / threads), (unsigned)(N < 65535 ? N : 65535));
    embedding_bwd_kernel<T><<<grid, threads, 0, s>>>(dtable, (const T *)dy, ids, link, N, D);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- timestep embedding

// freq_k exactly as embed.c's timestep_freqs: fp32 product and quotient, exp in double.
__device__ __forceinline__ float ts_freq(int k, float neg_log, float denom) {
    const float e = __fdiv_rn(__fmul_rn(neg_log, (float)k), denom);
    return (float)exp((double)e);
}

// t [B] -> y [B, dim], one thread per output element.
template <typename T>
__global__ void timestep_fwd_kernel(T *y, const float *t, int B, int dim, int flip, float neg_log, float denom) {
    const int half = dim / 2;
    GRID_STRIDE(i, (size_t)B * dim) {
        const int b = (int)(i / dim), j = (int)(i % dim);
        float v = 0.0f;  // odd dim: zero last column
        if (j < 2 * half) {
            const int k = j < half ? j : j - half;
            const bool is_sin = (j < half) != (flip != 0);
            const float arg = __fmul_rn(t[b], ts_freq(k, neg_log, denom));
            v = is_sin ? (float)sin((double)arg) : (float)cos((double)arg);
        }
        y[i] = from_f32<T>(v);
    }
}

// One block per b (blockDim.x a multiple of 32): dt [B] += sum_k freq_k (g_sin cos - g_cos sin), double.
template <typename T>
__global__ void timestep_bwd_kernel(float *dtg, const T *dy, const float *t, int dim, int flip, float neg_log,
                                    float denom) {
    __shared__ double sh[32];
    const int b = blockIdx.x, half = dim / 2;
    const int sin_at = flip ? half : 0, cos_at = flip ? 0 : half;
    const T *g = dy + (size_t)b * dim;
    const float tb = t[b];
    double acc = 0.0;
    for (int k = threadIdx.x; k < half; k += blockDim.x) {
        const float f = ts_freq(k, neg_log, denom);
        const double arg = (double)__fmul_rn(tb, f);
        acc += (double)f * ((double)to_f32(g[sin_at + k]) * cos(arg) - (double)to_f32(g[cos_at + k]) * sin(arg));
    }
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) s += sh[w];
        dtg[b] += (float)s;
    }
}

// The host-side constants of timestep_freqs (embed.c).
static void ts_consts(int half, float freq_shift, float max_period, float *neg_log, float *denom) {
    *neg_log = (float)(-log((double)max_period));
    *denom = (float)half - freq_shift;
}

template <typename T>
int timestep_fwd(void *y, const float *t, int B, int dim, int flip, float freq_shift, float max_period,
                 cudaStream_t s) {
    if (B < 0 || dim / 2 < 1) return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    float neg_log, denom;
    ts_consts(dim / 2, freq_shift, max_period, &neg_log, &denom);
    timestep_fwd_kernel<T><<<grid_for((size_t)B * dim, 256), 256, 0, s>>>((T *)y, t, B, dim, flip, neg_log, denom);
    return (int)cudaGetLastError();
}

template <typename T>
int timestep_bwd(float *dtg, const void *dy, const float *t, int B, int dim, int flip, float freq_shift,
                 float max_period, cudaStream_t s) {
    if (B < 0 || dim / 2 < 1) return (int)cudaErrorInvalidValue;
    if (B == 0 || !dtg) return 0;
    float neg_log, denom;
    ts_consts(dim / 2, freq_shift, max_period, &neg_log, &denom);
    timestep_bwd_kernel<T><<<B, 128, 0, s>>>(dtg, (const T *)dy, t, dim, flip, neg_log, denom);
    return (int)cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------- launchers

extern "C" int cuda_embedding_fwd(DType dt, void *y, const int32_t *ids, const void *table, int N, int V, int D,
                                  cudaStream_t s) {
    DISPATCH_T(dt, return embedding_fwd<T>(y, ids, table, N, V, D, s));
    return 0;
}

extern "C" int cuda_embedding_bwd(DType dt, float *dtable, const void *dy, const int32_t *ids, int N, int V, int D,
                                  cudaStream_t s) {
    DISPATCH_T(dt, return embedding_bwd<T>(dtable, dy, ids, N, V, D, s));
    return 0;
}

extern "C" int cuda_timestep_embedding_fwd(DType dt, void *y, const float *t, int B, int dim, int flip_sin_to_cos,
                                           float freq_shift, float max_period, cudaStream_t s) {
    DISPATCH_T(dt, return timestep_fwd<T>(y, t, B, dim, flip_sin_to_cos, freq_shift, max_period, s));
    return 0;
}

extern "C" int cuda_timestep_embedding_bwd(DType dt, float *dt_grad, const void *dy, const float *t, int B, int dim,
                                           int flip_sin_to_cos, float freq_shift, float max_period, cudaStream_t s) {
    DISPATCH_T(dt, return timestep_bwd<T>(dt_grad, dy, t, B, dim, flip_sin_to_cos, freq_shift, max_period, s));
    return 0;
}
