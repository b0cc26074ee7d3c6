// bench_unet_cpu.c: whole-model CPU forward timings (fp32, inference), the
// C side of tools/bench/bench_unet_torch.py (same shapes, same run counts).
//
//   bench_unet_cpu unet CONFIG.json LATENT B [RUNS]   UNet forward, sample [B, LATENT, LATENT, 4],
//                                                      context [B, 77, cross_dim], timestep 999
//   bench_unet_cpu clip CONFIG.json B [RUNS]          CLIP text encoder, 77 tokens
//   bench_unet_cpu iresnet NAME B [RUNS]              IResNet (e.g. r100), 112x112 RGB
//
// Weights are random (weights_init_random, std 0.02: timing does not depend on
// the values, and random weights keep the activations finite). Each case runs
// once to warm up (page faults on the weights and the activation stack, lazy
// OpenMP start), then RUNS times (default 3); it prints every run, the median
// in seconds and, when the FLOP count is known, GFLOP/s:
//   UNet at 64x64: 803.3 GFLOP per sample (shared/reference/architectures.md 1.8,
//   multiply-add = 2 FLOPs); other sizes scale that by (LATENT/64)^2 (not exact:
//   attention is quadratic in the token count), so GFLOP/s is only printed at 64.
//   (The per-class FLOPs PROFILE=1 counts -- conv, linear, attention -- add up to
//   exactly 803.3 GFLOP at 64x64, batch 1.)
// Each run also prints its user and system CPU seconds: on a shared machine a run
// whose user time is well below threads x wall was disturbed; RESULT gives the
// median and the fastest run. Threads: OpenMP's default (OMP_NUM_THREADS or every core).
// PROFILE=1: also seconds per op class (conv / linear / attention / norms / ...)
// of the fastest run, through a timing copy of the CPU op table.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../../kernels/common.h"
#include "../../nn/clip.h"
#include "../../nn/iresnet.h"
#include "../../nn/unet.h"

#define MAX_RUNS 16

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Process CPU seconds (user, system) so far: wall >> (user + sys) / threads means the
// cores were taken by something else; a large sys share means page faults.
static void cpu_times(double *user, double *sys) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    *user = r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6;
    *sys = r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill_randn(float *p, size_t n, uint64_t seed) {  // rough N(0, 1): sum of 4 uniforms
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        float acc = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            acc += (float)((s >> 40) * (1.0 / 16777216.0)) - 0.5f;
        }
        p[i] = acc * 1.7320508f;
    }
}

// ------------------------------------------------------------------ per-op profile
// PROFILE=1 in the environment: the models run on a copy of the CPU op table
// whose forward ops are wrapped in timers, and a table of seconds per op class
// (over the timed runs only) follows each result. The ops are synchronous on
// the CPU, so these are exact wall times of each call, OpenMP fork/join included.

enum {
    P_CONV3,      // conv2d_fwd with a KHxKW > 1 kernel (im2col + GEMM)
    P_CONV1,      // conv2d_fwd 1x1 (one GEMM)
    P_LINEAR,     // linear_fwd
    P_ATT_SELF,   // attention_fwd with Nk == Nq
    P_ATT_CROSS,  // attention_fwd with Nk != Nq (text context)
    P_GEMM,       // gemm / gemm_batched / gemm_bias called directly
    P_GROUPNORM,
    P_LAYERNORM,
    P_BATCHNORM,
    P_ACT,        // silu / gelu / quickgelu / geglu / prelu / relu / sigmoid
    P_ELTWISE,    // add / concat / upsample2x / embeddings / pools / channel scale
    P_NCLASS
};
static const char *k_prof_name[P_NCLASS] = {"conv KxK (im2col+GEMM)", "conv 1x1 (GEMM)", "linear (GEMM)",
                                            "attention self", "attention cross", "gemm (direct)", "groupnorm",
                                            "layernorm", "batchnorm", "activations", "add/concat/upsample/other"};
