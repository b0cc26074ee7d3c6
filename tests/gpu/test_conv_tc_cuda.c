// test_conv_tc_cuda.c: the tensor-core implicit-GEMM convolution (kernels/cuda/conv_tc.cu)
// forward (bias, fused residual), backward data and backward weight against conv2d_fwd/bwd
// of kernels/cpu/ops.h, and the conv2d dispatcher (kernels/cuda/conv2d.cu): paths forced
// to tc and im2col, auto = tc under the emulator, cuda_conv2d_path.
//
// Shapes: 3x3 and 1x1, stride 1 and 2, padding 1 / 0 / right-bottom only (VAE
// downsample), Cin 3 and 4 (scalar loader, channel axis padded to 8), 8, 24, 40, Cout 4, 5,
// 8, 24, 72 (not multiples of the 128 tile; 4 and 5 not multiples of 8: masked / scalar
// epilogue), odd H x W (9x7, 7x9), batch 2. Each shape runs with the automatic block tile
// and reduction split; some with a forced split of 3 (fp32 partials + ordered finish pass)
// and with each of the four block tiles; dw is computed twice from the same start and
// compared bit for bit (determinism).
//
// Tolerances: the inputs are bf16 values (rounded on the host), so every product is exact
// in fp32 and the two sides differ only by fp32 summation order and the output rounding.
//  - summation order: atol 2e-6 * (K + 1), K = reduction length (KH*KW*Cin for y,
//    KH*KW*Cout for dx, B*Ho*Wo for dw) for N(0,1) data: the rounding error of a K-term
//    fp32 sum of O(1) terms is ~ sqrt(K) * |partial sums| * 2^-24, far inside;
//  - y and dx are bf16: rounded once from the fp32 result (y = conv + bias + residual,
//    dx = dx0 + sum): half an ulp, rtol 2^-8 (dtype_eps), plus 1e-5;
//  - dw is float (dw0 + sum, no bf16 rounding): rtol 1e-5.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/conv2d.h"
#include "../../kernels/cuda/conv_tc.h"
#include "../test.h"
#include "gpu_test.h"


// B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr
static const Conv2dShape g_cases[] = {
    {2, 9, 7, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1},     // 0: 3x3 same, fast path
    {2, 9, 7, 24, 72, 3, 3, 1, 1, 1, 1, 1, 1},   // 1: Cout 72 (masked tile)
    {2, 9, 7, 40, 24, 3, 3, 2, 2, 1, 1, 1, 1},   // 2: stride 2, pad 1
    {2, 9, 7, 3, 8, 3, 3, 1, 1, 1, 1, 1, 1},     // 3: Cin 3 (conv_in, scalar loader)
    {2, 7, 9, 4, 24, 3, 3, 1, 1, 1, 1, 1, 1},    // 4: Cin 4 (UNet conv_in)
    {2, 9, 7, 24, 8, 3, 3, 2, 2, 0, 1, 0, 1},    // 5: VAE downsample: right/bottom pad only
    {2, 9, 7, 40, 72, 1, 1, 1, 1, 0, 0, 0, 0},   // 6: 1x1 shortcut
    {2, 9, 7, 16, 24, 1, 1, 2, 2, 0, 0, 0, 0},   // 7: 1x1 stride 2 (IResNet shortcut)
    {2, 7, 9, 24, 4, 3, 3, 1, 1, 1, 1, 1, 1},    // 8: Cout 4 (conv_out)
    {1, 7, 9, 8, 5, 3, 3, 1, 1, 0, 0, 0, 0},     // 9: Cout 5, no padding
    {2, 9, 7, 3, 24, 3, 3, 2, 2, 1, 1, 1, 1},    // 10: Cin 3, stride 2 (IResNet/SCRFD stem-like)
};
#define NCASES ((int)(sizeof g_cases / sizeof g_cases[0]))

