// test_linear_conv_cuda.c: the CUDA linear layer and the im2col convolution
// (kernels/cuda/linear.cu, conv2d.cu) against linear_fwd/bwd and conv2d_fwd/bwd of
// kernels/cpu/ops.h, f32 and bf16, with and without bias; gradients start from
// random values (backward adds). Shapes: odd sizes, Cin = 3/4/5/8/16, stride 2,
// asymmetric padding, 2x3 kernels, 1x1 pointwise and 1x1 strided, several im2col
// tiles (a forced small tile size), multi-chunk bias-gradient sums; determinism of
// the reductions (two runs, memcmp).
//
// Tolerances (inputs rounded through dt on the host, so both sides multiply the same
// values exactly in fp32; K = the GEMM reduction length: K for linear fwd / dx,
// Kd = KH*KW*Cin for conv fwd, M rows for dW / db, pixels for conv dw / dbias):
//  - fp32 summation order: atol 2e-6 * (K + 1) for N(0,1) data (typical error
//    ~ K * 6e-8, worst case well inside for these sizes) + rtol 1e-5;
//  - bf16 outputs (y, dx): one rounding, half an ulp = 2^-8 relative (dtype_eps),
//    on top of the fp32 term (dx = round(dx0 + sum) once, also across conv tiles);
//  - float gradients (dW, db, dw, dbias) with bf16 operands have no output rounding:
//    the fp32 tolerance.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/conv2d.h"
#include "../../kernels/cuda/linear.h"
#include "../test.h"
#include "gpu_test.h"


TEST(cuda_linear_fwd_bwd) {
    if (!gpu_ready()) return;
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 40, 17}, {64, 77, 3}, {1000, 9, 37}};
    uint64_t rng = 21;
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < 5; si++)
            for (int hb = 0; hb < 2; hb++) {
                const DType dt = di ? DT_BF16 : DT_F32;
                const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
                char what[96];
                snprintf(what, sizeof what, "linear %s M%d K%d N%d bias%d", dtype_name(dt), M, K, N, hb);
                float *x = rand_buf((size_t)M * K, dt, &rng), *W = rand_buf((size_t)N * K, dt, &rng);
                float *b = rand_buf(N, dt, &rng), *dy = rand_buf((size_t)M * N, dt, &rng);
                float *dx0 = rand_buf((size_t)M * K, dt, &rng), *dW0 = rand_buf((size_t)N * K, DT_F32, &rng);
                float *db0 = rand_buf(N, DT_F32, &rng);
                void *d_x = gpu_put(x, (size_t)M * K, dt), *d_W = gpu_put(W, (size_t)N * K, dt);
                void *d_b = gpu_put(b, N, dt), *d_dy = gpu_put(dy, (size_t)M * N, dt);
                void *d_y = gpu_fill((size_t)M * N, dt, NAN);
                void *d_dx = gpu_put(dx0, (size_t)M * K, dt);
                float *d_dW = gpu_put(dW0, (size_t)N * K, DT_F32), *d_db = gpu_put(db0, N, DT_F32);
                if (!gpu_ok(cuda_linear_fwd(dt, d_y, d_x, d_W, hb ? d_b : NULL, M, K, N, dev_stream()), what)) return;
                if (!gpu_ok(cuda_linear_bwd(dt, d_dx, d_dW, hb ? d_db : NULL, d_dy, d_x, d_W, M, K, N, dev_stream()),
                            what))
                    return;
                float *y = xmalloc((size_t)M * N * sizeof(float));
                float *dx = copy_buf(dx0, (size_t)M * K), *dW = copy_buf(dW0, (size_t)N * K), *db = copy_buf(db0, N);
                linear_fwd(y, x, W, hb ? b : NULL, M, K, N);
                linear_bwd(dx, dW, hb ? db : NULL, dy, x, W, M, K, N);
                EXPECT_CLOSE(what, gpu_get(d_y, (size_t)M * N, dt), y, (size_t)M * N, atol_k(K), rtol_out(dt, 1));
                EXPECT_CLOSE(what, gpu_get(d_dx, (size_t)M * K, dt), dx, (size_t)M * K, atol_k(N), rtol_out(dt, 1));
                EXPECT_CLOSE(what, gpu_get(d_dW, (size_t)N * K, DT_F32), dW, (size_t)N * K, atol_k(M), 1e-5);
                EXPECT_CLOSE(what, gpu_get(d_db, N, DT_F32), db, N, atol_k(M), 1e-5);
                // determinism of the reductions: dW and db from the same start, bit-identical
                if (hb) {
                    float *dW1 = gpu_get(d_dW, (size_t)N * K, DT_F32), *db1 = gpu_get(d_db, N, DT_F32);
                    CHECKM(dev_upload(d_dW, dW0, (size_t)N * K * sizeof(float)) == 0, a2f_last_error());
                    CHECKM(dev_upload(d_db, db0, (size_t)N * sizeof(float)) == 0, a2f_last_error());
                    if (!gpu_ok(cuda_linear_bwd(dt, NULL, d_dW, d_db, d_dy, d_x, d_W, M, K, N, dev_stream()), what))
                        return;
                    EXPECT(memcmp(dW1, gpu_get(d_dW, (size_t)N * K, DT_F32), (size_t)N * K * sizeof(float)) == 0,
                           "%s: dW differs run to run", what);
                    EXPECT(memcmp(db1, gpu_get(d_db, N, DT_F32), (size_t)N * sizeof(float)) == 0,
                           "%s: db differs run to run", what);
                }
                free(x), free(W), free(b), free(dy), free(dx0), free(dW0), free(db0);
                free(y), free(dx), free(dW), free(db);
                gpu_free_all();
            }
}

