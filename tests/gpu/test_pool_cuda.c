// test_pool_cuda.c: the CUDA pooling kernels (kernels/cuda/pool.cu) against
// the CPU reference ops (kernels/cpu/pool.c), forward and backward, f32 and
// bf16, shapes with padding, ceil_mode, both count_include_pad settings,
// overlapping windows and channel counts that take the scalar path.
//
// Tolerances:
//  - max pool: y and argmax exact (the max is one of the inputs, the scan
//    order and tie rule are the CPU's). Backward: the gather adds the same dy
//    values in the CPU's (oh, ow) order in fp32 -> identical; bf16 rounds that
//    same fp32 value once, so it is compared with the rounded CPU result, exactly.
//  - avg pool: same summation order and the same 1/divisor in fp32; allowed a
//    few ulps anyway (rtol 1e-6, atol 1e-7) in case a compiler contracts
//    differently; bf16: the compared CPU value is rounded the same way, so up
//    to one bf16 ulp when the fp32 values straddle a rounding boundary (2^-8).
//  - global average pool / dsc: fp32 sums over HW of O(1) terms in a
//    different order than the CPU's double sum: a few eps * HW absolute
//    (2e-7 * HW + 1e-6), rtol 1e-5; bf16 outputs add one rounding (2^-8).
//  - elementwise (global pool backward, channel scale): one fp32 product (and
//    add), the same as the CPU -> rtol 1e-6; bf16 one output rounding.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/pool.h"
#include "../test.h"
#include "gpu_test.h"

static const DType DTS[2] = {DT_F32, DT_BF16};

// {B, H, W, C, KH, KW, sh, sw, ph, pw, ceil_mode, count_include_pad}
static const Pool2dShape SHAPES[] = {
    {2, 7, 7, 3, 3, 3, 2, 2, 1, 1, 0, 1},    // ResNet stem-like, scalar channels
    {1, 8, 9, 8, 2, 2, 2, 2, 0, 0, 0, 1},    // non-overlapping, vector path (f32 and bf16)
    {2, 6, 7, 5, 3, 3, 2, 2, 1, 1, 1, 0},    // ceil_mode, pad excluded from the divisor
    {1, 5, 5, 16, 3, 2, 1, 2, 1, 0, 1, 1},   // overlapping rows (stride 1), ceil_mode
    {3, 13, 4, 12, 4, 3, 3, 1, 2, 1, 1, 0},  // ceil_mode with a clipped last window
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},    // 1x1
    {2, 9, 9, 24, 3, 3, 2, 2, 1, 1, 1, 1},   // overlapping, vector path, ceil_mode
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static void shape_str(char *buf, size_t n, const char *op, DType dt, const Pool2dShape *s) {
    snprintf(buf, n, "%s %s B=%d H=%d W=%d C=%d k=%dx%d s=%dx%d p=%dx%d ceil=%d cip=%d", op, dtype_name(dt), s->B, s->H,
             s->W, s->C, s->KH, s->KW, s->sh, s->sw, s->ph, s->pw, s->ceil_mode, s->count_include_pad);
}

TEST(cuda_maxpool2d) {
    if (!gpu_ready()) return;
    char what[200];
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < NSHAPES; i++) {
            const DType dt = DTS[d];
            const Pool2dShape *s = &SHAPES[i];
            const size_t nx = (size_t)s->B * s->H * s->W * s->C;
            const size_t ny = (size_t)s->B * pool2d_out_h(s) * pool2d_out_w(s) * s->C;
            uint64_t st = 500 + i;
            float *x = hrand(nx, 1.0f, &st, dt);
            if (i == 3) x[5] = NAN;  // NaN propagates and wins its windows, as in PyTorch
            float *y = hnew(ny);
            int32_t *am = hnew_bytes(ny * sizeof(int32_t));
            maxpool2d_fwd(y, am, x, s);
            void *dx_ = gpu_put(x, nx, dt), *dy_ = gpu_fill(ny, dt, 0.0f);
            int32_t *dam = dev_malloc(ny * sizeof(int32_t));
            if (!gpu_ok(cuda_maxpool2d_fwd(dt, dy_, dam, dx_, s, dev_stream()), "maxpool2d_fwd")) {
                dev_free(dam);
                break;
            }
            shape_str(what, sizeof what, "maxpool2d_fwd", dt, s);
            float *gy = gpu_get(dy_, ny, dt);
            int32_t *gam = hnew_bytes(ny * sizeof(int32_t));
            EXPECT(dev_download(gam, dam, ny * sizeof(int32_t)) == 0, "download argmax");
            int bad = -1;
            for (size_t j = 0; j < ny && bad < 0; j++)
                if (gam[j] != am[j] || !(gy[j] == y[j] || (isnan(gy[j]) && isnan(y[j])))) bad = (int)j;
            EXPECT(bad < 0, "%s: element %d: y %g argmax %d, want %g %d", what, bad, bad >= 0 ? gy[bad] : 0.0,
                   bad >= 0 ? gam[bad] : 0, bad >= 0 ? y[bad] : 0.0, bad >= 0 ? am[bad] : 0);

            // backward: dx starts non-zero (+=)
            float *g = hrand(ny, 1.0f, &st, dt), *dx0 = hrand(nx, 1.0f, &st, dt);
            float *dxr = hcopy(dx0, nx);
            maxpool2d_bwd(dxr, g, am, s);
            round_through(dxr, nx, dt);
            void *ddx = gpu_put(dx0, nx, dt), *dg = gpu_put(g, ny, dt);
            if (gpu_ok(cuda_maxpool2d_bwd(dt, ddx, dg, dam, s, dev_stream()), "maxpool2d_bwd")) {
                shape_str(what, sizeof what, "maxpool2d_bwd", dt, s);
                EXPECT_CLOSE(what, gpu_get(ddx, nx, dt), dxr, nx, 0.0, 0.0);
            }
            dev_free(dam);
            gpu_free_all();
        }
}

