// norm.h: plain C interface to the CUDA normalisation kernels (kernels/cuda/norm.cu):
// GroupNorm (+ fused SiLU), LayerNorm, BatchNorm, forward and backward.
//
// Mirrors kernels/cpu/ops.h (section norm.c) with device pointers, a leading
// DType dt (DT_F32 or DT_BF16: the type T of activations, their gradients and
// gamma/beta) and a trailing stream. Statistics (mean, rstd, running stats)
// and parameter gradients (dgamma, dbeta) are float. Backward ADDS into every
// gradient buffer it is given; NULL = not needed. gamma/beta may be NULL
// (no affine). Launchers are asynchronous, use dev_workspace() scratch for
// cross-block partial sums (so: the default framework stream ordering), and
// return 0 or a cudaError_t value (cudaErrorInvalidValue for bad shapes or a
// dtype other than f32/bf16, cudaErrorMemoryAllocation when the workspace
// cannot grow).
//
// Determinism: every reduction is split into fixed row chunks that do NOT
// depend on the device (chunk size is a function of the shape only) and whose
// partial sums are combined in a fixed order, so results are bit-identical
// run to run and across GPUs. No float atomics.
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// GroupNorm over x [B, HW, C] with G groups (C % G == 0); y [B, HW, C];
// mean, rstd [B, G] float (may be NULL); gamma, beta [C] (may be NULL).
// y = (x - mean) * rstd * gamma + beta, then SiLU when silu != 0.
// Statistics: each block sums a chunk of rows (all C channels, coalesced) of
// x shifted by x[b, 0, c]; a second pass adds the chunks in order and merges
// channels into groups. One (b, g) group is thus split over many blocks.
int cuda_groupnorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                       const void *beta, int B, int HW, int C, int G, float eps, int silu, cudaStream_t s);
// dx [B, HW, C] T +=, dgamma [C] float +=, dbeta [C] float += (each may be NULL).
// dy, x [B, HW, C]; mean, rstd [B, G] from the forward; gamma, beta [C] (may be NULL).
int cuda_groupnorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                       const float *mean, const float *rstd, const void *gamma, const void *beta, int B, int HW,
                       int C, int G, int silu, cudaStream_t s);

// LayerNorm over the last dim of x [N, C]; y [N, C]; mean, rstd [N] float (may be NULL);
// gamma, beta [C] (may be NULL). One warp per row; the row is kept in registers
// when C is a multiple of 4 (f32) / 8 (bf16) and C <= 2048 / 4096 (backward:
// 1536 / 3072), else re-read from memory.
int cuda_layernorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                       const void *beta, int N, int C, float eps, cudaStream_t s);
// dx [N, C] T +=, dgamma, dbeta [C] float += (each may be NULL); dy, x [N, C]; mean, rstd [N].
int cuda_layernorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                       const float *mean, const float *rstd, const void *gamma, int N, int C, cudaStream_t s);

// BatchNorm2d on x [N, C] rows (N = B*H*W, NHWC). gamma/beta [C] T (may be NULL).
// Inference: y [N, C] = (x - run_mean) * rsqrt(run_var + eps) * gamma + beta; run_* [C] float.
int cuda_batchnorm_fwd_infer(DType dt, void *y, const void *x, const void *gamma, const void *beta,
                             const float *run_mean, const float *run_var, int N, int C, float eps, cudaStream_t s);
// Training: batch statistics (biased variance); mean, rstd [C] float saved (may be NULL);
// run_mean, run_var [C] float updated in place with momentum, run_var from the unbiased
// variance (PyTorch semantics; may be NULL). N must be > 1.
int cuda_batchnorm_fwd_train(DType dt, void *y, float *mean, float *rstd, float *run_mean, float *run_var,
                             const void *x, const void *gamma, const void *beta, int N, int C, float eps,
                             float momentum, cudaStream_t s);
// dx [N, C] T +=, dgamma, dbeta [C] float += (each may be NULL); dy, x [N, C]; mean, rstd [C]
// from cuda_batchnorm_fwd_train.
int cuda_batchnorm_bwd_train(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                             const float *mean, const float *rstd, const void *gamma, int N, int C, cudaStream_t s);
// Inference-mode backward (stats are constants): dx += dy * gamma * rsqrt(run_var + eps);
// dgamma += sum dy * xhat, dbeta += sum dy with xhat from the running stats.
int cuda_batchnorm_bwd_infer(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                             const void *gamma, const float *run_mean, const float *run_var, int N, int C, float eps,
                             cudaStream_t s);

// Tuning / test hook: rows per block chunk of the cross-row reductions (0 = automatic,
// the default). Tests set a small value to force many chunks on small shapes.
void cuda_norm_set_chunk_rows(int rows);

#ifdef __cplusplus
}
#endif
