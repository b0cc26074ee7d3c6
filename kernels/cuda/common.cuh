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
