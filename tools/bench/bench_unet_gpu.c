// bench_unet_gpu.c: the whole SD1.5 UNet on the GPU (CUDA backend, bf16 with fp32
// accumulation), the C side of `tools/bench/bench_unet_torch.py unet ... --device cuda`
// (diffusers in bf16 with PyTorch's SDPA, same shapes and run counts):
//
//   bench_unet_gpu CONFIG.json LATENT B [RUNS]
//
// Random weights (timing does not depend on them), sample [B, LATENT, LATENT, 4],
// context [B, 77, cross_dim], timestep 999. Two cases:
//   infer  one unet_f: a denoising step at batch B (B = 2 is one classifier-free step)
//   train  unet_f in training mode + unet_b with every parameter gradient (the step
//          of fine-tuning without the optimizer; no gradient checkpointing)
// Each case runs 2 warm-up steps (the first call of each conv / attention shape times
// the dispatch's candidates), then RUNS (default 10) steps each timed alone with CUDA
// events; prints every step, the median in ms, TFLOP/s (803.3 GFLOP per sample
// forward at 64x64, training 3x that) and the activation stack's high-water mark.
// A2F_CONV / A2F_ATTN force kernel paths as everywhere.
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/arena.h"
#include "../../kernels/common.h"
#include "../../kernels/rng.h"
#include "../../kernels/cuda/backend_cuda.h"
#include "../../kernels/cuda/device.h"
#include "../../nn/unet.h"

#define MAX_RUNS 64

typedef struct {
    Ctx c;
    Weights W;
    UNet *m;
    void *x, *ehs, *dy, *dx, *dehs;
    float *t;
    int B, H, Nc, train;
    size_t nout;
} Case;

