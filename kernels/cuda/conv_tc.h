// conv_tc.h: plain C interface to the tensor-core NHWC convolution
// (kernels/cuda/conv_tc.cu): implicit GEMM with mma.sync m16n8k16, bf16 in,
// fp32 accumulate, forward / backward data / backward weight.
//
// Same Conv2dShape as conv2d_fwd/bwd of kernels/cpu/ops.h (weights
// [Cout, KH, KW, Cin], asymmetric padding, Ho = (H + pt + pb - KH) / sh + 1).
// Any kernel size, stride, padding and channel count; Cin and Cout multiples of
// 8 (with 16-byte aligned tensors) take the cp.async fast path, others a scalar
// loader. bf16 only (x, w, y, dy, dx, bias, residual are bf16; dw is float).
// Deterministic: split reductions go through fp32 partials in dev_workspace()
// and one fixed-order pass. Device pointers; return 0 or a cudaError_t value.
// cuda_conv2d_fwd/bwd (conv2d.h) dispatch here when the "tc" path is chosen.
#pragma once
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif
#include "../cpu/ops.h"

// y [B,Ho,Wo,Cout] = conv(x [B,H,W,Cin], w [Cout,KH,KW,Cin]) + bias [Cout] (NULL: none)
// + res [B,Ho,Wo,Cout] (NULL: none; may equal y). One bf16 rounding of the fp32 sum.
int cuda_conv_tc_fwd(void *y, const void *x, const void *w, const void *bias, const void *res,
                     const Conv2dShape *s, cudaStream_t st);
// dx [B,H,W,Cin] += conv_transpose(dy [B,Ho,Wo,Cout], w [Cout,KH,KW,Cin]) (load, add in fp32, round once).
int cuda_conv_tc_bwd_data(void *dx, const void *dy, const void *w, const Conv2dShape *s, cudaStream_t st);
// dw [Cout,KH,KW,Cin] (float) += dy^T [Cout, B*Ho*Wo] @ im2col(x) [B*Ho*Wo, KH*KW*Cin].
int cuda_conv_tc_bwd_weight(float *dw, const void *dy, const void *x, const Conv2dShape *s, cudaStream_t st);
// Tests: force the number of reduction splits (> 0), 0 = automatic.
void cuda_conv_tc_set_split(int split);
// Tests: force the block tile, 0: 128x128, 1: 128x64, 2: 64x128, 3: 64x64; -1 = automatic.
void cuda_conv_tc_set_tile(int tile);

#ifdef __cplusplus
}
#endif
