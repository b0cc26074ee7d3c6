// test_attention.c: attention_fwd/bwd against PyTorch fixtures
// (F.scaled_dot_product_attention + autograd), against a plain double loop
// written here (head dims 40/64/80/160, fused qkv views, cross-attention
// with Nk = 77, causal, several query blocks), and by finite differences.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

// Contiguous separate q [B,Nq,H*D], k, v [B,Nk,H*D], o [B,Nq,H*D].
static AttnShape shape_separate(int B, int H, int Nq, int Nk, int D, int causal) {
    AttnShape s = {B, H, Nq, Nk, D, causal};
    long C = (long)H * D;
    s.q_sb = Nq * C, s.q_st = C;
    s.k_sb = Nk * C, s.k_st = C;
    s.v_sb = Nk * C, s.v_st = C;
    s.o_sb = Nq * C, s.o_st = C;
    return s;
}

// q, k, v as column slices of one fused [B, N, 3*H*D] buffer (offsets 0, C, 2C);
// o [B, N, H*D + opad] with opad unused columns per row.
static AttnShape shape_fused(int B, int H, int N, int D, int causal, int opad) {
    AttnShape s = {B, H, N, N, D, causal};
    long C = (long)H * D;
    s.q_sb = s.k_sb = s.v_sb = N * 3 * C;
    s.q_st = s.k_st = s.v_st = 3 * C;
    s.o_st = C + opad, s.o_sb = N * (C + opad);
    return s;
}

// ---------------------------------------------------------------- fixtures

TEST(attention_fixtures_torch) {
    Fixture *f = fx_open("misc/attention.safetensors");
    if (!f) return;
    const char *tags[] = {"self", "causal", "cross", "d40", "d64", "d80", "d160"};
    for (int t = 0; t < 7; t++) {
        char name[64];
        int32_t *dims = fx_i32(f, 6, "%s.dims", tags[t]);
        if (!dims) continue;
        int B = dims[0], H = dims[1], Nq = dims[2], Nk = dims[3], D = dims[4], causal = dims[5];
        size_t nq = (size_t)B * Nq * H * D, nk = (size_t)B * Nk * H * D;
        float *q = fx_f32(f, nq, "%s.q", tags[t]), *k = fx_f32(f, nk, "%s.k", tags[t]),
              *v = fx_f32(f, nk, "%s.v", tags[t]);
        float *o_ref = fx_f32(f, nq, "%s.o", tags[t]), *lse_ref = fx_f32(f, (size_t)B * H * Nq, "%s.lse", tags[t]);
        float *dout = fx_f32(f, nq, "%s.do", tags[t]), *dq_ref = fx_f32(f, nq, "%s.dq", tags[t]);
        float *dk_ref = fx_f32(f, nk, "%s.dk", tags[t]), *dv_ref = fx_f32(f, nk, "%s.dv", tags[t]);
        if (q && k && v && o_ref && lse_ref && dout && dq_ref && dk_ref && dv_ref) {
            AttnShape s = shape_separate(B, H, Nq, Nk, D, causal);
            float *o = malloc(nq * 4), *lse = malloc((size_t)B * H * Nq * 4);
            float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
            attention_fwd(o, lse, q, k, v, &s);
            // fp32 dot products of D <= 160 O(1) terms (~1e-5 relative) pushed
            // through softmax; torch's CPU kernel rounds differently: 2e-5 + 1e-4 rel.
            snprintf(name, sizeof name, "%s: o", tags[t]);
            EXPECT_CLOSE(name, o, o_ref, nq, 2e-5, 1e-4);
            // lse reference is float64; ours sums exp in double after an fp32 max: 1e-5 rel.
            snprintf(name, sizeof name, "%s: lse", tags[t]);
            EXPECT_CLOSE(name, lse, lse_ref, (size_t)B * H * Nq, 1e-5, 1e-5);
            // Gradients are added: start from 0.25 and add it to the reference.
            for (size_t i = 0; i < nq; i++) dq[i] = 0.25f, dq_ref[i] += 0.25f;
            for (size_t i = 0; i < nk; i++) dk[i] = dv[i] = 0.25f, dk_ref[i] += 0.25f, dv_ref[i] += 0.25f;
            attention_bwd(dq, dk, dv, dout, q, k, v, o, lse, &s);
            // One more product chain than the forward (dS = P (dP - Di)): 5e-5 + 2e-4 rel.
            snprintf(name, sizeof name, "%s: dq", tags[t]);
            EXPECT_CLOSE(name, dq, dq_ref, nq, 5e-5, 2e-4);
            snprintf(name, sizeof name, "%s: dk", tags[t]);
            EXPECT_CLOSE(name, dk, dk_ref, nk, 5e-5, 2e-4);
            snprintf(name, sizeof name, "%s: dv", tags[t]);
            EXPECT_CLOSE(name, dv, dv_ref, nk, 5e-5, 2e-4);
            free(o), free(lse), free(dq), free(dk), free(dv);
        }
    }
    fx_close(f);
}

