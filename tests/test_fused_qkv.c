// test_fused_qkv.c: the fused q/k/v (and cross-attention k/v) projections of
// nn/fused_linear.h in Transformer2D, the CLIP layer and the VAE attention.
//
// Each case builds the module twice with the same weight values:
//  - in the table its *_add function builds (q/k/v stacked): the fused path
//    must be taken (the Saved struct records the layout the forward used);
//  - in a copy of that table registered in reverse order (every tensor in
//    its own place, so to_q/to_k/to_v are no longer stacked): the fallback
//    (separate GEMMs) must be taken,
// then compares outputs, input gradients and every parameter gradient (by
// name) of a training forward + backward, and the inference output.
//
// Tolerance: both runs use the same CPU kernels on the same f32 values. The
// fused GEMM computes every q/k/v element as the same length-`in` dot product
// as the separate GEMMs, and the stacked weight gradient sums the same M rows:
// outputs and q/k/v parameter gradients come out bit-identical (measured).
// The projection's input gradient differs in summation order only: fused, dX
// is one reduction over 3C (or 2C) columns; the fallback adds three C-column
// GEMMs into dX. That rounding (measured <= 3e-7 of max|ref|: a few fp32 ulps)
// reaches dx, dctx and the parameters below the attention; 1e-6 of max|ref|
// per tensor leaves ~3x margin, while a wrong view or stride errs by O(1).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/clip.h"
#include "../nn/fused_linear.h"
#include "../nn/transformer2d.h"
#include "../nn/vae_attention.h"
#include "test.h"

#define TOL 1e-6

// max|got - want| <= tol * max|want|.
static void expect_rel(const char *what, const float *got, const float *want, size_t n) {
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d, at = i;  // NaN counts as worst
    }
    EXPECT(e <= TOL * (m > 0 ? m : 1), "%s: max error %.3g of max|ref| %.3g at %zu (got %.9g want %.9g)", what, e, m,
           at, got[at], want[at]);
}

// ------------------------------------------------------------------ two tables

// A model's weights in the standard table (a) and the same tensors in a
// reverse-ordered copy of it (b), with equal values and zeroed gradients.
typedef struct {
    Weights a, b;
} Pair;

static void pair_init(Pair *p, uint64_t seed) {
    params_init(&p->b.t);
    for (int i = p->a.t.count - 1; i >= 0; i--) {
        const ParamEntry *e = &p->a.t.entries[i];
        params_add_ex(&p->b.t, e->name, e->ndim, e->shape, e->layout, e->trainable);
    }
    CHECK(weights_alloc(&p->a, cpu_backend(), DT_F32, 1) == 0 && weights_alloc(&p->b, cpu_backend(), DT_F32, 1) == 0);
    memset(p->a.grad, 0, p->a.t.total * 4);
    memset(p->b.grad, 0, p->b.t.total * 4);
    uint64_t st = seed;
    for (int i = 0; i < p->a.t.count; i++) {  // random biases too: their stacking is under test
        const ParamEntry *e = &p->a.t.entries[i];
        float *w = wptr(&p->a, i);
        test_fill_normal(w, e->numel, e->ndim == 1 ? 0.5f : 1.0f / sqrtf((float)e->shape[e->ndim - 1]), &st);
        if (e->ndim == 1 && strstr(e->name, "norm") && strstr(e->name, "weight"))
            for (size_t k = 0; k < e->numel; k++) w[k] += 1;  // norm scales around 1
        memcpy(wptr(&p->b, params_find(&p->b.t, e->name)), w, e->numel * 4);
    }
}

static void pair_free(Pair *p) {
    weights_free(&p->a), weights_free(&p->b);
    params_free(&p->a.t), params_free(&p->b.t);
}

// Every parameter gradient of b against a, by name.
static void expect_grads(const Pair *p, const char *tag) {
    for (int i = 0; i < p->a.t.count; i++) {
        const ParamEntry *e = &p->a.t.entries[i];
        char what[256];
        snprintf(what, sizeof what, "%s grad %s", tag, e->name);
        expect_rel(what, gptr(&p->b, params_find(&p->b.t, e->name)), gptr(&p->a, i), e->numel);
    }
}

