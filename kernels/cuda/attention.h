// attention.h: plain C interface to the CUDA multi-head attention
// (kernels/cuda/attention.cu), mirroring attention_fwd / attention_bwd of
// kernels/cpu/ops.h: the same AttnShape strided views (q element (b, i, h, d) at
// q[b*q_sb + i*q_st + h*D + d]; k, v with Nk keys; o and dout [B, Nq, H*D] with
// o_sb, o_st), scale 1/sqrt(D), causal masks key j > i, lse [B, H, Nq] saved.
//
// Device pointers; q, k, v, o, dout, dq, dk, dv are T = dt (DT_F32 or DT_BF16), lse is
// float. Backward ADDS into dq, dk, dv (strides of q, k, v; NULL = not needed) and
// recomputes the probabilities from lse. Deterministic. Return 0 or a cudaError_t value.
//
// Paths: "flash" (kernels/cuda/flash_attn.cu: tensor cores, no N x N matrix; bf16,
// D in {40, 64, 80, 160}, strides multiples of 8 elements, 16-byte aligned pointers),
// "cudnn" (kernels/cuda/cudnn_sdpa.cu: cuDNN's fused flash attention through its graph
// API; bf16, when cuDNN builds a plan for the shape on this device; builds with cuDNN
// only) and "plain" (cuBLAS batched GEMMs with H*Nq*Nk-sized scratch per batch element;
// any dtype, any shape). The environment variable A2F_ATTN = auto (default) | flash |
// cudnn | plain picks one; a forced path that does not apply falls back to flash, else
// plain. auto: under the SIMT emulator flash whenever it applies; on a GPU the first
// call of each shape (and direction) times the applicable paths once and caches the
// fastest (plain is not timed where its scratch would exceed 2^24 scores per batch
// element; cuDNN only for key lengths >= 1024, where it was faster on an H200).
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// o [B,Nq,H*D] (T, strided), lse [B,H,Nq] (float) from q [B,Nq,H*D], k, v [B,Nk,H*D] (T, strided).
int cuda_attention_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                       const AttnShape *s, cudaStream_t st);
// dq, dk, dv (T, strides of q, k, v) +=; dout and o have o's strides; lse [B,H,Nq] from the forward.
int cuda_attention_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                       const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st);
// The path ("flash", "cudnn", "plain") that cuda_attention_fwd (bwd = 0) / _bwd (bwd = 1) takes or
// took for shape s with bf16 aligned views: the cached choice once timed, else the first guess.
const char *cuda_attention_path(const AttnShape *s, int bwd);

#ifdef __cplusplus
}
#endif
