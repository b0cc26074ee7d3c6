// shape.h: plain C interface to the CUDA data-movement ops (kernels/cuda/shape.cu):
// nearest 2x upsampling, channel concat (skip connections) and the residual
// add, forward and backward. They mirror kernels/cpu/ops.h ("shape.c").
//
// All pointers are device memory of type T = `dt` (DT_F32 or DT_BF16).
// Backward ADDS into every gradient (load T, add in fp32, round once); a NULL
// gradient pointer is skipped. Asynchronous on stream s; returns the launch
// status (0 = cudaSuccess, else a cudaError_t value).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// x [B, H, W, C] -> y [B, 2H, 2W, C]; dx [B, H, W, C] += the sum of the four dy
// [B, 2H, 2W, C] values each input fed ((g00 + g01) + (g10 + g11), as the CPU).
int cuda_upsample2x_fwd(DType dt, void *y, const void *x, int B, int H, int W, int C, cudaStream_t s);
int cuda_upsample2x_bwd(DType dt, void *dx, const void *dy, int B, int H, int W, int C, cudaStream_t s);

// a [P, Ca], b [P, Cb] -> y [P, Ca + Cb]; da [P, Ca] += dy[:, :Ca], db [P, Cb] += dy[:, Ca:].
int cuda_concat_fwd(DType dt, void *y, const void *a, const void *b, size_t P, int Ca, int Cb, cudaStream_t s);
int cuda_concat_bwd(DType dt, void *da, void *db, const void *dy, size_t P, int Ca, int Cb, cudaStream_t s);

// y [n] = a [n] + b [n] (y may alias a or b); da [n] += dy [n], db [n] += dy [n].
int cuda_add_fwd(DType dt, void *y, const void *a, const void *b, size_t n, cudaStream_t s);
int cuda_add_bwd(DType dt, void *da, void *db, const void *dy, size_t n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
