// bench_cpu.c: CPU GEMM and SD1.5-shaped convolutions, ours vs OpenBLAS.
//
// Built and run by `make bench-cpu` (links -lopenblas). Every figure is the
// median of several timed runs after warm-up runs; GFLOP/s counts 2*M*N*K.
// Baselines: cblas_sgemm for GEMM; for convolutions "OpenBLAS im2col+sgemm"
// (a whole-image im2col, OpenMP-parallel like ours, then one cblas_sgemm).
// Ours and OpenBLAS are timed in separate phases with a pause between them,
// because idle OpenMP and OpenBLAS worker threads spin for a while after a
// call and would steal the 2 cores from the other library.
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pause_ms(int ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Median seconds of fn(ctx): 2 warm-up calls, then enough runs for ~0.4 s (3..15).
static double time_median(void (*fn)(void *), void *ctx) {
    double t0 = now();
    fn(ctx);
    fn(ctx);
    double once = (now() - t0) / 2;
    int runs = once > 0 ? (int)(0.4 / once) : 15;
    runs = runs < 3 ? 3 : runs > 15 ? 15 : runs;
    double t[15];
    for (int r = 0; r < runs; r++) {
        double s = now();
        fn(ctx);
        t[r] = now() - s;
    }
    qsort(t, runs, sizeof(double), cmp_double);
    return t[runs / 2];
}

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = xmalloc(n * sizeof(float));
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
    return p;
}

// ------------------------------------------------------------------ GEMM
typedef struct {
    int ta, tb, M, N, K;
    float *A, *B, *C;
} GemmCase;

static void run_ours_gemm(void *p) {
    GemmCase *g = p;
    gemm(g->ta, g->tb, g->M, g->N, g->K, 1.0f, g->A, g->ta ? g->M : g->K, g->B, g->tb ? g->K : g->N, 0.0f, g->C,
         g->N);
}

static void run_blas_gemm(void *p) {
    GemmCase *g = p;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, g->M, g->N,
                g->K, 1.0f, g->A, g->ta ? g->M : g->K, g->B, g->tb ? g->K : g->N, 0.0f, g->C, g->N);
}

static void bench_gemm(const char *what, int ta, int tb, int M, int N, int K) {
    GemmCase g = {ta, tb, M, N, K, rand_buf((size_t)M * K, 1), rand_buf((size_t)K * N, 2),
                  xmalloc((size_t)M * N * sizeof(float))};
    double flop = 2.0 * M * N * K;
    double to = time_median(run_ours_gemm, &g);
    pause_ms(150);
    double tb_ = time_median(run_blas_gemm, &g);
    pause_ms(150);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d %s%s", M, N, K, ta ? "T" : "N", tb ? "T" : "N");
    printf("%-34s %-20s %9.1f %9.1f %7.2f\n", what, shape, flop / to * 1e-9, flop / tb_ * 1e-9, tb_ / to);
    free(g.A), free(g.B), free(g.C);
}

// ------------------------------------------------------------------ convolution
typedef struct {
    Conv2dShape s;
    float *x, *w, *bias, *y, *col, *dy, *dx, *dw;
} ConvCase;

static void run_ours_conv(void *p) {
    ConvCase *c = p;
    conv2d_fwd(c->y, c->x, c->w, c->bias, &c->s);
}

static void run_ours_conv_bwd(void *p) {
    ConvCase *c = p;
    conv2d_bwd(c->dx, c->dw, NULL, c->dy, c->x, c->w, &c->s);
}

// Baseline: whole-image im2col (col [P, KH*KW*Cin]) then one cblas_sgemm.
static void run_blas_conv(void *p) {
    ConvCase *c = p;
    const Conv2dShape *s = &c->s;
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s), kd = s->KH * s->KW * s->Cin;
    long P = (long)s->B * Ho * Wo;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < P; q++) {
        int b = (int)(q / ((long)Ho * Wo)), oh = (int)(q % ((long)Ho * Wo)) / Wo, ow = (int)(q % Wo);
        float *d = c->col + q * kd;
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++, d += s->Cin) {
                int ih = oh * s->sh - s->pt + kh, iw = ow * s->sw - s->pl + kw;
                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
                    memset(d, 0, sizeof(float) * s->Cin);
                else
                    memcpy(d, c->x + (((long)b * s->H + ih) * s->W + iw) * s->Cin, sizeof(float) * s->Cin);
            }
    }
    for (long q = 0; q < P; q++) memcpy(c->y + q * s->Cout, c->bias, sizeof(float) * s->Cout);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, s->Cout, kd, 1.0f, c->col, kd, c->w, kd, 1.0f,
                c->y, s->Cout);
}

// Stricter baseline: the same sgemm on a col matrix built beforehand (no im2col,
// and no OpenMP region just before it whose spinning threads could slow OpenBLAS).
static void run_blas_conv_gemm_only(void *p) {
    ConvCase *c = p;
    const Conv2dShape *s = &c->s;
    int kd = s->KH * s->KW * s->Cin;
    long P = (long)s->B * conv2d_out_h(s) * conv2d_out_w(s);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, s->Cout, kd, 1.0f, c->col, kd, c->w, kd, 0.0f,
                c->y, s->Cout);
}