// Runs case ci through the tc launchers (split 0 = automatic; tile -1 = automatic, else
// the block tile index of cuda_conv_tc_set_tile) against the CPU reference.
static void check_case(int ci, int split, int tile, uint64_t seed) {
    const Conv2dShape *s = &g_cases[ci];
    const DType dt = DT_BF16;
    uint64_t rng = seed;
    const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    const long kd = (long)s->KH * s->KW * s->Cin, P = (long)s->B * Ho * Wo;
    const size_t nx = (size_t)s->B * s->H * s->W * s->Cin, nw = (size_t)s->Cout * kd, ny = (size_t)P * s->Cout;
    char what[128];
    snprintf(what, sizeof what, "conv_tc case %d split %d tile %d (%dx%d s%d Cin %d Cout %d)", ci, split, tile, s->KH,
             s->KW, s->sh, s->Cin, s->Cout);
    float *x = rand_buf(nx, dt, &rng), *w = rand_buf(nw, dt, &rng), *bias = rand_buf(s->Cout, dt, &rng);
    float *res = rand_buf(ny, dt, &rng), *dy = rand_buf(ny, dt, &rng), *dx0 = rand_buf(nx, dt, &rng);
    float *dw0 = rand_buf(nw, DT_F32, &rng);
    void *d_x = gpu_put(x, nx, dt), *d_w = gpu_put(w, nw, dt), *d_b = gpu_put(bias, s->Cout, dt);
    void *d_res = gpu_put(res, ny, dt), *d_dy = gpu_put(dy, ny, dt);
    void *d_y = gpu_fill(ny, dt, NAN), *d_y2 = gpu_fill(ny, dt, NAN), *d_dx = gpu_put(dx0, nx, dt);
    float *d_dw = gpu_put(dw0, nw, DT_F32), *d_dw2 = gpu_put(dw0, nw, DT_F32);
    cuda_conv_tc_set_split(split);
    cuda_conv_tc_set_tile(tile);
    int ok = gpu_ok(cuda_conv_tc_fwd(d_y, d_x, d_w, d_b, d_res, s, dev_stream()), what) &&
             gpu_ok(cuda_conv_tc_fwd(d_y2, d_x, d_w, NULL, NULL, s, dev_stream()), what) &&
             gpu_ok(cuda_conv_tc_bwd_data(d_dx, d_dy, d_w, s, dev_stream()), what) &&
             gpu_ok(cuda_conv_tc_bwd_weight(d_dw, d_dy, d_x, s, dev_stream()), what) &&
             gpu_ok(cuda_conv_tc_bwd_weight(d_dw2, d_dy, d_x, s, dev_stream()), what);
    cuda_conv_tc_set_split(0);
    cuda_conv_tc_set_tile(-1);
    if (ok) {
        float *y = xmalloc(ny * sizeof(float)), *y2 = xmalloc(ny * sizeof(float));
        float *dx = copy_buf(dx0, nx), *dw = copy_buf(dw0, nw);
        conv2d_fwd(y, x, w, bias, s);
        for (size_t i = 0; i < ny; i++) y[i] += res[i];  // fused residual: y = conv + bias + res
        conv2d_fwd(y2, x, w, NULL, s);
        conv2d_bwd(dx, dw, NULL, dy, x, w, s);
        EXPECT_CLOSE(what, gpu_get(d_y, ny, dt), y, ny, atol_k(kd), rtol_out(DT_BF16, 1));
        EXPECT_CLOSE(what, gpu_get(d_y2, ny, dt), y2, ny, atol_k(kd), rtol_out(DT_BF16, 1));
        EXPECT_CLOSE(what, gpu_get(d_dx, nx, dt), dx, nx, atol_k((long)s->KH * s->KW * s->Cout),
                     rtol_out(DT_BF16, 1));
        float *g1 = gpu_get(d_dw, nw, DT_F32), *g2 = gpu_get(d_dw2, nw, DT_F32);
        EXPECT_CLOSE(what, g1, dw, nw, atol_k(P), 1e-5);
        EXPECT(memcmp(g1, g2, nw * sizeof(float)) == 0, "%s: dw differs run to run", what);
        free(y), free(y2), free(dx), free(dw);
    }
    free(x), free(w), free(bias), free(res), free(dy), free(dx0), free(dw0);
    gpu_free_all();
}

TEST(cuda_conv_tc_fast_path) {
    if (!gpu_ready()) return;
    static const int cases[] = {0, 1, 2, 6};
    for (int i = 0; i < 4; i++) check_case(cases[i], 0, -1, 100 + cases[i]);
}

TEST(cuda_conv_tc_small_channels) {
    if (!gpu_ready()) return;
    static const int cases[] = {3, 4, 8, 9, 10};
    for (int i = 0; i < 5; i++) check_case(cases[i], 0, -1, 200 + cases[i]);
}

TEST(cuda_conv_tc_stride_pad) {
    if (!gpu_ready()) return;
    static const int cases[] = {5, 7};
    for (int i = 0; i < 2; i++) check_case(cases[i], 0, -1, 300 + cases[i]);
}

// The split-reduction path (fp32 partials in dev_workspace + ordered finish pass).
TEST(cuda_conv_tc_split) {
    if (!gpu_ready()) return;
    static const int cases[] = {1, 3, 5, 8};
    for (int i = 0; i < 4; i++) check_case(cases[i], 3, -1, 400 + cases[i]);
}

// The other block tiles (128x64, 64x128, 64x64: different warp layouts, loader mappings
// and shared-memory widths), on the fast path and the scalar loader, one also split.
TEST(cuda_conv_tc_tiles) {
    if (!gpu_ready()) return;
    for (int tile = 0; tile < 4; tile++) {
        check_case(1, 0, tile, 600 + tile);
        check_case(4, tile == 2 ? 2 : 0, tile, 610 + tile);
    }
}

