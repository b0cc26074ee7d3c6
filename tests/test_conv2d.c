// test_conv2d.c: conv2d_fwd / conv2d_bwd (NHWC, weights [Cout, KH, KW, Cin]).
//
// Three independent references:
//  1. direct double-precision loops written here (7-loop forward, and the
//     matching scatter loops for dx, dw, dbias), for many shapes;
//  2. finite differences through tests/gradcheck (small shapes);
//  3. PyTorch F.conv2d forward/backward fixtures (tests/fixtures/conv/*.safetensors,
//     written by tools/ref/make_conv_fixtures.py).
// Tolerance for (1) and (3): the op sums n products in fp32 (GEMM
// accumulation; for dx also the col2im tap sum), so by the standard
// dot-product bound |err| <= gamma_n * sum|terms|, gamma_n ~= n u, u = 2^-24.
// We accept 2 * (n + 3) * u * sum|terms| per element (n = the number of terms
// summed for that output; 2x margin; PyTorch's own fp32 error is also within
// gamma_n, hence 4x for the fixtures). Wrong taps/padding/strides give errors
// the size of the values.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

#define U 5.960464477539063e-08  // 2^-24

static size_t n_x(const Conv2dShape *s) { return (size_t)s->B * s->H * s->W * s->Cin; }
static size_t n_w(const Conv2dShape *s) { return (size_t)s->Cout * s->KH * s->KW * s->Cin; }
static size_t n_y(const Conv2dShape *s) { return (size_t)s->B * conv2d_out_h(s) * conv2d_out_w(s) * s->Cout; }

// Direct convolution in double. y, ya (sum of |terms|) [B, Ho, Wo, Cout].
static void ref_fwd(double *y, double *ya, const float *x, const float *w, const float *bias, const Conv2dShape *s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    for (int b = 0; b < s->B; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int co = 0; co < s->Cout; co++) {
                    double acc = bias ? bias[co] : 0.0, aa = bias ? fabs(bias[co]) : 0.0;
                    for (int kh = 0; kh < s->KH; kh++)
                        for (int kw = 0; kw < s->KW; kw++)
                            for (int ci = 0; ci < s->Cin; ci++) {
                                int ih = oh * s->sh + kh - s->pt, iw = ow * s->sw + kw - s->pl;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                double t = (double)x[(((size_t)b * s->H + ih) * s->W + iw) * s->Cin + ci] *
                                           w[(((size_t)co * s->KH + kh) * s->KW + kw) * s->Cin + ci];
                                acc += t, aa += fabs(t);
                            }
                    size_t o = (((size_t)b * Ho + oh) * Wo + ow) * s->Cout + co;
                    y[o] = acc, ya[o] = aa;
                }
}

// Backward by scattering each output gradient through the same 7 loops, in
// double. dx, dw, db (and their |term| sums) are zeroed here.
static void ref_bwd(double *dx, double *dxa, double *dw, double *dwa, double *db, double *dba, const float *dy,
                    const float *x, const float *w, const Conv2dShape *s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    memset(dx, 0, sizeof(double) * n_x(s)), memset(dxa, 0, sizeof(double) * n_x(s));
    memset(dw, 0, sizeof(double) * n_w(s)), memset(dwa, 0, sizeof(double) * n_w(s));
    memset(db, 0, sizeof(double) * s->Cout), memset(dba, 0, sizeof(double) * s->Cout);
    for (int b = 0; b < s->B; b++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int co = 0; co < s->Cout; co++) {
                    double g = dy[(((size_t)b * Ho + oh) * Wo + ow) * s->Cout + co];
                    db[co] += g, dba[co] += fabs(g);
                    for (int kh = 0; kh < s->KH; kh++)
                        for (int kw = 0; kw < s->KW; kw++)
                            for (int ci = 0; ci < s->Cin; ci++) {
                                int ih = oh * s->sh + kh - s->pt, iw = ow * s->sw + kw - s->pl;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                size_t xi = (((size_t)b * s->H + ih) * s->W + iw) * s->Cin + ci;
                                size_t wi = (((size_t)co * s->KH + kh) * s->KW + kw) * s->Cin + ci;
                                dx[xi] += g * w[wi], dxa[xi] += fabs(g * w[wi]);
                                dw[wi] += g * x[xi], dwa[wi] += fabs(g * x[xi]);
                            }
                }
}

