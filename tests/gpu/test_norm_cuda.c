// test_norm_cuda.c: the CUDA GroupNorm / LayerNorm / BatchNorm kernels
// (kernels/cuda/norm.cu) against the CPU reference ops (kernels/cpu/norm.c),
// forward and backward, f32 and bf16, several shapes (odd channel counts that
// take the scalar path, multi-chunk reductions, offset inputs), plus
// run-to-run determinism of every cross-block reduction.
//
// Tolerances (|got - want| <= atol + rtol |want|):
//  - f32 outputs: the GPU sums in fp32 in a different order than the CPU
//    (which sums in double), so statistics carry a few fp32 ulps
//    (rtol 1e-5); normalised outputs are O(1..5) -> atol 2e-5.
//  - bf16 outputs: inputs are rounded to bf16 on the host first, so both
//    sides compute from identical values; the GPU rounds its fp32 result once
//    to bf16: half an ulp = 2^-9 relative, rtol = 2^-8 covers that plus the
//    fp32 noise; the same atol as f32 for values near zero.
//  - float statistics (mean, rstd, running stats) are fp32 in both dtypes:
//    rtol 2e-5, atol 1e-5 (inputs with |mean| = 30 lose ~30 * 2^-24 in fp32).
//  - float parameter gradients (dgamma, dbeta) are sums of n terms of size
//    O(1): fp32 summation in short runs plus fixed-order partial sums gives an
//    error far below 2e-7 * n (a few eps * n); a dropped or doubled term would
//    be off by O(0.1..1), far above it.
//  - dx (T): each element's fp32 error is a few ulps of its O(1..10) terms
//    (rstd * (dxhat - mean dxhat - xhat mean(dxhat xhat))) -> atol 5e-5 f32;
//    bf16 adds the one output rounding (2^-8 relative).
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/norm.h"
#include "../test.h"
#include "gpu_test.h"

// ---------------------------------------------------------------- helpers

static double rtol_t(DType dt) { return dt == DT_BF16 ? dtype_eps(dt) : 1e-5; }
static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

static const DType DTS[2] = {DT_F32, DT_BF16};

// ---------------------------------------------------------------- GroupNorm

typedef struct {
    int B, HW, C, G, silu, affine;
    float offset;
    int chunk;  // cuda_norm_set_chunk_rows (0 = automatic)
} GNCase;