static double g_prof[P_NCLASS];  // seconds of the current run
static double g_flop[P_NCLASS];  // FLOPs (multiply-add = 2) of the GEMM-like classes, current run
static double g_best[P_NCLASS], g_best_flop[P_NCLASS], g_best_wall;  // the fastest timed run
static int g_prof_on;            // accumulate (off during the warm-up)
static Backend g_pb;             // the wrapped table
static const Backend *g_base;

#define PROF_WRAP(name, cls, PARAMS, ARGS)           \
    static int prof_##name PARAMS {                  \
        double t0_ = now();                          \
        int r_ = g_base->name ARGS;                  \
        if (g_prof_on) g_prof[cls] += now() - t0_;   \
        return r_;                                   \
    }

static int prof_conv2d_fwd(DType dt, void *y, const void *x, const void *w, const void *bias, const Conv2dShape *sh,
                           cudaStream_t s) {
    double t0 = now();
    int r = g_base->conv2d_fwd(dt, y, x, w, bias, sh, s);
    int cls = sh->KH * sh->KW > 1 ? P_CONV3 : P_CONV1;
    if (g_prof_on) {
        g_prof[cls] += now() - t0;
        double P = (double)sh->B * conv2d_out_h(sh) * conv2d_out_w(sh);
        g_flop[cls] += 2.0 * P * sh->Cout * sh->KH * sh->KW * sh->Cin;
    }
    return r;
}

static int prof_linear_fwd(DType dt, void *y, const void *x, const void *W, const void *b, int M, int K, int N,
                           cudaStream_t s) {
    double t0 = now();
    int r = g_base->linear_fwd(dt, y, x, W, b, M, K, N, s);
    if (g_prof_on) g_prof[P_LINEAR] += now() - t0, g_flop[P_LINEAR] += 2.0 * M * K * N;
    return r;
}

static int prof_attention_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                              const AttnShape *sh, cudaStream_t s) {
    double t0 = now();
    int r = g_base->attention_fwd(dt, o, lse, q, k, v, sh, s);
    int cls = sh->Nk == sh->Nq ? P_ATT_SELF : P_ATT_CROSS;
    if (g_prof_on) g_prof[cls] += now() - t0, g_flop[cls] += 4.0 * sh->B * sh->H * sh->Nq * sh->Nk * sh->D;
    return r;
}

PROF_WRAP(gemm, P_GEMM,
          (DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, const void *B, int ldb,
           float beta, void *C, int ldc, cudaStream_t s),
          (dt, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s))
PROF_WRAP(gemm_batched, P_GEMM,
          (DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda, long sA, const void *B,
           int ldb, long sB, float beta, void *C, int ldc, long sC, int batch, cudaStream_t s),
          (dt, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, s))
PROF_WRAP(gemm_bias, P_GEMM,
          (DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
           const void *bias, void *C, int ldc, cudaStream_t s),
          (dt, ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc, s))
PROF_WRAP(groupnorm_fwd, P_GROUPNORM,
          (DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma, const void *beta, int B,
           int HW, int C, int G, float eps, int silu, cudaStream_t s),
          (dt, y, mean, rstd, x, gamma, beta, B, HW, C, G, eps, silu, s))
PROF_WRAP(layernorm_fwd, P_LAYERNORM,
          (DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma, const void *beta, int N,
           int C, float eps, cudaStream_t s),
          (dt, y, mean, rstd, x, gamma, beta, N, C, eps, s))
PROF_WRAP(batchnorm_fwd_infer, P_BATCHNORM,
          (DType dt, void *y, const void *x, const void *gamma, const void *beta, const float *run_mean,
           const float *run_var, int N, int C, float eps, cudaStream_t s),
          (dt, y, x, gamma, beta, run_mean, run_var, N, C, eps, s))