// got vs want (+ base, the value the buffer held before an accumulating op);
// tolerance 2 (nterms + 3) u (abs + |base|). Returns 1 when all pass.
static int check_bound(const char *label, const float *got, const double *want, const double *abs_sum,
                       const float *base, size_t n, double nterms, double margin) {
    for (size_t i = 0; i < n; i++) {
        double ref = want[i] + (base ? base[i] : 0.0);
        double tol = margin * (nterms + 3) * U * (abs_sum[i] + (base ? fabs(base[i]) : 0.0)) + 1e-30;
        if (!(fabs(got[i] - ref) <= tol)) {
            test_fail(__FILE__, __LINE__, "%s: [%zu] got %.9g want %.9g (tol %.3g)", label, i, got[i], ref, tol);
            return 0;
        }
    }
    return 1;
}

static void label_of(char *buf, size_t n, const char *what, const Conv2dShape *s) {
    snprintf(buf, n, "%s B%d %dx%dx%d->%d k%dx%d s%d,%d pad(t%d b%d l%d r%d)", what, s->B, s->H, s->W, s->Cin,
             s->Cout, s->KH, s->KW, s->sh, s->sw, s->pt, s->pb, s->pl, s->pr);
}

// Forward and backward of one shape against ref_fwd / ref_bwd.
static void check_against_loops(const Conv2dShape *s, int with_bias, uint64_t seed) {
    size_t nx = n_x(s), nw = n_w(s), ny = n_y(s);
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    float *x = xmalloc(nx * 4), *w = xmalloc(nw * 4), *bias = xmalloc(s->Cout * 4), *y = xmalloc(ny * 4);
    float *dy = xmalloc(ny * 4), *dx = xmalloc(nx * 4), *dw = xmalloc(nw * 4), *db = xmalloc(s->Cout * 4);
    float *dx0 = xmalloc(nx * 4), *dw0 = xmalloc(nw * 4), *db0 = xmalloc(s->Cout * 4);
    double *ry = xmalloc(ny * 8), *rya = xmalloc(ny * 8), *rdx = xmalloc(nx * 8), *rdxa = xmalloc(nx * 8);
    double *rdw = xmalloc(nw * 8), *rdwa = xmalloc(nw * 8), *rdb = xmalloc(s->Cout * 8), *rdba = xmalloc(s->Cout * 8);
    uint64_t st = seed;
    test_fill_uniform(x, nx, -1, 1, &st);
    test_fill_uniform(w, nw, -1, 1, &st);
    test_fill_uniform(bias, s->Cout, -1, 1, &st);
    test_fill_uniform(dy, ny, -1, 1, &st);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;  // every output must be written
    // gradients start non-zero: backward must add, not overwrite
    test_fill_uniform(dx0, nx, -1, 1, &st);
    test_fill_uniform(dw0, nw, -1, 1, &st);
    test_fill_uniform(db0, s->Cout, -1, 1, &st);
    memcpy(dx, dx0, nx * 4), memcpy(dw, dw0, nw * 4), memcpy(db, db0, s->Cout * 4);
    char label[160];

    conv2d_fwd(y, x, w, with_bias ? bias : NULL, s);
    ref_fwd(ry, rya, x, w, with_bias ? bias : NULL, s);
    label_of(label, sizeof label, "conv2d_fwd", s);
    check_bound(label, y, ry, rya, NULL, ny, (double)s->KH * s->KW * s->Cin + 1, 2.0);

    conv2d_bwd(dx, dw, db, dy, x, w, s);
    ref_bwd(rdx, rdxa, rdw, rdwa, rdb, rdba, dy, x, w, s);
    label_of(label, sizeof label, "conv2d_bwd dx", s);
    check_bound(label, dx, rdx, rdxa, dx0, nx, (double)s->KH * s->KW * s->Cout + 1, 2.0);
    label_of(label, sizeof label, "conv2d_bwd dw", s);
    check_bound(label, dw, rdw, rdwa, dw0, nw, (double)s->B * Ho * Wo + 1, 2.0);
    label_of(label, sizeof label, "conv2d_bwd dbias", s);
    check_bound(label, db, rdb, rdba, db0, s->Cout, (double)s->B * Ho * Wo + 1, 2.0);

    // NULL gradients are skipped, and each one alone gives the same result.
    memcpy(dx, dx0, nx * 4);
    conv2d_bwd(dx, NULL, NULL, dy, x, w, s);
    label_of(label, sizeof label, "conv2d_bwd dx alone", s);
    check_bound(label, dx, rdx, rdxa, dx0, nx, (double)s->KH * s->KW * s->Cout + 1, 2.0);
    memcpy(dw, dw0, nw * 4);
    conv2d_bwd(NULL, dw, NULL, dy, x, w, s);
    label_of(label, sizeof label, "conv2d_bwd dw alone", s);
    check_bound(label, dw, rdw, rdwa, dw0, nw, (double)s->B * Ho * Wo + 1, 2.0);

    free(x), free(w), free(bias), free(y), free(dy), free(dx), free(dw), free(db), free(dx0), free(dw0), free(db0);
    free(ry), free(rya), free(rdx), free(rdxa), free(rdw), free(rdwa), free(rdb), free(rdba);
}