static int step(Case *k) {
    const size_t mark_a = arena_mark(k->c.act), mark_g = arena_mark(k->c.grad);
    void *out = nn_push(&k->c, k->nout);
    if (!out) return -1;
    UNetSaved *sv = k->train ? xcalloc(1, sizeof *sv) : NULL;
    int rc = unet_f(&k->c, &k->W, k->m, out, k->x, k->t, k->ehs, k->B, k->H, k->H, k->Nc, sv);
    if (!rc && k->train) rc = unet_b(&k->c, &k->W, k->m, k->dx, k->dehs, k->dy, sv);
    free(sv);
    arena_reset(k->c.act, mark_a);  // LIFO: back to before the step
    arena_reset(k->c.grad, mark_g);
    return rc;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void *dev_randn(const Backend *be, size_t n, uint64_t seed) {
    float *h = xmalloc(n * sizeof(float));
    philox_fill_normal(h, n, seed, 0, 0.0f, 1.0f);
    void *tmp = xmalloc(n * 2), *d = be->alloc(n * 2);
    convert_dtype(tmp, DT_BF16, h, DT_F32, n);
    if (!d || be->upload(d, tmp, n * 2)) d = NULL;
    free(h), free(tmp);
    return d;
}

static int run_case(Case *k, const char *what, int runs, double gflop) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 2; i++)
        if (step(k) || dev_sync()) {
            fprintf(stderr, "bench_unet_gpu: %s warm-up: %s\n", what, a2f_last_error());
            return 1;
        }
    float ms[MAX_RUNS];
    printf("%s: steps (ms):", what);
    for (int r = 0; r < runs; r++) {
        cudaEventRecord(e0, dev_stream());
        int rc = step(k);
        cudaEventRecord(e1, dev_stream());
        if (rc || cudaEventSynchronize(e1) != cudaSuccess) {
            fprintf(stderr, "\nbench_unet_gpu: %s: %s\n", what, rc ? a2f_last_error() : "event failed");
            return 1;
        }
        cudaEventElapsedTime(&ms[r], e0, e1);
        printf(" %.2f", ms[r]);
    }
    qsort(ms, runs, sizeof ms[0], cmp_float);
    const double med = ms[runs / 2];
    printf("\nRESULT %s median_ms=%.3f fastest_ms=%.3f", what, med, ms[0]);
    if (gflop > 0) printf(" gflop=%.1f tflops=%.1f", gflop, gflop / med);
    printf(" act_peak_gib=%.2f\n", k->c.act->peak / 1073741824.0);
    fflush(stdout);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_unet_gpu CONFIG.json LATENT B [RUNS]\n");
        return 2;
    }
    const char *config = argv[1];
    const int latent = atoi(argv[2]), B = atoi(argv[3]);
    int runs = argc > 4 ? atoi(argv[4]) : 10;
    if (runs < 1 || runs > MAX_RUNS) runs = 10;
    if (latent <= 0 || latent % 8 || B <= 0) {
        fprintf(stderr, "bench_unet_gpu: LATENT must be a positive multiple of 8, B positive\n");
        return 2;
    }
    if (dev_init(0) != 0) {
        fprintf(stderr, "bench_unet_gpu: %s\n", a2f_last_error());
        return 1;
    }
    char desc[256];
    dev_describe(desc, sizeof desc);
    const Backend *be = cuda_backend();
    UNetConfig cfg;
    Case k = {.B = B, .H = latent, .Nc = 77};
    k.m = xcalloc(1, sizeof *k.m);
    params_init(&k.W.t);
    if (unet_config_load(&cfg, config) || unet_build(k.m, &k.W.t, &cfg) || weights_alloc(&k.W, be, DT_BF16, 1) ||
        weights_init_random(&k.W, 1, 0.02f) || be->memset(k.W.grad, 0, k.W.t.total * sizeof(float))) {
        fprintf(stderr, "bench_unet_gpu: %s\n", a2f_last_error());
        return 1;
    }
    // stacks: training keeps every activation (no checkpointing): ~3 GB per sample at
    // 64x64 in bf16 (nn/plan.c's estimate), with a wide margin
    const size_t per = (size_t)latent * latent / 4096 * ((size_t)6 << 30);
    if (nn_ctx_init(&k.c, be, DT_BF16, (size_t)B * per + (1u << 30), (size_t)B * per / 2 + (1u << 30))) {
        fprintf(stderr, "bench_unet_gpu: %s\n", a2f_last_error());
        return 1;
    }
    const size_t nx = (size_t)B * latent * latent * cfg.in_channels, ne = (size_t)B * k.Nc * cfg.cross_dim;
    k.nout = (size_t)B * latent * latent * cfg.out_channels;
    k.x = dev_randn(be, nx, 2), k.ehs = dev_randn(be, ne, 3), k.dy = dev_randn(be, k.nout, 4);
    k.dx = be->alloc(nx * 2), k.dehs = be->alloc(ne * 2), k.t = be->alloc(B * sizeof(float));
    float *t = xmalloc(B * sizeof(float));
    for (int b = 0; b < B; b++) t[b] = 999.0f;
    if (!k.x || !k.ehs || !k.dy || !k.dx || !k.dehs || !k.t || be->upload(k.t, t, B * sizeof(float)) ||
        be->memset(k.dx, 0, nx * 2) || be->memset(k.dehs, 0, ne * 2)) {
        fprintf(stderr, "bench_unet_gpu: %s\n", a2f_last_error());
        return 1;
    }
    free(t);
    printf("# bench_unet_gpu: %s; unet %s: %zu parameters, latent %dx%d, batch %d, bf16\n", desc, config, k.W.t.total,
           latent, latent, B);
    const int sd15 = cfg.channels[0] == 320 && latent == 64;
    char what[64];
    snprintf(what, sizeof what, "unet_infer_%dx%d_b%d", latent, latent, B);
    if (run_case(&k, what, runs, sd15 ? 803.3 * B : 0)) return 1;
    k.train = k.c.train = 1;
    snprintf(what, sizeof what, "unet_train_%dx%d_b%d", latent, latent, B);
    if (run_case(&k, what, runs, sd15 ? 3 * 803.3 * B : 0)) return 1;
    return 0;
}