#define PROF_UNARY(name) \
    PROF_WRAP(name, P_ACT, (DType dt, void *y, const void *x, size_t n, cudaStream_t s), (dt, y, x, n, s))
PROF_UNARY(silu_fwd)
PROF_UNARY(gelu_fwd)
PROF_UNARY(quickgelu_fwd)
PROF_UNARY(relu_fwd)
PROF_UNARY(sigmoid_fwd)
PROF_WRAP(geglu_fwd, P_ACT, (DType dt, void *y, const void *x, size_t N, int D, cudaStream_t s), (dt, y, x, N, D, s))
PROF_WRAP(prelu_fwd, P_ACT, (DType dt, void *y, const void *x, const void *slope, size_t N, int C, cudaStream_t s),
          (dt, y, x, slope, N, C, s))
PROF_WRAP(add_fwd, P_ELTWISE, (DType dt, void *y, const void *a, const void *b, size_t n, cudaStream_t s),
          (dt, y, a, b, n, s))
PROF_WRAP(concat_fwd, P_ELTWISE,
          (DType dt, void *y, const void *a, const void *b, size_t P, int Ca, int Cb, cudaStream_t s),
          (dt, y, a, b, P, Ca, Cb, s))
PROF_WRAP(upsample2x_fwd, P_ELTWISE, (DType dt, void *y, const void *x, int B, int H, int W, int C, cudaStream_t s),
          (dt, y, x, B, H, W, C, s))
PROF_WRAP(embedding_fwd, P_ELTWISE,
          (DType dt, void *y, const int32_t *ids, const void *table, int N, int V, int D, cudaStream_t s),
          (dt, y, ids, table, N, V, D, s))
PROF_WRAP(channel_scale_fwd, P_ELTWISE,
          (DType dt, void *y, const void *x, const void *sc, int B, int HW, int C, cudaStream_t s),
          (dt, y, x, sc, B, HW, C, s))

// The table the models run on: cpu_backend(), or its wrapped copy under PROFILE=1.
static const Backend *bench_backend(void) {
    const char *e = getenv("PROFILE");
    if (!e || !*e || !strcmp(e, "0")) return cpu_backend();
    g_base = cpu_backend();
    g_pb = *g_base;
    g_pb.conv2d_fwd = prof_conv2d_fwd;
    g_pb.linear_fwd = prof_linear_fwd;
    g_pb.attention_fwd = prof_attention_fwd;
    g_pb.gemm = prof_gemm;
    g_pb.gemm_batched = prof_gemm_batched;
    g_pb.gemm_bias = prof_gemm_bias;
    g_pb.groupnorm_fwd = prof_groupnorm_fwd;
    g_pb.layernorm_fwd = prof_layernorm_fwd;
    g_pb.batchnorm_fwd_infer = prof_batchnorm_fwd_infer;
    g_pb.silu_fwd = prof_silu_fwd;
    g_pb.gelu_fwd = prof_gelu_fwd;
    g_pb.quickgelu_fwd = prof_quickgelu_fwd;
    g_pb.relu_fwd = prof_relu_fwd;
    g_pb.sigmoid_fwd = prof_sigmoid_fwd;
    g_pb.geglu_fwd = prof_geglu_fwd;
    g_pb.prelu_fwd = prof_prelu_fwd;
    g_pb.add_fwd = prof_add_fwd;
    g_pb.concat_fwd = prof_concat_fwd;
    g_pb.upsample2x_fwd = prof_upsample2x_fwd;
    g_pb.embedding_fwd = prof_embedding_fwd;
    g_pb.channel_scale_fwd = prof_channel_scale_fwd;
    return &g_pb;
}

// End of one timed run of wall seconds: keeps its per-class times if it is the
// fastest so far (on a shared machine the fastest run is the least disturbed one).
static void prof_end_run(double wall) {
    if (g_base != NULL && (g_best_wall == 0 || wall < g_best_wall)) {
        memcpy(g_best, g_prof, sizeof g_prof);
        memcpy(g_best_flop, g_flop, sizeof g_flop);
        g_best_wall = wall;
    }
    memset(g_prof, 0, sizeof g_prof);
    memset(g_flop, 0, sizeof g_flop);
}

