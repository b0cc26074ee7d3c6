// test_loss_cuda.c: the CUDA dropout, MSE loss, L2 normalisation and cosine
// similarity (kernels/cuda/loss.cu) against the CPU reference ops
// (kernels/cpu/loss.c), f32 and bf16, forward and backward (backward adds
// into random gradients), odd sizes, unaligned pointers, and bit-identical
// results run to run for the MSE reduction.
//
// Tolerances. Dropout and the MSE backward do the same fp32 operations as
// the CPU (mask from the shared Philox code, x * scale, dx + v, k (a - b);
// the kernels use __fmul_rn so nothing is fused), so the GPU result equals
// the CPU result rounded once to dt: compared EXACTLY after round_through.
// The reductions (MSE loss, norms, dot products) run in fp32 on the GPU and
// in double on the CPU: the relative error of an fp32 sum of n positive
// terms is ~sqrt(n) 2^-24 for a tree / blocked sum (well under 1e-5 at the
// sizes here), hence rtol 1e-5; for f32 and bf16 alike, since the inputs are
// identical and the loss / similarity outputs are float. Outputs stored as
// bf16 add one rounding (2^-9 relative: rtol 2^-8). Gradients that cancel
// (dx0 + g, dy - y (y . dy)) get an absolute term, 1e-6 of the O(1) values
// (1e-5 for bf16 outputs, where the bf16 rounding of an O(1) value is ~4e-3
// relative but the absolute part covers the fp32 error before it).
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/loss.h"
#include "../../kernels/philox.h"
#include "../test.h"
#include "gpu_test.h"

static const DType DTS[2] = {DT_F32, DT_BF16};

// ---------------------------------------------------------------- dropout

TEST(cuda_dropout_matches_cpu_mask) {
    if (!gpu_ready()) return;
    const size_t sizes[] = {1, 3, 4, 7, 13, 64, 1001};
    const float ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    uint64_t st = 21;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 7; k++)
            for (int pi = 0; pi < 4; pi++)
                for (int off = 0; off < 2; off++) {
                    const DType dt = DTS[di];
                    const size_t n = sizes[k];
                    const float p = ps[pi];
                    const uint64_t seed = 1234 + k, offset = 77 * (uint64_t)pi;
                    float *x = hrand(n, 1.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(n, 1.0f, &st, dt);
                    float *y = hnew(n), *dx = hcopy(dx0, n);
                    dropout_fwd(y, x, n, p, seed, offset);
                    dropout_bwd(dx, dy, n, p, seed, offset);
                    void *dX = dput(x, n, dt, off), *dY = dput(x, n, dt, off);
                    void *dDY = dput(dy, n, dt, off), *dDX = dput(dx0, n, dt, off);
                    char w[96];
                    snprintf(w, sizeof w, "dropout fwd %s n=%zu p=%g off=%d", dtype_name(dt), n, p, off);
                    if (!gpu_ok(cuda_dropout_fwd(dt, dY, dX, n, p, seed, offset, dev_stream()), w)) goto out;
                    float *got = gpu_get(dY, n, dt);
                    // the mask itself: zero exactly where the CPU's is (x is never 0 here)
                    size_t mism = 0;
                    for (size_t i = 0; i < n; i++) mism += (got[i] == 0.0f) != (y[i] == 0.0f);
                    EXPECT(mism == 0, "%s: %zu mask bits differ", w, mism);
                    expect_rounded(w, dY, y, n, dt);
                    snprintf(w, sizeof w, "dropout bwd %s n=%zu p=%g off=%d", dtype_name(dt), n, p, off);
                    if (!gpu_ok(cuda_dropout_bwd(dt, dDX, dDY, n, p, seed, offset, dev_stream()), w)) goto out;
                    expect_rounded(w, dDX, dx, n, dt);
                    // in place (y over x)
                    if (!gpu_ok(cuda_dropout_fwd(dt, dX, dX, n, p, seed, offset, dev_stream()), w)) goto out;
                    expect_rounded("dropout in place", dX, y, n, dt);
                    gpu_free_all();
                }
out:
    gpu_free_all();
}

TEST(cuda_dropout_rejects_bad_p) {
    if (!gpu_ready()) return;
    void *d = gpu_fill(4, DT_F32, 1.0f);
    EXPECT(cuda_dropout_fwd(DT_F32, d, d, 4, 1.5f, 1, 0, dev_stream()) != 0, "p = 1.5 accepted");
    EXPECT(cuda_dropout_fwd(DT_F32, d, d, 4, -0.1f, 1, 0, dev_stream()) != 0, "p = -0.1 accepted");
    gpu_free_all();
}

