// linear.h: plain C interface to the CUDA fully connected layer (kernels/cuda/linear.cu),
// mirroring linear_fwd / linear_bwd of kernels/cpu/ops.h (PyTorch [out, in] weights).
//
// Device pointers. T = dt (DT_F32 or DT_BF16) for activations, their gradients and
// the working weights W, b; parameter gradients dW, db are float. Backward ADDS into
// every gradient it is given (NULL = not needed); dx is T (loaded, added in fp32,
// rounded once). Deterministic run to run. Return 0 or a cudaError_t value.
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// y [M,N] (T) = x [M,K] (T) @ W [N,K]^T (T) + b [N] (T, may be NULL); cuBLASLt bias epilogue.
int cuda_linear_fwd(DType dt, void *y, const void *x, const void *W, const void *b, int M, int K, int N,
                    cudaStream_t s);
// dx [M,K] (T) += dy @ W; dW [N,K] (float) += dy^T @ x; db [N] (float) += column sums of dy.
// dy [M,N], x [M,K], W [N,K] are T.
int cuda_linear_bwd(DType dt, void *dx, float *dW, float *db, const void *dy, const void *x, const void *W, int M,
                    int K, int N, cudaStream_t s);
// db [N] (float) += sum over the M rows of dy [M,N] (T, row stride N), in a fixed order
// (per-chunk partials in dev_workspace(), then one ordered pass). Also used by conv2d.
int cuda_bias_grad(DType dt, float *db, const void *dy, long M, int N, cudaStream_t s);

#ifdef __cplusplus
}
#endif