// Per-class seconds of the fastest run, share of it, GFLOP/s of the GEMM-like classes.
static void prof_report(void) {
    if (g_base == NULL) return;
    double tot = 0;
    for (int i = 0; i < P_NCLASS; i++) tot += g_best[i];
    printf("  profile of the fastest run (%.3f s; ops %.3f s, the rest is glue):\n", g_best_wall, tot);
    for (int i = 0; i < P_NCLASS; i++) {
        if (g_best[i] == 0) continue;
        printf("    %-28s %8.3f s %5.1f%%", k_prof_name[i], g_best[i], 100.0 * g_best[i] / g_best_wall);
        if (g_best_flop[i] > 0)
            printf("  %7.1f GFLOP %6.1f GFLOP/s", g_best_flop[i] * 1e-9, g_best_flop[i] / g_best[i] * 1e-9);
        printf("\n");
    }
    g_best_wall = 0;
}

// One benchmark case: fn(arg) runs one forward, returns 0 / -1.
typedef int (*ForwardFn)(void *arg);

// Warm-up + runs timed forwards; prints them, sets *fastest and returns the median (or -1 on failure).
static double time_runs(const char *what, ForwardFn fn, void *arg, int runs, double *fastest) {
    double t0 = now();
    if (fn(arg) != 0) {
        fprintf(stderr, "%s: %s\n", what, a2f_last_error());
        return -1;
    }
    printf("%s: warm-up %.3f s; runs (wall s, user s, sys s):", what, now() - t0);
    g_prof_on = 1;
    double t[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double u0, s0, u1, s1, s = now();
        cpu_times(&u0, &s0);
        if (fn(arg) != 0) {
            fprintf(stderr, "%s: %s\n", what, a2f_last_error());
            return -1;
        }
        t[r] = now() - s;
        cpu_times(&u1, &s1);
        prof_end_run(t[r]);
        printf(" (%.3f %.2f %.2f)", t[r], u1 - u0, s1 - s0);
        fflush(stdout);
    }
    g_prof_on = 0;
    qsort(t, runs, sizeof(double), cmp_double);
    printf("\n");
    prof_report();
    *fastest = t[0];
    return t[runs / 2];
}

static void report(const char *what, double med, double fastest, double gflop, const Ctx *c) {
    printf("RESULT %s median_s=%.4f min_s=%.4f", what, med, fastest);
    if (gflop > 0) printf(" gflop=%.1f gflops_per_s=%.2f", gflop, gflop / med);
    printf(" act_peak_mb=%.1f threads=%d\n", c->act->peak / 1048576.0, omp_get_max_threads());
}


// ------------------------------------------------------------------ UNet

typedef struct {
    Ctx c;
    Weights W;
    UNet *m;
    float *out, *x, *t, *ehs;
    int B, H, Nc;
} UNetCase;

static int unet_forward(void *p) {
    UNetCase *u = p;
    return unet_f(&u->c, &u->W, u->m, u->out, u->x, u->t, u->ehs, u->B, u->H, u->H, u->Nc, NULL);
}