// ---------------------------------------------------------------- plain loop reference

// o, lse by the textbook formula in double, one (b, h, i) at a time, reading
// the same strided views (the strides are the API under test, the
// arithmetic is independent).
static void naive_attention(float *o, float *lse, const float *q, const float *k, const float *v, const AttnShape *s) {
    double *p = malloc(sizeof(double) * s->Nk);
    double scale = 1.0 / sqrt((double)s->D);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->Nq; i++) {
                const float *qi = q + b * s->q_sb + i * s->q_st + h * s->D;
                double mx = -INFINITY;
                int nvalid = s->causal ? (i + 1 < s->Nk ? i + 1 : s->Nk) : s->Nk;
                for (int j = 0; j < nvalid; j++) {
                    const float *kj = k + b * s->k_sb + j * s->k_st + h * s->D;
                    double dot = 0;
                    for (int d = 0; d < s->D; d++) dot += (double)qi[d] * kj[d];
                    p[j] = dot * scale;
                    if (p[j] > mx) mx = p[j];
                }
                double z = 0;
                for (int j = 0; j < nvalid; j++) z += exp(p[j] - mx);
                lse[((size_t)b * s->H + h) * s->Nq + i] = (float)(mx + log(z));
                for (int d = 0; d < s->D; d++) {
                    double acc = 0;
                    for (int j = 0; j < nvalid; j++) acc += exp(p[j] - mx) / z * v[b * s->v_sb + j * s->v_st + h * s->D + d];
                    o[b * s->o_sb + i * s->o_st + h * s->D + d] = (float)acc;
                }
            }
    free(p);
}

// Fused-qkv self-attention with a padded o (sentinels must survive) vs the loop.
static void check_fused(int B, int H, int N, int D, int causal, uint64_t seed) {
    const int opad = 3;
    AttnShape s = shape_fused(B, H, N, D, causal, opad);
    size_t nqkv = (size_t)B * N * 3 * H * D, no = (size_t)B * N * (H * D + opad);
    float *qkv = malloc(nqkv * 4), *o = malloc(no * 4), *o_ref = malloc(no * 4);
    float *lse = malloc((size_t)B * H * N * 4), *lse_ref = malloc((size_t)B * H * N * 4);
    test_fill_normal(qkv, nqkv, 1.0f, &seed);
    for (size_t i = 0; i < no; i++) o[i] = o_ref[i] = 1234.5f;  // sentinels in the padding columns
    const float *q = qkv, *k = qkv + H * D, *v = qkv + 2 * H * D;
    attention_fwd(o, lse, q, k, v, &s);
    naive_attention(o_ref, lse_ref, q, k, v, &s);
    char what[96];
    snprintf(what, sizeof what, "fused B%d H%d N%d D%d causal%d: o", B, H, N, D, causal);
    // fp32 scores/probabilities vs a double loop: ~D * 6e-8 relative on the
    // scores, amplified by |score| <~ 10 in exp: 1e-5 + 1e-4 rel is ~10x that.
    EXPECT_CLOSE(what, o, o_ref, no, 1e-5, 1e-4);
    snprintf(what, sizeof what, "fused B%d H%d N%d D%d causal%d: lse", B, H, N, D, causal);
    EXPECT_CLOSE(what, lse, lse_ref, (size_t)B * H * N, 1e-5, 1e-5);  // same argument, log is benign
    free(qkv), free(o), free(o_ref), free(lse), free(lse_ref);
}