TEST(cuda_avgpool2d) {
    if (!gpu_ready()) return;
    char what[200];
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < NSHAPES; i++) {
            const DType dt = DTS[d];
            const double rt = dt == DT_BF16 ? dtype_eps(dt) : 1e-6;
            const Pool2dShape *s = &SHAPES[i];
            const size_t nx = (size_t)s->B * s->H * s->W * s->C;
            const size_t ny = (size_t)s->B * pool2d_out_h(s) * pool2d_out_w(s) * s->C;
            uint64_t st = 600 + i;
            float *x = hrand(nx, 1.0f, &st, dt);
            float *y = hnew(ny);
            avgpool2d_fwd(y, x, s);
            round_through(y, ny, dt);
            void *dx_ = gpu_put(x, nx, dt), *dy_ = gpu_fill(ny, dt, 0.0f);
            if (!gpu_ok(cuda_avgpool2d_fwd(dt, dy_, dx_, s, dev_stream()), "avgpool2d_fwd")) break;
            shape_str(what, sizeof what, "avgpool2d_fwd", dt, s);
            EXPECT_CLOSE(what, gpu_get(dy_, ny, dt), y, ny, 1e-7, rt);

            float *g = hrand(ny, 1.0f, &st, dt), *dx0 = hrand(nx, 1.0f, &st, dt);
            float *dxr = hcopy(dx0, nx);
            avgpool2d_bwd(dxr, g, s);
            round_through(dxr, nx, dt);
            void *ddx = gpu_put(dx0, nx, dt), *dg = gpu_put(g, ny, dt);
            if (!gpu_ok(cuda_avgpool2d_bwd(dt, ddx, dg, s, dev_stream()), "avgpool2d_bwd")) break;
            shape_str(what, sizeof what, "avgpool2d_bwd", dt, s);
            EXPECT_CLOSE(what, gpu_get(ddx, nx, dt), dxr, nx, 1e-7, rt);
            gpu_free_all();
        }
    gpu_free_all();
}

TEST(cuda_pool2d_bad_shape) {
    if (!gpu_ready()) return;
    Pool2dShape s = {1, 4, 4, 3, 2, 2, 2, 2, 2, 0, 0, 1};  // pad > kernel / 2
    EXPECT(cuda_avgpool2d_fwd(DT_F32, NULL, NULL, &s, dev_stream()) != 0, "pad > k/2 must be rejected");
    s.ph = 0, s.KH = 9;  // window larger than the input
    EXPECT(cuda_maxpool2d_fwd(DT_F32, NULL, NULL, NULL, &s, dev_stream()) != 0, "k > H must be rejected");
}

// {B, HW, C}: scalar and vector channel counts; HW large enough for the chunked reduction.
static const int GSHAPES[][3] = {{1, 1, 1}, {2, 7, 3}, {3, 49, 64}, {2, 13, 40}, {1, 3000, 24}, {4, 600, 8}};
#define NGSHAPES ((int)(sizeof GSHAPES / sizeof GSHAPES[0]))

