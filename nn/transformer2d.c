// transformer2d.c: Transformer2DModel + BasicTransformerBlock forward and
// backward (see transformer2d.h).
#include "transformer2d.h"

#include <stdio.h>

#include "../kernels/common.h"

static void attention_add(Attention *a, ParamTable *t, const char *prefix, int C, int kv_dim) {
    char p[PARAM_NAME_MAX];
    snprintf(p, sizeof p, "%s.to_q", prefix);
    linear_add(&a->q, t, p, C, C, 0);
    snprintf(p, sizeof p, "%s.to_k", prefix);
    linear_add(&a->k, t, p, kv_dim, C, 0);
    snprintf(p, sizeof p, "%s.to_v", prefix);
    linear_add(&a->v, t, p, kv_dim, C, 0);
    snprintf(p, sizeof p, "%s.to_out.0", prefix);
    linear_add(&a->out, t, p, C, C, 1);
}

void t2d_add(Transformer2D *m, ParamTable *t, const char *prefix, int C, int heads, int ctx_dim, int groups) {
    char p[PARAM_NAME_MAX];
    CHECK(heads > 0 && C % heads == 0);
    m->C = C;
    m->heads = heads;
    m->ctx_dim = ctx_dim;
#define SUB(name) (snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name), p)
    groupnorm_add(&m->norm, t, SUB("norm"), C, groups, 1e-6f);
    conv2d_add(&m->proj_in, t, SUB("proj_in"), C, C, 1, 1, 0, 1);
    layernorm_add(&m->ln1, t, SUB("transformer_blocks.0.norm1"), C, 1e-5f);
    attention_add(&m->attn1, t, SUB("transformer_blocks.0.attn1"), C, C);
    layernorm_add(&m->ln2, t, SUB("transformer_blocks.0.norm2"), C, 1e-5f);
    attention_add(&m->attn2, t, SUB("transformer_blocks.0.attn2"), C, ctx_dim);
    layernorm_add(&m->ln3, t, SUB("transformer_blocks.0.norm3"), C, 1e-5f);
    linear_add(&m->ff0, t, SUB("transformer_blocks.0.ff.net.0.proj"), C, 8 * C, 1);
    linear_add(&m->ff2, t, SUB("transformer_blocks.0.ff.net.2"), 4 * C, C, 1);
    conv2d_add(&m->proj_out, t, SUB("proj_out"), C, C, 1, 1, 0, 1);
#undef SUB
}

// Heads view of contiguous q [B, Nq, C], k, v [B, Nk, C], o [B, Nq, C].
static AttnShape attn_shape(int B, int heads, int Nq, int Nk, int C) {
    AttnShape s = {B, heads, Nq, Nk, C / heads, 0};
    s.q_sb = s.o_sb = (long)Nq * C;
    s.k_sb = s.v_sb = (long)Nk * C;
    s.q_st = s.k_st = s.v_st = s.o_st = C;
    return s;
}

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