// ---------------------------------------------------------------- MSE

TEST(cuda_mse_loss) {
    if (!gpu_ready()) return;
    // 70000 values: several partial blocks (4096 values per block)
    const size_t sizes[] = {1, 3, 7, 13, 64, 1000, 70001};
    uint64_t st = 22;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 7; k++)
            for (int off = 0; off < 2; off++) {
                const DType dt = DTS[di];
                const size_t n = sizes[k];
                float *a = hrand(n, 1.0f, &st, dt), *b = hrand(n, 1.0f, &st, dt);
                float *da0 = hrand(n, 1.0f, &st, dt), *db0 = hrand(n, 1.0f, &st, dt);
                const float dloss = 0.75f;
                float want = mse_loss_fwd(a, b, n);
                float *da = hcopy(da0, n), *db = hcopy(db0, n);
                mse_loss_bwd(da, db, dloss, a, b, n);
                void *dA = dput(a, n, dt, off), *dB = dput(b, n, dt, off);
                void *dDA = dput(da0, n, dt, off), *dDB = dput(db0, n, dt, off);
                float *dL = gpu_fill(1, DT_F32, -1.0f);
                char w[96];
                snprintf(w, sizeof w, "mse fwd %s n=%zu off=%d", dtype_name(dt), n, off);
                if (!gpu_ok(cuda_mse_loss_fwd(dt, dL, dA, dB, n, dev_stream()), w)) goto out;
                float got = gpu_get(dL, 1, DT_F32)[0];
                EXPECT_CLOSE(w, &got, &want, 1, 0.0, 1e-5);
                // determinism: the same bits again
                if (!gpu_ok(cuda_mse_loss_fwd(dt, dL, dA, dB, n, dev_stream()), w)) goto out;
                float again = gpu_get(dL, 1, DT_F32)[0];
                EXPECT(memcmp(&got, &again, sizeof got) == 0, "%s not deterministic", w);
                snprintf(w, sizeof w, "mse bwd %s n=%zu off=%d", dtype_name(dt), n, off);
                if (!gpu_ok(cuda_mse_loss_bwd(dt, dDA, dDB, dloss, dA, dB, n, dev_stream()), w)) goto out;
                expect_rounded(w, dDA, da, n, dt);
                expect_rounded(w, dDB, db, n, dt);
                gpu_free_all();
            }
out:
    gpu_free_all();
}

// ---------------------------------------------------------------- L2 normalise

