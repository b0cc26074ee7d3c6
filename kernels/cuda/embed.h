// embed.h: plain C interface to the CUDA embeddings (kernels/cuda/embed.cu):
// token embedding lookup (CLIP) and diffusers' sinusoidal timestep embedding,
// forward and backward. They mirror kernels/cpu/ops.h ("embed.c").
//
// All pointers are device memory. `dt` (DT_F32 or DT_BF16) is the type T of
// the table, the outputs and their gradients (`void *` below); ids are int32,
// timesteps t, dtable and dt_grad are float. Backward ADDS into its gradient;
// NULL is skipped. Asynchronous on stream s; returns the launch status (0 =
// cudaSuccess, else a cudaError_t value). Results are deterministic.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// y [N, D] = table [V, D] rows picked by ids [N]. The CPU op aborts on an id
// outside [0, V); here such a row of y is zero (validate ids on the host).
int cuda_embedding_fwd(DType dt, void *y, const int32_t *ids, const void *table, int N, int V, int D,
                       cudaStream_t s);
// dtable [V, D] (float) += dy [N, D] rows scattered to ids [N]; out-of-range ids
// are skipped. Each touched element adds its rows in increasing i, exactly the
// CPU's order (bit-identical for f32 dy). Uses 2N int32 of dev_workspace(), so
// only call it on dev_stream() or serialised with it; the id matching costs
// O(N^2) (one thread per id scans all ids: fine for N up to ~1e4).
int cuda_embedding_bwd(DType dt, float *dtable, const void *dy, const int32_t *ids, int N, int V, int D,
                       cudaStream_t s);

// t [B] (float) -> y [B, dim]: half = dim / 2, freq_k = exp(-ln(max_period) k /
// (half - freq_shift)), [sin(t freq) | cos(t freq)] ([cos | sin] with
// flip_sin_to_cos), zero last column for odd dim; every fp32 step rounded as
// in embed.c (sin/cos/exp in double, rounded once).
int cuda_timestep_embedding_fwd(DType dt, void *y, const float *t, int B, int dim, int flip_sin_to_cos,
                                float freq_shift, float max_period, cudaStream_t s);
// dt_grad [B] (float) += sum_k freq_k (dy_sin_k cos(arg_k) - dy_cos_k sin(arg_k)), dy [B, dim]
// (in double, one block per b, fixed-order reduction).
int cuda_timestep_embedding_bwd(DType dt, float *dt_grad, const void *dy, const float *t, int B, int dim,
                                int flip_sin_to_cos, float freq_shift, float max_period, cudaStream_t s);

#ifdef __cplusplus
}
#endif
