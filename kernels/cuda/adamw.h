// adamw.h: plain C interface to the fused AdamW step and the global gradient
// norm on the device (kernels/cuda/adamw.cu). CPU reference: kernels/cpu/optim.h.
//
// All buffers are flat device arrays over the same parameter table
// (kernels/params.h). Master weights, moments and gradients are fp32; the
// working copy (what forward/backward read) is T = bf16 or f32.
// Results are bit-identical to the CPU reference: the element update is the
// same source (adamw_elem in optim.h, single IEEE float operations that nvcc
// may neither contract nor approximate), the bf16 working copy uses
// bf16_stochastic_round with philox_u32(seed, offset, i), and the norm is a
// fixed-order two-stage reduction (deterministic run to run).
// Launchers are asynchronous on stream s and return a cudaError_t as int.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../cpu/optim.h"
#include "../tensor.h"

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// One AdamW step t >= 1 (torch.optim.AdamW semantics, see optim.h) over n elements:
//   master [n], m [n], v [n]: fp32, updated in place;
//   grad [n]: fp32, multiplied by grad_scale * (*d_grad_scale) (d_grad_scale:
//             a device scalar, e.g. the clip coefficient of cuda_grad_norm, or NULL);
//   work [n]: the working copy of dtype dt written from the new master
//             weights: DT_BF16 with stochastic rounding (element i uses
//             philox_u32(seed, offset, i)), DT_F32 a plain copy; NULL = none.
int cuda_adamw_step(DType dt, void *work, float *master, float *m, float *v, const float *grad, size_t n,
                    AdamWHyper hyper, int64_t step, float grad_scale, const float *d_grad_scale, uint64_t seed,
                    uint64_t offset, cudaStream_t s);

// norm [1] (device float) = sqrt(sum grad[i]^2) over grad [n]; when clip_coef
// (device float [1]) is not NULL it also receives torch's clip_grad_norm_
// factor min(1, max_norm / (norm + 1e-6)). Uses dev_workspace() for the
// per-block partials (stage 1 in float per thread and block, stage 2 in
// double over at most 1024 partials in a fixed order).
int cuda_grad_norm(float *norm, float *clip_coef, const float *grad, size_t n, float max_norm, cudaStream_t s);

#ifdef __cplusplus
}
#endif