static int bench_unet(const char *config, int latent, int B, int runs) {
    UNetCase u = {.B = B, .H = latent, .Nc = 77};
    UNetConfig cfg;
    u.m = xcalloc(1, sizeof *u.m);
    params_init(&u.W.t);
    if (unet_config_load(&cfg, config) || unet_build(u.m, &u.W.t, &cfg) ||
        weights_alloc(&u.W, bench_backend(), DT_F32, 0) || weights_init_random(&u.W, 1, 0.02f)) {
        fprintf(stderr, "bench_unet_cpu: %s\n", a2f_last_error());
        return 1;
    }
    // Activation stack: the largest level holds a few [B, H*W, C0] tensors plus every
    // skip; 64 full-resolution [C0] planes per sample is a loose upper bound (SD1.5 at
    // 64x64: 64 * 4096 * 320 * 4 B = 335 MB; the measured peak is printed).
    size_t act = (size_t)64 * B * latent * latent * cfg.channels[0] * sizeof(float) + (64u << 20);
    if (nn_ctx_init(&u.c, bench_backend(), DT_F32, act, 1 << 20)) {
        fprintf(stderr, "bench_unet_cpu: %s\n", a2f_last_error());
        return 1;
    }
    size_t nx = (size_t)B * latent * latent * cfg.in_channels, ne = (size_t)B * u.Nc * cfg.cross_dim;
    u.x = xmalloc(nx * sizeof(float));
    u.out = xmalloc((size_t)B * latent * latent * cfg.out_channels * sizeof(float));
    u.ehs = xmalloc(ne * sizeof(float));
    u.t = xmalloc(B * sizeof(float));
    fill_randn(u.x, nx, 2);
    fill_randn(u.ehs, ne, 3);
    for (int b = 0; b < B; b++) u.t[b] = 999.0f;
    printf("unet %s: %zu parameters (%.2f GB fp32), latent %dx%d, batch %d, context [%d, %d, %d]\n", config,
           u.W.t.total, u.W.t.total * 4e-9, latent, latent, B, B, u.Nc, cfg.cross_dim);
    char what[64];
    snprintf(what, sizeof what, "unet_%dx%d_b%d", latent, latent, B);
    double fastest, med = time_runs(what, unet_forward, &u, runs, &fastest);
    if (med < 0) return 1;
    int sd15 = cfg.channels[0] == 320 && latent == 64;
    report(what, med, fastest, sd15 ? 803.3 * B : 0, &u.c);
    free(u.x), free(u.out), free(u.ehs), free(u.t);
    nn_ctx_free(&u.c);
    weights_free(&u.W);
    params_free(&u.W.t);
    free(u.m);
    return 0;
}

// ------------------------------------------------------------------ CLIP text encoder

typedef struct {
    Ctx c;
    Weights W;
    ClipText *m;
    float *y;
    int32_t *ids;
    int B, L;
} ClipCase;

static int clip_forward(void *p) {
    ClipCase *k = p;
    return clip_f(&k->c, &k->W, k->m, k->y, k->ids, NULL, k->B, k->L, NULL);
}

static int bench_clip(const char *config, int B, int runs) {
    ClipCase k = {.B = B, .L = 77};
    ClipConfig cfg;
    k.m = xcalloc(1, sizeof *k.m);
    params_init(&k.W.t);
    if (clip_config_read(&cfg, config) || clip_add(k.m, &k.W.t, &cfg) ||
        weights_alloc(&k.W, bench_backend(), DT_F32, 0) || weights_init_random(&k.W, 1, 0.02f) ||
        nn_ctx_init(&k.c, bench_backend(), DT_F32, clip_act_bytes(k.m, B, k.L, DT_F32) + (16u << 20), 1 << 20)) {
        fprintf(stderr, "bench_unet_cpu: %s\n", a2f_last_error());
        return 1;
    }
    k.ids = xmalloc((size_t)B * k.L * sizeof(int32_t));
    // "photo of a id person" padded with the end token (the Arc2Face prompt), ids only.
    const int32_t prompt[7] = {49406, 1125, 539, 320, 1014, 2533, 49407};
    for (int b = 0; b < B; b++)
        for (int i = 0; i < k.L; i++) k.ids[b * k.L + i] = i < 7 ? prompt[i] : 49407;
    k.y = xmalloc((size_t)B * k.L * cfg.hidden * sizeof(float));
    printf("clip %s: %zu parameters, batch %d x %d tokens\n", config, k.W.t.total, B, k.L);
    char what[64];
    snprintf(what, sizeof what, "clip_b%d_l%d", B, k.L);
    double fastest, med = time_runs(what, clip_forward, &k, runs, &fastest);
    if (med < 0) return 1;
    report(what, med, fastest, 0, &k.c);
    free(k.ids), free(k.y);
    nn_ctx_free(&k.c);
    weights_free(&k.W);
    params_free(&k.W.t);
    free(k.m);
    return 0;
}

