// bench_cuda.c: GPU benchmark of the CUDA backend's kernels (kernels/cuda/*.h).
//
// Built and run by `make bench` on a machine with a GPU (links the nvcc-built
// build/libarc2face_cuda.a, build/libarc2face.a, -lcudart -lcublasLt -lcublas).
// Usage: build/bench_cuda [iterations (default 20)] [filter substring]
//
// Memory-bound kernels (norms, activations, data movement, AdamW, gradient
// norm) run at SD1.5 sizes (batch 2, 64x64 latents, 320 channels) and at a
// large size (batch 32 or ~100M elements) whose traffic is far beyond L2.
// Before each timed launch the L2 cache is flushed (a memset of twice its
// size, outside the timed region), so the time is what DRAM sustains. Each
// launch is timed alone with CUDA events; the figure is the median of N after
// 3 warm-up launches. GB/s counts the minimal traffic (each input read once,
// each output written once; "+=" outputs read and written), so %DRAM is the
// fraction of the card's peak DRAM bandwidth the kernel achieves. Small
// (SD-size) launches of a few microseconds are dominated by launch latency.
//
// GEMMs (bf16 in, fp32 accumulate, through cuBLAS) are timed with a warm L2,
// TFLOP/s counts 2 M N K; % is of the card's dense bf16 tensor-core peak.
// The convolution (im2col + GEMM for now) and the plain attention are rated
// the same way (2 M N K of their GEMMs).
// Convolution paths (bench_conv_paths): every UNet / VAE / IResNet-100 conv shape,
// fwd / bwd data / bwd weight, through tc, cudnn and im2col, with the path auto picks.
// Attention paths (bench_attention): every UNet / CLIP / VAE attention shape, forward
// and backward, through flash, cuDNN SDPA (graph API) and plain, with auto's pick.
//
// Peaks: DRAM from a spec table for known cards (H100, H200, A100), else from
// cudaDevAttrMemoryClockRate * bus width * 2; bf16 dense from the table, else
// SMs * boost clock * FLOPs per SM per clock for the architecture.
//
// Output: one header line, then one line per row:
//   name  shape  ms  GB/s  %DRAM       (memory-bound)
//   name  shape  ms  TFLOP/s  %peak    (GEMM)
// A launcher error prints "ERROR <message>" on its row; the exit status is 1
// when any row failed.
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cuda/activation.h"
#include "../../kernels/cuda/adamw.h"
#include "../../kernels/cuda/attention.h"
#include "../../kernels/cuda/conv2d.h"
#include "../../kernels/cuda/cudnn_conv.h"
#include "../../kernels/cuda/cudnn_sdpa.h"
#include "../../kernels/cuda/device.h"
#include "../../kernels/cuda/flash_attn.h"
#include "../../kernels/cuda/gemm.h"
#include "../../kernels/cuda/norm.h"
#include "../../kernels/cuda/rng_cuda.h"
#include "../../kernels/cuda/shape.h"
#include "../../kernels/tensor.h"

static int g_iters = 20, g_failed = 0;
static const char *g_filter = NULL;
static double g_dram_gbs, g_bf16_tflops;
static void *g_flush;
static size_t g_flush_bytes;
static cudaEvent_t g_ev0, g_ev1;

#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "bench_cuda: %s: %s\n", #call, cudaGetErrorString(e_));               \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

// ---------------------------------------------------------------- device peaks
static double dram_peak_gbs(const char *name, const char **src) {
    static const struct {
        const char *a, *b;
        double gbs;
    } table[] = {
        {"H200", "", 4800}, {"H100", "PCIe", 2000}, {"H100", "NVL", 3900}, {"H100", "", 3350},
        {"A100", "80GB", 2039}, {"A100", "", 1555},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(name, table[i].a) && strstr(name, table[i].b)) {
            *src = "spec table";
            return table[i].gbs;
        }
    int dev = 0, clk_khz = 0, bus_bits = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&clk_khz, cudaDevAttrMemoryClockRate, dev);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
    *src = "memory clock x bus width";
    return 2.0 * clk_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
}