// Cross-attention with separate buffers vs the loop.
static void check_cross(int B, int H, int Nq, int Nk, int D, int causal, uint64_t seed) {
    AttnShape s = shape_separate(B, H, Nq, Nk, D, causal);
    size_t nq = (size_t)B * Nq * H * D, nk = (size_t)B * Nk * H * D;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4), *o_ref = malloc(nq * 4);
    float *lse = malloc((size_t)B * H * Nq * 4), *lse_ref = malloc((size_t)B * H * Nq * 4);
    test_fill_normal(q, nq, 1.0f, &seed), test_fill_normal(k, nk, 1.0f, &seed), test_fill_normal(v, nk, 1.0f, &seed);
    attention_fwd(o, lse, q, k, v, &s);
    naive_attention(o_ref, lse_ref, q, k, v, &s);
    char what[96];
    snprintf(what, sizeof what, "cross B%d H%d Nq%d Nk%d D%d causal%d: o", B, H, Nq, Nk, D, causal);
    EXPECT_CLOSE(what, o, o_ref, nq, 1e-5, 1e-4);  // as in check_fused
    snprintf(what, sizeof what, "cross B%d H%d Nq%d Nk%d D%d causal%d: lse", B, H, Nq, Nk, D, causal);
    EXPECT_CLOSE(what, lse, lse_ref, (size_t)B * H * Nq, 1e-5, 1e-5);
    free(q), free(k), free(v), free(o), free(o_ref), free(lse), free(lse_ref);
}

TEST(attention_fwd_vs_loop_head_dims) {
    // the networks' head dims: SD UNet 40/80/160, CLIP 64
    check_fused(2, 2, 9, 40, 0, 1);
    check_fused(1, 3, 13, 64, 1, 2);
    check_fused(2, 1, 7, 80, 0, 3);
    check_fused(1, 2, 5, 160, 0, 4);
    check_cross(2, 2, 9, 77, 40, 0, 5);   // UNet cross-attention: 77 text tokens
    check_cross(1, 1, 3, 77, 160, 0, 6);
    check_cross(1, 2, 1, 1, 8, 0, 7);     // single query, single key
}

TEST(attention_fwd_vs_loop_blocks) {
    // Nq > one 64-row query block, odd sizes, causal offsets in later blocks
    check_fused(1, 2, 131, 16, 1, 11);
    check_fused(2, 1, 70, 8, 0, 12);
    check_cross(1, 2, 67, 77, 8, 0, 13);
    check_cross(1, 1, 99, 5, 4, 1, 14);   // causal with Nq > Nk: rows i >= Nk see all keys
    check_cross(2, 1, 5, 97, 4, 1, 15);   // causal with Nk > Nq
}

// ---------------------------------------------------------------- backward vs a double loop

// dq, dk, dv (+=, strides of q, k, v) by the textbook chain rule in double,
// probabilities recomputed from scratch (no lse, no o from the code under test).
static void naive_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const AttnShape *s) {
    const int Nq = s->Nq, Nk = s->Nk, D = s->D;
    double *P = malloc(sizeof(double) * Nq * Nk), *dS = malloc(sizeof(double) * Nq * Nk);
    double scale = 1.0 / sqrt((double)D);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
#define Q(i, d) q[b * s->q_sb + (i) * s->q_st + h * D + (d)]
#define K(j, d) k[b * s->k_sb + (j) * s->k_st + h * D + (d)]
#define V(j, d) v[b * s->v_sb + (j) * s->v_st + h * D + (d)]
#define G(i, d) dout[b * s->o_sb + (i) * s->o_st + h * D + (d)]
            for (int i = 0; i < Nq; i++) {
                double mx = -INFINITY, z = 0;
                for (int j = 0; j < Nk; j++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)Q(i, d) * K(j, d);
                    P[i * Nk + j] = (s->causal && j > i) ? -INFINITY : dot * scale;
                    if (P[i * Nk + j] > mx) mx = P[i * Nk + j];
                }
                for (int j = 0; j < Nk; j++) z += (P[i * Nk + j] = exp(P[i * Nk + j] - mx));
                for (int j = 0; j < Nk; j++) P[i * Nk + j] /= z;
                // dP_ij = dO_i . V_j; dS_ij = P_ij (dP_ij - sum_l P_il dP_il)
                double rs = 0;
                for (int j = 0; j < Nk; j++) {
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += (double)G(i, d) * V(j, d);
                    dS[i * Nk + j] = dp;
                    rs += P[i * Nk + j] * dp;
                }
                for (int j = 0; j < Nk; j++) dS[i * Nk + j] = P[i * Nk + j] * (dS[i * Nk + j] - rs);
            }
            for (int d = 0; d < D; d++) {
                for (int i = 0; i < Nq; i++) {
                    double acc = 0;
                    for (int j = 0; j < Nk; j++) acc += dS[i * Nk + j] * K(j, d);
                    dq[b * s->q_sb + i * s->q_st + h * D + d] += (float)(acc * scale);
                }
                for (int j = 0; j < Nk; j++) {
                    double ak = 0, av = 0;
                    for (int i = 0; i < Nq; i++) ak += dS[i * Nk + j] * Q(i, d), av += P[i * Nk + j] * G(i, d);
                    dk[b * s->k_sb + j * s->k_st + h * D + d] += (float)(ak * scale);
                    dv[b * s->v_sb + j * s->v_st + h * D + d] += (float)av;
                }
            }
