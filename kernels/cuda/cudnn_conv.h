// cudnn_conv.h: plain C interface to cuDNN convolution through its backend graph API
// (kernels/cuda/cudnn_conv.cu): the "cudnn-graph" path of the conv2d dispatcher and a
// benchmark column. The same passes and contract as the dispatcher's other paths
// (kernels/cuda/conv2d.h): NHWC activations, weights [Cout, KH, KW, Cin] (KRSC), any
// padding including the VAE encoder's right/bottom-only (pre and post paddings are
// separate in the graph API, unlike the legacy API), bf16 only (f32 would need engines
// filtered for TF32; the legacy "cudnn" path serves f32).
//   which 0: y [B,Ho,Wo,Cout] = conv(x, w) + bias[Cout] (bias may be NULL; y written)
//   which 1: dx [B,H,W,Cin] += conv^T(dy, w)
//   which 2: dw [Cout,KH,KW,Cin] (float) += corr(x, dy)
// cuDNN's heuristics (mode A) pick the engine; one plan per (shape, dtype, pass) is built
// on first use and cached. Gradients accumulate through scratch + one add kernel (cuDNN
// writes them, rounded to bf16: dx and dw see one rounding more than the tc path's;
// cuDNN 9.26 refuses an fp32 dW with bf16 operands, which is tried first).
// Built only with cuDNN (A2F_HAVE_CUDNN); elsewhere every call reports "not built".
#pragma once
#include <stddef.h>
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// 1 when cuDNN builds a plan for pass `which` of shape s in dtype dt on this device (built
// and cached on first use); else 0 with *why (may be NULL) in one line.
int cuda_cudnn_conv_available(DType dt, const Conv2dShape *s, int which, const char **why);
// Runs pass `which` (see above): out = y / dx / dw, a = x / dy / dy, b = w / w / x.
// 0 or a cudaError_t value.
int cuda_cudnn_conv_run(int which, DType dt, void *out, const void *a, const void *b, const void *bias,
                        const Conv2dShape *s, cudaStream_t st);

// Without a GPU (cuDNN >= 9.8): builds pass `which` (with a bias for which 0 when
// `bias`) and finalizes a plan for a described A100 (arch 80) or H100 (90); dw_f32
// asks for an fp32 dW (pass 2). 0 accepted and compiled, 1 skipped (this cuDNN cannot
// check offline), -1 refused with why.
int cuda_cudnn_conv_check_offline(const Conv2dShape *s, DType dt, int which, int bias, int dw_f32, int arch,
                                  char *why, size_t nwhy);

#ifdef __cplusplus
}
#endif
