// rng.cu: CUDA fills of the Philox uniform and normal streams.
//
// One thread per Philox block (4 consecutive elements), grid-stride loop.
// The element math is philox.h, the same source the CPU fills use, so the
// output is bit-identical to kernels/rng.c (see philox.h for why fast-math
// cannot change it).
#include <cuda_runtime.h>

#include "../philox.h"
#include "rng_cuda.h"

// x [n]
__global__ void philox_fill_uniform_kernel(float *__restrict__ x, size_t n, uint64_t seed, uint64_t offset) {
    size_t nblocks = (n + 3) / 4;
    for (size_t b = (size_t)blockIdx.x * blockDim.x + threadIdx.x; b < nblocks; b += (size_t)gridDim.x * blockDim.x) {
        Philox4 r = philox_block(seed, offset, b);
        size_t base = b * 4;
        if (base + 4 <= n && (((uintptr_t)(x + base)) & 15) == 0) {
            float4 v = make_float4(philox_word_to_uniform(r.v[0]), philox_word_to_uniform(r.v[1]),
                                   philox_word_to_uniform(r.v[2]), philox_word_to_uniform(r.v[3]));
            *reinterpret_cast<float4 *>(x + base) = v;
        } else {
            for (int k = 0; k < 4 && base + k < n; k++) x[base + k] = philox_word_to_uniform(r.v[k]);
        }
    }
}

// x [n]
__global__ void philox_fill_normal_kernel(float *__restrict__ x, size_t n, uint64_t seed, uint64_t offset,
                                          float mean, float std) {
    size_t nblocks = (n + 3) / 4;
    for (size_t b = (size_t)blockIdx.x * blockDim.x + threadIdx.x; b < nblocks; b += (size_t)gridDim.x * blockDim.x) {
        float z[4];
        philox_normal4(seed, offset, b, z);
        size_t base = b * 4;
        for (int k = 0; k < 4; k++) z[k] = fmaf(z[k], std, mean);
        if (base + 4 <= n && (((uintptr_t)(x + base)) & 15) == 0) {
            *reinterpret_cast<float4 *>(x + base) = make_float4(z[0], z[1], z[2], z[3]);
        } else {
            for (int k = 0; k < 4 && base + k < n; k++) x[base + k] = z[k];
        }
    }
}

static unsigned int rng_grid(size_t n, int threads) {
    size_t nblocks = (n + 3) / 4;
    size_t g = (nblocks + threads - 1) / threads;
    if (g > 65535u * 8u) g = 65535u * 8u;  // grid-stride covers the rest
    return g ? (unsigned int)g : 1u;
}

extern "C" int cuda_philox_fill_uniform(float *d_x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s) {
    if (n == 0) return 0;
    const int threads = 256;
    philox_fill_uniform_kernel<<<rng_grid(n, threads), threads, 0, s>>>(d_x, n, seed, offset);
    return (int)cudaGetLastError();
}

extern "C" int cuda_philox_fill_normal_ms(float *d_x, size_t n, uint64_t seed, uint64_t offset, float mean,
                                          float std, cudaStream_t s) {
    if (n == 0) return 0;
    const int threads = 256;
    philox_fill_normal_kernel<<<rng_grid(n, threads), threads, 0, s>>>(d_x, n, seed, offset, mean, std);
    return (int)cudaGetLastError();
}

extern "C" int cuda_philox_fill_normal(float *d_x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s) {
    return cuda_philox_fill_normal_ms(d_x, n, seed, offset, 0.0f, 1.0f, s);
}
