// common.cuh: shared device-side helpers for the kernels in kernels/cuda/.
//
// Activations and working weights are `T` = float or __nv_bfloat16; every
// kernel loads them to float, computes and accumulates in float, and rounds
// once on store. Parameter gradients, norm statistics and optimizer state
// are always float. Launchers are extern "C", take a DType (kernels/tensor.h)
// to pick T, run on the given stream and return cudaGetLastError() as int.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "../tensor.h"

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16_rn(x); }

// Grid size for a grid-stride loop over n items with `threads` per block.
static inline unsigned int grid_for(size_t n, int threads) {
    size_t g = (n + threads - 1) / threads;
    if (g > 65535u * 16u) g = 65535u * 16u;
    return g ? (unsigned int)g : 1u;
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Instantiates a launcher body for T = float or bf16 from a DType; anything
// else returns cudaErrorInvalidValue.
#define DISPATCH_T(dt, ...)                                      \
    do {                                                         \
        if ((dt) == DT_F32) {                                    \
            typedef float T;                                     \
            __VA_ARGS__;                                         \
        } else if ((dt) == DT_BF16) {                            \
            typedef bf16 T;                                      \
            __VA_ARGS__;                                         \
        } else {                                                 \
            return (int)cudaErrorInvalidValue;                   \
        }                                                        \
    } while (0)

// Everything below has internal linkage: each .cu gets its own copy, so the
// emulator build (all .cu files linked into one program) sees no duplicates.
namespace {

// ---------------------------------------------------------------- alignment

static inline bool al16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// ---------------------------------------------------------------- 16-byte packs

// Pack<T>: N = 16 / sizeof(T) elements of T <-> N floats with one 16-byte access.
template <typename T> struct Pack;
template <> struct Pack<float> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void load(const float *p, float *f) {
        float4 v = *reinterpret_cast<const float4 *>(p);
        f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
    }
    static __device__ __forceinline__ void store(float *p, const float *f) {
        *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
    }
};
template <> struct Pack<bf16> {
    static constexpr int N = 8;
    static __device__ __forceinline__ void load(const bf16 *p, float *f) {
        uint4 v = *reinterpret_cast<const uint4 *>(p);
        unsigned w[4] = {v.x, v.y, v.z, v.w};
        for (int k = 0; k < 4; k++) {  // little endian: element 2k in the low half
            f[2 * k] = __uint_as_float(w[k] << 16);
            f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
        }
    }
    static __device__ __forceinline__ void store(bf16 *p, const float *f) {
        unsigned w[4];
        for (int k = 0; k < 4; k++)
            w[k] = (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(f[2 * k])) |
                   ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(f[2 * k + 1])) << 16);
        *reinterpret_cast<uint4 *>(p) = make_uint4(w[0], w[1], w[2], w[3]);
    }
};

// ---------------------------------------------------------------- V-element vectors

// VecV<E, V>: V contiguous E loaded / stored as one aligned access.
template <typename E, int V> struct alignas(sizeof(E) * V) VecV {
    E v[V];
};

// f[0..V) = p[0..V) as float (one vector load when V > 1; p aligned to V elements).
template <typename T, int V> __device__ __forceinline__ void ldv(const T *p, float (&f)[V]) {
    VecV<T, V> q = *reinterpret_cast<const VecV<T, V> *>(p);
#pragma unroll
    for (int k = 0; k < V; k++) f[k] = to_f32(q.v[k]);
}
template <typename T, int V> __device__ __forceinline__ void stv(T *p, const float (&f)[V]) {
    VecV<T, V> q;
#pragma unroll
    for (int k = 0; k < V; k++) q.v[k] = from_f32<T>(f[k]);
    *reinterpret_cast<VecV<T, V> *>(p) = q;
}

// ---------------------------------------------------------------- scalar math

// Numerically safe sigmoid (as kernels/cpu/activation.c and kernels/cpu/norm.c).
__device__ __forceinline__ float sigm(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// ---------------------------------------------------------------- reductions

// Warp xor butterflies: every lane ends with the same, order-fixed value.
template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Block-wide sum / max (blockDim.x a multiple of 32, sh [blockDim.x / 32]);
// every thread gets the result, combined over warps in warp order.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    v = warp_sum(v);
    __syncthreads();  // sh may still be read from the previous call
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = 0.0f;
    for (int k = 0; k < (int)(blockDim.x >> 5); k++) t += sh[k];
    return t;
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = sh[0];
    for (int k = 1; k < (int)(blockDim.x >> 5); k++) t = fmaxf(t, sh[k]);
    return t;
}

}  // namespace