TEST(cuda_global_avgpool) {
    if (!gpu_ready()) return;
    char what[160];
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < NGSHAPES; i++) {
            const DType dt = DTS[d];
            const int B = GSHAPES[i][0], HW = GSHAPES[i][1], C = GSHAPES[i][2];
            const size_t nx = (size_t)B * HW * C, ny = (size_t)B * C;
            const double rt = dt == DT_BF16 ? dtype_eps(dt) : 1e-5;
            uint64_t st = 700 + i;
            float *x = hrand(nx, 1.0f, &st, dt);
            float *y = hnew(ny);
            global_avgpool_fwd(y, x, B, HW, C);
            void *dx_ = gpu_put(x, nx, dt), *dy_ = gpu_fill(ny, dt, 0.0f);
            float *gy[2];
            for (int run = 0; run < 2; run++) {
                if (!gpu_ok(cuda_global_avgpool_fwd(dt, dy_, dx_, B, HW, C, dev_stream()), "global_avgpool_fwd"))
                    goto done;
                gy[run] = gpu_get(dy_, ny, dt);
            }
            snprintf(what, sizeof what, "global_avgpool_fwd %s B=%d HW=%d C=%d", dtype_name(dt), B, HW, C);
            // a mean: the fp32 sum's error (a few eps * HW) divided by HW
            EXPECT_CLOSE(what, gy[0], y, ny, 1e-6, rt);
            EXPECT(memcmp(gy[0], gy[1], ny * sizeof(float)) == 0, "%s: second run differs", what);

            float *g = hrand(ny, 1.0f, &st, dt), *dx0 = hrand(nx, 1.0f, &st, dt);
            float *dxr = hcopy(dx0, nx);
            global_avgpool_bwd(dxr, g, B, HW, C);
            void *ddx = gpu_put(dx0, nx, dt), *dg = gpu_put(g, ny, dt);
            if (!gpu_ok(cuda_global_avgpool_bwd(dt, ddx, dg, B, HW, C, dev_stream()), "global_avgpool_bwd")) goto done;
            snprintf(what, sizeof what, "global_avgpool_bwd %s B=%d HW=%d C=%d", dtype_name(dt), B, HW, C);
            EXPECT_CLOSE(what, gpu_get(ddx, nx, dt), dxr, nx, 1e-7, dt == DT_BF16 ? dtype_eps(dt) : 1e-6);
            gpu_free_all();
        }
done:
    gpu_free_all();
}

TEST(cuda_channel_scale) {
    if (!gpu_ready()) return;
    char what[160];
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < NGSHAPES; i++) {
            const DType dt = DTS[d];
            const int B = GSHAPES[i][0], HW = GSHAPES[i][1], C = GSHAPES[i][2];
            const size_t nx = (size_t)B * HW * C, ns = (size_t)B * C;
            const double rt_e = dt == DT_BF16 ? dtype_eps(dt) : 1e-6;
            const double rt_s = dt == DT_BF16 ? dtype_eps(dt) : 1e-5;
            uint64_t st = 800 + i;
            float *x = hrand(nx, 1.0f, &st, dt), *sc = hrand(ns, 1.0f, &st, dt);
            float *y = hnew(nx);
            channel_scale_fwd(y, x, sc, B, HW, C);
            void *dx_ = gpu_put(x, nx, dt), *dsc_ = gpu_put(sc, ns, dt), *dy_ = gpu_fill(nx, dt, 0.0f);
            if (!gpu_ok(cuda_channel_scale_fwd(dt, dy_, dx_, dsc_, B, HW, C, dev_stream()), "channel_scale_fwd"))
                goto done;
            snprintf(what, sizeof what, "channel_scale_fwd %s B=%d HW=%d C=%d", dtype_name(dt), B, HW, C);
            EXPECT_CLOSE(what, gpu_get(dy_, nx, dt), y, nx, 1e-7, rt_e);

            float *g = hrand(nx, 1.0f, &st, dt), *dx0 = hrand(nx, 1.0f, &st, dt), *ds0 = hrand(ns, 1.0f, &st, dt);
            float *dxr = hcopy(dx0, nx), *dsr = hcopy(ds0, ns);
            channel_scale_bwd(dxr, dsr, g, x, sc, B, HW, C);
            void *dg = gpu_put(g, nx, dt);
            float *gdx[2], *gds[2];
            for (int run = 0; run < 2; run++) {
                void *ddx = gpu_put(dx0, nx, dt), *dds = gpu_put(ds0, ns, dt);
                if (!gpu_ok(cuda_channel_scale_bwd(dt, ddx, dds, dg, dx_, dsc_, B, HW, C, dev_stream()),
                            "channel_scale_bwd"))
                    goto done;
                gdx[run] = gpu_get(ddx, nx, dt);
                gds[run] = gpu_get(dds, ns, dt);
            }
            snprintf(what, sizeof what, "channel_scale_bwd %s B=%d HW=%d C=%d dx", dtype_name(dt), B, HW, C);
            EXPECT_CLOSE(what, gdx[0], dxr, nx, 1e-7, rt_e);
            snprintf(what, sizeof what, "channel_scale_bwd %s B=%d HW=%d C=%d dsc", dtype_name(dt), B, HW, C);
            EXPECT_CLOSE(what, gds[0], dsr, ns, 2e-7 * HW + 1e-6, rt_s);
            EXPECT(memcmp(gds[0], gds[1], ns * sizeof(float)) == 0, "%s: second run differs", what);
            // dsc only
            void *dds = gpu_put(ds0, ns, dt);
            if (!gpu_ok(cuda_channel_scale_bwd(dt, NULL, dds, dg, dx_, dsc_, B, HW, C, dev_stream()),
                        "channel_scale_bwd dsc only"))
                goto done;
            EXPECT(memcmp(gpu_get(dds, ns, dt), gds[0], ns * sizeof(float)) == 0, "%s: dsc-only run differs", what);
            gpu_free_all();
        }
done:
    gpu_free_all();
}