// Moves a module's table indices from table `from` to table `to` (same names).
typedef struct {
    const ParamTable *from, *to;
} Remap;

static void remap(const Remap *r, int *i) {
    if (*i < 0) return;  // no bias
    *i = params_find(r->to, r->from->entries[*i].name);
    CHECK(*i >= 0);
}
static void remap_linear(const Remap *r, Linear *l) {
    remap(r, &l->w), remap(r, &l->b);
}
static void remap_ln(const Remap *r, LayerNorm *l) {
    remap(r, &l->w), remap(r, &l->b);
}
static void remap_gn(const Remap *r, GroupNorm *l) {
    remap(r, &l->w), remap(r, &l->b);
}
static void remap_conv(const Remap *r, Conv2d *l) {
    remap(r, &l->w), remap(r, &l->b);
}

static Ctx train_ctx(void) {
    Ctx c;
    CHECK(nn_ctx_init(&c, cpu_backend(), DT_F32, 16u << 20, 16u << 20) == 0);
    c.train = 1;
    return c;
}

// ------------------------------------------------------------------ Transformer2D

enum { T_C = 64, T_HEADS = 2, T_CD = 48, T_B = 2, T_H = 4, T_W = 3, T_NC = 5 };

typedef struct {
    float *y, *yi, *dx, *dctx;  // training output, inference output, input gradients
    int fused1, fused2;
} T2DRun;

static T2DRun t2d_run(const Transformer2D *m, const Weights *W, const float *x, const float *ctx, const float *dy) {
    const size_t n = (size_t)T_B * T_H * T_W * T_C, nc = (size_t)T_B * T_NC * T_CD;
    T2DRun r = {xmalloc(n * 4), xmalloc(n * 4), xcalloc(n, 4), xcalloc(nc, 4), -1, -1};
    Ctx c = train_ctx();
    const size_t a0 = arena_mark(c.act), g0 = arena_mark(c.grad);
    T2DSaved sv;
    EXPECT(t2d_f(&c, W, m, r.y, x, ctx, T_B, T_H, T_W, T_NC, &sv) == 0, "fwd: %s", a2f_last_error());
    r.fused1 = sv.fused1, r.fused2 = sv.fused2;
    EXPECT(t2d_b(&c, W, m, r.dx, r.dctx, dy, &sv) == 0, "bwd: %s", a2f_last_error());
    EXPECT(arena_mark(c.act) == a0 && arena_mark(c.grad) == g0, "stacks not restored");
    c.train = 0;
    EXPECT(t2d_f(&c, W, m, r.yi, x, ctx, T_B, T_H, T_W, T_NC, NULL) == 0, "infer: %s", a2f_last_error());
    nn_ctx_free(&c);
    return r;
}

static void t2d_run_free(T2DRun *r) {
    free(r->y), free(r->yi), free(r->dx), free(r->dctx);
}

