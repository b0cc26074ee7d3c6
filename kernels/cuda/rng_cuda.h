// rng_cuda.h: plain C interface to the CUDA Philox fills (kernels/cuda/rng.cu).
//
// d_x is device memory. Results are bit-identical to philox_fill_uniform /
// philox_fill_normal of kernels/rng.h (same element functions, philox.h).
// Launchers are asynchronous on stream s and return the launch status
// (0 = cudaSuccess, else a cudaError_t value).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// d_x [n]: uniform in [0, 1).
int cuda_philox_fill_uniform(float *d_x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s);
// d_x [n]: standard normal (mean 0, std 1).
int cuda_philox_fill_normal(float *d_x, size_t n, uint64_t seed, uint64_t offset, cudaStream_t s);
// d_x [n]: fmaf(z, std, mean), z standard normal.
int cuda_philox_fill_normal_ms(float *d_x, size_t n, uint64_t seed, uint64_t offset, float mean, float std,
                               cudaStream_t s);

#ifdef __cplusplus
}
#endif
