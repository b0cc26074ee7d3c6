// vae_attention.h: the AutoencoderKL mid-block attention (diffusers
// Attention with one head, _from_deprecated_attn_block): over the H*W tokens
// of x [B, H*W, C] (NHWC is already token-major),
//
//   n = group_norm(x)                      GroupNorm(G, C, eps), no SiLU
//   q, k, v = to_q(n), to_k(n), to_v(n)    Linear C -> C with bias
//   o = softmax(q k^T / sqrt(C)) v         one head, head dim C
//   y = to_out.0(o) + x                    Linear C -> C with bias; / 1.0
//
// Keys under prefix: group_norm.*, to_q.*, to_k.*, to_v.*, to_out.0.* (the
// new diffusers names; vae.c maps the old query/key/value/proj_attn names).
// q/k/v are one GEMM into [B*HW, 3C] when their weights and biases are
// stacked in memory (nn/fused_linear.h): vae_attention_add registers the three
// weights in a row, then the three biases, so that holds whenever C is a
// multiple of 64 (SD1.5: 512); otherwise three GEMMs.
#pragma once
#include "layers.h"

typedef struct {
    GroupNorm norm;
    Linear q, k, v, out;
    int C;
} VaeAttention;

// What the backward needs (filled by a training forward).
typedef struct {
    size_t mark;       // activation stack position on entry
    const void *x;     // input [B, HW, C] (caller-owned)
    int B, HW;
    void *n;           // group_norm(x) [B, HW, C]
    float *mean, *rstd;  // [B, G]
    void *qkv;         // q|k|v: fused [B*HW, 3C], else 3 blocks [B*HW, C]
    int fused;         // layout of qkv (1: one GEMM, column slices)
    void *o;           // attention output [B, HW, C]
    float *lse;        // [B, 1, HW]
} VaeAttnSaved;

void vae_attention_add(VaeAttention *m, ParamTable *t, const char *prefix, int C, int groups, float eps);
// y [B, HW, C] (allocated by the caller, distinct from x) from x [B, HW, C].
// sv may be NULL when !c->train.
int vae_attention_f(const Ctx *c, const Weights *W, const VaeAttention *m, void *y, const void *x, int B, int HW,
                    VaeAttnSaved *sv);
// dx [B, HW, C] += (residual and attention paths); parameter gradients +=.
int vae_attention_b(const Ctx *c, const Weights *W, const VaeAttention *m, void *dx, const void *dy,
                    const VaeAttnSaved *sv);