// {B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr}
static const Conv2dShape k_shapes[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},      // smallest
    {2, 5, 7, 13, 9, 1, 1, 1, 1, 0, 0, 0, 0},     // pointwise: direct gemm path
    {2, 7, 6, 5, 3, 1, 1, 2, 2, 0, 0, 0, 0},      // 1x1 stride 2
    {3, 9, 7, 4, 6, 3, 3, 1, 1, 1, 1, 1, 1},      // 3x3 same
    {2, 8, 9, 3, 5, 3, 3, 2, 2, 1, 1, 1, 1},      // 3x3 stride 2 pad 1, Cin 3
    {1, 10, 9, 5, 7, 3, 3, 2, 2, 0, 1, 0, 1},     // VAE downsample: pad right/bottom only
    {2, 13, 11, 3, 4, 7, 7, 2, 2, 3, 3, 3, 3},    // 7x7 stride 2 (stem-like)
    {1, 9, 10, 13, 3, 5, 5, 1, 1, 2, 2, 2, 2},    // 5x5
    {2, 6, 5, 4, 3, 3, 3, 1, 1, 0, 0, 0, 0},      // valid (no padding)
    {1, 7, 8, 2, 3, 3, 2, 1, 2, 2, 0, 1, 3},      // non-square kernel, mixed stride, odd pads
    {2, 4, 5, 3, 2, 1, 1, 1, 2, 1, 1, 1, 1},      // padded 1x1: border outputs see only padding
};

TEST(conv2d_vs_direct_loops) {
    int n = (int)(sizeof k_shapes / sizeof k_shapes[0]);
    for (int i = 0; i < n; i++) check_against_loops(&k_shapes[i], i % 3 != 2, 1000 + i);
}

TEST(conv2d_tiled_large) {
    // Pixels * KH*KW*Cin exceeds the im2col budget (4M floats), so the pixels
    // are processed in tiles, one crossing the boundary between the 2 images.
    Conv2dShape s = {2, 48, 48, 160, 3, 3, 3, 1, 1, 1, 1, 1, 1};
    check_against_loops(&s, 1, 77);
    Conv2dShape s2 = {3, 47, 45, 400, 2, 3, 3, 2, 2, 0, 1, 0, 1};  // tiles over a strided, asymmetric conv
    check_against_loops(&s2, 1, 78);
}

// ------------------------------------------------------------------ gradcheck
typedef struct {
    Conv2dShape s;
    float *x, *w, *b, *y, *gx, *gw, *gb;
} ConvCtx;

static void cc_fwd(void *p) {
    ConvCtx *c = p;
    conv2d_fwd(c->y, c->x, c->w, c->b, &c->s);
}
static void cc_bwd(void *p, const float *dy) {
    ConvCtx *c = p;
    conv2d_bwd(c->gx, c->gw, c->gb, dy, c->x, c->w, &c->s);
}

TEST(conv2d_gradcheck) {
    static const Conv2dShape sh[] = {
        {2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1},  // 3x3 same, batch 2
        {1, 7, 7, 5, 3, 3, 3, 2, 2, 0, 1, 0, 1},  // stride 2, asymmetric pad
        {2, 6, 5, 4, 2, 1, 1, 1, 1, 0, 0, 0, 0},  // pointwise
        {1, 7, 6, 2, 3, 5, 5, 2, 2, 2, 2, 2, 2},  // 5x5 stride 2
    };
    for (int i = 0; i < 4; i++) {
        ConvCtx c = {sh[i]};
        const Conv2dShape *s = &c.s;
        size_t nx = n_x(s), nw = n_w(s), ny = n_y(s);
        c.x = xmalloc(nx * 4), c.gx = xmalloc(nx * 4), c.w = xmalloc(nw * 4), c.gw = xmalloc(nw * 4);
        c.b = xmalloc(s->Cout * 4), c.gb = xmalloc(s->Cout * 4), c.y = xmalloc(ny * 4);
        uint64_t st = 500 + i;
        test_fill_normal(c.x, nx, 1.0f, &st);
        test_fill_normal(c.w, nw, 0.5f, &st);
        test_fill_normal(c.b, s->Cout, 1.0f, &st);
        GradCheck g;
        gc_init(&g, &c, cc_fwd, cc_bwd, c.y, ny);
        gc_input(&g, "x", c.x, c.gx, nx);
        gc_input(&g, "w", c.w, c.gw, nw);
        gc_input(&g, "bias", c.b, c.gb, s->Cout);
        char label[160];
        label_of(label, sizeof label, "gradcheck conv2d", s);
        gc_run(&g, label);
        free(c.x), free(c.gx), free(c.w), free(c.gw), free(c.b), free(c.gb), free(c.y);
    }
}

