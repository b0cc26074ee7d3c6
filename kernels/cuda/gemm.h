// gemm.h: plain C interface to the GEMMs of the CUDA backend (kernels/cuda/gemm.cu),
// through cuBLAS (cublasGemmEx / cublasGemmStridedBatchedEx) and cuBLASLt (bias
// epilogue).
//
// ROW-major like the CPU gemm() of kernels/cpu/ops.h:
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
// op(A) = A (ta = 0, A is [M,K] with leading dim lda) or A^T (ta = 1, A is [K,M]);
// op(B) = B (tb = 0, B is [K,N]) or B^T (tb = 1, B is [N,K]); ldc >= N.
// A, B, C are device pointers of type dt (DT_F32 or DT_BF16) unless the name says
// f32out (C float). Accumulation is fp32 (CUBLAS_COMPUTE_32F, no TF32, no reduced
// precision split-K reductions); alpha * acc + beta * C is rounded once to C's type.
// beta = 0 does not read C. Results are deterministic run to run (fixed workspace).
//
// Handles (cuBLAS + cuBLASLt) and a 32 MiB cuBLAS workspace are created lazily per
// device on first use. Calls on different streams share that workspace: the
// caller orders them. Launchers return 0 or a cudaError_t value; a cuBLAS failure
// prints one line to stderr naming the call and the cuBLAS status and returns
// cudaErrorInvalidValue / cudaErrorNotSupported / cudaErrorMemoryAllocation /
// cudaErrorUnknown.
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// C [M, ldc] (dt) = alpha op(A) op(B) + beta C; A [M|K rows, lda], B [K|N rows, ldb] (dt).
int cuda_gemm(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
              int ldb, float beta, void *C, int ldc, cudaStream_t s);
// Batched: batch b uses A + b*sA, B + b*sB, C + b*sC (strides in elements).
int cuda_gemm_batched(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, long sA,
                      const void *B, int ldb, long sB, float beta, void *C, int ldc, long sC, int batch,
                      cudaStream_t s);
// As cuda_gemm with A, B of type dt and C float [M, ldc] (parameter gradients, scores).
int cuda_gemm_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                     const void *B, int ldb, float beta, float *C, int ldc, cudaStream_t s);
int cuda_gemm_batched_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                             long sA, const void *B, int ldb, long sB, float beta, float *C, int ldc, long sC,
                             int batch, cudaStream_t s);
// C [M, ldc] (dt) = op(A) op(B) + bias[N] (bias of type dt, broadcast over rows; NULL =
// none), rounded once: f32 through cuBLASLt's BIAS epilogue; bf16 with a bias by a bias
// kernel writing C and cuda_gemm with beta = 1 (cuBLASLt's bf16 bias epilogue rounded twice
// on an H200); also the path when cuBLASLt offers no algorithm.
int cuda_gemm_bias(DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                   const void *bias, void *C, int ldc, cudaStream_t s);
// Tests: 0 forces cuda_gemm_bias onto its fallback path (cuBLAS GEMM + bias kernel),
// 1 (default) uses cuBLASLt.
void cuda_gemm_use_lt(int enabled);

#ifdef __cplusplus
}
#endif
