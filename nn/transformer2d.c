// transformer2d.c: Transformer2DModel + BasicTransformerBlock forward and
// backward (see transformer2d.h).
#include "transformer2d.h"

#include <stdio.h>

#include "../kernels/common.h"
#include "fused_linear.h"

// to_q, to_k, to_v registered in a row, so attn1's q/k/v and attn2's k/v can
// run as one GEMM (fused_linear.h); to_out.0 after them.
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

// attn1's q, k, v and attn2's k, v: runs over one input (fused_linear.h).
static LinearRun qkv_run(const Attention *a) { return (LinearRun){{&a->q, &a->k, &a->v}, 3}; }
static LinearRun kv_run(const Attention *a) { return (LinearRun){{&a->k, &a->v}, 2}; }

// Heads view of q [B, Nq, C] with rows q_st apart, k, v [B, Nk, C] with rows
// kv_st apart (C: separate buffers; 3C / 2C: column slices of a fused
// projection), contiguous o [B, Nq, C].
static AttnShape attn_shape(int B, int heads, int Nq, int Nk, int C, long q_st, long kv_st) {
    AttnShape s = {B, heads, Nq, Nk, C / heads, 0};
    s.q_sb = Nq * q_st;
    s.k_sb = s.v_sb = Nk * kv_st;
    s.o_sb = (long)Nq * C;
    s.q_st = q_st;
    s.k_st = s.v_st = kv_st;
    s.o_st = C;
    return s;
}

// Output j of a run's buffer of M rows.
#define VIEW(buf, run, fused, j, M) linear_run_ptr(c, (void *)(buf), &(run), (fused), (j), (M))

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
    const LinearRun r1 = qkv_run(&m->attn1);
    s.fused1 = linear_run_fusable(W, &r1);
    PUSH(s.qkv1, 3 * n);  // [B*HW, 3C] (fused) or 3 x [B*HW, C]
    PUSH(s.o1, n);
    PUSHF(s.lse1, nlse);
    TRY(linear_run_f(c, W, &r1, s.fused1, s.qkv1, s.l1, N));
    const long st1 = linear_run_stride(&r1, s.fused1);
    AttnShape a1 = attn_shape(B, m->heads, HW, HW, C, st1, st1);
    OP(c, attention_fwd, s.o1, s.lse1, VIEW(s.qkv1, r1, s.fused1, 0, N), VIEW(s.qkv1, r1, s.fused1, 1, N),
       VIEW(s.qkv1, r1, s.fused1, 2, N), &a1);
    PUSH(s.h1, n);
    TRY(linear_f(c, W, &m->attn1.out, s.h1, s.o1, N));
    OP(c, add_fwd, s.h1, s.h1, s.h0, n);
    // cross-attention
    PUSH(s.l2, n);
    PUSHF(s.lm2, N);
    PUSHF(s.lr2, N);
    TRY(layernorm_f(c, W, &m->ln2, s.l2, s.lm2, s.lr2, s.h1, N));
    const LinearRun r2 = kv_run(&m->attn2);  // to_q reads the image tokens, to_k / to_v the context
    s.fused2 = linear_run_fusable(W, &r2);
    PUSH(s.q2, n);
    PUSH(s.kv2, 2 * (size_t)B * Nc * C);  // [B*Nc, 2C] (fused) or 2 x [B*Nc, C]
    PUSH(s.o2, n);
    PUSHF(s.lse2, nlse);
    TRY(linear_f(c, W, &m->attn2.q, s.q2, s.l2, N));
    TRY(linear_run_f(c, W, &r2, s.fused2, s.kv2, ctx, B * Nc));
    AttnShape a2 = attn_shape(B, m->heads, HW, Nc, C, C, linear_run_stride(&r2, s.fused2));
    OP(c, attention_fwd, s.o2, s.lse2, s.q2, VIEW(s.kv2, r2, s.fused2, 0, B * Nc),
       VIEW(s.kv2, r2, s.fused2, 1, B * Nc), &a2);
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
    {  // cross-attention; dkv has the layout of kv2 (the attention backward adds: zeroed)
        const LinearRun r2 = kv_run(&m->attn2);
        const int f = s->fused2, M = B * Nc;
        void *dout, *dq, *dkv, *dl;
        GPUSH(dout, n);
        TRY(linear_b(c, W, &m->attn2.out, dout, dh, s->o2, N));
        GPUSH(dq, n);
        GPUSH(dkv, 2 * nc);  // [B*Nc, 2C] or 2 x [B*Nc, C]
        AttnShape a2 = attn_shape(B, m->heads, HW, Nc, C, C, linear_run_stride(&r2, f));
        OP(c, attention_bwd, dq, VIEW(dkv, r2, f, 0, M), VIEW(dkv, r2, f, 1, M), dout, s->q2,
           VIEW(s->kv2, r2, f, 0, M), VIEW(s->kv2, r2, f, 1, M), s->o2, s->lse2, &a2);
        GPUSH(dl, n);
        TRY(linear_b(c, W, &m->attn2.q, dl, dq, s->l2, N));
        TRY(linear_run_b(c, W, &r2, f, dctx, dkv, s->ctx, M));
        TRY(layernorm_b(c, W, &m->ln2, dh, dl, s->h1, s->lm2, s->lr2, N));
        arena_reset(c->grad, top);
    }
    {  // self-attention; dqkv has the layout of qkv1 (zeroed: the attention backward adds)
        const LinearRun r1 = qkv_run(&m->attn1);
        const int f = s->fused1;
        const long st = linear_run_stride(&r1, f);
        void *dout, *dqkv, *dl;
        GPUSH(dout, n);
        TRY(linear_b(c, W, &m->attn1.out, dout, dh, s->o1, N));
        GPUSH(dqkv, 3 * n);  // [B*HW, 3C] or 3 x [B*HW, C]
        AttnShape a1 = attn_shape(B, m->heads, HW, HW, C, st, st);
        OP(c, attention_bwd, VIEW(dqkv, r1, f, 0, N), VIEW(dqkv, r1, f, 1, N), VIEW(dqkv, r1, f, 2, N), dout,
           VIEW(s->qkv1, r1, f, 0, N), VIEW(s->qkv1, r1, f, 1, N), VIEW(s->qkv1, r1, f, 2, N), s->o1, s->lse1,
           &a1);
        GPUSH(dl, n);
        TRY(linear_run_b(c, W, &r1, f, dl, dqkv, s->l1, N));  // one GEMM pair for dX and the stacked dW
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
