// transformer2d.h: diffusers Transformer2DModel with continuous input and
// use_linear_projection False, holding one BasicTransformerBlock (SD1.5):
//
//   h  = proj_in(GroupNorm(groups, eps 1e-6)(x))      1x1 conv, tokens [B, H*W, C]
//   h += attn1(LN1(h))                                 self-attention
//   h += attn2(LN2(h), context)                        cross-attention, context [B, Nc, ctx_dim]
//   h += ff.net.2(GEGLU(ff.net.0.proj(LN3(h))))        inner 4C
//   y  = proj_out(h) + x                               1x1 conv
//
// Attention: to_q/to_k/to_v without bias, to_out.0 with bias, `heads` heads
// of C/heads channels (head i = channels [i*d, (i+1)*d)), run by the backend
// attention op on strided views of the projection outputs: attn1's q/k/v are
// one GEMM into [B*HW, 3C] and attn2's k/v one GEMM over the context into
// [B*Nc, 2C] when their weights are stacked in memory (nn/fused_linear.h;
// true for the table t2d_add builds whenever C*C and C*ctx_dim are multiples
// of 64, e.g. every SD1.5 width), else separate GEMMs. LayerNorm eps 1e-5.
// Keys under prefix: norm.*, proj_in.*, proj_out.*, transformer_blocks.0.{norm1,
// norm2, norm3, attn1.*, attn2.*, ff.net.0.proj.*, ff.net.2.*}.
#pragma once
#include "layers.h"

typedef struct {
    Linear q, k, v, out;
} Attention;

typedef struct {
    GroupNorm norm;
    Conv2d proj_in, proj_out;
    LayerNorm ln1, ln2, ln3;
    Attention attn1, attn2;
    Linear ff0, ff2;  // ff.net.0.proj [8C, C], ff.net.2 [C, 4C]
    int C, heads, ctx_dim;
} Transformer2D;

typedef struct {
    size_t mark;                 // activation stack position on entry
    const void *x, *ctx;         // inputs (caller-owned)
    int B, H, W, Nc;
    void *gn;                    // GroupNorm(x) [B, HW, C]
    float *gm, *gr;              // its stats [B, G]
    void *h0, *h1, *h2, *h3;     // residual stream after proj_in / attn1 / attn2 / ff [B, HW, C]
    void *l1, *l2, *l3;          // LayerNorm outputs [B, HW, C]
    float *lm1, *lr1, *lm2, *lr2, *lm3, *lr3;  // their stats [B*HW]
    void *qkv1;                  // self-attention q|k|v: fused [B*HW, 3C], else 3 blocks [B*HW, C]
    void *o1;                    // self-attention output [B, HW, C]
    float *lse1;                 // [B, heads, HW]
    void *q2, *o2;               // cross-attention queries / output [B, HW, C]
    void *kv2;                   // cross-attention k|v: fused [B*Nc, 2C], else 2 blocks [B*Nc, C]
    float *lse2;                 // [B, heads, HW]
    int fused1, fused2;          // layout of qkv1 / kv2 (1: one GEMM, column slices)
    void *p, *g;                 // FF projection [B, HW, 8C], GEGLU output [B, HW, 4C]
} T2DSaved;

// C channels, `heads` heads, context width ctx_dim, GroupNorm groups.
void t2d_add(Transformer2D *m, ParamTable *t, const char *prefix, int C, int heads, int ctx_dim, int groups);
// y [B, H, W, C] (caller-allocated) from x [B, H, W, C], ctx [B, Nc, ctx_dim].
// sv may be NULL when !c->train.
int t2d_f(const Ctx *c, const Weights *W, const Transformer2D *m, void *y, const void *x, const void *ctx, int B,
          int H, int Wd, int Nc, T2DSaved *sv);
// dx [B, H, W, C] += (may be NULL), dctx [B, Nc, ctx_dim] += (may be NULL),
// parameter gradients +=.
int t2d_b(const Ctx *c, const Weights *W, const Transformer2D *m, void *dx, void *dctx, const void *dy,
          const T2DSaved *sv);
