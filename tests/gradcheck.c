// gradcheck.c: finite-difference gradient checker (see gradcheck.h).
//
// Tolerance. With step h the central difference has truncation error
// O(h^2 |f'''|) -- about 1e-4 relative for h = 1e-2 on O(1) smooth inputs --
// and round-off from evaluating L in fp32: each out_i carries ~6e-8 |out_i|
// error, so L(x±hv) carries about 6e-8 * sqrt(sum (r_i out_i)^2) and the
// difference divided by 2h about noise = 6e-8 * ||r*out|| / h. We accept
// |analytic - numeric| <= rtol * max(|a|, |n|) + 8 * noise (8x margin over
// the estimate: errors of neighbouring outputs can correlate), rtol = 2e-3.
// A gradient off by 1% in scale, or by one wrong element of an input of up to
// 256 values, fails (see the self-tests in test_gradcheck.c).
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "test.h"

void gc_init(GradCheck *g, void *ctx, void (*fwd)(void *), void (*bwd)(void *, const float *), float *out,
             size_t out_n) {
    memset(g, 0, sizeof *g);
    g->ctx = ctx;
    g->fwd = fwd;
    g->bwd = bwd;
    g->out = out;
    g->out_n = out_n;
    g->h = 1e-2;
    g->rtol = 2e-3;
    g->seed = 12345;
}

void gc_input(GradCheck *g, const char *name, float *x, float *grad, size_t n) {
    CHECK(g->n_in < GC_MAX_INPUTS);
    g->in_name[g->n_in] = name;
    g->in[g->n_in] = x;
    g->grad[g->n_in] = grad;
    g->in_n[g->n_in] = n;
    g->n_in++;
}

static double proj(const GradCheck *g, const float *r) {
    g->fwd(g->ctx);
    double s = 0;
    for (size_t i = 0; i < g->out_n; i++) s += (double)r[i] * g->out[i];
    return s;
}

// Estimated fp32 round-off of a central difference (see file comment).
static double fd_noise(const GradCheck *g, const float *r, double h) {
    double s = 0;
    for (size_t i = 0; i < g->out_n; i++) {
        double t = (double)r[i] * g->out[i];
        s += t * t;
    }
    return 6e-8 * sqrt(s) / h + 1e-12;
}

static int close_enough(const GradCheck *g, double a, double n, double noise) {
    double tol = g->rtol * fmax(fabs(a), fabs(n)) + 8.0 * noise;
    return fabs(a - n) <= tol;
}

int gc_run(GradCheck *g, const char *label) {
    uint64_t st = g->seed;
    float *r = xmalloc(g->out_n * sizeof(float));
    test_fill_normal(r, g->out_n, 1.0f, &st);
    for (int i = 0; i < g->n_in; i++) memset(g->grad[i], 0, g->in_n[i] * sizeof(float));
    g->fwd(g->ctx);
    double noise = fd_noise(g, r, g->h);
    g->bwd(g->ctx, r);
    int ok = 1;
    for (int i = 0; i < g->n_in && ok; i++) {
        float *x = g->in[i];
        size_t n = g->in_n[i];
        float *x0 = xmalloc(n * sizeof(float));
        float *v = xmalloc(n * sizeof(float));
        memcpy(x0, x, n * sizeof(float));
        // 1. random directions
        for (int d = 0; d < 3 && ok; d++) {
            test_fill_normal(v, n, 1.0f, &st);
            double a = 0;
            for (size_t j = 0; j < n; j++) a += (double)g->grad[i][j] * v[j];
            for (size_t j = 0; j < n; j++) x[j] = (float)(x0[j] + g->h * v[j]);
            double lp = proj(g, r);
            for (size_t j = 0; j < n; j++) x[j] = (float)(x0[j] - g->h * v[j]);
            double lm = proj(g, r);
            memcpy(x, x0, n * sizeof(float));
            // the perturbation actually applied is (float)(x0 + h v) - x0, not h v:
            // for |x0| ~ 1 this differs by ~1e-5 relative, well inside rtol.
            double num = (lp - lm) / (2 * g->h);
            if (!close_enough(g, a, num, noise)) {
                if (!g->quiet)
                    test_fail(__FILE__, __LINE__, "%s: d/d%s along direction %d: analytic %.8g numeric %.8g", label,
                              g->in_name[i], d, a, num);
                ok = 0;
            }
        }
        // 2. coordinates
        size_t ncoord = n <= 256 ? n : 66;
        for (size_t c = 0; c < ncoord && ok; c++) {
            size_t j = n <= 256 ? c : (c == 0 ? 0 : c == 1 ? n - 1 : (size_t)(((st = st * 6364136223846793005ull + 1) >> 33) % n));
            x[j] = (float)(x0[j] + g->h);
            double lp = proj(g, r);
            x[j] = (float)(x0[j] - g->h);
            double lm = proj(g, r);
            x[j] = x0[j];
            double num = (lp - lm) / (2 * g->h);
            if (!close_enough(g, g->grad[i][j], num, noise)) {
                if (!g->quiet)
                    test_fail(__FILE__, __LINE__, "%s: d/d%s[%zu]: analytic %.8g numeric %.8g (noise %.2g)", label,
                              g->in_name[i], j, g->grad[i][j], num, noise);
                ok = 0;
            }
        }
        free(x0);
        free(v);
    }
    g->fwd(g->ctx);  // leave outputs consistent with the unperturbed inputs
    free(r);
    return ok;
}
