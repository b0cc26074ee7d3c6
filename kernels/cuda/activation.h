// activation.h: plain C interface to the CUDA activations (kernels/cuda/activation.cu):
// ReLU, PReLU, sigmoid, SiLU, exact GELU, quick-GELU, GEGLU and row softmax,
// forward and backward. They mirror kernels/cpu/ops.h ("activation.c").
//
// All pointers are device memory. `dt` (DT_F32 or DT_BF16) is the type T of
// the activations, their gradients and the PReLU slope (`void *` below);
// dslope is always float. Math is fp32, one rounding on store. Backward ADDS
// into dx / dslope (dx: load T, add in fp32, round once); a NULL gradient
// pointer is skipped. Asynchronous on stream s; returns the launch status
// (0 = cudaSuccess, else a cudaError_t value). Results are deterministic.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// Elementwise over n values: y [n], x [n]; backward dx [n] += dy [n] * f'(x [n]).
int cuda_relu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
int cuda_relu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
int cuda_sigmoid_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
int cuda_sigmoid_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
int cuda_silu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
int cuda_silu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
int cuda_gelu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
int cuda_gelu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);
int cuda_quickgelu_fwd(DType dt, void *y, const void *x, size_t n, cudaStream_t s);
int cuda_quickgelu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t n, cudaStream_t s);

// PReLU: x, y [N, C]; slope [C] (T). Backward: dx [N, C] +=, dslope [C] (float) +=
// sum over rows with x <= 0 of dy * x (fixed-order two-pass reduction in
// dev_workspace(), so only use it on dev_stream() or serialised with it).
int cuda_prelu_fwd(DType dt, void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s);
int cuda_prelu_bwd(DType dt, void *dx, float *dslope, const void *dy, const void *x, const void *slope, size_t N,
                   int C, cudaStream_t s);

// GEGLU: x [N, 2D] = [hidden | gate] -> y [N, D] = hidden * gelu(gate); dx [N, 2D] +=.
int cuda_geglu_fwd(DType dt, void *y, const void *x, size_t N, int D, cudaStream_t s);
int cuda_geglu_bwd(DType dt, void *dx, const void *dy, const void *x, size_t N, int D, cudaStream_t s);

// Softmax over the last dim: x, y [N, C] (one warp per row for C <= 1024,
// one block per row above). Backward uses y: dx [N, C] += y * (dy - sum(dy * y)).
int cuda_softmax_fwd(DType dt, void *y, const void *x, size_t N, int C, cudaStream_t s);
int cuda_softmax_bwd(DType dt, void *dx, const void *dy, const void *y, size_t N, int C, cudaStream_t s);

#ifdef __cplusplus
}
#endif
