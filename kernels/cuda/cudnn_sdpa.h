// cudnn_sdpa.h: plain C interface to cuDNN's fused scaled-dot-product attention
// (kernels/cuda/cudnn_sdpa.cu), reached through the cuDNN backend graph API: the
// "cudnn" path of the attention dispatch (kernels/cuda/attention.cu) and the
// benchmark's comparison column. Same contract as attention.h: AttnShape strided
// views read in place, scale 1/sqrt(D), causal masks key j > i, lse [B,H,Nq] float
// (natural-log log-sum-exp of the scaled scores, identical to cuDNN's Stats), and the
// backward ADDS into dq, dk, dv (cuDNN writes its gradients, rounded to bf16, into
// scratch, then one kernel adds them into the caller's strided views: one bf16 rounding
// more than the flash path's; NULL = not needed).
//
// Applies to bf16 with D a multiple of 8, strides multiples of 8 elements, 16-byte
// aligned pointers, and only when cuDNN accepts the graph on this device (cuDNN 9.26:
// forward head dims to 256 and beyond on sm_80/sm_90, backward to 128 on sm_80 and
// 256 on sm_90): the first call of each shape builds and caches an execution plan (or
// the reason it failed). The
// backward graph is cuDNN's deterministic variant (dQ by a direct matmul, no atomic
// dQ accumulator) unless A2F_CUDNN_SDPA_NONDET=1, to keep the framework's
// bit-reproducible gradients. Built only with cuDNN (A2F_HAVE_CUDNN); elsewhere (the
// SIMT emulator included) every call reports "not built" and the dispatch never
// takes this path.
#pragma once
#include <stddef.h>
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// 1 when this build has the cuDNN path (nvcc with cuDNN); 0 elsewhere (the emulator).
int cuda_cudnn_sdpa_built(void);
// 1 when the cuDNN path runs this direction (bwd 0/1) of shape s with these pointers
// (any may be NULL = not checked); builds and caches the plan on first use. Otherwise 0
// and *why (when why != NULL) says why in one line.
int cuda_cudnn_sdpa_available(DType dt, const AttnShape *s, int bwd, const void *const *ptrs, int nptrs,
                              const char **why);
// o [B,Nq,H*D] (bf16, strided), lse [B,H,Nq] (float) from q, k, v. 0 or a cudaError_t value.
int cuda_cudnn_sdpa_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                        const AttnShape *s, cudaStream_t st);
// dq, dk, dv (bf16, strides of q, k, v) +=; dout and o have o's strides. 0 or a cudaError_t value.
int cuda_cudnn_sdpa_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                        const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st);

// The graphs: the forward as the composite the fused engines match (any cuDNN 9; the
// only one with the causal mask) or as cuDNN's single SDPA operation (9.13.1+, no mask;
// preferred where it applies, as cudnn-frontend does); the backward as the composite,
// deterministic (dQ by a direct matmul) or with cuDNN's atomic dQ accumulator.
enum { A2F_SDPA_FWD = 0, A2F_SDPA_FWD_UNIFIED = 1, A2F_SDPA_BWD = 2, A2F_SDPA_BWD_NONDET = 3, A2F_SDPA_NVARIANTS };
// Name of the graph the cached plan for (s, bwd) runs ("unified", "composite", ...), NULL
// when the cuDNN path does not apply.
const char *cuda_cudnn_sdpa_variant(const AttnShape *s, int bwd);

// Without a GPU (cuDNN >= 9.8): builds graph `variant` of shape s and finalizes an
// execution plan for an offline device, arch 80 (A100 SXM) or 90 (H100 SXM), from
// cuDNN's own device-properties description. 0 when cuDNN's engines accept the graph
// and compile its kernels, 1 when this cuDNN cannot check it (skipped), -1 with why.
int cuda_cudnn_sdpa_check_offline(const AttnShape *s, int variant, int arch, char *why, size_t nwhy);

// dst[b*dsb + i*dstr + c] += src[(b*N + i)*C + c] for b < B, i < N, c < C (dt, accumulated
// in fp32, rounded once): the backward's scratch gradients into the caller's views.
int cuda_view_add(DType dt, void *dst, long dsb, long dstr, const void *src, int B, int N, int C,
                  cudaStream_t st);

#ifdef __cplusplus
}
#endif
