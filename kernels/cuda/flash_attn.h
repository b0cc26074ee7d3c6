// flash_attn.h: plain C interface to the tensor-core flash attention
// (kernels/cuda/flash_attn.cu): forward and backward of attention_fwd /
// attention_bwd (kernels/cpu/ops.h) on the same AttnShape strided views, bf16
// only, head dims 40, 64, 80, 160. No N x N matrix is ever stored.
//
// Preconditions (cuda_flash_attn_supported): dt == DT_BF16, D in {40, 64, 80,
// 160}, every stride (q/k/v/o _sb and _st) a multiple of 8 elements and every
// pointer 16-byte aligned (cp.async moves 16-byte rows pieces), sizes that fit
// int. The launchers return cudaErrorInvalidValue when they do not hold; the
// dispatch in attention.cu then uses the plain path.
//
// Device pointers. q [B,Nq,H*D] (q_sb, q_st), k, v [B,Nk,H*D], o and dout
// [B,Nq,H*D] (o_sb, o_st): bf16. lse [B,H,Nq] float: log-sum-exp of the scaled
// scores (natural log), as the CPU op. Backward ADDS into dq, dk, dv (bf16,
// strides of q, k, v; NULL = not needed), deterministically (no atomics).
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// 1 when the flash kernels handle this dtype, shape and these pointers (any may be NULL = not checked).
int cuda_flash_attn_supported(DType dt, const AttnShape *s, const void *const *ptrs, int nptrs);
// o [B,Nq,H*D] (bf16, strided), lse [B,H,Nq] (float) from q [B,Nq,H*D], k, v [B,Nk,H*D] (bf16, strided).
int cuda_flash_attn_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                        const AttnShape *s, cudaStream_t st);
// dq, dk, dv (bf16, strides of q, k, v) +=; dout [B,Nq,H*D] and o have o's strides; lse [B,H,Nq] float.
// Scratch: 2*B*H*Nq floats of dev_workspace().
int cuda_flash_attn_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                        const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st);

#ifdef __cplusplus
}
#endif