static void gn_case(DType dt, const GNCase *k, uint64_t seed) {
    const int B = k->B, HW = k->HW, C = k->C, G = k->G;
    const size_t n = (size_t)B * HW * C, ng = (size_t)B * G;
    const float eps = 1e-5f;
    char what[160];
    uint64_t st = seed;
    float *x = hrand_offset(n, 1.0f, k->offset, &st, dt);
    float *gamma = k->affine ? hrand_offset(C, 0.5f, 1.0f, &st, dt) : NULL;
    float *beta = k->affine ? hrand(C, 0.5f, &st, dt) : NULL;
    float *y = hnew(n), *mean = hnew(ng), *rstd = hnew(ng);
    groupnorm_fwd(y, mean, rstd, x, gamma, beta, B, HW, C, G, eps, k->silu);

    cuda_norm_set_chunk_rows(k->chunk);
    void *dx_ = gpu_put(x, n, dt);
    void *dg = gamma ? gpu_put(gamma, C, dt) : NULL, *db = beta ? gpu_put(beta, C, dt) : NULL;
    void *dy_ = gpu_fill(n, dt, 0.0f);
    float *dm = gpu_fill(ng, DT_F32, 0.0f), *dr = gpu_fill(ng, DT_F32, 0.0f);
    if (!gpu_ok(cuda_groupnorm_fwd(dt, dy_, dm, dr, dx_, dg, db, B, HW, C, G, eps, k->silu, dev_stream()),
                "groupnorm_fwd"))
        goto done;
    snprintf(what, sizeof what, "groupnorm_fwd %s B=%d HW=%d C=%d G=%d silu=%d affine=%d off=%g chunk=%d y",
             dtype_name(dt), B, HW, C, G, k->silu, k->affine, k->offset, k->chunk);
    float *gy = gpu_get(dy_, n, dt);
    EXPECT_CLOSE(what, gy, y, n, 2e-5, rtol_t(dt));
    EXPECT_CLOSE("groupnorm_fwd mean", gpu_get(dm, ng, DT_F32), mean, ng, 1e-5, 2e-5);
    EXPECT_CLOSE("groupnorm_fwd rstd", gpu_get(dr, ng, DT_F32), rstd, ng, 1e-5, 2e-5);
    // determinism: a second run gives the same bits
    if (!gpu_ok(cuda_groupnorm_fwd(dt, dy_, dm, dr, dx_, dg, db, B, HW, C, G, eps, k->silu, dev_stream()),
                "groupnorm_fwd 2"))
        goto done;
    EXPECT(same(gpu_get(dy_, n, dt), gy, n * sizeof(float)), "%s: second run differs", what);

    // backward, from the CPU statistics; every gradient buffer starts non-zero (+=)
    {
        float *dy = hrand(n, 1.0f, &st, dt);
        float *dx0 = hrand(n, 1.0f, &st, dt);
        float *dg0 = hrand(C, 1.0f, &st, DT_F32), *db0 = hrand(C, 1.0f, &st, DT_F32);
        float *dxr = hcopy(dx0, n), *dgr = hcopy(dg0, C), *dbr = hcopy(db0, C);
        groupnorm_bwd(dxr, dgr, dbr, dy, x, mean, rstd, gamma, beta, B, HW, C, G, k->silu);
        void *ddy = gpu_put(dy, n, dt);
        float *dmean = gpu_put(mean, ng, DT_F32), *drstd = gpu_put(rstd, ng, DT_F32);
        float *gdx[2], *gdg[2], *gdb[2];
        for (int run = 0; run < 2; run++) {
            void *ddx = gpu_put(dx0, n, dt);
            float *ddg = gpu_put(dg0, C, DT_F32), *ddb = gpu_put(db0, C, DT_F32);
            if (!gpu_ok(cuda_groupnorm_bwd(dt, ddx, ddg, ddb, ddy, dx_, dmean, drstd, dg, db, B, HW, C, G, k->silu,
                                           dev_stream()),
                        "groupnorm_bwd"))
                goto done;
            gdx[run] = gpu_get(ddx, n, dt);
            gdg[run] = gpu_get(ddg, C, DT_F32);
            gdb[run] = gpu_get(ddb, C, DT_F32);
        }
        snprintf(what, sizeof what, "groupnorm_bwd %s B=%d HW=%d C=%d G=%d silu=%d affine=%d", dtype_name(dt), B, HW,
                 C, G, k->silu, k->affine);
        const double asum = 2e-7 * (double)B * HW + 1e-5;
        EXPECT_CLOSE(what, gdx[0], dxr, n, 5e-5, rtol_t(dt));
        EXPECT_CLOSE("groupnorm_bwd dgamma", gdg[0], dgr, C, asum, 1e-5);
        EXPECT_CLOSE("groupnorm_bwd dbeta", gdb[0], dbr, C, asum, 1e-5);
        EXPECT(same(gdx[0], gdx[1], n * sizeof(float)) && same(gdg[0], gdg[1], C * sizeof(float)) &&
                   same(gdb[0], gdb[1], C * sizeof(float)),
               "%s: second run differs", what);
        // dx only (NULL parameter gradients) gives the same dx
        void *ddx = gpu_put(dx0, n, dt);
        if (!gpu_ok(cuda_groupnorm_bwd(dt, ddx, NULL, NULL, ddy, dx_, dmean, drstd, dg, db, B, HW, C, G, k->silu,
                                       dev_stream()),
                    "groupnorm_bwd dx only"))
            goto done;
        EXPECT(same(gpu_get(ddx, n, dt), gdx[0], n * sizeof(float)), "%s: dx-only run differs", what);
    }
done:
    cuda_norm_set_chunk_rows(0);
    gpu_free_all();
}

