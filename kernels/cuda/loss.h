// loss.h: plain C interface to the CUDA losses and regularisers
// (kernels/cuda/loss.cu): seeded dropout, MSE loss, row L2 normalisation and
// row cosine similarity, forward and backward. They mirror kernels/cpu/ops.h
// ("loss.c").
//
// All pointers are device memory. `dt` (DT_F32 or DT_BF16) is the type T of
// the activations and their gradients (`void *` below); the loss, the cosine
// similarities and their gradients are float. Backward ADDS into every
// gradient (load T, add in fp32, round once); a NULL gradient is skipped.
// Asynchronous on stream s; returns the launch status (0 = cudaSuccess, else
// a cudaError_t value, cudaErrorInvalidValue for bad arguments). Results are
// deterministic (bit-identical run to run).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// y [n] = x [n] * keep_i / (1 - p), keep_i = philox_uniform(seed, offset, i) >= p
// (kernels/philox.h): the same mask as the CPU op, bit for bit; p = 1 zeroes.
// Uses Philox counters offset .. offset + ceil(n/4) - 1. y may alias x.
int cuda_dropout_fwd(DType dt, void *y, const void *x, size_t n, float p, uint64_t seed, uint64_t offset,
                     cudaStream_t s);
// dx [n] += dy [n] masked and scaled exactly as the forward.
int cuda_dropout_bwd(DType dt, void *dx, const void *dy, size_t n, float p, uint64_t seed, uint64_t offset,
                     cudaStream_t s);

// loss [1] (float, device) = mean((a [n] - b [n])^2): fixed-size per-block
// partials in dev_workspace() summed in a fixed order (double), so only use it
// on dev_stream() or serialised with it.
int cuda_mse_loss_fwd(DType dt, float *loss, const void *a, const void *b, size_t n, cudaStream_t s);
// da [n] += dloss * 2 (a - b) / n; db [n] -= the same. dloss is a host value.
int cuda_mse_loss_bwd(DType dt, void *da, void *db, float dloss, const void *a, const void *b, size_t n,
                      cudaStream_t s);

// y [N, D] = x [N, D] / max(||x||, eps) per row (F.normalize); dx [N, D] += its gradient
// (dy - y (y . dy)) / ||x||, or dy / eps where the clamp is active.
int cuda_l2norm_fwd(DType dt, void *y, const void *x, int N, int D, float eps, cudaStream_t s);
int cuda_l2norm_bwd(DType dt, void *dx, const void *dy, const void *x, int N, int D, float eps, cudaStream_t s);

// y [N] (float) = a . b / (max(||a||, eps) max(||b||, eps)) per row of a, b [N, D];
// backward with dy [N] (float): da, db [N, D] += torch's gradient (see ops.h).
int cuda_cosine_sim_fwd(DType dt, float *y, const void *a, const void *b, int N, int D, float eps, cudaStream_t s);
int cuda_cosine_sim_bwd(DType dt, void *da, void *db, const float *dy, const void *a, const void *b, int N, int D,
                        float eps, cudaStream_t s);

#ifdef __cplusplus
}
#endif
