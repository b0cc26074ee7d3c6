// conv2d.h: plain C interface to the CUDA NHWC convolution (kernels/cuda/conv2d.cu),
// mirroring conv2d_fwd / conv2d_bwd of kernels/cpu/ops.h (same Conv2dShape; weights
// [Cout, KH, KW, Cin]; asymmetric padding; Ho = (H + pt + pb - KH) / sh + 1).
//
// Implementation: im2col into a bounded dev_workspace() tile + cuBLAS GEMM (issue 4
// replaces it with implicit-GEMM kernels). Device pointers; T = dt (DT_F32 or
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
// dx [B,H,W,Cin] (T) +=, dw [Cout,KH,KW,Cin] (float) +=, dbias [Cout] (float) +=;
// dy [B,Ho,Wo,Cout], x, w (T).
int cuda_conv2d_bwd(DType dt, void *dx, float *dw, float *dbias, const void *dy, const void *x, const void *w,
                    const Conv2dShape *sh, cudaStream_t s);
// Tests: output pixels per im2col tile (0 = automatic: ~16M col elements, >= 256 pixels).
void cuda_conv2d_set_tile_pixels(long pixels);

#ifdef __cplusplus
}
#endif