TEST(cuda_groupnorm) {
    if (!gpu_ready()) return;
    static const GNCase cases[] = {
        {1, 1, 4, 2, 0, 1, 0.0f, 0},      // one position: statistics over Cg = 2 values
        {2, 7, 12, 3, 1, 1, 0.0f, 0},     // f32 vector path, bf16 scalar (12 % 8)
        {3, 5, 6, 3, 1, 0, 0.0f, 0},      // C = 6: scalar, no affine
        {2, 13, 40, 4, 0, 1, 30.0f, 0},   // |mean| >> std
        {2, 50, 64, 8, 1, 1, 0.0f, 7},    // 8 chunks of 7 rows per batch, partial last chunk
        {2, 40, 24, 8, 1, 1, -5.0f, 3},   // 14 chunks, Cg = 3
        {1, 2048, 64, 8, 1, 1, 0.0f, 0},  // automatic multi-block split of each (b, g): 64 chunks
        {1, 8, 1280, 32, 1, 1, 0.0f, 0},  // SD width: 320 f32 / 160 bf16 lanes, one row per item
        {1, 2, 1030, 5, 0, 1, 0.0f, 0},   // scalar, 1030 lanes > 1024 threads: items loop in the block
    };
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gn_case(DTS[d], &cases[i], 100 + i);
}

TEST(cuda_groupnorm_bad_shape) {
    if (!gpu_ready()) return;
    EXPECT(cuda_groupnorm_fwd(DT_F32, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 6, 4, 1e-5f, 0, dev_stream()) != 0,
           "C %% G != 0 must be rejected");
    EXPECT(cuda_groupnorm_fwd(DT_F16, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 8, 4, 1e-5f, 0, dev_stream()) != 0,
           "f16 is not supported");
}

// ---------------------------------------------------------------- LayerNorm

typedef struct {
    int N, C, affine;
    float offset;
    int chunk;
} LNCase;