TEST(fused_qkv_transformer2d_matches_separate_gemms) {
    Pair p = {0};
    Transformer2D ma, mb;
    params_init(&p.a.t);
    t2d_add(&ma, &p.a.t, "", T_C, T_HEADS, T_CD, 8);
    pair_init(&p, 11);
    mb = ma;  // same module, indices moved to the reversed table
    const Remap r = {&p.a.t, &p.b.t};
    remap_gn(&r, &mb.norm), remap_conv(&r, &mb.proj_in), remap_conv(&r, &mb.proj_out);
    remap_ln(&r, &mb.ln1), remap_ln(&r, &mb.ln2), remap_ln(&r, &mb.ln3);
    Attention *at[2] = {&mb.attn1, &mb.attn2};
    for (int i = 0; i < 2; i++)
        remap_linear(&r, &at[i]->q), remap_linear(&r, &at[i]->k), remap_linear(&r, &at[i]->v),
            remap_linear(&r, &at[i]->out);
    remap_linear(&r, &mb.ff0), remap_linear(&r, &mb.ff2);
    // the layout check itself: stacked in a, not in b
    LinearRun qkv = {{&ma.attn1.q, &ma.attn1.k, &ma.attn1.v}, 3}, kv = {{&ma.attn2.k, &ma.attn2.v}, 2};
    LinearRun qkv_b = {{&mb.attn1.q, &mb.attn1.k, &mb.attn1.v}, 3}, kv_b = {{&mb.attn2.k, &mb.attn2.v}, 2};
    EXPECT(linear_run_fusable(&p.a, &qkv) && linear_run_fusable(&p.a, &kv), "standard table not fusable");
    EXPECT(!linear_run_fusable(&p.b, &qkv_b) && !linear_run_fusable(&p.b, &kv_b), "reversed table fusable");

    const size_t n = (size_t)T_B * T_H * T_W * T_C, nc = (size_t)T_B * T_NC * T_CD;
    float *x = xmalloc(n * 4), *ctx = xmalloc(nc * 4), *dy = xmalloc(n * 4);
    uint64_t st = 5;
    test_fill_normal(x, n, 1, &st);
    test_fill_normal(ctx, nc, 1, &st);
    test_fill_normal(dy, n, 1, &st);
    T2DRun ra = t2d_run(&ma, &p.a, x, ctx, dy), rb = t2d_run(&mb, &p.b, x, ctx, dy);
    EXPECT(ra.fused1 == 1 && ra.fused2 == 1, "standard layout: fused path not taken (%d, %d)", ra.fused1, ra.fused2);
    EXPECT(rb.fused1 == 0 && rb.fused2 == 0, "reversed layout: fallback not taken (%d, %d)", rb.fused1, rb.fused2);
    expect_rel("t2d y", rb.y, ra.y, n);
    expect_rel("t2d y (inference)", rb.yi, ra.yi, n);
    expect_rel("t2d y inference vs train", ra.yi, ra.y, n);
    expect_rel("t2d dx", rb.dx, ra.dx, n);
    expect_rel("t2d dctx", rb.dctx, ra.dctx, nc);
    expect_grads(&p, "t2d");
    t2d_run_free(&ra), t2d_run_free(&rb);
    free(x), free(ctx), free(dy);
    pair_free(&p);
}

// ------------------------------------------------------------------ CLIP layer

enum { C_D = 64, C_H = 2, C_F = 128, C_B = 2, C_L = 7 };

static int clip_run(const ClipLayer *m, const Weights *W, const float *x, const float *dy, float *y, float *dx) {
    Ctx c = train_ctx();
    ClipLayerSaved sv;
    EXPECT(clip_layer_f(&c, W, m, y, x, C_B, C_L, &sv) == 0, "fwd: %s", a2f_last_error());
    const int fused = sv.fused;
    EXPECT(clip_layer_b(&c, W, m, dx, dy, &sv) == 0, "bwd: %s", a2f_last_error());
    nn_ctx_free(&c);
    return fused;
}

TEST(fused_qkv_clip_layer_matches_separate_gemms) {
    Pair p = {0};
    ClipLayer ma, mb;
    params_init(&p.a.t);
    clip_layer_add(&ma, &p.a.t, "layer", C_D, C_H, C_F, 1e-5f);
    pair_init(&p, 12);
    mb = ma;
    const Remap r = {&p.a.t, &p.b.t};
    remap_ln(&r, &mb.ln1), remap_ln(&r, &mb.ln2);
    Linear *ls[] = {&mb.q, &mb.k, &mb.v, &mb.o, &mb.fc1, &mb.fc2};
    for (int i = 0; i < 6; i++) remap_linear(&r, ls[i]);
    const size_t n = (size_t)C_B * C_L * C_D;
    float *x = xmalloc(n * 4), *dy = xmalloc(n * 4), *ya = xmalloc(n * 4), *yb = xmalloc(n * 4);
    float *dxa = xcalloc(n, 4), *dxb = xcalloc(n, 4);
    uint64_t st = 6;
    test_fill_normal(x, n, 1, &st);
    test_fill_normal(dy, n, 1, &st);
    EXPECT(clip_run(&ma, &p.a, x, dy, ya, dxa) == 1, "standard layout (weights and biases stacked): not fused");
    EXPECT(clip_run(&mb, &p.b, x, dy, yb, dxb) == 0, "reversed layout: fallback not taken");
    expect_rel("clip y", yb, ya, n);
    expect_rel("clip dx", dxb, dxa, n);
    expect_grads(&p, "clip");
    free(x), free(dy), free(ya), free(yb), free(dxa), free(dxb);
    pair_free(&p);
}