// ------------------------------------------------------------------ PyTorch fixtures
// tests/fixtures/conv/<name>.safetensors: I32 cfg = [B H W Cin Cout KH KW sh sw
// pt pb pl pr has_bias], F32 x, w, [bias], y, dy, dx, dw, [dbias] (NHWC
// activations, [Cout, KH, KW, Cin] weights), written by tools/ref/make_conv_fixtures.py.
static void check_fixture(const char *name) {
    Fixture *fx = fx_open("conv/%s.safetensors", name);
    if (!fx) return;
    int32_t *cfg = fx_i32(fx, 14, "cfg");
    if (!cfg) {
        fx_close(fx);
        return;
    }
    Conv2dShape s = {cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], cfg[5], cfg[6], cfg[7], cfg[8], cfg[9], cfg[10], cfg[11], cfg[12]};
    int has_bias = cfg[13];
    size_t nx = n_x(&s), nw = n_w(&s), ny = n_y(&s), nc = (size_t)s.Cout;
    float *x = fx_f32(fx, nx, "x"), *w = fx_f32(fx, nw, "w"), *bias = has_bias ? fx_f32(fx, nc, "bias") : NULL;
    float *ty = fx_f32(fx, ny, "y"), *dy = fx_f32(fx, ny, "dy"), *tdx = fx_f32(fx, nx, "dx"), *tdw = fx_f32(fx, nw, "dw");
    float *tdb = has_bias ? fx_f32(fx, nc, "dbias") : NULL;
    if (x && w && (!has_bias || (bias && tdb)) && ty && dy && tdx && tdw) {
        float *y = xmalloc(ny * 4), *dx = xcalloc(nx, 4), *dw = xcalloc(nw, 4), *db = xcalloc(nc, 4);
        double *want = xmalloc((nx > nw ? nx : nw) * 8 + ny * 8), *abs_sum = xmalloc((nx > nw ? nx : nw) * 8 + ny * 8);
        double *r1 = xmalloc(nx * 8), *r1a = xmalloc(nx * 8), *r2 = xmalloc(nw * 8), *r2a = xmalloc(nw * 8);
        double *r3 = xmalloc(nc * 8), *r3a = xmalloc(nc * 8);
        int Ho = conv2d_out_h(&s), Wo = conv2d_out_w(&s);
        char label[200];
        conv2d_fwd(y, x, w, bias, &s);
        conv2d_bwd(dx, dw, has_bias ? db : NULL, dy, x, w, &s);
        // The |term| sums for the bound come from the direct loops; the expected values from PyTorch.
        ref_fwd(want, abs_sum, x, w, bias, &s);
        for (size_t i = 0; i < ny; i++) want[i] = ty[i];
        snprintf(label, sizeof label, "fixture %s y", name);
        check_bound(label, y, want, abs_sum, NULL, ny, (double)s.KH * s.KW * s.Cin + 1, 4.0);
        ref_bwd(r1, r1a, r2, r2a, r3, r3a, dy, x, w, &s);
        for (size_t i = 0; i < nx; i++) r1[i] = tdx[i];
        for (size_t i = 0; i < nw; i++) r2[i] = tdw[i];
        snprintf(label, sizeof label, "fixture %s dx", name);
        check_bound(label, dx, r1, r1a, NULL, nx, (double)s.KH * s.KW * s.Cout + 1, 4.0);
        snprintf(label, sizeof label, "fixture %s dw", name);
        check_bound(label, dw, r2, r2a, NULL, nw, (double)s.B * Ho * Wo + 1, 4.0);
        if (has_bias) {
            for (size_t i = 0; i < nc; i++) r3[i] = tdb[i];
            snprintf(label, sizeof label, "fixture %s dbias", name);
            check_bound(label, db, r3, r3a, NULL, nc, (double)s.B * Ho * Wo + 1, 4.0);
        }
        free(y), free(dx), free(dw), free(db), free(want), free(abs_sum);
        free(r1), free(r1a), free(r2), free(r2a), free(r3), free(r3a);
    }
    fx_close(fx);
}

TEST(conv2d_pytorch_fixtures) {
    check_fixture("s1p1_bias");
    check_fixture("s2_asym_pad");
    check_fixture("k7s2_nobias");
}