TEST(cuda_l2norm) {
    if (!gpu_ready()) return;
    // (N, D); the last row of each case is scaled to ~1e-14 so ||x|| <= eps takes the clamp branch
    const int shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {2, 512}, {3, 100}, {2, 2500}};
    const float eps = 1e-12f;
    uint64_t st = 23;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++) {
            const DType dt = DTS[di];
            const int N = shapes[k][0], D = shapes[k][1];
            const size_t n = (size_t)N * D;
            float *x = hrand(n, 1.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(n, 1.0f, &st, dt);
            if (N > 1) {
                for (int d = 0; d < D; d++) x[(size_t)(N - 1) * D + d] *= 1e-14f;
                round_through(x + (size_t)(N - 1) * D, D, dt);
            }
            float *y = hnew(n), *dx = hcopy(dx0, n);
            l2norm_fwd(y, x, N, D, eps);
            l2norm_bwd(dx, dy, x, N, D, eps);
            void *dX = dput(x, n, dt, 0), *dY = dput(y, n, dt, 0), *dDY = dput(dy, n, dt, 0);
            void *dDX = dput(dx0, n, dt, 0);
            char w[96];
            snprintf(w, sizeof w, "l2norm fwd %s N=%d D=%d", dtype_name(dt), N, D);
            if (!gpu_ok(cuda_l2norm_fwd(dt, dY, dX, N, D, eps, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dY, n, dt), y, n, 1e-8, dt == DT_BF16 ? dtype_eps(dt) : 1e-5);
            // the clamped row's dx is dy / eps ~ 1e12: compare row by row, relative to the row's scale
            snprintf(w, sizeof w, "l2norm bwd %s N=%d D=%d", dtype_name(dt), N, D);
            if (!gpu_ok(cuda_l2norm_bwd(dt, dDX, dDY, dX, N, D, eps, dev_stream()), w)) break;
            float *got = gpu_get(dDX, n, dt);
            for (int i = 0; i < N; i++) {
                double scale = 0;
                for (int d = 0; d < D; d++) scale = fmax(scale, fabs(dx[(size_t)i * D + d]));
                // dy / ||x|| - x (x.dy) / ||x||^3: the difference cancels; 1e-6 of the row's largest value
                EXPECT_CLOSE(w, got + (size_t)i * D, dx + (size_t)i * D, D, (dt == DT_BF16 ? 1e-5 : 1e-6) * scale,
                             dt == DT_BF16 ? dtype_eps(dt) : 1e-5);
            }
            gpu_free_all();
        }
    gpu_free_all();
}

// ---------------------------------------------------------------- cosine similarity

TEST(cuda_cosine_sim) {
    if (!gpu_ready()) return;
    // (N, D); one row pair with a = 0 (torch's zero gradient for ||a|| at 0) and
    // one with tiny b (the clamp)
    const int shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {5, 512}, {2, 100}, {2, 3000}};
    const float eps = 1e-8f;
    uint64_t st = 24;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++)
            for (int which = 0; which < 2; which++) {  // 0: both gradients, 1: da only
                const DType dt = DTS[di];
                const int N = shapes[k][0], D = shapes[k][1];
                const size_t n = (size_t)N * D;
                float *a = hrand(n, 1.0f, &st, dt), *b = hrand(n, 1.0f, &st, dt);
                float *da0 = hrand(n, 1.0f, &st, dt), *db0 = hrand(n, 1.0f, &st, dt);
                float *dy = hrand(N, 1.0f, &st, DT_F32);
                if (N >= 3) {
                    memset(a + D, 0, D * sizeof(float));                         // row 1: a = 0
                    for (int d = 0; d < D; d++) b[2 * (size_t)D + d] *= 1e-10f;  // row 2: ||b|| < eps
                    round_through(b + 2 * (size_t)D, D, dt);
                }
                float *y = hnew(N), *da = hcopy(da0, n), *db = hcopy(db0, n);
                cosine_sim_fwd(y, a, b, N, D, eps);
                cosine_sim_bwd(da, which ? NULL : db, dy, a, b, N, D, eps);
                void *dA = dput(a, n, dt, 0), *dB = dput(b, n, dt, 0);
                void *dDA = dput(da0, n, dt, 0), *dDB = dput(db0, n, dt, 0);
                float *dY = gpu_fill(N, DT_F32, 0.0f), *dDY = dput(dy, N, DT_F32, 0);
                char w[96];
                snprintf(w, sizeof w, "cosine fwd %s N=%d D=%d", dtype_name(dt), N, D);
                if (!gpu_ok(cuda_cosine_sim_fwd(dt, dY, dA, dB, N, D, eps, dev_stream()), w)) goto out;
                // y is float: fp32 dot products vs double; cos in [-1, 1] can cancel to ~0, so atol 1e-6
                EXPECT_CLOSE(w, gpu_get(dY, N, DT_F32), y, N, 1e-6, 1e-5);
                snprintf(w, sizeof w, "cosine bwd %s N=%d D=%d grads=%d", dtype_name(dt), N, D, which);
                if (!gpu_ok(cuda_cosine_sim_bwd(dt, dDA, which ? NULL : dDB, dDY, dA, dB, N, D, eps, dev_stream()),
                            w))
                    goto out;
                float *ga = gpu_get(dDA, n, dt), *gb = gpu_get(dDB, n, dt);
                for (int i = 0; i < N; i++) {
                    // the tiny-b row's db is O(1/eps): tolerances relative to each row's largest value
                    double sa = 0, sb = 0;
                    for (int d = 0; d < D; d++) {
                        sa = fmax(sa, fabs(da[(size_t)i * D + d]));
                        sb = fmax(sb, fabs(db[(size_t)i * D + d]));
                    }
                    const double rt = dt == DT_BF16 ? dtype_eps(dt) : 1e-5, at = dt == DT_BF16 ? 1e-5 : 1e-6;
                    EXPECT_CLOSE(w, ga + (size_t)i * D, da + (size_t)i * D, D, at * sa, rt);
                    EXPECT_CLOSE(w, gb + (size_t)i * D, db + (size_t)i * D, D, at * sb, rt);
                }
                gpu_free_all();
            }
out:
    gpu_free_all();
}