static void ln_case(DType dt, const LNCase *k, uint64_t seed) {
    const int N = k->N, C = k->C;
    const size_t n = (size_t)N * C;
    const float eps = 1e-5f;
    char what[160];
    uint64_t st = seed;
    float *x = hrand_offset(n, 1.0f, k->offset, &st, dt);
    float *gamma = k->affine ? hrand_offset(C, 0.5f, 1.0f, &st, dt) : NULL;
    float *beta = k->affine ? hrand(C, 0.5f, &st, dt) : NULL;
    float *y = hnew(n), *mean = hnew(N), *rstd = hnew(N);
    layernorm_fwd(y, mean, rstd, x, gamma, beta, N, C, eps);

    cuda_norm_set_chunk_rows(k->chunk);
    void *dx_ = gpu_put(x, n, dt);
    void *dg = gamma ? gpu_put(gamma, C, dt) : NULL, *db = beta ? gpu_put(beta, C, dt) : NULL;
    void *dy_ = gpu_fill(n, dt, 0.0f);
    float *dm = gpu_fill(N, DT_F32, 0.0f), *dr = gpu_fill(N, DT_F32, 0.0f);
    if (!gpu_ok(cuda_layernorm_fwd(dt, dy_, dm, dr, dx_, dg, db, N, C, eps, dev_stream()), "layernorm_fwd"))
        goto done;
    snprintf(what, sizeof what, "layernorm_fwd %s N=%d C=%d affine=%d off=%g y", dtype_name(dt), N, C, k->affine,
             k->offset);
    EXPECT_CLOSE(what, gpu_get(dy_, n, dt), y, n, 2e-5, rtol_t(dt));
    EXPECT_CLOSE("layernorm_fwd mean", gpu_get(dm, N, DT_F32), mean, N, 1e-5, 2e-5);
    EXPECT_CLOSE("layernorm_fwd rstd", gpu_get(dr, N, DT_F32), rstd, N, 1e-5, 2e-5);
    {
        float *dy = hrand(n, 1.0f, &st, dt);
        float *dx0 = hrand(n, 1.0f, &st, dt);
        float *dg0 = hrand(C, 1.0f, &st, DT_F32), *db0 = hrand(C, 1.0f, &st, DT_F32);
        float *dxr = hcopy(dx0, n), *dgr = hcopy(dg0, C), *dbr = hcopy(db0, C);
        layernorm_bwd(dxr, dgr, dbr, dy, x, mean, rstd, gamma, N, C);
        void *ddy = gpu_put(dy, n, dt);
        float *dmean = gpu_put(mean, N, DT_F32), *drstd = gpu_put(rstd, N, DT_F32);
        float *gdx[2], *gdg[2], *gdb[2];
        for (int run = 0; run < 2; run++) {
            void *ddx = gpu_put(dx0, n, dt);
            float *ddg = gpu_put(dg0, C, DT_F32), *ddb = gpu_put(db0, C, DT_F32);
            if (!gpu_ok(cuda_layernorm_bwd(dt, ddx, ddg, ddb, ddy, dx_, dmean, drstd, dg, N, C, dev_stream()),
                        "layernorm_bwd"))
                goto done;
            gdx[run] = gpu_get(ddx, n, dt);
            gdg[run] = gpu_get(ddg, C, DT_F32);
            gdb[run] = gpu_get(ddb, C, DT_F32);
        }
        snprintf(what, sizeof what, "layernorm_bwd %s N=%d C=%d affine=%d", dtype_name(dt), N, C, k->affine);
        const double asum = 2e-7 * (double)N + 1e-5;
        // rstd up to 1/sqrt(eps) for C = 1 (zero variance): scale dx's atol by it
        double amax = 5e-5;
        for (int r = 0; r < N; r++) amax = A2F_MAX(amax, 5e-5 * rstd[r] / 3.0);
        EXPECT_CLOSE(what, gdx[0], dxr, n, amax, rtol_t(dt));
        EXPECT_CLOSE("layernorm_bwd dgamma", gdg[0], dgr, C, asum, 1e-5);
        EXPECT_CLOSE("layernorm_bwd dbeta", gdb[0], dbr, C, asum, 1e-5);
        EXPECT(same(gdx[0], gdx[1], n * sizeof(float)) && same(gdg[0], gdg[1], C * sizeof(float)) &&
                   same(gdb[0], gdb[1], C * sizeof(float)),
               "%s: second run differs", what);
    }
done:
    cuda_norm_set_chunk_rows(0);
    gpu_free_all();
}

TEST(cuda_layernorm) {
    if (!gpu_ready()) return;
    static const LNCase cases[] = {
        {1, 1, 1, 0.0f, 0},     // zero variance
        {3, 7, 1, 0.0f, 0},     // scalar path
        {5, 13, 0, 0.0f, 0},    // scalar, no affine
        {4, 320, 1, 0.0f, 0},   // registers: 2 (bf16) / 4 (f32) vectors per lane
        {3, 768, 1, 20.0f, 0},  // CLIP width, |mean| >> std
        {2, 1280, 1, 0.0f, 0},  // widest UNet transformer
        {2, 2056, 1, 0.0f, 0},  // f32: too wide for the register cache (uncached vector path)
        {1, 4104, 1, 0.0f, 0},  // bf16 uncached too
        {70, 64, 1, 0.0f, 0},   // several dgamma chunks (automatic)
        {70, 24, 1, 0.0f, 9},   // 8 chunks of 9 rows
    };
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) ln_case(DTS[d], &cases[i], 200 + i);
}

// ---------------------------------------------------------------- BatchNorm

typedef struct {
    int N, C, affine;
    float offset;
    int chunk;
} BNCase;