typedef struct {
    Conv2dShape s;
    long tile;  // forced tile pixels (0 = automatic)
} ConvCase;

TEST(cuda_conv2d_fwd_bwd) {
    if (!gpu_ready()) return;
    // B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pb, pl, pr
    static const ConvCase cases[] = {
        {{2, 5, 7, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1}, 0},   // Cin = 3, same padding
        {{1, 8, 8, 8, 5, 3, 3, 2, 2, 0, 1, 0, 1}, 0},   // stride 2, VAE-style right/bottom pad, 16-byte vectors
        {{2, 6, 5, 4, 7, 1, 1, 1, 1, 0, 0, 0, 0}, 0},   // 1x1 pointwise: direct GEMM
        {{1, 7, 9, 5, 3, 2, 3, 2, 1, 1, 0, 2, 1}, 0},   // 2x3 kernel, asymmetric everything
        {{2, 9, 4, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1}, 7},  // tiles (7 -> the minimum 16 pixels) ending mid-image
        {{1, 5, 5, 7, 2, 1, 1, 2, 2, 0, 0, 0, 0}, 0},   // 1x1 stride 2: im2col path
        {{2, 9, 6, 4, 6, 3, 3, 2, 2, 1, 1, 1, 1}, 5},   // stride 2 over tiles (5 -> 9 pixels, 15 per image)
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    uint64_t rng = 22;
    for (int di = 0; di < 2; di++)
        for (int ci = 0; ci < ncases; ci++)
            for (int hb = 0; hb < 2; hb++) {
                const DType dt = di ? DT_BF16 : DT_F32;
                const Conv2dShape *s = &cases[ci].s;
                cuda_conv2d_set_tile_pixels(cases[ci].tile);
                const int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
                const long kd = (long)s->KH * s->KW * s->Cin, P = (long)s->B * Ho * Wo;
                const size_t nx = (size_t)s->B * s->H * s->W * s->Cin, nw = (size_t)s->Cout * kd;
                const size_t ny = (size_t)P * s->Cout;
                char what[128];
                snprintf(what, sizeof what, "conv %s case %d bias%d (%dx%d s%d,%d Cin %d)", dtype_name(dt), ci, hb,
                         s->KH, s->KW, s->sh, s->sw, s->Cin);
                float *x = rand_buf(nx, dt, &rng), *w = rand_buf(nw, dt, &rng), *bias = rand_buf(s->Cout, dt, &rng);
                float *dy = rand_buf(ny, dt, &rng), *dx0 = rand_buf(nx, dt, &rng);
                float *dw0 = rand_buf(nw, DT_F32, &rng), *db0 = rand_buf(s->Cout, DT_F32, &rng);
                void *d_x = gpu_put(x, nx, dt), *d_w = gpu_put(w, nw, dt), *d_b = gpu_put(bias, s->Cout, dt);
                void *d_dy = gpu_put(dy, ny, dt), *d_y = gpu_fill(ny, dt, NAN), *d_dx = gpu_put(dx0, nx, dt);
                float *d_dw = gpu_put(dw0, nw, DT_F32), *d_db = gpu_put(db0, s->Cout, DT_F32);
                int ok = gpu_ok(cuda_conv2d_fwd(dt, d_y, d_x, d_w, hb ? d_b : NULL, s, dev_stream()), what) &&
                         gpu_ok(cuda_conv2d_bwd(dt, d_dx, d_dw, hb ? d_db : NULL, d_dy, d_x, d_w, s, dev_stream()),
                                what);
                if (!ok) break;
                float *y = xmalloc(ny * sizeof(float));
                float *dx = copy_buf(dx0, nx), *dw = copy_buf(dw0, nw), *db = copy_buf(db0, s->Cout);
                conv2d_fwd(y, x, w, hb ? bias : NULL, s);
                conv2d_bwd(dx, dw, hb ? db : NULL, dy, x, w, s);
                EXPECT_CLOSE(what, gpu_get(d_y, ny, dt), y, ny, atol_k(kd), rtol_out(dt, 1));
                EXPECT_CLOSE(what, gpu_get(d_dx, nx, dt), dx, nx, atol_k((long)s->KH * s->KW * s->Cout),
                             rtol_out(dt, 1));
                EXPECT_CLOSE(what, gpu_get(d_dw, nw, DT_F32), dw, nw, atol_k(P), 1e-5);
                EXPECT_CLOSE(what, gpu_get(d_db, s->Cout, DT_F32), db, s->Cout, atol_k(P), 1e-5);
                // dx alone, and dw alone, from the same start: the same bits as together
                float *dx1 = gpu_get(d_dx, nx, dt), *dw1 = gpu_get(d_dw, nw, DT_F32);
                void *d_dx2 = gpu_put(dx0, nx, dt);
                float *d_dw2 = gpu_put(dw0, nw, DT_F32);
                ok = gpu_ok(cuda_conv2d_bwd(dt, d_dx2, NULL, NULL, d_dy, d_x, d_w, s, dev_stream()), what) &&
                     gpu_ok(cuda_conv2d_bwd(dt, NULL, d_dw2, NULL, d_dy, d_x, d_w, s, dev_stream()), what);
                if (!ok) break;
                EXPECT(memcmp(dx1, gpu_get(d_dx2, nx, dt), nx * sizeof(float)) == 0, "%s: dx not reproducible", what);
                EXPECT(memcmp(dw1, gpu_get(d_dw2, nw, DT_F32), nw * sizeof(float)) == 0, "%s: dw not reproducible",
                       what);
                free(x), free(w), free(bias), free(dy), free(dx0), free(dw0), free(db0);
                free(y), free(dx), free(dw), free(db);
                gpu_free_all();
            }
    cuda_conv2d_set_tile_pixels(0);
    gpu_free_all();
}

// A bigger bias-gradient sum: many row chunks, columns not a multiple of 32.
TEST(cuda_bias_grad_chunks) {
    if (!gpu_ready()) return;
    uint64_t rng = 23;
    const long M = 5000;
    const int N = 45;
    for (int di = 0; di < 2; di++) {
        const DType dt = di ? DT_BF16 : DT_F32;
        float *dy = rand_buf((size_t)M * N, dt, &rng), *db0 = rand_buf(N, DT_F32, &rng);
        void *d_dy = gpu_put(dy, (size_t)M * N, dt);
        float *d_db = gpu_put(db0, N, DT_F32);
        if (!gpu_ok(cuda_bias_grad(dt, d_db, d_dy, M, N, dev_stream()), "bias grad")) return;
        float *want = copy_buf(db0, N);
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (long m = 0; m < M; m++) acc += dy[(size_t)m * N + n];
            want[n] += (float)acc;
        }
        // fp32 sums of 5000 N(0,1) values: error ~ sqrt(M) * |partial sums| * 2^-24, far below 1e-3
        EXPECT_CLOSE(dtype_name(dt), gpu_get(d_db, N, DT_F32), want, N, 1e-3, 1e-5);
        free(dy), free(db0), free(want);
        gpu_free_all();
    }
}