// Baseline for backward: only the two OpenBLAS GEMMs (dcol = dy @ w, dw += dy^T @ col);
// it leaves out col2im and im2col, so it is a lower bound on the time.
static void run_blas_conv_bwd_gemms(void *p) {
    ConvCase *c = p;
    const Conv2dShape *s = &c->s;
    int kd = s->KH * s->KW * s->Cin;
    long P = (long)s->B * conv2d_out_h(s) * conv2d_out_w(s);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)P, kd, s->Cout, 1.0f, c->dy, s->Cout, c->w, kd, 0.0f,
                c->col, kd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->Cout, kd, (int)P, 1.0f, c->dy, s->Cout, c->col, kd,
                1.0f, c->dw, kd);
}

static void bench_conv(const char *what, Conv2dShape s, int backward) {
    int Ho = conv2d_out_h(&s), Wo = conv2d_out_w(&s), kd = s.KH * s.KW * s.Cin;
    long P = (long)s.B * Ho * Wo;
    size_t nx = (size_t)s.B * s.H * s.W * s.Cin, nw = (size_t)s.Cout * kd, ny = (size_t)P * s.Cout;
    ConvCase c = {s, rand_buf(nx, 3), rand_buf(nw, 4), rand_buf(s.Cout, 5), xmalloc(ny * 4), xmalloc(P * kd * 4)};
    double flop = 2.0 * P * s.Cout * kd;
    double to = time_median(run_ours_conv, &c);
    pause_ms(150);
    double tb = time_median(run_blas_conv, &c);
    pause_ms(150);
    double tg = time_median(run_blas_conv_gemm_only, &c);  // col was built by run_blas_conv
    pause_ms(150);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d->%dx%dx%d", s.H, s.W, s.Cin, Ho, Wo, s.Cout);
    printf("%-34s %-20s %9.1f %9.1f %7.2f   sgemm alone %6.1f GFLOP/s, ratio %.2f\n", what, shape, flop / to * 1e-9,
           flop / tb * 1e-9, tb / to, flop / tg * 1e-9, tg / to);
    if (backward) {
        c.dy = rand_buf(ny, 6), c.dx = xcalloc(nx, 4), c.dw = xcalloc(nw, 4);
        double tob = time_median(run_ours_conv_bwd, &c);
        pause_ms(150);
        double tbb = time_median(run_blas_conv_bwd_gemms, &c);
        pause_ms(150);
        printf("%-34s %-20s %9.1f %9.1f %7.2f  (OpenBLAS: its 2 GEMMs only)\n", "  backward dx+dw", shape,
               2 * flop / tob * 1e-9, 2 * flop / tbb * 1e-9, tbb / tob);
        free(c.dy), free(c.dx), free(c.dw);
    }
    free(c.x), free(c.w), free(c.bias), free(c.y), free(c.col);
}

static const char *env_or(const char *name) {
    const char *v = getenv(name);
    return v ? v : "(unset)";
}

int main(void) {
    double t0 = now();
    printf("bench_cpu: OpenMP threads %d; OpenBLAS threads %d, core %s\n", omp_get_max_threads(),
           openblas_get_num_threads(), openblas_get_corename());
    printf("  OpenBLAS config: %s\n", openblas_get_config());
    printf("  env OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s\n",
           env_or("OPENBLAS_CORETYPE"), env_or("OPENBLAS_L2_SIZE"), env_or("OPENBLAS_NUM_THREADS"),
           env_or("OMP_NUM_THREADS"));
    printf("  median of 3-15 runs after 2 warm-ups; GFLOP/s = 2*M*N*K / time\n\n");
    printf("%-34s %-20s %9s %9s %7s\n", "case", "shape (MxNxK / conv)", "ours", "OpenBLAS", "ratio");
    printf("%-34s %-20s %9s %9s %7s\n", "", "", "GFLOP/s", "GFLOP/s", "");
    bench_gemm("GEMM square", 0, 0, 1024, 1024, 1024);
    bench_gemm("GEMM 1x1 conv / linear (64^2 lat.)", 0, 1, 4096, 320, 320);
    bench_gemm("GEMM attention scores Q K^T", 0, 1, 4096, 4096, 40);
    bench_gemm("GEMM conv dW (dy^T @ col)", 1, 0, 320, 2880, 4096);
    printf("\nconv2d forward, batch 1, 3x3, bias (baseline: OpenBLAS im2col+sgemm)\n");
    bench_conv("conv 64x64 320->320", (Conv2dShape){1, 64, 64, 320, 320, 3, 3, 1, 1, 1, 1, 1, 1}, 1);
    bench_conv("conv 32x32 640->640", (Conv2dShape){1, 32, 32, 640, 640, 3, 3, 1, 1, 1, 1, 1, 1}, 0);
    bench_conv("conv 16x16 1280->1280", (Conv2dShape){1, 16, 16, 1280, 1280, 3, 3, 1, 1, 1, 1, 1, 1}, 0);
    bench_conv("conv_in 64x64 4->320", (Conv2dShape){1, 64, 64, 4, 320, 3, 3, 1, 1, 1, 1, 1, 1}, 0);
    bench_conv("downsample 64x64 320, stride 2", (Conv2dShape){1, 64, 64, 320, 320, 3, 3, 2, 2, 1, 1, 1, 1}, 0);
    printf("\nratio = ours / OpenBLAS throughput; total bench time %.1f s\n", now() - t0);
    return 0;
}