// Dispatcher: auto picks tc for bf16 under the emulator; forced tc and im2col both
// match the CPU; the fused residual through cuda_conv2d_fwd_res, in place (y == res).
TEST(cuda_conv2d_dispatch) {
    if (!gpu_ready()) return;
    const Conv2dShape *s = &g_cases[2];
    CHECK(cuda_conv2d_force("bogus") == -1);
    CHECK(cuda_conv2d_force(NULL) == 0);
    char desc[256] = "";
    dev_describe(desc, sizeof desc);
    if (!getenv("A2F_CONV") && strstr(desc, "SIMT emulator")) {
        for (int which = 0; which < 3; which++)
            EXPECT(strcmp(cuda_conv2d_path(s, which), "tc") == 0, "auto path %d: %s", which,
                   cuda_conv2d_path(s, which));
    }
    static const char *const paths[] = {"tc", "im2col", "auto"};
    uint64_t rng = 500;
    const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    const long kd = (long)s->KH * s->KW * s->Cin, P = (long)s->B * Ho * Wo;
    const size_t nx = (size_t)s->B * s->H * s->W * s->Cin, nw = (size_t)s->Cout * kd, ny = (size_t)P * s->Cout;
    for (int di = 0; di < 2; di++) {
        const DType dt = di ? DT_BF16 : DT_F32;
        const double rt = di ? rtol_out(DT_BF16, 1) : 1e-5;
        float *x = rand_buf(nx, dt, &rng), *w = rand_buf(nw, dt, &rng), *bias = rand_buf(s->Cout, dt, &rng);
        float *res = rand_buf(ny, dt, &rng), *dy = rand_buf(ny, dt, &rng), *dx0 = rand_buf(nx, dt, &rng);
        float *dw0 = rand_buf(nw, DT_F32, &rng), *db0 = rand_buf(s->Cout, DT_F32, &rng);
        float *y = xmalloc(ny * sizeof(float)), *dx = copy_buf(dx0, nx), *dw = copy_buf(dw0, nw);
        float *db = copy_buf(db0, s->Cout);
        conv2d_fwd(y, x, w, bias, s);
        double ymax = 0;  // largest |conv + bias|: the scale of a rounding before the residual add
        for (size_t i = 0; i < ny; i++) {
            ymax = fabs(y[i]) > ymax ? fabs(y[i]) : ymax;
            y[i] += res[i];
        }
        conv2d_bwd(dx, dw, db, dy, x, w, s);
        for (int pi = 0; pi < 3; pi++) {
            char what[96];
            snprintf(what, sizeof what, "dispatch %s %s", paths[pi], dtype_name(dt));
            CHECK(cuda_conv2d_force(paths[pi]) == 0);
            if (pi < 2 && di == 1) {
                EXPECT(strcmp(cuda_conv2d_path(s, 0), paths[pi]) == 0, "%s: path %s", what, cuda_conv2d_path(s, 0));
            }
            void *d_x = gpu_put(x, nx, dt), *d_w = gpu_put(w, nw, dt), *d_b = gpu_put(bias, s->Cout, dt);
            void *d_y = gpu_put(res, ny, dt), *d_dy = gpu_put(dy, ny, dt), *d_dx = gpu_put(dx0, nx, dt);
            float *d_dw = gpu_put(dw0, nw, DT_F32), *d_db = gpu_put(db0, s->Cout, DT_F32);
            // y = conv + bias + y (in-place residual)
            int ok = gpu_ok(cuda_conv2d_fwd_res(dt, d_y, d_x, d_w, d_b, d_y, s, dev_stream()), what) &&
                     gpu_ok(cuda_conv2d_bwd(dt, d_dx, d_dw, d_db, d_dy, d_x, d_w, s, dev_stream()), what);
            if (ok) {
                // im2col adds the residual after rounding conv + bias to bf16: one more
                // rounding of that value, at most half an ulp of max |conv + bias|
                const double ay = atol_k(kd) + ((di && pi == 1) ? dtype_eps(dt) * ymax : 0.0);
                EXPECT_CLOSE(what, gpu_get(d_y, ny, dt), y, ny, ay, rt);
                EXPECT_CLOSE(what, gpu_get(d_dx, nx, dt), dx, nx, atol_k((long)s->KH * s->KW * s->Cout), rt);
                EXPECT_CLOSE(what, gpu_get(d_dw, nw, DT_F32), dw, nw, atol_k(P), 1e-5);
                EXPECT_CLOSE(what, gpu_get(d_db, s->Cout, DT_F32), db, s->Cout, atol_k(P), 1e-5);
            }
            gpu_free_all();
        }
        free(x), free(w), free(bias), free(res), free(dy), free(dx0), free(dw0), free(db0);
        free(y), free(dx), free(dw), free(db);
    }
    cuda_conv2d_force(NULL);
}
