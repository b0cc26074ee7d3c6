// test_activation.c: ReLU, PReLU, sigmoid, SiLU, GELU (erf), quick-GELU,
// GEGLU and softmax, forward and backward:
//  - PyTorch fixtures (tests/fixtures/normact; float64 references rounded to
//    f32) including extreme inputs (+-100, +-88.5, +-30 ...) and softmax rows
//    offset by +-1000;
//  - explicit overflow checks for sigmoid / SiLU at +-100 and beyond;
//  - finite-difference gradient checks on several sizes;
//  - thread-count independence at sizes that take the OpenMP paths.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

static float *fnew(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

// Pointwise fixtures: expf / erfcf are accurate to ~1-2 ulp, and each value
// takes a few more fp32 roundings, so ~5e-7 relative; 1e-5 rel + 1e-6 abs (the
// abs part covers results that cancel to ~0, e.g. silu'(x) near x = -1.28, and
// outputs underflowing to denormals, e.g. silu(-100) = -3.7e-42).
#define ACT_ATOL 1e-6
#define ACT_RTOL 1e-5

typedef void (*pw_fwd)(float *, const float *, size_t);
typedef void (*pw_bwd)(float *, const float *, const float *, size_t);

static void check_pointwise_fixture(const char *name, pw_fwd fwd, pw_bwd bwd) {
    Fixture *fx = fx_open("normact/%s.safetensors", name);
    if (!fx) return;
    float *cfg = fx_f32(fx, 1, "cfg");
    size_t n = cfg ? (size_t)cfg[0] : 0;
    float *x = fx_f32(fx, n, "x"), *dy = fx_f32(fx, n, "dy");
    if (x && dy) {
        float *y = fnew(n), *dx = test_grad_buffer(n);
        fwd(y, x, n);
        bwd(dx, dy, x, n);
        char w[64];
        snprintf(w, sizeof w, "%s y", name);
        EXPECT_CLOSE(w, y, fx_f32(fx, n, "y"), n, ACT_ATOL, ACT_RTOL);
        snprintf(w, sizeof w, "%s dx", name);
        EXPECT_GRAD(w, dx, fx_f32(fx, n, "dx"), n, ACT_ATOL, ACT_RTOL);
        free(y), free(dx);
    }
    fx_close(fx);
}

TEST(activation_pointwise_fixtures) {
    check_pointwise_fixture("relu", relu_fwd, relu_bwd);
    check_pointwise_fixture("sigmoid", sigmoid_fwd, sigmoid_bwd);
    check_pointwise_fixture("silu", silu_fwd, silu_bwd);
    check_pointwise_fixture("gelu", gelu_fwd, gelu_bwd);
    check_pointwise_fixture("quickgelu", quickgelu_fwd, quickgelu_bwd);
}

TEST(prelu_fixture) {
    Fixture *fx = fx_open("normact/prelu_n7_c3.safetensors");
    if (!fx) return;
    float *cfg = fx_f32(fx, 2, "cfg");
    if (cfg) {
        size_t N = (size_t)cfg[0];
        int C = (int)cfg[1];
        float *x = fx_f32(fx, N * C, "x"), *dy = fx_f32(fx, N * C, "dy"), *sl = fx_f32(fx, C, "slope");
        if (x && dy && sl) {
            float *y = fnew(N * C), *dx = test_grad_buffer(N * C), *ds = test_grad_buffer(C);
            prelu_fwd(y, x, sl, N, C);
            prelu_bwd(dx, ds, dy, x, sl, N, C);
            EXPECT_CLOSE("prelu y", y, fx_f32(fx, N * C, "y"), N * C, ACT_ATOL, ACT_RTOL);
            EXPECT_GRAD("prelu dx", dx, fx_f32(fx, N * C, "dx"), N * C, ACT_ATOL, ACT_RTOL);
            // dslope sums 7 products of O(1): a few ulp of the largest term
            EXPECT_GRAD("prelu dslope", ds, fx_f32(fx, C, "dslope"), C, 1e-5, ACT_RTOL);
            free(y), free(dx), free(ds);
        }
    }
    fx_close(fx);
}

TEST(geglu_fixtures) {
    const char *cases[] = {"geglu_n5_d6", "geglu_n1_d1"};
    for (int k = 0; k < 2; k++) {
        Fixture *fx = fx_open("normact/%s.safetensors", cases[k]);
        if (!fx) continue;
        float *cfg = fx_f32(fx, 2, "cfg");
        if (cfg) {
            size_t N = (size_t)cfg[0];
            int D = (int)cfg[1];
            float *x = fx_f32(fx, N * 2 * D, "x"), *dy = fx_f32(fx, N * D, "dy");
            if (x && dy) {
                float *y = fnew(N * D), *dx = test_grad_buffer(N * 2 * D);
                geglu_fwd(y, x, N, D);
                geglu_bwd(dx, dy, x, N, D);
                char w[64];
                snprintf(w, sizeof w, "%s y", cases[k]);
                EXPECT_CLOSE(w, y, fx_f32(fx, N * D, "y"), N * D, ACT_ATOL, ACT_RTOL);
                snprintf(w, sizeof w, "%s dx", cases[k]);
                EXPECT_GRAD(w, dx, fx_f32(fx, N * 2 * D, "dx"), N * 2 * D, ACT_ATOL, ACT_RTOL);
                free(y), free(dx);
            }
        }
        fx_close(fx);
    }
}

TEST(softmax_fixtures) {
    const char *cases[] = {"softmax_n4_c7", "softmax_n3_c1"};
    for (int k = 0; k < 2; k++) {
        Fixture *fx = fx_open("normact/%s.safetensors", cases[k]);
        if (!fx) continue;
        float *cfg = fx_f32(fx, 2, "cfg");
        if (cfg) {
            size_t N = (size_t)cfg[0];
            int C = (int)cfg[1];
            float *x = fx_f32(fx, N * C, "x"), *dy = fx_f32(fx, N * C, "dy");
            float *ywant = fx_f32(fx, N * C, "y");
            if (x && dy && ywant) {
                float *y = fnew(N * C), *dx = test_grad_buffer(N * C);
                softmax_fwd(y, x, N, C);
                softmax_bwd(dx, dy, y, N, C);
                char w[64];
                // rows offset by 1000: x - max is exact, but x itself carries only
                // 6e-5 absolute resolution, already in the reference inputs; the rest
                // is expf + one division, ~1e-6 relative.
                snprintf(w, sizeof w, "%s y", cases[k]);
                EXPECT_CLOSE(w, y, ywant, N * C, ACT_ATOL, ACT_RTOL);
                snprintf(w, sizeof w, "%s dx", cases[k]);
                EXPECT_GRAD(w, dx, fx_f32(fx, N * C, "dx"), N * C, ACT_ATOL, ACT_RTOL);
                free(y), free(dx);
            }
        }
        fx_close(fx);
    }
}

// ------------------------------------------------------------------ extremes

TEST(sigmoid_silu_extremes) {
    // exp(+-x) overflows fp32 beyond |x| ~ 88.7: values well past it must stay finite and correct
    const float x[] = {-1e4f, -1000.f, -100.f, -88.8f, -50.f, 50.f, 88.8f, 100.f, 1000.f, 1e4f};
    const size_t n = sizeof x / sizeof x[0];
    float s[10], si[10], qg[10], ds[10] = {0}, dsi[10] = {0}, dqg[10] = {0}, one[10];
    for (size_t i = 0; i < n; i++) one[i] = 1.0f;
    sigmoid_fwd(s, x, n);
    silu_fwd(si, x, n);
    quickgelu_fwd(qg, x, n);
    sigmoid_bwd(ds, one, x, n);
    silu_bwd(dsi, one, x, n);
    quickgelu_bwd(dqg, one, x, n);
    for (size_t i = 0; i < n; i++) {
        EXPECT(isfinite(s[i]) && isfinite(si[i]) && isfinite(qg[i]), "x = %g: sigmoid %g silu %g quickgelu %g", x[i],
               s[i], si[i], qg[i]);
        EXPECT(isfinite(ds[i]) && isfinite(dsi[i]) && isfinite(dqg[i]), "x = %g: grads %g %g %g", x[i], ds[i], dsi[i],
               dqg[i]);
        if (x[i] > 0) {
            // sigmoid(x) = 1 - e^-x rounds to exactly 1 for x > 17; silu(x) = x; grads: 0, 1, 1
            EXPECT(s[i] == 1.0f && si[i] == x[i] && qg[i] == x[i], "x = %g: %g %g %g", x[i], s[i], si[i], qg[i]);
            EXPECT(ds[i] == 0.0f && dsi[i] == 1.0f && dqg[i] == 1.0f, "x = %g: %g %g %g", x[i], ds[i], dsi[i], dqg[i]);
        } else {
            // sigmoid(x) = e^x (< 1e-21 here): 1e-6 relative, or anything below FLT_MIN
            // where e^x is denormal (flush-to-zero builds give 0); silu -> -0, grads -> 0
            double e = exp((double)x[i]);
            EXPECT(s[i] >= 0.0f && fabs(s[i] - e) <= 1e-6 * e + 1.2e-38, "x = %g: sigmoid %g want %g", x[i], s[i], e);
            EXPECT(si[i] <= 0.0f && si[i] > -1e-19f, "x = %g: silu %g", x[i], si[i]);
            EXPECT(qg[i] <= 0.0f && qg[i] > -1e-19f, "x = %g: quickgelu %g", x[i], qg[i]);
            EXPECT(fabsf(ds[i]) < 1e-20f && fabsf(dsi[i]) < 1e-18f && fabsf(dqg[i]) < 1e-18f, "x = %g: grads %g %g %g",
                   x[i], ds[i], dsi[i], dqg[i]);
        }
    }
    // GELU tails: gelu(-10) = -7.6e-23 (erfc keeps it; 1 + erf would give 0), gelu(10) = 10
    float gx[4] = {-10.f, 10.f, -40.f, 40.f}, gy[4], gd[4] = {0};
    gelu_fwd(gy, gx, 4);
    gelu_bwd(gd, one, gx, 4);
    EXPECT(gy[1] == 10.f && gy[3] == 40.f && gd[1] == 1.f && gd[3] == 1.f, "gelu +tail %g %g %g %g", gy[1], gy[3],
           gd[1], gd[3]);
    EXPECT(gy[0] <= 0 && gy[0] > -1e-21f && gy[2] <= 0 && fabsf(gd[0]) < 1e-20f && fabsf(gd[2]) < 1e-20f,
           "gelu -tail %g %g %g %g", gy[0], gy[2], gd[0], gd[2]);
    // softmax: a row of +1e4 and one of -1e4 offsets still sum to 1
    float sx[6] = {1e4f, 1e4f - 1.f, 1e4f - 2.f, -1e4f, -1e4f + 1.f, -1e4f + 2.f}, sy[6];
    softmax_fwd(sy, sx, 2, 3);
    for (int r = 0; r < 2; r++) {
        // e^0, e^-1, e^-2 normalised; 1e-6 for expf + one division
        const float *row = sy + 3 * r;
        double z = 1 + exp(-1.0) + exp(-2.0);
        float want[3] = {(float)(1 / z), (float)(exp(-1.0) / z), (float)(exp(-2.0) / z)};
        if (r == 1) {
            float t = want[0];
            want[0] = want[2], want[2] = t;
        }
        EXPECT_CLOSE("softmax +-1e4 rows", row, want, 3, 1e-6, 1e-6);
    }
}

// ------------------------------------------------------------------ gradient checks

typedef struct {
    int kind;  // 0 relu 1 sigmoid 2 silu 3 gelu 4 quickgelu
    size_t n;
    float *x, *y, *gx;
} PwCtx;

static const pw_fwd PW_FWD[] = {relu_fwd, sigmoid_fwd, silu_fwd, gelu_fwd, quickgelu_fwd};
static const pw_bwd PW_BWD[] = {relu_bwd, sigmoid_bwd, silu_bwd, gelu_bwd, quickgelu_bwd};
static const char *PW_NAME[] = {"relu", "sigmoid", "silu", "gelu", "quickgelu"};

static void pw_f(void *p) {
    PwCtx *c = p;
    PW_FWD[c->kind](c->y, c->x, c->n);
}
static void pw_b(void *p, const float *dy) {
    PwCtx *c = p;
    PW_BWD[c->kind](c->gx, dy, c->x, c->n);
}

// Values in [0.1, 2.5] with random signs: ReLU/PReLU are not differentiable at 0,
// and a central difference straddling 0 is wrong there. The directional check moves
// each x by h*v with |v| up to ~4.5 (normal samples), i.e. <= 0.045 for h = 1e-2,
// so |x| >= 0.1 > 2 * 0.045 keeps every perturbed value on the same side of 0.
static void fill_away_from_zero(float *x, size_t n, uint64_t *st) {
    test_fill_uniform(x, n, 0.1f, 2.5f, st);
    float *sg = fnew(n);
    test_fill_uniform(sg, n, -1.0f, 1.0f, st);
    for (size_t i = 0; i < n; i++)
        if (sg[i] < 0) x[i] = -x[i];
    free(sg);
}

TEST(gradcheck_pointwise) {
    const size_t sizes[] = {1, 7, 300};  // 300 > 256: random-coordinate path of gradcheck
    for (int k = 0; k < 5; k++)
        for (int s = 0; s < 3; s++) {
            PwCtx c = {k, sizes[s]};
            uint64_t st = 1000 + 10 * k + s;
            c.x = fnew(c.n), c.y = fnew(c.n), c.gx = fnew(c.n);
            if (k == 0)
                fill_away_from_zero(c.x, c.n, &st);
            else
                test_fill_normal(c.x, c.n, 2.0f, &st);
            GradCheck g;
            gc_init(&g, &c, pw_f, pw_b, c.y, c.n);
            gc_input(&g, "x", c.x, c.gx, c.n);
            char label[64];
            snprintf(label, sizeof label, "%s n%zu", PW_NAME[k], c.n);
            gc_run(&g, label);
            free(c.x), free(c.y), free(c.gx);
        }
}

typedef struct {
    size_t N;
    int C;
    float *x, *slope, *y, *gx, *gs;
} PreluCtx;

static void prelu_f(void *p) {
    PreluCtx *c = p;
    prelu_fwd(c->y, c->x, c->slope, c->N, c->C);
}
static void prelu_b(void *p, const float *dy) {
    PreluCtx *c = p;
    prelu_bwd(c->gx, c->gs, dy, c->x, c->slope, c->N, c->C);
}

TEST(gradcheck_prelu) {
    // {N, C}: 130 rows span three 64-row chunks of the dslope reduction
    int shapes[][2] = {{1, 1}, {7, 3}, {13, 5}, {130, 2}};
    for (int s = 0; s < 4; s++) {
        PreluCtx c = {(size_t)shapes[s][0], shapes[s][1]};
        size_t n = c.N * c.C;
        uint64_t st = 2000 + s;
        c.x = fnew(n), c.y = fnew(n), c.gx = fnew(n), c.slope = fnew(c.C), c.gs = fnew(c.C);
        fill_away_from_zero(c.x, n, &st);  // see fill_away_from_zero
        test_fill_uniform(c.slope, c.C, -0.3f, 0.8f, &st);
        GradCheck g;
        gc_init(&g, &c, prelu_f, prelu_b, c.y, n);
        gc_input(&g, "x", c.x, c.gx, n);
        gc_input(&g, "slope", c.slope, c.gs, c.C);
        char label[64];
        snprintf(label, sizeof label, "prelu N%zu C%d", c.N, c.C);
        gc_run(&g, label);
        free(c.x), free(c.y), free(c.gx), free(c.slope), free(c.gs);
    }
}

typedef struct {
    size_t N;
    int D, softmax;
    float *x, *y, *gx;
} RowCtx;

static void row_f(void *p) {
    RowCtx *c = p;
    if (c->softmax)
        softmax_fwd(c->y, c->x, c->N, c->D);
    else
        geglu_fwd(c->y, c->x, c->N, c->D);
}
static void row_b(void *p, const float *dy) {
    RowCtx *c = p;
    if (c->softmax)
        softmax_bwd(c->gx, dy, c->y, c->N, c->D);  // uses y of the unperturbed forward
    else
        geglu_bwd(c->gx, dy, c->x, c->N, c->D);
}

TEST(gradcheck_geglu) {
    int shapes[][2] = {{1, 1}, {3, 7}, {5, 13}, {2, 70}};  // last: 280 inputs, random coordinates
    for (int s = 0; s < 4; s++) {
        RowCtx c = {(size_t)shapes[s][0], shapes[s][1], 0};
        size_t nin = c.N * 2 * c.D, nout = c.N * c.D;
        uint64_t st = 3000 + s;
        c.x = fnew(nin), c.y = fnew(nout), c.gx = fnew(nin);
        test_fill_normal(c.x, nin, 1.5f, &st);
        GradCheck g;
        gc_init(&g, &c, row_f, row_b, c.y, nout);
        gc_input(&g, "x", c.x, c.gx, nin);
        char label[64];
        snprintf(label, sizeof label, "geglu N%zu D%d", c.N, c.D);
        gc_run(&g, label);
        free(c.x), free(c.y), free(c.gx);
    }
}

TEST(gradcheck_softmax) {
    int shapes[][2] = {{1, 1}, {3, 7}, {4, 13}, {2, 64}, {5, 3}};
    for (int s = 0; s < 5; s++) {
        RowCtx c = {(size_t)shapes[s][0], shapes[s][1], 1};
        size_t n = c.N * c.D;
        uint64_t st = 4000 + s;
        c.x = fnew(n), c.y = fnew(n), c.gx = fnew(n);
        test_fill_normal(c.x, n, 2.0f, &st);
        if (s == 4)
            for (size_t i = 0; i < n; i++) c.x[i] += 500.0f;  // large offset: needs the max subtraction
        GradCheck g;
        gc_init(&g, &c, row_f, row_b, c.y, n);
        gc_input(&g, "x", c.x, c.gx, n);
        char label[64];
        snprintf(label, sizeof label, "softmax N%zu C%d%s", c.N, c.D, s == 4 ? " +500" : "");
        gc_run(&g, label);
        free(c.x), free(c.y), free(c.gx);
    }
}

// ------------------------------------------------------------------ threads

// Every activation forward+backward at sizes above the OpenMP threshold.
static void act_all(float *out, const float *x, const float *dy, const float *slope, size_t N, int C) {
    size_t n = N * (size_t)C, o = 0;
    for (int k = 0; k < 5; k++) {
        PW_FWD[k](out + o, x, n), o += n;
        memset(out + o, 0, n * sizeof(float));
        PW_BWD[k](out + o, dy, x, n), o += n;
    }
    prelu_fwd(out + o, x, slope, N, C), o += n;
    memset(out + o, 0, (n + C) * sizeof(float));
    prelu_bwd(out + o, out + o + n, dy, x, slope, N, C), o += n + C;
    geglu_fwd(out + o, x, N, C / 2), o += n / 2;
    memset(out + o, 0, n * sizeof(float));
    geglu_bwd(out + o, dy, x, N, C / 2), o += n;
    softmax_fwd(out + o, x, N, C);
    memset(out + o + n, 0, n * sizeof(float));
    softmax_bwd(out + o + n, dy, out + o, N, C);
}

TEST(activation_thread_count_independent) {
    const size_t N = 700;
    const int C = 96;  // 67200 values > the 32768 parallel threshold
    size_t n = N * C, tot = 16 * n + C;
    uint64_t st = 5000;
    float *x = fnew(n), *dy = fnew(n), *slope = fnew(C);
    test_fill_normal(x, n, 2.0f, &st);
    test_fill_normal(dy, n, 1.0f, &st);
    test_fill_uniform(slope, C, 0.0f, 0.5f, &st);
    float *a = fnew(tot), *b = fnew(tot);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    act_all(a, x, dy, slope, N, C);
    omp_set_num_threads(3);
    act_all(b, x, dy, slope, N, C);
    omp_set_num_threads(saved);
    EXPECT(memcmp(a, b, tot * sizeof(float)) == 0, "results differ between 1 and 3 threads");
    // and the parallel dslope equals a plain serial double sum
    float *ds = fnew(C);
    prelu_bwd(NULL, ds, dy, x, slope, N, C);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t r = 0; r < N; r++)
            if (x[r * C + c] < 0) s += (double)dy[r * C + c] * x[r * C + c];
        // 700 products of O(1) summed in double, both sides: only the final f32 rounding differs
        EXPECT(fabs(ds[c] - s) <= 1e-6 * fabs(s) + 1e-5, "dslope[%d] %g want %g", c, ds[c], s);
    }
    free(x), free(dy), free(slope), free(a), free(b), free(ds);
}