// ------------------------------------------------------------------ VAE attention

enum { V_C = 64, V_B = 2, V_HW = 12 };

static int vae_run(const VaeAttention *m, const Weights *W, const float *x, const float *dy, float *y, float *dx) {
    Ctx c = train_ctx();
    VaeAttnSaved sv;
    EXPECT(vae_attention_f(&c, W, m, y, x, V_B, V_HW, &sv) == 0, "fwd: %s", a2f_last_error());
    const int fused = sv.fused;
    EXPECT(vae_attention_b(&c, W, m, dx, dy, &sv) == 0, "bwd: %s", a2f_last_error());
    nn_ctx_free(&c);
    return fused;
}

TEST(fused_qkv_vae_attention_matches_separate_gemms) {
    Pair p = {0};
    VaeAttention ma, mb;
    params_init(&p.a.t);
    vae_attention_add(&ma, &p.a.t, "attn", V_C, 8, 1e-6f);
    pair_init(&p, 13);
    mb = ma;
    const Remap r = {&p.a.t, &p.b.t};
    remap_gn(&r, &mb.norm);
    remap_linear(&r, &mb.q), remap_linear(&r, &mb.k), remap_linear(&r, &mb.v), remap_linear(&r, &mb.out);
    const size_t n = (size_t)V_B * V_HW * V_C;
    float *x = xmalloc(n * 4), *dy = xmalloc(n * 4), *ya = xmalloc(n * 4), *yb = xmalloc(n * 4);
    float *dxa = xcalloc(n, 4), *dxb = xcalloc(n, 4);
    uint64_t st = 7;
    test_fill_normal(x, n, 1, &st);
    test_fill_normal(dy, n, 1, &st);
    EXPECT(vae_run(&ma, &p.a, x, dy, ya, dxa) == 1, "standard layout (weights and biases stacked): not fused");
    EXPECT(vae_run(&mb, &p.b, x, dy, yb, dxb) == 0, "reversed layout: fallback not taken");
    expect_rel("vae y", yb, ya, n);
    expect_rel("vae dx", dxb, dxa, n);
    expect_grads(&p, "vae");
    free(x), free(dy), free(ya), free(yb), free(dxa), free(dxb);
    pair_free(&p);
}

// Every buffer the run uses is checked: a frozen tensor among the three (no
// gradient: gptr NULL) cannot take part in one stacked weight-gradient GEMM,
// so training falls back while inference (no gradient buffer) still fuses;
// and only layers adjacent in the given order fuse.
TEST(fused_qkv_checks_every_buffer) {
    Pair p = {0};
    VaeAttention m;
    params_init(&p.a.t);
    vae_attention_add(&m, &p.a.t, "attn", V_C, 8, 1e-6f);
    pair_init(&p, 14);
    LinearRun run = {{&m.q, &m.k, &m.v}, 3}, qv = {{&m.q, &m.v}, 2}, kv = {{&m.k, &m.v}, 2};
    EXPECT(linear_run_fusable(&p.a, &run) && linear_run_fusable(&p.a, &kv), "stacked table not fusable");
    EXPECT(!linear_run_fusable(&p.a, &qv), "q, v (not adjacent) accepted");
    p.a.t.entries[m.k.w].trainable = 0;
    EXPECT(!linear_run_fusable(&p.a, &run), "training: frozen k weight inside the stack accepted");
    float *grad = p.a.grad;
    p.a.grad = NULL;
    EXPECT(linear_run_fusable(&p.a, &run), "inference: stacked weights not fusable");
    p.a.grad = grad;
    p.a.t.entries[m.k.w].trainable = 1;
    p.a.t.entries[m.v.b].trainable = 0;
    EXPECT(!linear_run_fusable(&p.a, &run), "training: frozen v bias inside the stack accepted");
    pair_free(&p);
}
