// test_cudnn_conv_cuda.c: cuDNN convolution through its graph API (kernels/cuda/cudnn_conv.cu,
// the dispatcher's "cudnn-graph" path) and through its legacy API ("cudnn") against
// conv2d_fwd / conv2d_bwd of kernels/cpu/ops.h, bf16: 3x3 same, Cout 72, stride 2,
// Cin 3 / 4, the VAE's right/bottom-only padding (graph API only: the legacy API has
// symmetric padding), 1x1, Cout 4; forward with bias, backward data and weight added to
// random starting gradients. Needs cuDNN: without it (the emulator) the test says so and
// passes; with it, a shape the graph path refuses fails the test.
//
// Tolerances (bf16 inputs rounded on the host, so products are exact in fp32):
//  - y: fp32 sums (atol 2e-6 (K + 1)) and one rounding (2^-8 relative);
//  - dx: cuDNN writes conv^T(dy, w) rounded to bf16, then it is added to dx0 and rounded
//    again: 2^-8 relative plus half an ulp of max|conv^T| (dtype_eps * that max);
//  - dw (float): cuDNN's bf16 dW adds 2^-8 of max|dW| (the tc path has none of it).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/conv2d.h"
#include "../../kernels/cuda/cudnn_conv.h"
#include "../test.h"
#include "gpu_test.h"

// B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr
static const Conv2dShape g_shapes[] = {
    {2, 9, 7, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1},    // 3x3 same
    {2, 9, 7, 24, 72, 3, 3, 1, 1, 1, 1, 1, 1},  // Cout 72
    {2, 9, 7, 40, 24, 3, 3, 2, 2, 1, 1, 1, 1},  // stride 2
    {2, 7, 9, 4, 24, 3, 3, 1, 1, 1, 1, 1, 1},   // Cin 4 (UNet conv_in)
    {2, 9, 7, 24, 8, 3, 3, 2, 2, 0, 1, 0, 1},   // VAE downsample: right/bottom pad only
    {2, 9, 7, 40, 72, 1, 1, 1, 1, 0, 0, 0, 0},  // 1x1
    {2, 7, 9, 24, 4, 3, 3, 1, 1, 1, 1, 1, 1},   // Cout 4 (conv_out)
};

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void run_path(const char *path, const Conv2dShape *s, uint64_t *rng) {
    const DType dt = DT_BF16;
    const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    const long kd = (long)s->KH * s->KW * s->Cin, P = (long)s->B * Ho * Wo;
    const size_t nx = (size_t)s->B * s->H * s->W * s->Cin, nw = (size_t)s->Cout * kd, ny = (size_t)P * s->Cout;
    char what[160];
    snprintf(what, sizeof what, "%s %dx%d s%d pad %d%d%d%d Cin %d Cout %d", path, s->KH, s->KW, s->sh, s->pt, s->pb,
             s->pl, s->pr, s->Cin, s->Cout);
    float *x = hrand(nx, 1.0f, rng, dt), *w = hrand(nw, 1.0f, rng, dt), *bias = hrand(s->Cout, 1.0f, rng, dt);
    float *dy = hrand(ny, 1.0f, rng, dt), *dx0 = hrand(nx, 1.0f, rng, dt), *dw0 = hrand(nw, 1.0f, rng, DT_F32);
    float *y = hnew(ny), *dx = hcopy(dx0, nx), *dw = hcopy(dw0, nw);
    conv2d_fwd(y, x, w, bias, s);
    conv2d_bwd(dx, dw, NULL, dy, x, w, s);
    CHECK(cuda_conv2d_force(path) == 0);
    for (int which = 0; which < 3; which++)
        EXPECT(strcmp(cuda_conv2d_path(s, which), path) == 0, "%s: pass %d takes %s", what, which,
               cuda_conv2d_path(s, which));
    void *d_x = gpu_put(x, nx, dt), *d_w = gpu_put(w, nw, dt), *d_b = gpu_put(bias, s->Cout, dt);
    void *d_y = gpu_fill(ny, dt, NAN), *d_dy = gpu_put(dy, ny, dt), *d_dx = gpu_put(dx0, nx, dt);
    float *d_dw = gpu_put(dw0, nw, DT_F32);
    if (gpu_ok(cuda_conv2d_fwd(dt, d_y, d_x, d_w, d_b, s, dev_stream()), what) &&
        gpu_ok(cuda_conv2d_bwd(dt, d_dx, d_dw, NULL, d_dy, d_x, d_w, s, dev_stream()), what)) {
        EXPECT_CLOSE(what, gpu_get(d_y, ny, dt), y, ny, atol_k(kd), rtol_out(dt, 1));
        const double pdx = max_abs_diff(dx, dx0, nx), pdw = max_abs_diff(dw, dw0, nw);  // the passes' own sums
        EXPECT_CLOSE(what, gpu_get(d_dx, nx, dt), dx, nx, atol_k((long)s->KH * s->KW * s->Cout) + dtype_eps(dt) * pdx,
                     rtol_out(dt, 1));
        EXPECT_CLOSE(what, gpu_get(d_dw, nw, DT_F32), dw, nw, atol_k(P) + dtype_eps(dt) * pdw, 1e-5);
    }
    gpu_free_all();
}

TEST(cuda_conv2d_cudnn_paths) {
    if (!gpu_ready()) return;
    if (!cuda_conv2d_have_cudnn()) {
        printf("  no cuDNN in this build (the emulator has none): cuDNN convolution not run\n");
        return;
    }
    uint64_t rng = 901;
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++) {
        const Conv2dShape *s = &g_shapes[i];
        const char *why = NULL;
        for (int which = 0; which < 3; which++)
            EXPECT(cuda_cudnn_conv_available(DT_BF16, s, which, &why), "cudnn-graph refuses shape %zu pass %d: %s", i,
                   which, why);
        run_path("cudnn-graph", s, &rng);
        if (s->pt == s->pb && s->pl == s->pr) run_path("cudnn", s, &rng);
    }
    cuda_conv2d_force(NULL);
}