// ------------------------------------------------------------------ IResNet

typedef struct {
    Ctx c;
    Weights W;
    IResNet *m;
    float *x, *y;
    int B;
} IresCase;

static int ires_forward(void *p) {
    IresCase *r = p;
    return iresnet_f(&r->c, &r->W, r->m, r->y, r->x, r->B, NULL);
}

static int bench_iresnet(const char *name, int B, int runs) {
    IresCase r = {.B = B};
    IResNetConfig cfg;
    r.m = xcalloc(1, sizeof *r.m);
    if (iresnet_config(&cfg, name) || iresnet_build(r.m, &r.W.t, &cfg) ||
        weights_alloc(&r.W, bench_backend(), DT_F32, 0) || weights_init_random(&r.W, 1, 0.02f)) {
        fprintf(stderr, "bench_unet_cpu: %s\n", a2f_last_error());
        return 1;
    }
    // Inference keeps a few [B, 112, 112, 64] planes at most; 16 of them + headroom.
    size_t act = (size_t)16 * B * cfg.in_h * cfg.in_w * cfg.stem * sizeof(float) + (64u << 20);
    if (nn_ctx_init(&r.c, bench_backend(), DT_F32, act, 1 << 20)) {
        fprintf(stderr, "bench_unet_cpu: %s\n", a2f_last_error());
        return 1;
    }
    size_t nx = (size_t)B * cfg.in_h * cfg.in_w * 3;
    r.x = xmalloc(nx * sizeof(float));
    r.y = xmalloc((size_t)B * cfg.emb * sizeof(float));
    fill_randn(r.x, nx, 4);
    printf("iresnet %s: %zu parameters, batch %d x %dx%d\n", name, r.W.t.total, B, cfg.in_h, cfg.in_w);
    char what[64];
    snprintf(what, sizeof what, "iresnet_%s_b%d", name, B);
    double fastest, med = time_runs(what, ires_forward, &r, runs, &fastest);
    if (med < 0) return 1;
    report(what, med, fastest, 0, &r.c);
    free(r.x), free(r.y);
    nn_ctx_free(&r.c);
    iresnet_free(r.m);
    weights_free(&r.W);
    params_free(&r.W.t);
    free(r.m);
    return 0;
}

static int usage(void) {
    fprintf(stderr,
            "usage: bench_unet_cpu unet CONFIG.json LATENT B [RUNS]\n"
            "       bench_unet_cpu clip CONFIG.json B [RUNS]\n"
            "       bench_unet_cpu iresnet NAME B [RUNS]\n");
    return 2;
}

static int parse_runs(int argc, char **argv, int i) {
    int runs = argc > i ? atoi(argv[i]) : 3;
    return runs < 1 ? 1 : runs > MAX_RUNS ? MAX_RUNS : runs;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "unet") && argc >= 5) {
        int latent = atoi(argv[3]), B = atoi(argv[4]);
        if (latent < 1 || B < 1) return usage();
        return bench_unet(argv[2], latent, B, parse_runs(argc, argv, 5));
    }
    if (!strcmp(argv[1], "clip") && argc >= 4) {
        int B = atoi(argv[3]);
        if (B < 1) return usage();
        return bench_clip(argv[2], B, parse_runs(argc, argv, 4));
    }
    if (!strcmp(argv[1], "iresnet") && argc >= 4) {
        int B = atoi(argv[3]);
        if (B < 1) return usage();
        return bench_iresnet(argv[2], B, parse_runs(argc, argv, 4));
    }
    return usage();
}