int t2d_f(const Ctx *c, const Weights *W, const Transformer2D *m, void *y, const void *x, const void *ctx, int B,
          int H, int Wd, int Nc, T2DSaved *sv) {
    T2DSaved s = {arena_mark(c->act), x, ctx, B, H, Wd, Nc};
    const int C = m->C, N = B * H * Wd, HW = H * Wd, G = m->norm.G;
    const size_t n = (size_t)N * C, nlse = (size_t)B * m->heads * HW;
    PUSH(s.gn, n);  // [B, HW, C]
    PUSHF(s.gm, (size_t)B * G);
    PUSHF(s.gr, (size_t)B * G);
    TRY(groupnorm_f(c, W, &m->norm, s.gn, s.gm, s.gr, x, B, HW, 0));
    PUSH(s.h0, n);
    TRY(conv2d_f(c, W, &m->proj_in, s.h0, s.gn, B, H, Wd));
    // self-attention
    PUSH(s.l1, n);
    PUSHF(s.lm1, N);
    PUSHF(s.lr1, N);
    TRY(layernorm_f(c, W, &m->ln1, s.l1, s.lm1, s.lr1, s.h0, N));
    PUSH(s.q1, n);
    PUSH(s.k1, n);
    PUSH(s.v1, n);
    PUSH(s.o1, n);
    PUSHF(s.lse1, nlse);
    TRY(linear_f(c, W, &m->attn1.q, s.q1, s.l1, N));
    TRY(linear_f(c, W, &m->attn1.k, s.k1, s.l1, N));
    TRY(linear_f(c, W, &m->attn1.v, s.v1, s.l1, N));
    AttnShape a1 = attn_shape(B, m->heads, HW, HW, C);
    OP(c, attention_fwd, s.o1, s.lse1, s.q1, s.k1, s.v1, &a1);
    PUSH(s.h1, n);
    TRY(linear_f(c, W, &m->attn1.out, s.h1, s.o1, N));
    OP(c, add_fwd, s.h1, s.h1, s.h0, n);
    // cross-attention
    PUSH(s.l2, n);
    PUSHF(s.lm2, N);
    PUSHF(s.lr2, N);
    TRY(layernorm_f(c, W, &m->ln2, s.l2, s.lm2, s.lr2, s.h1, N));
    PUSH(s.q2, n);
    PUSH(s.k2, (size_t)B * Nc * C);  // [B, Nc, C]
    PUSH(s.v2, (size_t)B * Nc * C);
    PUSH(s.o2, n);
    PUSHF(s.lse2, nlse);
    TRY(linear_f(c, W, &m->attn2.q, s.q2, s.l2, N));
    TRY(linear_f(c, W, &m->attn2.k, s.k2, ctx, B * Nc));
    TRY(linear_f(c, W, &m->attn2.v, s.v2, ctx, B * Nc));
    AttnShape a2 = attn_shape(B, m->heads, HW, Nc, C);
    OP(c, attention_fwd, s.o2, s.lse2, s.q2, s.k2, s.v2, &a2);
    PUSH(s.h2, n);
    TRY(linear_f(c, W, &m->attn2.out, s.h2, s.o2, N));
    OP(c, add_fwd, s.h2, s.h2, s.h1, n);
    // GEGLU feed-forward
    PUSH(s.l3, n);
    PUSHF(s.lm3, N);
    PUSHF(s.lr3, N);
    TRY(layernorm_f(c, W, &m->ln3, s.l3, s.lm3, s.lr3, s.h2, N));
    PUSH(s.p, n * 8);  // [B, HW, 8C]
    PUSH(s.g, n * 4);  // [B, HW, 4C]
    TRY(linear_f(c, W, &m->ff0, s.p, s.l3, N));
    OP(c, geglu_fwd, s.g, s.p, (size_t)N, 4 * C);
    PUSH(s.h3, n);
    TRY(linear_f(c, W, &m->ff2, s.h3, s.g, N));
    OP(c, add_fwd, s.h3, s.h3, s.h2, n);
    // back to the image
    TRY(conv2d_f(c, W, &m->proj_out, y, s.h3, B, H, Wd));
    OP(c, add_fwd, y, y, x, n);
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int t2d_b(const Ctx *c, const Weights *W, const Transformer2D *m, void *dx, void *dctx, const void *dy,
          const T2DSaved *sv) {
    const T2DSaved *s = sv;
    const size_t gmark = arena_mark(c->grad);
    const int B = s->B, H = s->H, Wd = s->W, Nc = s->Nc, C = m->C, HW = H * Wd, N = B * HW;
    const size_t n = (size_t)N * C, nc = (size_t)B * Nc * C;
    if (dx) OP(c, add_bwd, dx, NULL, dy, n);
    void *dh;  // gradient of the residual stream [B, HW, C], carried down through h3 .. h0
    GPUSH(dh, n);
    TRY(conv2d_b(c, W, &m->proj_out, dh, dy, s->h3, B, H, Wd));
    size_t top = arena_mark(c->grad);
    {  // feed-forward: dh (= d h3) also flows into d h2 unchanged
        void *dg, *dp, *dl;
        GPUSH(dg, n * 4);
        TRY(linear_b(c, W, &m->ff2, dg, dh, s->g, N));
        GPUSH(dp, n * 8);
        OP(c, geglu_bwd, dp, dg, s->p, (size_t)N, 4 * C);
        GPUSH(dl, n);
        TRY(linear_b(c, W, &m->ff0, dl, dp, s->l3, N));
        TRY(layernorm_b(c, W, &m->ln3, dh, dl, s->h2, s->lm3, s->lr3, N));
        arena_reset(c->grad, top);
    }
    {  // cross-attention
        void *dout, *dq, *dk, *dv, *dl;
        GPUSH(dout, n);
        TRY(linear_b(c, W, &m->attn2.out, dout, dh, s->o2, N));
        GPUSH(dq, n);
        GPUSH(dk, nc);
        GPUSH(dv, nc);
        AttnShape a2 = attn_shape(B, m->heads, HW, Nc, C);
        OP(c, attention_bwd, dq, dk, dv, dout, s->q2, s->k2, s->v2, s->o2, s->lse2, &a2);
        GPUSH(dl, n);
        TRY(linear_b(c, W, &m->attn2.q, dl, dq, s->l2, N));
        TRY(linear_b(c, W, &m->attn2.k, dctx, dk, s->ctx, B * Nc));
        TRY(linear_b(c, W, &m->attn2.v, dctx, dv, s->ctx, B * Nc));
        TRY(layernorm_b(c, W, &m->ln2, dh, dl, s->h1, s->lm2, s->lr2, N));
        arena_reset(c->grad, top);
    }
    {  // self-attention
        void *dout, *dq, *dk, *dv, *dl;
        GPUSH(dout, n);
        TRY(linear_b(c, W, &m->attn1.out, dout, dh, s->o1, N));
        GPUSH(dq, n);
        GPUSH(dk, n);
        GPUSH(dv, n);
        AttnShape a1 = attn_shape(B, m->heads, HW, HW, C);
        OP(c, attention_bwd, dq, dk, dv, dout, s->q1, s->k1, s->v1, s->o1, s->lse1, &a1);
        GPUSH(dl, n);
        TRY(linear_b(c, W, &m->attn1.q, dl, dq, s->l1, N));
        TRY(linear_b(c, W, &m->attn1.k, dl, dk, s->l1, N));
        TRY(linear_b(c, W, &m->attn1.v, dl, dv, s->l1, N));
        TRY(layernorm_b(c, W, &m->ln1, dh, dl, s->h0, s->lm1, s->lr1, N));
        arena_reset(c->grad, top);
    }
    void *dgn;
    GPUSH(dgn, n);
    TRY(conv2d_b(c, W, &m->proj_in, dgn, dh, s->gn, B, H, Wd));
    TRY(groupnorm_b(c, W, &m->norm, dx, dgn, s->x, s->gm, s->gr, B, HW, 0));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
