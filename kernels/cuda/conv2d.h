// conv2d.h: plain C interface to the CUDA NHWC convolution (kernels/cuda/conv2d.cu),
// mirroring conv2d_fwd / conv2d_bwd of kernels/cpu/ops.h (same Conv2dShape; weights
// [Cout, KH, KW, Cin]; asymmetric padding; Ho = (H + pt + pb - KH) / sh + 1).
//
// Implementation (conv2d.cu): a dispatcher over four paths per shape and pass --
// "tc" (tensor-core implicit GEMM, conv_tc.h; bf16 only), "im2col" (im2col into a
// bounded dev_workspace() tile + cuBLAS GEMM), "cudnn" (cuDNN's legacy API, when built
// with A2F_HAVE_CUDNN) and "cudnn-graph" (cuDNN's graph API, cudnn_conv.h; forced only)
// -- chosen by cuda_conv2d_force() / A2F_CONV=auto|tc|im2col|cudnn|cudnn-graph.
// auto on a GPU times the candidates on the first call of each shape (that call is
// slower) and caches the winner; under the emulator it is tc (bf16) / im2col (f32).
// Device pointers; T = dt (DT_F32 or
// DT_BF16) for x, y, dx, dy and the working weights w, bias; dw and dbias are float.
// Backward ADDS into every gradient it is given (NULL = not needed). Deterministic.
// Return 0 or a cudaError_t value.
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// y [B,Ho,Wo,Cout] (T) = conv(x [B,H,W,Cin] (T), w [Cout,KH,KW,Cin] (T)) + bias [Cout] (T, may be NULL).
int cuda_conv2d_fwd(DType dt, void *y, const void *x, const void *w, const void *bias, const Conv2dShape *sh,
                    cudaStream_t s);
// As cuda_conv2d_fwd, plus res [B,Ho,Wo,Cout] (T, may be NULL, may equal y) added to y:
// fused into the tc epilogue (one rounding); other paths add it afterwards.
int cuda_conv2d_fwd_res(DType dt, void *y, const void *x, const void *w, const void *bias, const void *res,
                        const Conv2dShape *sh, cudaStream_t s);
// dx [B,H,W,Cin] (T) +=, dw [Cout,KH,KW,Cin] (float) +=, dbias [Cout] (float) +=;
// dy [B,Ho,Wo,Cout], x, w (T).
int cuda_conv2d_bwd(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x, const void *w,
                    const Conv2dShape *sh, cudaStream_t s);
// Path policy: "auto", "tc", "im2col", "cudnn" or "cudnn-graph" (a forced path that cannot run a
// call falls back to tc for bf16, im2col for f32); NULL = back to the A2F_CONV
// environment variable (default auto). 0, or -1 for an unknown name.
int cuda_conv2d_force(const char *path);
// The path bf16 pass `which` (0 fwd, 1 bwd data, 2 bwd weight) of shape s takes now:
// "tc", "im2col", "cudnn", "cudnn-graph", or "untimed" (auto on a GPU before the first call).
const char *cuda_conv2d_path(const Conv2dShape *s, int which);
// 1 when cuDNN is compiled in and a handle could be created.
int cuda_conv2d_have_cudnn(void);
// Tests: output pixels per im2col tile (0 = automatic: ~16M col elements, >= 256 pixels).
void cuda_conv2d_set_tile_pixels(long pixels);

#ifdef __cplusplus
}
#endif
