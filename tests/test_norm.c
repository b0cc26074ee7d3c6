// test_norm.c: GroupNorm (+SiLU), LayerNorm and BatchNorm (inference and
// training), forward and backward:
//  - PyTorch fixtures (tests/fixtures/normact, float64 references rounded to
//    f32): outputs, saved mean/rstd, updated running stats, autograd grads;
//  - finite-difference gradient checks (tests/gradcheck) on several shapes;
//  - a naive double-precision reference at a shape large enough for the
//    OpenMP paths, and bit-identical results for 1 and 3 threads;
//  - training batchnorm with one row per channel aborts (as PyTorch raises).
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

// Gradient buffers are pre-filled with TEST_GRAD_PRE before backward, so every check
// also verifies the "+=" contract of ops.h.

static float *fnew(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *fdup(const float *x, size_t n) {
    float *y = fnew(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

// Fixture tolerances. Forward: each output is a handful of fp32 operations on
// O(1) values after double-precision statistics, so |err| is a few ulp
// (~1e-6); 1e-5 abs + 1e-5 rel leaves margin yet fails on any formula slip
// (biased vs unbiased variance on 14 values is a 3.6% change). Gradients
// involve sums of up to ~50 fp32 products; 3e-5 abs + 1e-4 rel.
#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-5
#define BWD_ATOL 3e-5
#define BWD_RTOL 1e-4

// ------------------------------------------------------------------ fixtures

TEST(groupnorm_fixtures) {
    const char *cases[] = {"gn_b2_hw7_c6_g3", "gn_b2_hw7_c6_g3_silu", "gn_b3_hw9_c8_g2_silu_off",
                           "gn_b1_hw16_c32_g32"};
    for (int k = 0; k < 4; k++) {
        Fixture *fx = fx_open("normact/%s.safetensors", cases[k]);
        if (!fx) continue;
        float *cfg = fx_f32(fx, 6, "cfg");
        if (!cfg) { fx_close(fx); continue; }
        int B = (int)cfg[0], HW = (int)cfg[1], C = (int)cfg[2], G = (int)cfg[3], silu = (int)cfg[4];
        float eps = cfg[5];
        size_t n = (size_t)B * HW * C;
        float *x = fx_f32(fx, n, "x"), *gamma = fx_f32(fx, C, "gamma"), *beta = fx_f32(fx, C, "beta");
        float *dy = fx_f32(fx, n, "dy");
        if (!x || !gamma || !beta || !dy) { fx_close(fx); continue; }
        float *y = fnew(n), *mean = fnew((size_t)B * G), *rstd = fnew((size_t)B * G);
        float *dx = test_grad_buffer(n), *dg = test_grad_buffer(C), *db = test_grad_buffer(C);
        groupnorm_fwd(y, mean, rstd, x, gamma, beta, B, HW, C, G, eps, silu);
        groupnorm_bwd(dx, dg, db, dy, x, mean, rstd, gamma, beta, B, HW, C, G, silu);
        char w[128];
        snprintf(w, sizeof w, "%s y", cases[k]);
        EXPECT_CLOSE(w, y, fx_f32(fx, n, "y"), n, FWD_ATOL, FWD_RTOL);
        // mean of the offset case is ~50: rtol covers its f32 rounding (3e-6 rel)
        snprintf(w, sizeof w, "%s mean", cases[k]);
        EXPECT_CLOSE(w, mean, fx_f32(fx, (size_t)B * G, "mean"), (size_t)B * G, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s rstd", cases[k]);
        EXPECT_CLOSE(w, rstd, fx_f32(fx, (size_t)B * G, "rstd"), (size_t)B * G, FWD_ATOL, FWD_RTOL);
        // the offset case has rstd ~10: gradients w.r.t. x scale with rstd, so tolerances scale by rstd too
        double sc = strstr(cases[k], "off") ? 10.0 : 1.0;
        snprintf(w, sizeof w, "%s dx", cases[k]);
        EXPECT_GRAD(w, dx, fx_f32(fx, n, "dx"), n, BWD_ATOL * sc, BWD_RTOL);
        snprintf(w, sizeof w, "%s dgamma", cases[k]);
        EXPECT_GRAD(w, dg, fx_f32(fx, C, "dgamma"), C, BWD_ATOL, BWD_RTOL);
        snprintf(w, sizeof w, "%s dbeta", cases[k]);
        EXPECT_GRAD(w, db, fx_f32(fx, C, "dbeta"), C, BWD_ATOL, BWD_RTOL);
        free(y), free(mean), free(rstd), free(dx), free(dg), free(db);
        fx_close(fx);
    }
}

TEST(layernorm_fixtures) {
    const char *cases[] = {"ln_n6_c5", "ln_n4_c13_off"};
    for (int k = 0; k < 2; k++) {
        Fixture *fx = fx_open("normact/%s.safetensors", cases[k]);
        if (!fx) continue;
        float *cfg = fx_f32(fx, 3, "cfg");
        if (!cfg) { fx_close(fx); continue; }
        int N = (int)cfg[0], C = (int)cfg[1];
        float eps = cfg[2];
        size_t n = (size_t)N * C;
        float *x = fx_f32(fx, n, "x"), *gamma = fx_f32(fx, C, "gamma"), *beta = fx_f32(fx, C, "beta");
        float *dy = fx_f32(fx, n, "dy");
        if (!x || !gamma || !beta || !dy) { fx_close(fx); continue; }
        float *y = fnew(n), *mean = fnew(N), *rstd = fnew(N);
        float *dx = test_grad_buffer(n), *dg = test_grad_buffer(C), *db = test_grad_buffer(C);
        layernorm_fwd(y, mean, rstd, x, gamma, beta, N, C, eps);
        layernorm_bwd(dx, dg, db, dy, x, mean, rstd, gamma, N, C);
        char w[128];
        snprintf(w, sizeof w, "%s y", cases[k]);
        EXPECT_CLOSE(w, y, fx_f32(fx, n, "y"), n, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s mean", cases[k]);
        EXPECT_CLOSE(w, mean, fx_f32(fx, N, "mean"), N, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s rstd", cases[k]);
        EXPECT_CLOSE(w, rstd, fx_f32(fx, N, "rstd"), N, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s dx", cases[k]);
        EXPECT_GRAD(w, dx, fx_f32(fx, n, "dx"), n, BWD_ATOL, BWD_RTOL);
        snprintf(w, sizeof w, "%s dgamma", cases[k]);
        EXPECT_GRAD(w, dg, fx_f32(fx, C, "dgamma"), C, BWD_ATOL, BWD_RTOL);
        snprintf(w, sizeof w, "%s dbeta", cases[k]);
        EXPECT_GRAD(w, db, fx_f32(fx, C, "dbeta"), C, BWD_ATOL, BWD_RTOL);
        free(y), free(mean), free(rstd), free(dx), free(dg), free(db);
        fx_close(fx);
    }
}

TEST(batchnorm_fixtures) {
    const char *cases[] = {"bn_train_affine", "bn_train_noaffine", "bn_eval_affine", "bn_eval_noaffine"};
    for (int k = 0; k < 4; k++) {
        Fixture *fx = fx_open("normact/%s.safetensors", cases[k]);
        if (!fx) continue;
        float *cfg = fx_f32(fx, 6, "cfg");
        if (!cfg) { fx_close(fx); continue; }
        int N = (int)cfg[0], C = (int)cfg[1], training = (int)cfg[2], affine = (int)cfg[3];
        float eps = cfg[4], momentum = cfg[5];
        size_t n = (size_t)N * C;
        float *x = fx_f32(fx, n, "x"), *dy = fx_f32(fx, n, "dy");
        float *rm0 = fx_f32(fx, C, "run_mean"), *rv0 = fx_f32(fx, C, "run_var");
        float *gamma = affine ? fx_f32(fx, C, "gamma") : NULL, *beta = affine ? fx_f32(fx, C, "beta") : NULL;
        if (!x || !dy || !rm0 || !rv0 || (affine && (!gamma || !beta))) { fx_close(fx); continue; }
        EXPECT(affine || !fx_has(fx, "gamma"), "%s", cases[k]);
        float *y = fnew(n), *mean = fnew(C), *rstd = fnew(C), *rm = fdup(rm0, C), *rv = fdup(rv0, C);
        float *dx = test_grad_buffer(n), *dg = test_grad_buffer(C), *db = test_grad_buffer(C);
        char w[128];
        if (training) {
            batchnorm_fwd_train(y, mean, rstd, rm, rv, x, gamma, beta, N, C, eps, momentum);
            batchnorm_bwd_train(dx, affine ? dg : NULL, affine ? db : NULL, dy, x, mean, rstd, gamma, N, C);
            snprintf(w, sizeof w, "%s mean", cases[k]);
            EXPECT_CLOSE(w, mean, fx_f32(fx, C, "mean"), C, FWD_ATOL, FWD_RTOL);
            snprintf(w, sizeof w, "%s rstd", cases[k]);
            EXPECT_CLOSE(w, rstd, fx_f32(fx, C, "rstd"), C, FWD_ATOL, FWD_RTOL);
        } else {
            batchnorm_fwd_infer(y, x, gamma, beta, rm, rv, N, C, eps);
            batchnorm_bwd_infer(dx, affine ? dg : NULL, affine ? db : NULL, dy, x, gamma, rm, rv, N, C, eps);
        }
        // running stats: untouched in eval, momentum update (unbiased var) in training
        snprintf(w, sizeof w, "%s running_mean", cases[k]);
        EXPECT_CLOSE(w, rm, fx_f32(fx, C, "run_mean_new"), C, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s running_var", cases[k]);
        EXPECT_CLOSE(w, rv, fx_f32(fx, C, "run_var_new"), C, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s y", cases[k]);
        EXPECT_CLOSE(w, y, fx_f32(fx, n, "y"), n, FWD_ATOL, FWD_RTOL);
        snprintf(w, sizeof w, "%s dx", cases[k]);
        EXPECT_GRAD(w, dx, fx_f32(fx, n, "dx"), n, BWD_ATOL, BWD_RTOL);
        if (affine) {
            snprintf(w, sizeof w, "%s dgamma", cases[k]);
            EXPECT_GRAD(w, dg, fx_f32(fx, C, "dgamma"), C, BWD_ATOL, BWD_RTOL);
            snprintf(w, sizeof w, "%s dbeta", cases[k]);
            EXPECT_GRAD(w, db, fx_f32(fx, C, "dbeta"), C, BWD_ATOL, BWD_RTOL);
        } else {
            for (int c = 0; c < C; c++) EXPECT(dg[c] == TEST_GRAD_PRE && db[c] == TEST_GRAD_PRE, "NULL grads must stay untouched");
        }
        free(y), free(mean), free(rstd), free(rm), free(rv), free(dx), free(dg), free(db);
        fx_close(fx);
    }
}

// ------------------------------------------------------------------ gradient checks

typedef struct {
    int B, HW, C, G, silu;
    float eps;
    float *x, *gamma, *beta, *y, *mean, *rstd, *gx, *gg, *gb;
} GnCtx;

static void gn_fwd(void *p) {
    GnCtx *c = p;
    groupnorm_fwd(c->y, c->mean, c->rstd, c->x, c->gamma, c->beta, c->B, c->HW, c->C, c->G, c->eps, c->silu);
}
static void gn_bwd(void *p, const float *dy) {
    GnCtx *c = p;
    groupnorm_bwd(c->gx, c->gg, c->gb, dy, c->x, c->mean, c->rstd, c->gamma, c->beta, c->B, c->HW, c->C, c->G,
                  c->silu);
}

TEST(gradcheck_groupnorm) {
    // {B, HW, C, G, silu}: odd HW, C/G of 1, 2, 3; G == 1 and G == C; batch > 1
    int shapes[][5] = {{1, 3, 4, 2, 0}, {2, 7, 6, 3, 1}, {3, 5, 8, 4, 1}, {2, 4, 6, 1, 0}, {1, 13, 6, 6, 1},
                       {2, 9, 10, 5, 0}};
    for (int s = 0; s < 6; s++) {
        GnCtx c = {shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], 1e-5f};
        size_t n = (size_t)c.B * c.HW * c.C;
        uint64_t st = 101 + s;
        c.x = fnew(n), c.gx = fnew(n), c.y = fnew(n);
        c.gamma = fnew(c.C), c.beta = fnew(c.C), c.gg = fnew(c.C), c.gb = fnew(c.C);
        c.mean = fnew((size_t)c.B * c.G), c.rstd = fnew((size_t)c.B * c.G);
        test_fill_normal(c.x, n, 1.0f, &st);
        test_fill_uniform(c.gamma, c.C, 0.5f, 1.5f, &st);
        test_fill_normal(c.beta, c.C, 0.5f, &st);
        GradCheck g;
        gc_init(&g, &c, gn_fwd, gn_bwd, c.y, n);
        gc_input(&g, "x", c.x, c.gx, n);
        gc_input(&g, "gamma", c.gamma, c.gg, c.C);
        gc_input(&g, "beta", c.beta, c.gb, c.C);
        char label[96];
        snprintf(label, sizeof label, "groupnorm B%d HW%d C%d G%d silu%d", c.B, c.HW, c.C, c.G, c.silu);
        gc_run(&g, label);
        free(c.x), free(c.gx), free(c.y), free(c.gamma), free(c.beta), free(c.gg), free(c.gb), free(c.mean),
            free(c.rstd);
    }
}

typedef struct {
    int N, C;
    float *x, *gamma, *beta, *y, *mean, *rstd, *gx, *gg, *gb;
} LnCtx;

static void ln_fwd(void *p) {
    LnCtx *c = p;
    layernorm_fwd(c->y, c->mean, c->rstd, c->x, c->gamma, c->beta, c->N, c->C, 1e-5f);
}
static void ln_bwd(void *p, const float *dy) {
    LnCtx *c = p;
    layernorm_bwd(c->gx, c->gg, c->gb, dy, c->x, c->mean, c->rstd, c->gamma, c->N, c->C);
}

TEST(gradcheck_layernorm) {
    int shapes[][2] = {{1, 2}, {3, 5}, {7, 13}, {4, 64}, {70, 3}};  // 70 rows: more than one 64-row chunk
    for (int s = 0; s < 5; s++) {
        LnCtx c = {shapes[s][0], shapes[s][1]};
        size_t n = (size_t)c.N * c.C;
        uint64_t st = 201 + s;
        c.x = fnew(n), c.gx = fnew(n), c.y = fnew(n);
        c.gamma = fnew(c.C), c.beta = fnew(c.C), c.gg = fnew(c.C), c.gb = fnew(c.C);
        c.mean = fnew(c.N), c.rstd = fnew(c.N);
        // Central differences need the step to be small against each row's spread
        // (the directional check moves a row by h*sqrt(C)): a row of 3 normal samples
        // can have std ~0.05 by chance (rstd 20), so a channel ramp keeps every row's
        // std near or above 1.
        test_fill_normal(c.x, n, 1.0f, &st);
        for (size_t i = 0; i < n; i++) c.x[i] += 3.0f * (float)(i % c.C) / c.C;
        test_fill_uniform(c.gamma, c.C, 0.5f, 1.5f, &st);
        test_fill_normal(c.beta, c.C, 0.5f, &st);
        GradCheck g;
        gc_init(&g, &c, ln_fwd, ln_bwd, c.y, n);
        // h = 3e-3: with h = 1e-2 the O(h^2) truncation error of the directional
        // difference (whose terms partly cancel) reached 0.4% on N70 C3; the fp32
        // round-off term grows only to ~1e-4 relative at this step.
        g.h = 3e-3;
        gc_input(&g, "x", c.x, c.gx, n);
        gc_input(&g, "gamma", c.gamma, c.gg, c.C);
        gc_input(&g, "beta", c.beta, c.gb, c.C);
        char label[64];
        snprintf(label, sizeof label, "layernorm N%d C%d", c.N, c.C);
        gc_run(&g, label);
        free(c.x), free(c.gx), free(c.y), free(c.gamma), free(c.beta), free(c.gg), free(c.gb), free(c.mean),
            free(c.rstd);
    }
}

typedef struct {
    int N, C, affine, training;
    float *x, *gamma, *beta, *y, *mean, *rstd, *gx, *gg, *gb;
    const float *rm0, *rv0;  // [C] running stats as given
    float *rm, *rv;          // [C] scratch copies the training forward may update
} BnCtx;

// The training forward updates running stats in place; it works on fresh
// copies every call so that it is a pure function of (x, gamma, beta).
static void bn_fwd(void *p) {
    BnCtx *c = p;
    memcpy(c->rm, c->rm0, c->C * sizeof(float));
    memcpy(c->rv, c->rv0, c->C * sizeof(float));
    float *ga = c->affine ? c->gamma : NULL, *be = c->affine ? c->beta : NULL;
    if (c->training)
        batchnorm_fwd_train(c->y, c->mean, c->rstd, c->rm, c->rv, c->x, ga, be, c->N, c->C, 1e-5f, 0.1f);
    else
        batchnorm_fwd_infer(c->y, c->x, ga, be, c->rm, c->rv, c->N, c->C, 1e-5f);
}
static void bn_bwd(void *p, const float *dy) {
    BnCtx *c = p;
    float *ga = c->affine ? c->gamma : NULL;
    float *gg = c->affine ? c->gg : NULL, *gb = c->affine ? c->gb : NULL;
    if (c->training)
        batchnorm_bwd_train(c->gx, gg, gb, dy, c->x, c->mean, c->rstd, ga, c->N, c->C);
    else
        batchnorm_bwd_infer(c->gx, gg, gb, dy, c->x, ga, c->rm0, c->rv0, c->N, c->C, 1e-5f);
}

TEST(gradcheck_batchnorm) {
    // {N, C}: N = B*H*W rows; 2 is the smallest legal training batch; 130 spans 3 chunks
    int shapes[][2] = {{2, 1}, {6, 3}, {18, 4}, {35, 7}, {130, 2}};
    for (int training = 0; training < 2; training++)
        for (int affine = 0; affine < 2; affine++)
            for (int s = 0; s < 5; s++) {
                BnCtx c = {shapes[s][0], shapes[s][1], affine, training};
                size_t n = (size_t)c.N * c.C;
                uint64_t st = 301 + s + 10 * affine + 100 * training;
                c.x = fnew(n), c.gx = fnew(n), c.y = fnew(n);
                c.gamma = fnew(c.C), c.beta = fnew(c.C), c.gg = fnew(c.C), c.gb = fnew(c.C);
                c.mean = fnew(c.C), c.rstd = fnew(c.C), c.rm = fnew(c.C), c.rv = fnew(c.C);
                float *rm0 = fnew(c.C), *rv0 = fnew(c.C);
                test_fill_normal(c.x, n, 1.5f, &st);
                test_fill_uniform(c.gamma, c.C, 0.5f, 1.5f, &st);
                test_fill_normal(c.beta, c.C, 0.5f, &st);
                test_fill_normal(rm0, c.C, 0.3f, &st);
                test_fill_uniform(rv0, c.C, 0.5f, 2.0f, &st);
                c.rm0 = rm0, c.rv0 = rv0;
                GradCheck g;
                gc_init(&g, &c, bn_fwd, bn_bwd, c.y, n);
                gc_input(&g, "x", c.x, c.gx, n);
                if (affine) {
                    gc_input(&g, "gamma", c.gamma, c.gg, c.C);
                    gc_input(&g, "beta", c.beta, c.gb, c.C);
                }
                char label[80];
                snprintf(label, sizeof label, "batchnorm %s%s N%d C%d", training ? "train" : "infer",
                         affine ? " affine" : "", c.N, c.C);
                gc_run(&g, label);
                free(c.x), free(c.gx), free(c.y), free(c.gamma), free(c.beta), free(c.gg), free(c.gb);
                free(c.mean), free(c.rstd), free(c.rm), free(c.rv), free(rm0), free(rv0);
            }
}

// ------------------------------------------------------------------ naive reference, larger shapes

// GroupNorm written element-first: every value looks up its (b, g) slot and
// accumulates into per-slot double sums; backward by the textbook formula in double.
static void gn_naive(double *y, double *dx, double *dg, double *db, const float *x, const float *dy,
                     const float *gamma, const float *beta, int B, int HW, int C, int G, double eps, int silu) {
    int Cg = C / G;
    size_t n = (size_t)B * HW * C;
    double *s = calloc((size_t)B * G, sizeof(double)), *q = calloc((size_t)B * G, sizeof(double));
    double *a1 = calloc((size_t)B * G, sizeof(double)), *a2 = calloc((size_t)B * G, sizeof(double));
    double *xh = calloc(n, sizeof(double)), *dz = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) s[(i / ((size_t)HW * C)) * G + (i % C) / Cg] += x[i];
    for (int k = 0; k < B * G; k++) s[k] /= (double)HW * Cg;
    for (size_t i = 0; i < n; i++) {
        size_t k = (i / ((size_t)HW * C)) * G + (i % C) / Cg;
        q[k] += (x[i] - s[k]) * (x[i] - s[k]);
    }
    for (int k = 0; k < B * G; k++) q[k] = 1.0 / sqrt(q[k] / ((double)HW * Cg) + eps);
    for (int c = 0; c < C; c++) dg[c] = db[c] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = (i / ((size_t)HW * C)) * G + (i % C) / Cg;
        int c = (int)(i % C);
        xh[i] = (x[i] - s[k]) * q[k];
        double z = xh[i] * gamma[c] + beta[c];
        double sg = 1.0 / (1.0 + exp(-z));
        y[i] = silu ? z * sg : z;
        dz[i] = silu ? dy[i] * (sg + z * sg * (1.0 - sg)) : dy[i];
        dg[c] += dz[i] * xh[i];
        db[c] += dz[i];
        a1[k] += dz[i] * gamma[c];
        a2[k] += dz[i] * gamma[c] * xh[i];
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = (i / ((size_t)HW * C)) * G + (i % C) / Cg;
        double m = (double)HW * Cg;
        dx[i] = q[k] * (dz[i] * gamma[i % C] - a1[k] / m - xh[i] * a2[k] / m);
    }
    free(s), free(q), free(a1), free(a2), free(xh), free(dz);
}

static void expect_close_d(const char *what, const float *got, const double *want, size_t n, double atol,
                           double rtol) {
    float *w = fnew(n);
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    expect_close_(__FILE__, __LINE__, what, got, w, n, atol, rtol);
    free(w);
}

TEST(groupnorm_matches_naive_large) {
    // SD-like channel grouping (32 groups of 3) at a size that takes the OpenMP path
    const int B = 2, HW = 100, C = 96, G = 32;
    size_t n = (size_t)B * HW * C;
    uint64_t st = 77;
    float *x = fnew(n), *dy = fnew(n), *gamma = fnew(C), *beta = fnew(C);
    test_fill_normal(x, n, 2.0f, &st);
    for (size_t i = 0; i < n; i++) x[i] += 0.5f;
    test_fill_normal(dy, n, 1.0f, &st);
    test_fill_uniform(gamma, C, 0.5f, 1.5f, &st);
    test_fill_normal(beta, C, 0.5f, &st);
    double *ry = calloc(n, sizeof(double)), *rdx = calloc(n, sizeof(double));
    double *rdg = calloc(C, sizeof(double)), *rdb = calloc(C, sizeof(double));
    for (int silu = 0; silu < 2; silu++) {
        float *y = fnew(n), *mean = fnew(B * G), *rstd = fnew(B * G), *dx = fnew(n), *dg = fnew(C), *db = fnew(C);
        groupnorm_fwd(y, mean, rstd, x, gamma, beta, B, HW, C, G, 1e-5f, silu);
        groupnorm_bwd(dx, dg, db, dy, x, mean, rstd, gamma, beta, B, HW, C, G, silu);
        gn_naive(ry, rdx, rdg, rdb, x, dy, gamma, beta, B, HW, C, G, 1e-5, silu);
        // same per-element error budget as the fixtures (few fp32 ops on O(1) values)
        expect_close_d(silu ? "gn+silu y" : "gn y", y, ry, n, FWD_ATOL, FWD_RTOL);
        expect_close_d(silu ? "gn+silu dx" : "gn dx", dx, rdx, n, BWD_ATOL, BWD_RTOL);
        // dgamma/dbeta sum 200 terms of O(1): fp32 rounding of each term ~1e-7 -> ~1e-5 worst case
        expect_close_d(silu ? "gn+silu dgamma" : "gn dgamma", dg, rdg, C, 1e-4, BWD_RTOL);
        expect_close_d(silu ? "gn+silu dbeta" : "gn dbeta", db, rdb, C, 1e-4, BWD_RTOL);
        free(y), free(mean), free(rstd), free(dx), free(dg), free(db);
    }
    free(x), free(dy), free(gamma), free(beta), free(ry), free(rdx), free(rdg), free(rdb);
}

TEST(batchnorm_train_matches_naive) {
    // N = 2*15*15 = 450 rows (8 chunks), C = 40: takes the OpenMP paths
    const int N = 450, C = 40;
    const float eps = 1e-5f, mom = 0.1f;
    size_t n = (size_t)N * C;
    uint64_t st = 88;
    float *x = fnew(n), *dy = fnew(n), *gamma = fnew(C), *beta = fnew(C), *rm = fnew(C), *rv = fnew(C);
    test_fill_normal(x, n, 1.0f, &st);
    for (size_t i = 0; i < n; i++) x[i] = x[i] * (1.0f + (i % C) * 0.1f) + (float)(i % C) - 20.0f;
    test_fill_normal(dy, n, 1.0f, &st);
    test_fill_uniform(gamma, C, 0.5f, 1.5f, &st);
    test_fill_normal(beta, C, 0.5f, &st);
    for (int c = 0; c < C; c++) rm[c] = 0.1f * c, rv[c] = 1.0f + 0.05f * c;
    float *rm_want = fnew(C), *rv_want = fnew(C);
    double *ry = calloc(n, sizeof(double)), *rdx = calloc(n, sizeof(double));
    double *rdg = calloc(C, sizeof(double)), *rdb = calloc(C, sizeof(double));
    // naive, channel by channel in double
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0, sdy = 0, sdyx = 0;
        for (int r = 0; r < N; r++) m += x[(size_t)r * C + c];
        m /= N;
        for (int r = 0; r < N; r++) v += (x[(size_t)r * C + c] - m) * (x[(size_t)r * C + c] - m);
        double rs = 1.0 / sqrt(v / N + eps);
        rm_want[c] = (float)((1 - (double)mom) * rm[c] + (double)mom * m);
        rv_want[c] = (float)((1 - (double)mom) * rv[c] + (double)mom * v / (N - 1));
        for (int r = 0; r < N; r++) {
            size_t i = (size_t)r * C + c;
            double xh = (x[i] - m) * rs;
            ry[i] = xh * gamma[c] + beta[c];
            sdy += dy[i];
            sdyx += dy[i] * xh;
        }
        rdg[c] = sdyx, rdb[c] = sdy;
        for (int r = 0; r < N; r++) {
            size_t i = (size_t)r * C + c;
            double xh = (x[i] - m) * rs;
            rdx[i] = gamma[c] * rs * (dy[i] - sdy / N - xh * sdyx / N);
        }
    }
    float *y = fnew(n), *mean = fnew(C), *rstd = fnew(C), *dx = fnew(n), *dg = fnew(C), *db = fnew(C);
    batchnorm_fwd_train(y, mean, rstd, rm, rv, x, gamma, beta, N, C, eps, mom);
    batchnorm_bwd_train(dx, dg, db, dy, x, mean, rstd, gamma, N, C);
    // per-channel means reach ~20, so running stats get a relative tolerance
    EXPECT_CLOSE("bn running_mean", rm, rm_want, C, FWD_ATOL, FWD_RTOL);
    EXPECT_CLOSE("bn running_var", rv, rv_want, C, FWD_ATOL, FWD_RTOL);
    expect_close_d("bn y", y, ry, n, FWD_ATOL, FWD_RTOL);
    expect_close_d("bn dx", dx, rdx, n, BWD_ATOL, BWD_RTOL);
    // sums of 450 O(1) terms: fp32 term rounding adds up to ~3e-5
    expect_close_d("bn dgamma", dg, rdg, C, 2e-4, BWD_RTOL);
    expect_close_d("bn dbeta", db, rdb, C, 2e-4, BWD_RTOL);
    free(x), free(dy), free(gamma), free(beta), free(rm), free(rv), free(rm_want), free(rv_want);
    free(ry), free(rdx), free(rdg), free(rdb), free(y), free(mean), free(rstd), free(dx), free(dg), free(db);
}

// ------------------------------------------------------------------ thread-count independence

// Runs every norm forward+backward at a parallel-sized shape into one buffer.
static void norm_all(float *out, const float *x, const float *dy, const float *gamma, const float *beta, int N,
                     int C) {
    size_t n = (size_t)N * C, o = 0;
    float *m = fnew(N), *r = fnew(N), *rm = fnew(C), *rv = fnew(C);
    // groupnorm as [2, N/2, C] with 8 groups, SiLU on
    groupnorm_fwd(out + o, m, r, x, gamma, beta, 2, N / 2, C, 8, 1e-5f, 1), o += n;
    memset(out + o, 0, (n + 2 * C) * sizeof(float));
    groupnorm_bwd(out + o, out + o + n, out + o + n + C, dy, x, m, r, gamma, beta, 2, N / 2, C, 8, 1),
        o += n + 2 * C;
    layernorm_fwd(out + o, m, r, x, gamma, beta, N, C, 1e-5f), o += n;
    memset(out + o, 0, (n + 2 * C) * sizeof(float));
    layernorm_bwd(out + o, out + o + n, out + o + n + C, dy, x, m, r, gamma, N, C), o += n + 2 * C;
    for (int c = 0; c < C; c++) rm[c] = 0, rv[c] = 1;
    batchnorm_fwd_train(out + o, m, r, rm, rv, x, gamma, beta, N, C, 1e-5f, 0.1f), o += n;
    memcpy(out + o, rm, C * sizeof(float)), o += C;
    memcpy(out + o, rv, C * sizeof(float)), o += C;
    memset(out + o, 0, (n + 2 * C) * sizeof(float));
    batchnorm_bwd_train(out + o, out + o + n, out + o + n + C, dy, x, m, r, gamma, N, C), o += n + 2 * C;
    memset(out + o, 0, (n + 2 * C) * sizeof(float));
    batchnorm_bwd_infer(out + o, out + o + n, out + o + n + C, dy, x, gamma, rm, rv, N, C, 1e-5f);
    free(m), free(r), free(rm), free(rv);
}

TEST(norm_thread_count_independent) {
    const int N = 600, C = 64;
    size_t n = (size_t)N * C, tot = 7 * n + 12 * C;
    uint64_t st = 99;
    float *x = fnew(n), *dy = fnew(n), *gamma = fnew(C), *beta = fnew(C);
    test_fill_normal(x, n, 1.0f, &st);
    test_fill_normal(dy, n, 1.0f, &st);
    test_fill_uniform(gamma, C, 0.5f, 1.5f, &st);
    test_fill_normal(beta, C, 0.5f, &st);
    float *a = fnew(tot), *b = fnew(tot);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    norm_all(a, x, dy, gamma, beta, N, C);
    omp_set_num_threads(3);
    norm_all(b, x, dy, gamma, beta, N, C);
    omp_set_num_threads(saved);
    EXPECT(memcmp(a, b, tot * sizeof(float)) == 0, "results differ between 1 and 3 threads");
    free(x), free(dy), free(gamma), free(beta), free(a), free(b);
}

// ------------------------------------------------------------------ N == 1 in training

// PyTorch raises for one value per channel in training (the unbiased running
// variance divides by N - 1); batchnorm_fwd_train CHECKs N > 1 instead. Run in
// a child so the abort is observed, not suffered.
TEST(batchnorm_train_rejects_single_row) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        float x[3] = {1, 2, 3}, y[3], m[3], r[3], rm[3] = {0}, rv[3] = {1, 1, 1};
        batchnorm_fwd_train(y, m, r, rm, rv, x, NULL, NULL, 1, 3, 1e-5f, 0.1f);
        _exit(0);  // reached only if the CHECK is missing
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait failed");
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "N == 1 training batchnorm did not abort (status %d)",
           status);
}