#undef Q
#undef K
#undef V
#undef G
        }
    free(P), free(dS);
}

// Sizes large enough for the threaded path (several query blocks, B*H > 1).
static void check_bwd(int B, int H, int Nq, int Nk, int D, int causal, int fused, uint64_t seed) {
    AttnShape s = fused ? shape_fused(B, H, Nq, D, causal, 0) : shape_separate(B, H, Nq, Nk, D, causal);
    size_t nq = (size_t)B * Nq * H * D, nk = (size_t)B * Nk * H * D;
    size_t nin = fused ? 3 * nq : nq + 2 * nk;  // fused: one [B,N,3HD] buffer; else q | k | v back to back
    float *in = malloc(nin * 4), *grad = calloc(nin, 4), *ref = calloc(nin, 4);
    float *o = malloc(nq * 4), *lse = malloc((size_t)B * H * Nq * 4), *g = malloc(nq * 4);
    test_fill_normal(in, nin, 1.0f, &seed), test_fill_normal(g, nq, 1.0f, &seed);
    size_t ko = fused ? (size_t)H * D : nq, vo = fused ? 2 * (size_t)H * D : nq + nk;
    attention_fwd(o, lse, in, in + ko, in + vo, &s);
    attention_bwd(grad, grad + ko, grad + vo, g, in, in + ko, in + vo, o, lse, &s);
    naive_attention_bwd(ref, ref + ko, ref + vo, g, in, in + ko, in + vo, &s);
    char what[96];
    snprintf(what, sizeof what, "bwd %s B%d H%d Nq%d Nk%d D%d causal%d", fused ? "fused" : "separate", B, H, Nq, Nk,
             D, causal);
    // fp32 vs double: dS = P (dP - Di) cancels to ~|P dP| 1e-6; summed over
    // Nk <= 77 keys gives ~1e-5 absolute on O(1) gradients. 3e-5 + 1e-4 rel.
    EXPECT_CLOSE(what, grad, ref, nin, 3e-5, 1e-4);
    free(in), free(grad), free(ref), free(o), free(lse), free(g);
}

TEST(attention_bwd_vs_loop) {
    check_bwd(2, 2, 70, 70, 40, 1, 1, 91);   // fused self-attention, causal, 2 query blocks
    check_bwd(2, 3, 67, 77, 16, 0, 0, 92);   // cross-attention, Nq odd
    check_bwd(1, 2, 9, 77, 64, 0, 0, 93);
}

// ---------------------------------------------------------------- gradient checks

typedef struct {
    AttnShape s;
    float *q, *k, *v, *o, *lse;      // views (q/k/v may point into one fused buffer)
    float *dq, *dk, *dv;             // matching views of the gradient buffers
} AttCtx;

static void att_fwd(void *p) {
    AttCtx *c = p;
    attention_fwd(c->o, c->lse, c->q, c->k, c->v, &c->s);
}

static void att_bwd(void *p, const float *dout) {
    AttCtx *c = p;
    attention_bwd(c->dq, c->dk, c->dv, dout, c->q, c->k, c->v, c->o, c->lse, &c->s);
}

// Step 5e-3 instead of 1e-2: the directional check moves every q, k, v at
// once and scores are bilinear in q, k, so the O(h^2) truncation error of the
// central difference reached ~2e-3 absolute at h = 1e-2 (measured; shrinks
// 4x per halving of h, the fp32 noise term grows only 2x).
#define ATT_GC_H 5e-3

