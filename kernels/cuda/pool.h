// pool.h: plain C interface to the CUDA pooling kernels (kernels/cuda/pool.cu):
// 2-D max / average pooling, global average pooling, per-channel scaling.
//
// Mirrors kernels/cpu/ops.h (section pool.c, same Pool2dShape and PyTorch
// semantics: ceil_mode, count_include_pad, first maximum wins, NaN propagates)
// with device pointers, a leading DType dt (DT_F32 or DT_BF16: the type T of
// activations and their gradients) and a trailing stream. Backward ADDS into
// every gradient buffer (NULL = not needed). Launchers return 0 or a
// cudaError_t value (cudaErrorInvalidValue for a bad shape or dtype).
//
// channel_scale: the scale sc [B, C] is an activation (the squeeze-excitation
// gate, sigmoid output), so sc and its gradient dsc are T like x, not float.
//
// Determinism: no atomics. Pool backward gathers: each input element loops
// over the output windows that contain it in (oh, ow) order; reductions over
// HW use fixed chunks and a fixed-order second pass.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

#include "../cpu/ops.h"  // Pool2dShape, pool2d_out_h/w

// y [B,Ho,Wo,C] T, argmax [B,Ho,Wo,C] int32 (index h*W+w in the input plane) <- x [B,H,W,C] T.
// Ho, Wo = pool2d_out_h/w(shape). shape is host memory.
int cuda_maxpool2d_fwd(DType dt, void *y, int32_t *argmax, const void *x, const Pool2dShape *shape,
                       cudaStream_t s);
// dx [B,H,W,C] T += dy [B,Ho,Wo,C] routed to argmax [B,Ho,Wo,C].
int cuda_maxpool2d_bwd(DType dt, void *dx, const void *dy, const int32_t *argmax, const Pool2dShape *shape,
                       cudaStream_t s);
// y [B,Ho,Wo,C] <- x [B,H,W,C]: window sum / divisor (see ops.h).
int cuda_avgpool2d_fwd(DType dt, void *y, const void *x, const Pool2dShape *shape, cudaStream_t s);
// dx [B,H,W,C] += dy [B,Ho,Wo,C] / divisor over each window.
int cuda_avgpool2d_bwd(DType dt, void *dx, const void *dy, const Pool2dShape *shape, cudaStream_t s);

// y [B, C] = mean over HW of x [B, HW, C].
int cuda_global_avgpool_fwd(DType dt, void *y, const void *x, int B, int HW, int C, cudaStream_t s);
// dx [B, HW, C] += dy [B, C] / HW.
int cuda_global_avgpool_bwd(DType dt, void *dx, const void *dy, int B, int HW, int C, cudaStream_t s);

// y [B, HW, C] = x [B, HW, C] * sc [B, C] (broadcast over positions).
int cuda_channel_scale_fwd(DType dt, void *y, const void *x, const void *sc, int B, int HW, int C, cudaStream_t s);
// dx [B, HW, C] += dy * sc; dsc [B, C] T += sum over positions of dy * x (fp32 sum, rounded once).
int cuda_channel_scale_bwd(DType dt, void *dx, void *dsc, const void *dy, const void *x, const void *sc, int B,
                           int HW, int C, cudaStream_t s);

#ifdef __cplusplus
}
#endif
