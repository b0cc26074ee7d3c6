// optim.h: AdamW and the global gradient L2 norm over flat fp32 buffers
// (CPU reference; the CUDA version is kernels/cuda/adamw.h).
//
// AdamW is torch.optim.AdamW (single-tensor path, decoupled weight decay,
// no amsgrad), step t = 1, 2, ...:
//   g  = grad * scale                      (scale: clipping / loss scaling; 1 = none)
//   p *= 1 - lr*wd
//   m  = lerp(m, g, 1-b1)                  = m + (1-b1)(g - m)
//   v  = v*b2 + (1-b2) g^2
//   p += -(lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
// The per-step scalars are computed in double on the host (as Python does)
// and rounded to float once (adamw_coef); the element update
// (adamw_elem) is written in the order torch's CPU kernels use and from
// single IEEE float operations only (PHILOX_* macros of kernels/philox.h:
// __f*_rn on the device, which nvcc may not contract or approximate, and one
// explicit fmaf), so the CPU and the CUDA kernel give bit-identical master
// weights and moments, and stay within a few ulps of PyTorch.
//
// The bf16 working copy uses stochastic rounding (bf16_stochastic_round):
// 16 random bits from philox_u32(seed, offset, i) are added to the low half
// of the float's bit pattern, which is then truncated, so x rounds away from
// zero with probability (|x| - |lo|) / ulp: unbiased, E[round(x)] = x.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../philox.h"

#ifdef __cplusplus
extern "C" {
#endif

// Hyperparameters as Python holds them (double), so the rounded per-step
// scalars equal torch's.
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} AdamWHyper;

// Per-step float scalars derived from the hyperparameters and the step t >= 1.
typedef struct {
    float decay;      // 1 - lr*wd
    float w1;         // 1 - b1 (lerp weight)
    float beta2;      // b2
    float one_m_b2;   // 1 - b2
    float bc2_sqrt;   // sqrt(1 - b2^t)
    float neg_step;   // -lr / (1 - b1^t)
    float eps;
} AdamWCoef;

AdamWCoef adamw_coef(const AdamWHyper *h, int64_t step);

// One element: p, m, v in place; g already scaled.
A2F_HD void adamw_elem(float *p, float *m, float *v, float g, AdamWCoef c) {
    float pp = PHILOX_MUL(*p, c.decay);
    float mm = *m, d = PHILOX_SUB(g, mm);
    // torch lerp_: weight < 0.5 ? fma(w, end-self, self) : fma(w-1, end-self, end)
    mm = c.w1 < 0.5f ? fmaf(c.w1, d, mm) : fmaf(PHILOX_SUB(c.w1, 1.0f), d, g);
    float vv = PHILOX_ADD(PHILOX_MUL(*v, c.beta2), PHILOX_MUL(PHILOX_MUL(c.one_m_b2, g), g));
    float denom = PHILOX_ADD(PHILOX_DIV(PHILOX_SQRT(vv), c.bc2_sqrt), c.eps);
    pp = PHILOX_ADD(pp, PHILOX_DIV(PHILOX_MUL(c.neg_step, mm), denom));
    *p = pp;
    *m = mm;
    *v = vv;
}

// Stochastic rounding of x to bf16 (bit pattern) with 32 random bits (the top
// 16 are used). The result is one of the two bf16 neighbours of x (x itself
// when representable); NaN gives 0x7fff; values past the largest bf16 may
// round to inf.
A2F_HD uint16_t bf16_stochastic_round(float x, uint32_t bits) {
    uint32_t u = philox_f2u(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    if ((u & 0x7fffffffu) == 0x7f800000u) return (uint16_t)(u >> 16);
    return (uint16_t)((u + (bits >> 16)) >> 16);
}

// n elements of p [n] (fp32 master weights), m [n], v [n] (moments) updated in
// place from grad [n] * grad_scale at step t >= 1. OpenMP over chunks.
void adamw_step(float *p, float *m, float *v, const float *grad, size_t n, const AdamWHyper *h, int64_t step,
                float grad_scale);

// Optional bf16 working copy work [n] (bit patterns) of p [n] with stochastic
// rounding; element i uses philox_u32(seed, offset, i). (A shard starting at
// element e0, a multiple of 4, reproduces the whole-buffer stream with offset
// + e0/4.)
void bf16_stochastic_round_buf(uint16_t *work, const float *p, size_t n, uint64_t seed, uint64_t offset);

// sqrt(sum g[i]^2) of g [n], accumulated in double in fixed chunks (the
// result does not depend on the number of threads).
double grad_norm_l2(const float *g, size_t n);

// torch.nn.utils.clip_grad_norm_'s factor: min(1, max_norm / (norm + 1e-6)),
// computed in float like torch (norm rounded to float first).
A2F_HD float clip_grad_coef(float norm, float max_norm) {
    float c = PHILOX_DIV(max_norm, PHILOX_ADD(norm, 1e-6f));
    return c < 1.0f ? c : 1.0f;
}

#ifdef __cplusplus
}
#endif