static double bf16_peak_tflops(const char *name, const char **src) {
    static const struct {
        const char *a, *b;
        double tf;
    } table[] = {
        {"H200", "", 989.4}, {"H100", "PCIe", 756.0}, {"H100", "NVL", 835.0}, {"H100", "", 989.4}, {"A100", "", 312.0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(name, table[i].a) && strstr(name, table[i].b)) {
            *src = "spec table";
            return table[i].tf;
        }
    int dev = 0, sms = 0, clk_khz = 0, major = 0, minor = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    // dense bf16 FLOPs per SM per clock with fp32 accumulation
    double per_sm = major >= 10 ? 8192 : major == 9 ? 4096 : (major == 8 && minor == 0) ? 2048 : 1024;
    *src = "SMs x boost clock x FLOPs/SM/clock (estimate)";
    return sms * (clk_khz * 1e3) * per_sm / 1e12;
}

// ---------------------------------------------------------------- timing
typedef int (*LaunchFn)(void *ctx);

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// Median milliseconds of one launch; flush = 1 empties L2 before each. -1 on error.
static double time_ms(LaunchFn fn, void *ctx, int flush, const char **err) {
    cudaStream_t s = dev_stream();
    for (int w = 0; w < 3; w++) {
        int rc = fn(ctx);
        if (rc != 0 || dev_sync() != 0) {
            *err = rc ? cudaGetErrorString((cudaError_t)rc) : a2f_last_error();
            return -1;
        }
    }
    float *t = xmalloc(g_iters * sizeof(float));
    for (int i = 0; i < g_iters; i++) {
        if (flush) CK(cudaMemsetAsync(g_flush, i & 0xff, g_flush_bytes, s));
        CK(cudaEventRecord(g_ev0, s));
        int rc = fn(ctx);
        CK(cudaEventRecord(g_ev1, s));
        CK(cudaEventSynchronize(g_ev1));
        if (rc != 0) {
            *err = cudaGetErrorString((cudaError_t)rc);
            free(t);
            return -1;
        }
        CK(cudaEventElapsedTime(&t[i], g_ev0, g_ev1));
    }
    qsort(t, g_iters, sizeof(float), cmp_float);
    double med = t[g_iters / 2];
    free(t);
    return med;
}

static int selected(const char *name) { return !g_filter || strstr(name, g_filter); }

static void row_mem(const char *name, const char *shape, double bytes, LaunchFn fn, void *ctx) {
    if (!selected(name)) return;
    const char *err = NULL;
    double ms = time_ms(fn, ctx, 1, &err);
    if (ms < 0) {
        printf("%-34s %-26s ERROR %s\n", name, shape, err);
        g_failed = 1;
        return;
    }
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("%-34s %-26s %9.4f ms %8.1f GB/s %6.1f%% DRAM\n", name, shape, ms, gbs, 100.0 * gbs / g_dram_gbs);
    fflush(stdout);
}

static void row_gemm(const char *name, const char *shape, double flops, LaunchFn fn, void *ctx) {
    if (!selected(name)) return;
    const char *err = NULL;
    double ms = time_ms(fn, ctx, 0, &err);
    if (ms < 0) {
        printf("%-34s %-26s ERROR %s\n", name, shape, err);
        g_failed = 1;
        return;
    }
    double tf = flops / (ms * 1e-3) / 1e12;
    printf("%-34s %-26s %9.4f ms %8.1f TFLOP/s %5.1f%% bf16 peak\n", name, shape, ms, tf, 100.0 * tf / g_bf16_tflops);
    fflush(stdout);
}

// ---------------------------------------------------------------- buffers
// Device buffer of n elements of dt with values in [-2, 2) (bf16 from a
// host pattern, f32 from the Philox normal fill).
static void *dbuf(size_t n, DType dt) {
    size_t bytes = n * dtype_size(dt);
    void *d = dev_malloc(bytes);
    if (!d) {
        fprintf(stderr, "bench_cuda: %s\n", a2f_last_error());
        exit(1);
    }
    if (dt == DT_F32) {
        CK((cudaError_t)cuda_philox_fill_normal((float *)d, n, 1234, n, dev_stream()));
    } else {
        enum { PAT = 1 << 20 };
        static uint16_t *pat = NULL;
        if (!pat) {
            pat = xmalloc(PAT * sizeof(uint16_t));
            uint64_t s = 88172645463325252ull;
            for (int i = 0; i < PAT; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                pat[i] = f32_to_bf16((float)((s >> 40) * (4.0 / 16777216.0)) - 2.0f);
            }
        }
        for (size_t off = 0; off < n; off += PAT) {
            size_t k = n - off < PAT ? n - off : PAT;
            CK(cudaMemcpy((uint16_t *)d + off, pat, k * sizeof(uint16_t), cudaMemcpyHostToDevice));
        }
    }
    if (dev_sync() != 0) exit(1);
    return d;
}

// ---------------------------------------------------------------- rows
typedef struct {
    void *y, *x, *x2, *dx;
    float *mean, *rstd, *dgamma, *dbeta;
    void *gamma, *beta;
    int B, H, W, C, G, N, D;
    size_t n;
} Ctx;

static int b_gn_fwd(void *p) {
    Ctx *c = p;
    return cuda_groupnorm_fwd(DT_BF16, c->y, c->mean, c->rstd, c->x, c->gamma, c->beta, c->B, c->H * c->W, c->C,
                              c->G, 1e-5f, 1, dev_stream());
}
static int b_gn_bwd(void *p) {
    Ctx *c = p;
    return cuda_groupnorm_bwd(DT_BF16, c->dx, c->dgamma, c->dbeta, c->x2, c->x, c->mean, c->rstd, c->gamma, c->beta,
                              c->B, c->H * c->W, c->C, c->G, 1, dev_stream());
}
static int b_ln_fwd(void *p) {
    Ctx *c = p;
    return cuda_layernorm_fwd(DT_BF16, c->y, c->mean, c->rstd, c->x, c->gamma, c->beta, c->N, c->C, 1e-5f,
                              dev_stream());
}
static int b_silu_fwd(void *p) {
    Ctx *c = p;
    return cuda_silu_fwd(DT_BF16, c->y, c->x, c->n, dev_stream());
}
static int b_silu_bwd(void *p) {
    Ctx *c = p;
    return cuda_silu_bwd(DT_BF16, c->dx, c->x2, c->x, c->n, dev_stream());
}
static int b_gelu_fwd(void *p) {
    Ctx *c = p;
    return cuda_gelu_fwd(DT_BF16, c->y, c->x, c->n, dev_stream());
}
static int b_geglu_fwd(void *p) {
    Ctx *c = p;
    return cuda_geglu_fwd(DT_BF16, c->y, c->x, (size_t)c->N, c->D, dev_stream());
}
static int b_add_fwd(void *p) {
    Ctx *c = p;
    return cuda_add_fwd(DT_BF16, c->y, c->x, c->x2, c->n, dev_stream());
}
static int b_up_fwd(void *p) {
    Ctx *c = p;
    return cuda_upsample2x_fwd(DT_BF16, c->y, c->x, c->B, c->H, c->W, c->C, dev_stream());
}
static int b_softmax_fwd(void *p) {
    Ctx *c = p;
    return cuda_softmax_fwd(DT_BF16, c->y, c->x, (size_t)c->N, c->C, dev_stream());
}

// Memory-bound rows at batch B (SD1.5: B = 2).
static void bench_memory_bound(int B, const char *tag) {
    char name[64], shape[64];
    const int H = 64, W = 64, C = 320, G = 32;
    size_t n = (size_t)B * H * W * C;
    Ctx c = {0};
    c.B = B, c.H = H, c.W = W, c.C = C, c.G = G, c.n = n;
    c.x = dbuf(n, DT_BF16), c.x2 = dbuf(n, DT_BF16), c.y = dbuf(n, DT_BF16), c.dx = dbuf(n, DT_BF16);
    c.gamma = dbuf(C, DT_BF16), c.beta = dbuf(C, DT_BF16);
    c.mean = dbuf((size_t)B * H * W, DT_F32), c.rstd = dbuf((size_t)B * H * W, DT_F32);
    c.dgamma = dbuf(C, DT_F32), c.dbeta = dbuf(C, DT_F32);
    double e = 2.0;  // bytes per bf16 element

    snprintf(shape, sizeof shape, "[%d,%dx%d,%d] G%d", B, H, W, C, G);
    snprintf(name, sizeof name, "groupnorm+silu fwd bf16 %s", tag);
    row_mem(name, shape, 2 * n * e, b_gn_fwd, &c);  // x in, y out
    snprintf(name, sizeof name, "groupnorm+silu bwd bf16 %s", tag);
    row_mem(name, shape, 4 * n * e, b_gn_bwd, &c);  // dy, x in; dx read + written

    c.N = B * H * W;
    snprintf(shape, sizeof shape, "[%d,%d]", c.N, C);
    snprintf(name, sizeof name, "layernorm fwd bf16 %s", tag);
    row_mem(name, shape, 2 * n * e, b_ln_fwd, &c);

    snprintf(shape, sizeof shape, "n=%zu", n);
    snprintf(name, sizeof name, "silu fwd bf16 %s", tag);
    row_mem(name, shape, 2 * n * e, b_silu_fwd, &c);
    snprintf(name, sizeof name, "silu bwd bf16 %s", tag);
    row_mem(name, shape, 4 * n * e, b_silu_bwd, &c);  // dy, x in; dx read + written
    snprintf(name, sizeof name, "gelu fwd bf16 %s", tag);
    row_mem(name, shape, 2 * n * e, b_gelu_fwd, &c);
    snprintf(name, sizeof name, "add fwd bf16 %s", tag);
    row_mem(name, shape, 3 * n * e, b_add_fwd, &c);

    // upsample: x [B, 32, 32, 320] -> y [B, 64, 64, 320] (n/4 in, n out)
    c.H = 32, c.W = 32;
    snprintf(shape, sizeof shape, "[%d,32x32,%d]->64x64", B, C);
    snprintf(name, sizeof name, "upsample2x fwd bf16 %s", tag);
    row_mem(name, shape, (n / 4 + n) * e, b_up_fwd, &c);
    c.H = H, c.W = W;

    dev_free(c.x), dev_free(c.x2), dev_free(c.y), dev_free(c.dx), dev_free(c.gamma), dev_free(c.beta);
    dev_free(c.mean), dev_free(c.rstd), dev_free(c.dgamma), dev_free(c.dbeta);

    // GEGLU of the 64x64 transformer: x [B*4096, 2*1280] -> y [B*4096, 1280]
    Ctx g = {0};
    g.N = B * H * W, g.D = 4 * C;
    size_t gn = (size_t)g.N * g.D;
    g.x = dbuf(2 * gn, DT_BF16), g.y = dbuf(gn, DT_BF16);
    snprintf(shape, sizeof shape, "[%d,%d]->[%d,%d]", g.N, 2 * g.D, g.N, g.D);
    snprintf(name, sizeof name, "geglu fwd bf16 %s", tag);
    row_mem(name, shape, 3 * gn * e, b_geglu_fwd, &g);
    dev_free(g.x), dev_free(g.y);

    // Softmax over self-attention scores at 64x64: [B*8 heads*4096 rows, 4096]
    // (B = 2: 268M elements, 1 GiB of traffic; the large run uses B = 8).
    Ctx s = {0};
    int sb = B > 8 ? 8 : B;
    s.N = sb * 8 * 4096, s.C = 4096;
    size_t sn = (size_t)s.N * s.C;
    s.x = dbuf(sn, DT_BF16), s.y = dbuf(sn, DT_BF16);
    snprintf(shape, sizeof shape, "[%d,%d]", s.N, s.C);
    snprintf(name, sizeof name, "softmax rows bf16 %s", sb == B ? tag : "B8");
    row_mem(name, shape, 2 * sn * e, b_softmax_fwd, &s);
    dev_free(s.x), dev_free(s.y);
}

typedef struct {
    float *master, *m, *v, *g, *norm;
    void *work;
    size_t n;
    DType dt;
} OptCtx;

static int adamw_run(void *p) {
    OptCtx *o = p;
    AdamWHyper h = {.lr = 1e-6, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
    return cuda_adamw_step(o->dt, o->work, o->master, o->m, o->v, o->g, o->n, h, 10, 1.0f, o->norm + 1, 42, 0,
                           dev_stream());
}
static int gradnorm_run(void *p) {
    OptCtx *o = p;
    return cuda_grad_norm(o->norm, o->norm + 1, o->g, o->n, 1.0f, dev_stream());
}

// AdamW and the gradient norm over 100M parameters (SD1.5 UNet 860M + CLIP
// text 123M is ~10x this; the kernels are linear in n).
static void bench_optimizer(void) {
    OptCtx o = {0};
    o.n = 100 * 1000 * 1000;
    o.master = dbuf(o.n, DT_F32), o.g = dbuf(o.n, DT_F32);
    o.m = dev_malloc(o.n * 4), o.v = dev_malloc(o.n * 4), o.norm = dev_malloc(8);
    o.work = dev_malloc(o.n * 4);
    if (!o.m || !o.v || !o.norm || !o.work) {
        fprintf(stderr, "bench_cuda: %s\n", a2f_last_error());
        exit(1);
    }
    dev_memset(o.m, 0, o.n * 4), dev_memset(o.v, 0, o.n * 4);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", o.n);
    row_mem("grad norm (+clip coef) f32", shape, 4.0 * o.n, gradnorm_run, &o);
    gradnorm_run(&o);  // the clip coefficient the AdamW rows read
    o.dt = DT_BF16;    // 16 B read (p, m, v, g), 12 B written (p, m, v), 2 B bf16 copy
    row_mem("adamw + bf16 SR copy", shape, 30.0 * o.n, adamw_run, &o);
    o.dt = DT_F32;
    row_mem("adamw + f32 copy", shape, 32.0 * o.n, adamw_run, &o);
    dev_free(o.work);
    o.work = NULL;
    row_mem("adamw (master only)", shape, 28.0 * o.n, adamw_run, &o);
    dev_free(o.master), dev_free(o.g), dev_free(o.m), dev_free(o.v), dev_free(o.norm);
}

typedef struct {
    int M, N, K, tb;
    void *A, *B, *C;
} GemmCtx;

static int gemm_run(void *p) {
    GemmCtx *g = p;
    // y [M,N] = x [M,K] @ W^T (W [N,K], tb = 1) or x @ B (B [K,N], tb = 0)
    return cuda_gemm(DT_BF16, 0, g->tb, g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->tb ? g->K : g->N, 0.0f, g->C,
                     g->N, dev_stream());
}

static void bench_gemm(void) {
    static const struct {
        const char *what;
        int M, N, K, tb;
    } shapes[] = {
        {"gemm bf16 NN square", 4096, 4096, 4096, 0},
        {"linear 64x64 attn proj", 8192, 320, 320, 1},
        {"linear 64x64 geglu in", 8192, 2560, 320, 1},
        {"linear 64x64 ff out", 8192, 320, 1280, 1},
        {"linear 32x32 attn proj", 2048, 640, 640, 1},
        {"linear 32x32 geglu in", 2048, 5120, 640, 1},
        {"linear 32x32 ff out", 2048, 640, 2560, 1},
        {"linear 16x16 attn proj", 512, 1280, 1280, 1},
        {"linear 16x16 geglu in", 512, 10240, 1280, 1},
        {"linear 16x16 ff out", 512, 1280, 5120, 1},
        {"linear cross-attn k/v (77 tok)", 154, 320, 768, 1},
        {"conv3x3 320 as GEMM (im2col)", 8192, 320, 2880, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        GemmCtx g = {shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].tb, NULL, NULL, NULL};
        g.A = dbuf((size_t)g.M * g.K, DT_BF16);
        g.B = dbuf((size_t)g.K * g.N, DT_BF16);
        g.C = dbuf((size_t)g.M * g.N, DT_BF16);
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%d %s", g.M, g.N, g.K, g.tb ? "NT" : "NN");
        row_gemm(shapes[i].what, shape, 2.0 * g.M * g.N * g.K, gemm_run, &g);
        dev_free(g.A), dev_free(g.B), dev_free(g.C);
    }
}

typedef struct {
    Conv2dShape cs;
    AttnShape as;
    void *x, *w, *y, *q, *k, *v;
    float *lse;
} CaCtx;

static int conv_run(void *p) {
    CaCtx *c = p;
    return cuda_conv2d_fwd(DT_BF16, c->y, c->x, c->w, NULL, &c->cs, dev_stream());
}
static int attn_run(void *p) {
    CaCtx *c = p;
    return cuda_attention_fwd(DT_BF16, c->y, c->lse, c->q, c->k, c->v, &c->as, dev_stream());
}

// SD1.5 UNet convolution (3x3, 320 -> 320 at 64x64, batch 2) and the 64x64
// self-attention (8 heads of 40, 4096 tokens, batch 2), both bf16: TFLOP/s.
static void bench_conv_attention(void) {
    CaCtx c = {0};
    Conv2dShape cs = {.B = 2, .H = 64, .W = 64, .Cin = 320, .Cout = 320, .KH = 3, .KW = 3, .sh = 1, .sw = 1,
                      .pt = 1, .pb = 1, .pl = 1, .pr = 1};
    c.cs = cs;
    size_t npix = (size_t)cs.B * cs.H * cs.W;
    c.x = dbuf(npix * cs.Cin, DT_BF16), c.w = dbuf((size_t)cs.Cout * 9 * cs.Cin, DT_BF16);
    c.y = dbuf(npix * cs.Cout, DT_BF16);
    row_gemm("conv2d 3x3 fwd bf16", "[2,64x64,320]->320", 2.0 * npix * cs.Cout * 9 * cs.Cin, conv_run, &c);
    dev_free(c.x), dev_free(c.w), dev_free(c.y);

    const int B = 2, H = 8, N = 4096, D = 40;
    long st = (long)H * D, sb = (long)N * st;
    AttnShape as = {.B = B, .H = H, .Nq = N, .Nk = N, .D = D, .causal = 0, .q_sb = sb, .q_st = st, .k_sb = sb,
                    .k_st = st, .v_sb = sb, .v_st = st, .o_sb = sb, .o_st = st};
    c.as = as;
    size_t n = (size_t)B * N * H * D;
    c.q = dbuf(n, DT_BF16), c.k = dbuf(n, DT_BF16), c.v = dbuf(n, DT_BF16), c.y = dbuf(n, DT_BF16);
    c.lse = dbuf((size_t)B * H * N, DT_F32);
    // QK^T and PV: 2 * 2 * B H N N D
    row_gemm("attention fwd bf16 (plain)", "B2 H8 N4096 D40", 4.0 * B * H * (double)N * N * D, attn_run, &c);
    dev_free(c.q), dev_free(c.k), dev_free(c.v), dev_free(c.y), dev_free(c.lse);
}

// ---------------------------------------------------------------- attention (flash / cudnn / plain)
// Every attention shape of the SD1.5 UNet at batch 2 (self-attention at 64x64,
// 32x32, 16x16, 8x8 latents with 8 heads of 40, 80, 160, 160; cross-attention of
// the same queries over 77 text tokens), CLIP's text encoder (77 tokens, 12 heads
// of 64, causal) and the VAE's mid-block attention (4096 tokens, 1 head of 512:
// no flash head dim). Q, K, V, O are separate [B, N, H*D] bf16 tensors.
// Each shape runs forward and backward through: "auto" (the dispatch's own choice:
// the first call per shape times the candidates; the path it settled on is
// printed), then each path forced (A2F_ATTN): flash (ours), cudnn (cuDNN's fused
// flash attention through its graph API, kernels/cuda/cudnn_sdpa.cu; backward in
// cuDNN's deterministic variant, as ours is, and again as "cudnn-nd", cuDNN's
// default with an atomic dQ accumulator; the forward as cuDNN's single SDPA operation
// where it applies, else the composite graph: the row names the graph) and plain
// (cuBLAS). A path that does not
// apply to a shape prints "n/a". FLOPs: forward 4 B H Nq Nk D (Q K^T and P V),
// backward 2.5x that (S recomputed, dV, dP, dQ, dK); causal counts half. The
// ratio columns are speed ratios ours/cuDNN (cuDNN ms / flash ms: >= 1 means
// flash is faster; the targets are 0.8 forward and 0.7 backward).
typedef struct {
    AttnShape s;
    void *q, *k, *v, *o, *dout, *dq, *dk, *dv;
    float *lse;
} AttnBenchCtx;

static int attn_b_fwd(void *p) {
    AttnBenchCtx *c = p;
    return cuda_attention_fwd(DT_BF16, c->o, c->lse, c->q, c->k, c->v, &c->s, dev_stream());
}
static int attn_b_bwd(void *p) {
    AttnBenchCtx *c = p;
    return cuda_attention_bwd(DT_BF16, c->dq, c->dk, c->dv, c->dout, c->q, c->k, c->v, c->o, c->lse, &c->s,
                              dev_stream());
}

static void set_env(const char *name, const char *value) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
}

// One row: ms and TFLOP/s of the auto path (and which it is) and of each forced path.
static void attn_row(const char *name, const char *shape, double flops, LaunchFn fn, AttnBenchCtx *c, int bwd) {
    if (!selected(name)) return;
    enum { AUTO, FLASH, CUDNN, CUDNN_ND, PLAIN, NMODE };
    static const char *label[NMODE] = {"auto", "flash", "cudnn", "cudnn-nd", "plain"};
    static const char *env[NMODE] = {"auto", "flash", "cudnn", "cudnn", "plain"};
    const char *why = NULL;
    int ok[NMODE] = {1, cuda_flash_attn_supported(DT_BF16, &c->s, NULL, 0),
                     cuda_cudnn_sdpa_available(DT_BF16, &c->s, bwd, NULL, 0, &why), 0, 1};
    const char *dnn_why = why;
    if (bwd) {
        set_env("A2F_CUDNN_SDPA_NONDET", "1");
        ok[CUDNN_ND] = cuda_cudnn_sdpa_available(DT_BF16, &c->s, 1, NULL, 0, NULL);
        set_env("A2F_CUDNN_SDPA_NONDET", NULL);
    }
    double ms[NMODE];
    const char *err = NULL, *old = getenv("A2F_ATTN");
    char *saved = old ? strdup(old) : NULL;
    for (int m = 0; m < NMODE; m++) {
        ms[m] = -1;
        if (!ok[m]) continue;
        setenv("A2F_ATTN", env[m], 1);
        set_env("A2F_CUDNN_SDPA_NONDET", m == CUDNN_ND ? "1" : NULL);
        ms[m] = time_ms(fn, c, 0, &err);
        if (ms[m] < 0) {
            printf("%-34s %-26s %s: ERROR %s\n", name, shape, label[m], err);
            g_failed = 1;
        }
    }
    set_env("A2F_CUDNN_SDPA_NONDET", NULL);
    setenv("A2F_ATTN", "auto", 1);
    const char *path = cuda_attention_path(&c->s, bwd);
    set_env("A2F_ATTN", saved);
    free(saved);
    printf("%-34s %-26s", name, shape);
    for (int m = 0; m < NMODE; m++) {
        if (m == CUDNN_ND && !bwd) continue;
        if (ms[m] < 0) printf("  %s: %s", label[m], ok[m] ? "ERROR" : "n/a");
        else printf("  %s%s%s: %8.4f ms %6.1f TF/s", label[m], m ? "" : "=", m ? "" : path, ms[m],
                    flops / (ms[m] * 1e-3) / 1e12);
    }
    if (ms[FLASH] > 0 && ms[CUDNN] > 0) printf("  flash/cudnn %.2fx", ms[CUDNN] / ms[FLASH]);
    if (ms[FLASH] > 0 && ms[CUDNN_ND] > 0) printf("  flash/cudnn-nd %.2fx", ms[CUDNN_ND] / ms[FLASH]);
    printf("  (auto %.1f%% bf16 peak)", ms[AUTO] > 0 ? 100.0 * flops / (ms[AUTO] * 1e-3) / 1e12 / g_bf16_tflops : 0.0);
    if (!ok[CUDNN]) printf("  [cudnn: %s]", dnn_why);
    else printf("  [cudnn graph: %s]", cuda_cudnn_sdpa_variant(&c->s, bwd));
    printf("\n");
    fflush(stdout);
}

static void bench_attention(void) {
    static const struct {
        const char *what;
        int B, H, Nq, Nk, D, causal;
    } shapes[] = {
        {"attn unet 64x64 self d40", 2, 8, 4096, 4096, 40, 0},
        {"attn unet 64x64 cross d40", 2, 8, 4096, 77, 40, 0},
        {"attn unet 32x32 self d80", 2, 8, 1024, 1024, 80, 0},
        {"attn unet 32x32 cross d80", 2, 8, 1024, 77, 80, 0},
        {"attn unet 16x16 self d160", 2, 8, 256, 256, 160, 0},
        {"attn unet 16x16 cross d160", 2, 8, 256, 77, 160, 0},
        {"attn unet 8x8 self d160", 2, 8, 64, 64, 160, 0},
        {"attn unet 8x8 cross d160", 2, 8, 64, 77, 160, 0},
        {"attn clip text causal d64", 2, 12, 77, 77, 64, 1},
        {"attn vae mid d512", 2, 1, 4096, 4096, 512, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int B = shapes[i].B, H = shapes[i].H, Nq = shapes[i].Nq, Nk = shapes[i].Nk, D = shapes[i].D;
        const long C = (long)H * D;
        AttnBenchCtx c = {0};
        AttnShape s = {.B = B, .H = H, .Nq = Nq, .Nk = Nk, .D = D, .causal = shapes[i].causal, .q_sb = Nq * C,
                       .q_st = C, .k_sb = Nk * C, .k_st = C, .v_sb = Nk * C, .v_st = C, .o_sb = Nq * C, .o_st = C};
        c.s = s;
        const size_t nq = (size_t)B * Nq * C, nk = (size_t)B * Nk * C;
        c.q = dbuf(nq, DT_BF16), c.k = dbuf(nk, DT_BF16), c.v = dbuf(nk, DT_BF16), c.o = dbuf(nq, DT_BF16);
        c.dout = dbuf(nq, DT_BF16), c.dq = dbuf(nq, DT_BF16), c.dk = dbuf(nk, DT_BF16), c.dv = dbuf(nk, DT_BF16);
        c.lse = dbuf((size_t)B * H * Nq, DT_F32);
        double fl = 4.0 * B * H * (double)Nq * Nk * D * (s.causal ? 0.5 : 1.0);
        char shape[64], name[80];
        snprintf(shape, sizeof shape, "B%d H%d Nq%d Nk%d D%d%s", B, H, Nq, Nk, D, s.causal ? " causal" : "");
        snprintf(name, sizeof name, "%s fwd", shapes[i].what);
        attn_row(name, shape, fl, attn_b_fwd, &c, 0);
        attn_b_fwd(&c);  // o, lse of the current inputs for the backward
        snprintf(name, sizeof name, "%s bwd", shapes[i].what);
        attn_row(name, shape, 2.5 * fl, attn_b_bwd, &c, 1);
        dev_free(c.q), dev_free(c.k), dev_free(c.v), dev_free(c.o), dev_free(c.dout);
        dev_free(c.dq), dev_free(c.dk), dev_free(c.dv), dev_free(c.lse);
    }
}
// ---------------------------------------------------------------- end of attention section

// ---------------------------------------------------------------- convolution paths
// Every 3x3 / 1x1 convolution shape of the SD1.5 UNet (64x64 latent, batch 2), the VAE
// (decoder at 512x512, batch 1, plus the encoder's asymmetric-pad downsamples) and
// IResNet-100 (112x112, batch 32), each pass (fwd, bwd data, bwd weight) through each
// path of the conv2d dispatcher (forced with cuda_conv2d_force): tc (tensor-core
// implicit GEMM), cudnn (legacy API, when compiled in and the padding is symmetric),
// cudnn-graph (cuDNN's graph API with its heuristics, PyTorch's route to cuDNN) and
// im2col. TFLOP/s counts 2 * B*Ho*Wo * Cout * KH*KW*Cin per pass; "tc/cudnn" is the
// faster cuDNN path's time over tc's (> 1: tc faster); "%pk" is tc's share of the dense
// bf16 peak; "auto" is the path auto mode picks (timed on its first call). Warm L2,
// median of N.
typedef struct {
    Conv2dShape s;
    int which;  // 0 fwd, 1 bwd data, 2 bwd weight
    void *x, *w, *b, *y, *dy, *dx;
    float *dw;
} ConvPathCtx;

static int conv_path_run(void *p) {
    ConvPathCtx *c = p;
    if (c->which == 0) return cuda_conv2d_fwd(DT_BF16, c->y, c->x, c->w, c->b, &c->s, dev_stream());
    if (c->which == 1) return cuda_conv2d_bwd(DT_BF16, c->dx, NULL, NULL, c->dy, c->x, c->w, &c->s, dev_stream());
    return cuda_conv2d_bwd(DT_BF16, NULL, c->dw, NULL, c->dy, c->x, c->w, &c->s, dev_stream());
}

typedef struct {
    const char *net, *what;
    int B, H, W, Cin, Cout, K, stride, pad;  // pad: 1 = symmetric 1 (3x3), 0 = none, -1 = right/bottom 1
} ConvBenchShape;

static const ConvBenchShape g_conv_shapes[] = {
    // SD1.5 UNet, 64x64 latent, batch 2 (resnets: conv1 Cin->Cout, conv2 Cout->Cout, 1x1 shortcut when
    // Cin != Cout; up blocks read the skip concatenation; proj_in/out are 1x1; upsample convs after 2x nearest)
    {"unet", "conv_in 4->320 @64", 2, 64, 64, 4, 320, 3, 1, 1},
    {"unet", "res 320->320 @64", 2, 64, 64, 320, 320, 3, 1, 1},
    {"unet", "proj 1x1 320 @64", 2, 64, 64, 320, 320, 1, 1, 0},
    {"unet", "down s2 320 @64", 2, 64, 64, 320, 320, 3, 2, 1},
    {"unet", "res 320->640 @32", 2, 32, 32, 320, 640, 3, 1, 1},
    {"unet", "res 640->640 @32", 2, 32, 32, 640, 640, 3, 1, 1},
    {"unet", "short 1x1 320->640 @32", 2, 32, 32, 320, 640, 1, 1, 0},
    {"unet", "proj 1x1 640 @32", 2, 32, 32, 640, 640, 1, 1, 0},
    {"unet", "down s2 640 @32", 2, 32, 32, 640, 640, 3, 2, 1},
    {"unet", "res 640->1280 @16", 2, 16, 16, 640, 1280, 3, 1, 1},
    {"unet", "res 1280->1280 @16", 2, 16, 16, 1280, 1280, 3, 1, 1},
    {"unet", "short 1x1 640->1280 @16", 2, 16, 16, 640, 1280, 1, 1, 0},
    {"unet", "proj 1x1 1280 @16", 2, 16, 16, 1280, 1280, 1, 1, 0},
    {"unet", "down s2 1280 @16", 2, 16, 16, 1280, 1280, 3, 2, 1},
    {"unet", "res 1280->1280 @8", 2, 8, 8, 1280, 1280, 3, 1, 1},
    {"unet", "proj 1x1 1280 @8", 2, 8, 8, 1280, 1280, 1, 1, 0},
    {"unet", "up res 2560->1280 @8", 2, 8, 8, 2560, 1280, 3, 1, 1},
    {"unet", "up short 1x1 2560->1280 @8", 2, 8, 8, 2560, 1280, 1, 1, 0},
    {"unet", "upsample conv 1280 @16", 2, 16, 16, 1280, 1280, 3, 1, 1},
    {"unet", "up res 2560->1280 @16", 2, 16, 16, 2560, 1280, 3, 1, 1},
    {"unet", "up res 1920->1280 @16", 2, 16, 16, 1920, 1280, 3, 1, 1},
    {"unet", "up short 1x1 2560->1280 @16", 2, 16, 16, 2560, 1280, 1, 1, 0},
    {"unet", "up short 1x1 1920->1280 @16", 2, 16, 16, 1920, 1280, 1, 1, 0},
    {"unet", "upsample conv 1280 @32", 2, 32, 32, 1280, 1280, 3, 1, 1},
    {"unet", "up res 1920->640 @32", 2, 32, 32, 1920, 640, 3, 1, 1},
    {"unet", "up res 1280->640 @32", 2, 32, 32, 1280, 640, 3, 1, 1},
    {"unet", "up res 960->640 @32", 2, 32, 32, 960, 640, 3, 1, 1},
    {"unet", "up short 1x1 1920->640 @32", 2, 32, 32, 1920, 640, 1, 1, 0},
    {"unet", "up short 1x1 1280->640 @32", 2, 32, 32, 1280, 640, 1, 1, 0},
    {"unet", "up short 1x1 960->640 @32", 2, 32, 32, 960, 640, 1, 1, 0},
    {"unet", "upsample conv 640 @64", 2, 64, 64, 640, 640, 3, 1, 1},
    {"unet", "up res 960->320 @64", 2, 64, 64, 960, 320, 3, 1, 1},
    {"unet", "up res 640->320 @64", 2, 64, 64, 640, 320, 3, 1, 1},
    {"unet", "up short 1x1 960->320 @64", 2, 64, 64, 960, 320, 1, 1, 0},
    {"unet", "up short 1x1 640->320 @64", 2, 64, 64, 640, 320, 1, 1, 0},
    {"unet", "conv_out 320->4 @64", 2, 64, 64, 320, 4, 3, 1, 1},
    // VAE decoder at 512x512 (latent 64x64), batch 1
    {"vae", "dec conv_in 4->512 @64", 1, 64, 64, 4, 512, 3, 1, 1},
    {"vae", "dec res 512 @64", 1, 64, 64, 512, 512, 3, 1, 1},
    {"vae", "dec res 512 @128", 1, 128, 128, 512, 512, 3, 1, 1},
    {"vae", "dec res 512 @256", 1, 256, 256, 512, 512, 3, 1, 1},
    {"vae", "dec res 512->256 @256", 1, 256, 256, 512, 256, 3, 1, 1},
    {"vae", "dec res 256 @256", 1, 256, 256, 256, 256, 3, 1, 1},
    {"vae", "dec short 1x1 512->256 @256", 1, 256, 256, 512, 256, 1, 1, 0},
    {"vae", "dec upsample conv 256 @512", 1, 512, 512, 256, 256, 3, 1, 1},
    {"vae", "dec res 256->128 @512", 1, 512, 512, 256, 128, 3, 1, 1},
    {"vae", "dec res 128 @512", 1, 512, 512, 128, 128, 3, 1, 1},
    {"vae", "dec short 1x1 256->128 @512", 1, 512, 512, 256, 128, 1, 1, 0},
    {"vae", "dec conv_out 128->3 @512", 1, 512, 512, 128, 3, 3, 1, 1},
    // VAE encoder: image conv_in and the right/bottom-padded stride-2 downsamples
    {"vae", "enc conv_in 3->128 @512", 1, 512, 512, 3, 128, 3, 1, 1},
    {"vae", "enc down s2 128 @512", 1, 512, 512, 128, 128, 3, 2, -1},
    {"vae", "enc down s2 256 @256", 1, 256, 256, 256, 256, 3, 2, -1},
    {"vae", "enc down s2 512 @128", 1, 128, 128, 512, 512, 3, 2, -1},
    // IResNet-100 at 112x112, batch 32 (block: 3x3 s1 in->out, 3x3 stride s out->out, 1x1 s shortcut)
    {"iresnet", "conv_in 3->64 @112", 32, 112, 112, 3, 64, 3, 1, 1},
    {"iresnet", "s1 conv1 64 @112", 32, 112, 112, 64, 64, 3, 1, 1},
    {"iresnet", "s1 conv2 s2 64 @112", 32, 112, 112, 64, 64, 3, 2, 1},
    {"iresnet", "s1 short 1x1 s2 64 @112", 32, 112, 112, 64, 64, 1, 2, 0},
    {"iresnet", "s1 64 @56", 32, 56, 56, 64, 64, 3, 1, 1},
    {"iresnet", "s2 conv1 64->128 @56", 32, 56, 56, 64, 128, 3, 1, 1},
    {"iresnet", "s2 conv2 s2 128 @56", 32, 56, 56, 128, 128, 3, 2, 1},
    {"iresnet", "s2 short 1x1 s2 64->128", 32, 56, 56, 64, 128, 1, 2, 0},
    {"iresnet", "s2 128 @28", 32, 28, 28, 128, 128, 3, 1, 1},
    {"iresnet", "s3 conv1 128->256 @28", 32, 28, 28, 128, 256, 3, 1, 1},
    {"iresnet", "s3 conv2 s2 256 @28", 32, 28, 28, 256, 256, 3, 2, 1},
    {"iresnet", "s3 short 1x1 s2 128->256", 32, 28, 28, 128, 256, 1, 2, 0},
    {"iresnet", "s3 256 @14", 32, 14, 14, 256, 256, 3, 1, 1},
    {"iresnet", "s4 conv1 256->512 @14", 32, 14, 14, 256, 512, 3, 1, 1},
    {"iresnet", "s4 conv2 s2 512 @14", 32, 14, 14, 512, 512, 3, 2, 1},
    {"iresnet", "s4 short 1x1 s2 256->512", 32, 14, 14, 256, 512, 1, 2, 0},
    {"iresnet", "s4 512 @7", 32, 7, 7, 512, 512, 3, 1, 1},
};

static void bench_conv_paths(void) {
    static const char *const pass_name[3] = {"fwd", "bwd-data", "bwd-wgt"};
    enum { NP = 4 };
    static const char *const paths[NP] = {"tc", "cudnn", "im2col", "cudnn-graph"};
    const int have_dnn = cuda_conv2d_have_cudnn();
    // geometric means of cuDNN time / tc time: UNet 3x3 forward, UNet 3x3 backward (both passes)
    double lg_fwd = 0, lg_bwd = 0;
    int n_fwd = 0, n_bwd = 0;
    printf("# conv paths (bf16; cuDNN %s): ms and TFLOP/s per path, tc/cudnn = cudnn ms / tc ms, %%pk = tc vs bf16 peak\n",
           have_dnn ? "compiled in" : "not built");
    for (size_t i = 0; i < sizeof g_conv_shapes / sizeof g_conv_shapes[0]; i++) {
        const ConvBenchShape *cb = &g_conv_shapes[i];
        char name[96];
        snprintf(name, sizeof name, "conv %s %s", cb->net, cb->what);
        if (!selected(name)) continue;
        const int p = cb->K == 3 ? (cb->pad != 0) : 0;
        Conv2dShape s = {.B = cb->B, .H = cb->H, .W = cb->W, .Cin = cb->Cin, .Cout = cb->Cout, .KH = cb->K,
                         .KW = cb->K, .sh = cb->stride, .sw = cb->stride, .pt = cb->pad < 0 ? 0 : p, .pb = p,
                         .pl = cb->pad < 0 ? 0 : p, .pr = p};
        const int Ho = (s.H + s.pt + s.pb - s.KH) / s.sh + 1, Wo = (s.W + s.pl + s.pr - s.KW) / s.sw + 1;
        const size_t nx = (size_t)s.B * s.H * s.W * s.Cin, ny = (size_t)s.B * Ho * Wo * s.Cout;
        const size_t nw = (size_t)s.Cout * s.KH * s.KW * s.Cin;
        const double flops = 2.0 * s.B * Ho * Wo * (double)s.Cout * s.KH * s.KW * s.Cin;
        ConvPathCtx c = {.s = s};
        c.x = dbuf(nx, DT_BF16), c.w = dbuf(nw, DT_BF16), c.b = dbuf(s.Cout, DT_BF16);
        c.y = dbuf(ny, DT_BF16), c.dy = dbuf(ny, DT_BF16), c.dx = dbuf(nx, DT_BF16);
        c.dw = dbuf(nw, DT_F32);
        const int dnn_ok = have_dnn && s.pt == s.pb && s.pl == s.pr;
        char shape[64];
        snprintf(shape, sizeof shape, "[%d,%dx%d,%d]->%d %dx%d s%d", s.B, s.H, s.W, s.Cin, s.Cout, s.KH, s.KW, s.sh);
        for (int which = 0; which < 3; which++) {
            c.which = which;
            double ms[NP] = {-1, -1, -1, -1};
            const char *err = NULL;
            for (int pi = 0; pi < NP; pi++) {
                if (pi == 1 && !dnn_ok) continue;
                if (pi == 3 && !cuda_cudnn_conv_available(DT_BF16, &s, which, NULL)) continue;
                cuda_conv2d_force(paths[pi]);
                const char *e = NULL;
                ms[pi] = time_ms(conv_path_run, &c, 0, &e);
                if (ms[pi] < 0) err = e, g_failed = 1;
            }
            cuda_conv2d_force("auto");
            if (conv_path_run(&c) != 0 || dev_sync() != 0) err = "auto failed", g_failed = 1;
            const char *pick = cuda_conv2d_path(&s, which);
            cuda_conv2d_force(NULL);
            char cols[NP][48];
            for (int pi = 0; pi < NP; pi++) {
                if (ms[pi] < 0)
                    snprintf(cols[pi], sizeof cols[pi], "%-6s %8s %6s", paths[pi], "n/a", "");
                else
                    snprintf(cols[pi], sizeof cols[pi], "%-6s %8.4f %6.1f", paths[pi], ms[pi],
                             flops / (ms[pi] * 1e-3) / 1e12);
            }
            char ratio[16] = "   n/a";
            const double dnn = ms[1] > 0 && (ms[3] < 0 || ms[1] <= ms[3]) ? ms[1] : ms[3];  // the faster cuDNN
            if (ms[0] > 0 && dnn > 0) {
                snprintf(ratio, sizeof ratio, "%6.2f", dnn / ms[0]);
                if (!strcmp(cb->net, "unet") && s.KH == 3) {
                    if (which == 0) lg_fwd += log(dnn / ms[0]), n_fwd++;
                    else lg_bwd += log(dnn / ms[0]), n_bwd++;
                }
            }
            const double pk = ms[0] > 0 ? 100.0 * flops / (ms[0] * 1e-3) / 1e12 / g_bf16_tflops : 0.0;
            printf("%-40s %-28s %-8s | %s | %s | %s | %s | tc/cudnn %s | %5.1f%%pk | auto %s%s%s\n", name, shape,
                   pass_name[which], cols[0], cols[1], cols[3], cols[2], ratio, pk, pick, err ? " ERROR " : "",
                   err ? err : "");
            fflush(stdout);
        }
        dev_free(c.x), dev_free(c.w), dev_free(c.b), dev_free(c.y), dev_free(c.dy), dev_free(c.dx), dev_free(c.dw);
    }
    if (n_fwd) printf("# UNet 3x3 fwd: cuDNN/tc time ratio, geometric mean %.3f (target >= 0.8)\n", exp(lg_fwd / n_fwd));
    if (n_bwd) printf("# UNet 3x3 bwd: cuDNN/tc time ratio, geometric mean %.3f (target >= 0.7)\n", exp(lg_bwd / n_bwd));
}

int main(int argc, char **argv) {
    if (argc > 1) g_iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : 20;
    if (argc > 2) g_filter = argv[2];
    if (dev_init(0) != 0) {
        fprintf(stderr, "bench_cuda: %s\n", a2f_last_error());
        return 2;
    }
    char desc[256];
    dev_describe(desc, sizeof desc);
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const char *dsrc, *fsrc;
    g_dram_gbs = dram_peak_gbs(prop.name, &dsrc);
    g_bf16_tflops = bf16_peak_tflops(prop.name, &fsrc);
    int dev = 0, l2 = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
    g_flush_bytes = (size_t)(l2 > 0 ? 2 * l2 : 128 << 20);
    g_flush = dev_malloc(g_flush_bytes);
    if (!g_flush) {
        fprintf(stderr, "bench_cuda: %s\n", a2f_last_error());
        return 1;
    }
    CK(cudaEventCreate(&g_ev0));
    CK(cudaEventCreate(&g_ev1));
    printf("# bench_cuda: %s; L2 %.0f MiB; DRAM peak %.0f GB/s (%s); bf16 dense peak %.0f TFLOP/s (%s); median of %d\n",
           desc, l2 / 1048576.0, g_dram_gbs, dsrc, g_bf16_tflops, fsrc, g_iters);
    bench_memory_bound(2, "B2");
    bench_memory_bound(32, "B32");
    bench_optimizer();
    bench_gemm();
    bench_conv_attention();
    bench_conv_paths();
    bench_attention();
    cudaEventDestroy(g_ev0);
    cudaEventDestroy(g_ev1);
    dev_free(g_flush);
    return g_failed;
}