static void bn_case(DType dt, const BNCase *k, uint64_t seed) {
    const int N = k->N, C = k->C;
    const size_t n = (size_t)N * C;
    const float eps = 1e-5f, mom = 0.1f;
    char what[160];
    uint64_t st = seed;
    float *x = hrand_offset(n, 1.0f, k->offset, &st, dt);
    float *gamma = k->affine ? hrand_offset(C, 0.5f, 1.0f, &st, dt) : NULL;
    float *beta = k->affine ? hrand(C, 0.5f, &st, dt) : NULL;
    float *rm = hrand(C, 1.0f, &st, DT_F32), *rv = hnew(C);
    test_fill_uniform(rv, C, 0.5f, 2.0f, &st);
    float *dy = hrand(n, 1.0f, &st, dt);
    float *dx0 = hrand(n, 1.0f, &st, dt);
    float *dg0 = hrand(C, 1.0f, &st, DT_F32), *db0 = hrand(C, 1.0f, &st, DT_F32);
    const double asum = 2e-7 * (double)N + 1e-5;

    cuda_norm_set_chunk_rows(k->chunk);
    void *dxin = gpu_put(x, n, dt), *ddy = gpu_put(dy, n, dt);
    void *dg = gamma ? gpu_put(gamma, C, dt) : NULL, *db = beta ? gpu_put(beta, C, dt) : NULL;
    float *drm = gpu_put(rm, C, DT_F32), *drv = gpu_put(rv, C, DT_F32);
    void *dout = gpu_fill(n, dt, 0.0f);

    // inference forward / backward
    {
        float *y = hnew(n);
        batchnorm_fwd_infer(y, x, gamma, beta, rm, rv, N, C, eps);
        if (!gpu_ok(cuda_batchnorm_fwd_infer(dt, dout, dxin, dg, db, drm, drv, N, C, eps, dev_stream()),
                    "batchnorm_fwd_infer"))
            goto done;
        snprintf(what, sizeof what, "batchnorm_fwd_infer %s N=%d C=%d affine=%d", dtype_name(dt), N, C, k->affine);
        EXPECT_CLOSE(what, gpu_get(dout, n, dt), y, n, 2e-5, rtol_t(dt));

        float *dxr = hcopy(dx0, n), *dgr = hcopy(dg0, C), *dbr = hcopy(db0, C);
        batchnorm_bwd_infer(dxr, dgr, dbr, dy, x, gamma, rm, rv, N, C, eps);
        void *ddx = gpu_put(dx0, n, dt);
        float *ddg = gpu_put(dg0, C, DT_F32), *ddb = gpu_put(db0, C, DT_F32);
        if (!gpu_ok(cuda_batchnorm_bwd_infer(dt, ddx, ddg, ddb, ddy, dxin, dg, drm, drv, N, C, eps, dev_stream()),
                    "batchnorm_bwd_infer"))
            goto done;
        snprintf(what, sizeof what, "batchnorm_bwd_infer %s N=%d C=%d affine=%d", dtype_name(dt), N, C, k->affine);
        EXPECT_CLOSE(what, gpu_get(ddx, n, dt), dxr, n, 5e-5, rtol_t(dt));
        EXPECT_CLOSE("batchnorm_bwd_infer dgamma", gpu_get(ddg, C, DT_F32), dgr, C, asum, 1e-5);
        EXPECT_CLOSE("batchnorm_bwd_infer dbeta", gpu_get(ddb, C, DT_F32), dbr, C, asum, 1e-5);
    }
    // training forward (twice from the same running stats: determinism) / backward
    {
        float *y = hnew(n), *mean = hnew(C), *rstd = hnew(C);
        float *rmr = hcopy(rm, C), *rvr = hcopy(rv, C);
        batchnorm_fwd_train(y, mean, rstd, rmr, rvr, x, gamma, beta, N, C, eps, mom);
        float *gy[2], *gm[2], *gr[2], *grm[2], *grv[2];
        for (int run = 0; run < 2; run++) {
            float *dm = gpu_fill(C, DT_F32, 0.0f), *dr = gpu_fill(C, DT_F32, 0.0f);
            float *drm2 = gpu_put(rm, C, DT_F32), *drv2 = gpu_put(rv, C, DT_F32);
            if (!gpu_ok(cuda_batchnorm_fwd_train(dt, dout, dm, dr, drm2, drv2, dxin, dg, db, N, C, eps, mom,
                                                 dev_stream()),
                        "batchnorm_fwd_train"))
                goto done;
            gy[run] = gpu_get(dout, n, dt);
            gm[run] = gpu_get(dm, C, DT_F32);
            gr[run] = gpu_get(dr, C, DT_F32);
            grm[run] = gpu_get(drm2, C, DT_F32);
            grv[run] = gpu_get(drv2, C, DT_F32);
        }
        snprintf(what, sizeof what, "batchnorm_fwd_train %s N=%d C=%d affine=%d off=%g", dtype_name(dt), N, C,
                 k->affine, k->offset);
        EXPECT_CLOSE(what, gy[0], y, n, 2e-5, rtol_t(dt));
        EXPECT_CLOSE("batchnorm_fwd_train mean", gm[0], mean, C, 1e-5, 2e-5);
        EXPECT_CLOSE("batchnorm_fwd_train rstd", gr[0], rstd, C, 1e-5, 2e-5);
        EXPECT_CLOSE("batchnorm_fwd_train run_mean", grm[0], rmr, C, 1e-5, 2e-5);
        EXPECT_CLOSE("batchnorm_fwd_train run_var", grv[0], rvr, C, 1e-5, 2e-5);
        EXPECT(same(gy[0], gy[1], n * sizeof(float)) && same(gm[0], gm[1], C * sizeof(float)) &&
                   same(gr[0], gr[1], C * sizeof(float)) && same(grv[0], grv[1], C * sizeof(float)),
               "%s: second run differs", what);

        float *dxr = hcopy(dx0, n), *dgr = hcopy(dg0, C), *dbr = hcopy(db0, C);
        batchnorm_bwd_train(dxr, dgr, dbr, dy, x, mean, rstd, gamma, N, C);
        float *dmean = gpu_put(mean, C, DT_F32), *drstd = gpu_put(rstd, C, DT_F32);
        float *gdx[2], *gdg[2], *gdb[2];
        for (int run = 0; run < 2; run++) {
            void *ddx = gpu_put(dx0, n, dt);
            float *ddg = gpu_put(dg0, C, DT_F32), *ddb = gpu_put(db0, C, DT_F32);
            if (!gpu_ok(cuda_batchnorm_bwd_train(dt, ddx, ddg, ddb, ddy, dxin, dmean, drstd, dg, N, C, dev_stream()),
                        "batchnorm_bwd_train"))
                goto done;
            gdx[run] = gpu_get(ddx, n, dt);
            gdg[run] = gpu_get(ddg, C, DT_F32);
            gdb[run] = gpu_get(ddb, C, DT_F32);
        }
        snprintf(what, sizeof what, "batchnorm_bwd_train %s N=%d C=%d affine=%d", dtype_name(dt), N, C, k->affine);
        EXPECT_CLOSE(what, gdx[0], dxr, n, 5e-5, rtol_t(dt));
        EXPECT_CLOSE("batchnorm_bwd_train dgamma", gdg[0], dgr, C, asum, 1e-5);
        EXPECT_CLOSE("batchnorm_bwd_train dbeta", gdb[0], dbr, C, asum, 1e-5);
        EXPECT(same(gdx[0], gdx[1], n * sizeof(float)) && same(gdg[0], gdg[1], C * sizeof(float)) &&
                   same(gdb[0], gdb[1], C * sizeof(float)),
               "%s: second run differs", what);
    }
done:
    cuda_norm_set_chunk_rows(0);
    gpu_free_all();
}

TEST(cuda_batchnorm) {
    if (!gpu_ready()) return;
    static const BNCase cases[] = {
        {2, 3, 1, 0.0f, 0},      // smallest training batch
        {7, 5, 0, 0.0f, 0},      // scalar path, no affine
        {64, 16, 1, 10.0f, 0},   // vector path, |mean| >> std, two chunks
        {300, 24, 1, 0.0f, 13},  // 24 chunks of 13 rows
        {40, 1280, 1, 0.0f, 0},  // wide: one row per item
    };
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bn_case(DTS[d], &cases[i], 300 + i);
    EXPECT(cuda_batchnorm_fwd_train(DT_F32, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 1e-5f, 0.1f,
                                    dev_stream()) != 0,
           "training with N = 1 must be rejected");
}