// Fused qkv [B,N,3HD]: one gradcheck input (the fused buffer and its fused gradient).
static void gc_fused(int B, int H, int N, int D, int causal, uint64_t seed) {
    AttCtx c = {shape_fused(B, H, N, D, causal, 0)};
    size_t n = (size_t)B * N * 3 * H * D, no = (size_t)B * N * H * D;
    float *qkv = malloc(n * 4), *dqkv = malloc(n * 4);
    c.o = malloc(no * 4), c.lse = malloc((size_t)B * H * N * 4);
    test_fill_normal(qkv, n, 1.0f, &seed);
    c.q = qkv, c.k = qkv + H * D, c.v = qkv + 2 * H * D;
    c.dq = dqkv, c.dk = dqkv + H * D, c.dv = dqkv + 2 * H * D;
    GradCheck g;
    gc_init(&g, &c, att_fwd, att_bwd, c.o, no);
    gc_input(&g, "qkv", qkv, dqkv, n);
    g.h = ATT_GC_H;
    char label[96];
    snprintf(label, sizeof label, "attention fused B%d H%d N%d D%d causal%d", B, H, N, D, causal);
    gc_run(&g, label);
    free(qkv), free(dqkv), free(c.o), free(c.lse);
}

static void gc_separate(int B, int H, int Nq, int Nk, int D, int causal, uint64_t seed) {
    AttCtx c = {shape_separate(B, H, Nq, Nk, D, causal)};
    size_t nq = (size_t)B * Nq * H * D, nk = (size_t)B * Nk * H * D;
    c.q = malloc(nq * 4), c.k = malloc(nk * 4), c.v = malloc(nk * 4);
    c.dq = malloc(nq * 4), c.dk = malloc(nk * 4), c.dv = malloc(nk * 4);
    c.o = malloc(nq * 4), c.lse = malloc((size_t)B * H * Nq * 4);
    test_fill_normal(c.q, nq, 1.0f, &seed), test_fill_normal(c.k, nk, 1.0f, &seed);
    test_fill_normal(c.v, nk, 1.0f, &seed);
    GradCheck g;
    gc_init(&g, &c, att_fwd, att_bwd, c.o, nq);
    g.h = ATT_GC_H;
    gc_input(&g, "q", c.q, c.dq, nq);
    gc_input(&g, "k", c.k, c.dk, nk);
    gc_input(&g, "v", c.v, c.dv, nk);
    char label[96];
    snprintf(label, sizeof label, "attention B%d H%d Nq%d Nk%d D%d causal%d", B, H, Nq, Nk, D, causal);
    gc_run(&g, label);
    free(c.q), free(c.k), free(c.v), free(c.dq), free(c.dk), free(c.dv), free(c.o), free(c.lse);
}

TEST(attention_gradcheck) {
    gc_fused(2, 2, 5, 4, 0, 21);
    gc_fused(1, 3, 7, 3, 1, 22);
    gc_fused(1, 1, 1, 1, 0, 23);
    gc_separate(2, 2, 3, 7, 5, 0, 24);   // cross-attention, Nk != Nq
    gc_separate(1, 2, 7, 4, 3, 1, 25);   // causal, Nq > Nk
    gc_separate(2, 1, 5, 13, 8, 1, 26);  // causal, Nk > Nq
    gc_separate(1, 1, 67, 3, 2, 1, 27);  // two query blocks in the backward
}

TEST(attention_bwd_null_grads) {
    // dq/dk NULL must not change dv (dv alone skips the dS pass)
    uint64_t seed = 31;
    AttnShape s = shape_separate(1, 2, 5, 6, 4, 1);
    size_t nq = 5 * 8, nk = 6 * 8;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4), *lse = malloc(10 * 4);
    float *g = malloc(nq * 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4), *dv2 = calloc(nk, 4);
    test_fill_normal(q, nq, 1, &seed), test_fill_normal(k, nk, 1, &seed), test_fill_normal(v, nk, 1, &seed);
    test_fill_normal(g, nq, 1, &seed);
    attention_fwd(o, lse, q, k, v, &s);
    attention_bwd(dq, dk, dv, g, q, k, v, o, lse, &s);
    attention_bwd(NULL, NULL, dv2, g, q, k, v, o, lse, &s);
    EXPECT_CLOSE("dv alone", dv2, dv, nk, 0, 0);  // same arithmetic: bitwise equal
    free(q), free(k), free(v), free(o), free(lse), free(g), free(dq), free(dk), free(dv), free(dv2);
}
