// test_activation_cuda.c: the CUDA activations (kernels/cuda/activation.cu)
// against the CPU reference ops (kernels/cpu/activation.c), f32 and bf16,
// forward and backward (backward adds into a random dx), odd sizes that take
// the scalar paths, 16-byte-aligned sizes that take the packed paths, and
// pointers offset by one element (unaligned: scalar fallback). PReLU's dslope
// (a cross-block reduction) is also checked bit-identical run to run.
//
// Tolerances. bf16 runs round the host inputs through bf16 first, so both
// sides see the same values and differ by (a) the single bf16 rounding of
// the GPU output, at most 2^-9 relative (rtol dtype_eps = 2^-8 gives 2x
// margin), plus (b) fp32 differences: the device expf / erfcf are within 2 /
// 4 ulp of glibc's, and nvcc contracts a*b+c into FMAs, so ~1e-6 relative of
// the terms; backward results dx0 + g can cancel to ~0, so that part is an
// absolute term scaled to the O(1..10) inputs. f32 runs only see (b): rtol
// 1e-5, atol 1e-6 (10x margin over ~1e-6, the same bounds as the CPU tests
// against PyTorch).
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/activation.h"
#include "../test.h"
#include "gpu_test.h"

static const DType DTS[2] = {DT_F32, DT_BF16};

// ---------------------------------------------------------------- helpers

static double rtol_of(DType dt, double f32_rtol) { return dt == DT_BF16 ? dtype_eps(dt) : f32_rtol; }

// ---------------------------------------------------------------- pointwise

typedef int (*gpu_fwd_fn)(DType, void *, const void *, size_t, cudaStream_t);
typedef int (*gpu_bwd_fn)(DType, void *, const void *, const void *, size_t, cudaStream_t);
typedef void (*cpu_fwd_fn)(float *, const float *, size_t);
typedef void (*cpu_bwd_fn)(float *, const float *, const float *, size_t);

static void check_pointwise(const char *name, gpu_fwd_fn gf, gpu_bwd_fn gb, cpu_fwd_fn cf, cpu_bwd_fn cb) {
    if (!gpu_ready()) return;
    const size_t sizes[] = {1, 3, 7, 13, 64, 1000, 4099};
    uint64_t st = 1234;
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < 7; si++)
            for (int off = 0; off < 2; off++) {
                const DType dt = DTS[di];
                const size_t n = sizes[si];
                float *x = hrand(n, 3.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(n, 1.0f, &st, dt);
                // a few fixed values: relu's kink, both sigmoid branches far out
                const float special[] = {0.0f, -30.0f, 30.0f, -100.0f, 100.0f, -0.75f};
                for (size_t i = 0; i < n && i < 6; i++) x[(i * 7) % n] = special[i];
                float *y = hnew(n), *dx = hcopy(dx0, n);
                cf(y, x, n);
                cb(dx, dy, x, n);
                void *dX = dput(x, n, dt, off), *dY = dput(x, n, dt, off);  // dY overwritten
                void *dDY = dput(dy, n, dt, off), *dDX = dput(dx0, n, dt, off);
                char w[96];
                snprintf(w, sizeof w, "%s fwd %s n=%zu off=%d", name, dtype_name(dt), n, off);
                if (!gpu_ok(gf(dt, dY, dX, n, dev_stream()), w)) goto out;
                EXPECT_CLOSE(w, gpu_get(dY, n, dt), y, n, 1e-6, rtol_of(dt, 1e-5));
                snprintf(w, sizeof w, "%s bwd %s n=%zu off=%d", name, dtype_name(dt), n, off);
                if (!gpu_ok(gb(dt, dDX, dDY, dX, n, dev_stream()), w)) goto out;
                EXPECT_CLOSE(w, gpu_get(dDX, n, dt), dx, n, dt == DT_BF16 ? 1e-5 : 1e-6, rtol_of(dt, 1e-5));
                // in place: y written over x
                snprintf(w, sizeof w, "%s fwd in place %s n=%zu", name, dtype_name(dt), n);
                if (!gpu_ok(gf(dt, dX, dX, n, dev_stream()), w)) goto out;
                EXPECT_CLOSE(w, gpu_get(dX, n, dt), y, n, 1e-6, rtol_of(dt, 1e-5));
                // NULL dx is a no-op
                if (!gpu_ok(gb(dt, NULL, dDY, dX, n, dev_stream()), "bwd NULL dx")) goto out;
                gpu_free_all();
            }
out:
    gpu_free_all();
}

TEST(cuda_relu) { check_pointwise("relu", cuda_relu_fwd, cuda_relu_bwd, relu_fwd, relu_bwd); }
TEST(cuda_sigmoid) { check_pointwise("sigmoid", cuda_sigmoid_fwd, cuda_sigmoid_bwd, sigmoid_fwd, sigmoid_bwd); }
TEST(cuda_silu) { check_pointwise("silu", cuda_silu_fwd, cuda_silu_bwd, silu_fwd, silu_bwd); }
TEST(cuda_gelu) { check_pointwise("gelu", cuda_gelu_fwd, cuda_gelu_bwd, gelu_fwd, gelu_bwd); }
TEST(cuda_quickgelu) {
    check_pointwise("quickgelu", cuda_quickgelu_fwd, cuda_quickgelu_bwd, quickgelu_fwd, quickgelu_bwd);
}

// ---------------------------------------------------------------- PReLU

TEST(cuda_prelu) {
    if (!gpu_ready()) return;
    const int shapes[][2] = {{1, 1}, {7, 3}, {13, 8}, {5, 16}, {300, 64}, {70, 37}};
    uint64_t st = 99;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++) {
            const DType dt = DTS[di];
            const size_t N = (size_t)shapes[k][0];
            const int C = shapes[k][1];
            const size_t n = N * C;
            float *x = hrand(n, 1.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(n, 1.0f, &st, dt);
            float *sl = hrand(C, 0.3f, &st, dt), *ds0 = hrand(C, 1.0f, &st, DT_F32);
            float *y = hnew(n), *dx = hcopy(dx0, n), *ds = hcopy(ds0, C);
            prelu_fwd(y, x, sl, N, C);
            prelu_bwd(dx, ds, dy, x, sl, N, C);
            void *dX = dput(x, n, dt, 0), *dY = dput(y, n, dt, 0), *dSL = dput(sl, C, dt, 0);
            void *dDY = dput(dy, n, dt, 0), *dDX = dput(dx0, n, dt, 0);
            float *dDS = dput(ds0, C, DT_F32, 0), *dDS2 = dput(ds0, C, DT_F32, 0);
            char w[96];
            snprintf(w, sizeof w, "prelu fwd %s N=%zu C=%d", dtype_name(dt), N, C);
            if (!gpu_ok(cuda_prelu_fwd(dt, dY, dX, dSL, N, C, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dY, n, dt), y, n, 1e-6, rtol_of(dt, 1e-5));
            snprintf(w, sizeof w, "prelu bwd %s N=%zu C=%d", dtype_name(dt), N, C);
            if (!gpu_ok(cuda_prelu_bwd(dt, dDX, dDS, dDY, dX, dSL, N, C, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dDX, n, dt), dx, n, dt == DT_BF16 ? 1e-5 : 1e-6, rtol_of(dt, 1e-5));
            // dslope is float for both dtypes: an fp32 sum of N products of
            // O(1) in fixed chunks vs the CPU's double; the partial sums are a
            // random walk of size ~sqrt(N), so N roundings add ~6e-8 N; 3x margin.
            float *got_ds = gpu_get(dDS, C, DT_F32);
            EXPECT_CLOSE("prelu dslope", got_ds, ds, C, 1e-6 + 2e-7 * N, 1e-5);
            // dslope alone (dx NULL), and determinism: the same bits again
            if (!gpu_ok(cuda_prelu_bwd(dt, NULL, dDS2, dDY, dX, dSL, N, C, dev_stream()), "prelu dslope only"))
                break;
            float *got_ds2 = gpu_get(dDS2, C, DT_F32);
            EXPECT(memcmp(got_ds, got_ds2, C * sizeof(float)) == 0, "prelu dslope not deterministic (N=%zu C=%d)",
                   N, C);
            gpu_free_all();
        }
    gpu_free_all();
}

// ---------------------------------------------------------------- GEGLU

TEST(cuda_geglu) {
    if (!gpu_ready()) return;
    const int shapes[][2] = {{1, 1}, {3, 5}, {7, 8}, {4, 16}, {13, 40}, {2, 3}};
    uint64_t st = 7;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++) {
            const DType dt = DTS[di];
            const size_t N = (size_t)shapes[k][0];
            const int D = shapes[k][1];
            const size_t n = N * D, nx = 2 * n;
            float *x = hrand(nx, 2.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(nx, 1.0f, &st, dt);
            float *y = hnew(n), *dx = hcopy(dx0, nx);
            geglu_fwd(y, x, N, D);
            geglu_bwd(dx, dy, x, N, D);
            void *dX = dput(x, nx, dt, 0), *dY = dput(y, n, dt, 0), *dDY = dput(dy, n, dt, 0);
            void *dDX = dput(dx0, nx, dt, 0);
            char w[96];
            snprintf(w, sizeof w, "geglu fwd %s N=%zu D=%d", dtype_name(dt), N, D);
            if (!gpu_ok(cuda_geglu_fwd(dt, dY, dX, N, D, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dY, n, dt), y, n, 1e-6, rtol_of(dt, 1e-5));
            snprintf(w, sizeof w, "geglu bwd %s N=%zu D=%d", dtype_name(dt), N, D);
            if (!gpu_ok(cuda_geglu_bwd(dt, dDX, dDY, dX, N, D, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dDX, nx, dt), dx, nx, dt == DT_BF16 ? 1e-5 : 1e-6, rtol_of(dt, 1e-5));
            gpu_free_all();
        }
    gpu_free_all();
}

// ---------------------------------------------------------------- softmax

TEST(cuda_softmax) {
    if (!gpu_ready()) return;
    // warp paths (C <= 1024, several NPL), block paths with the row in
    // registers (1100, 4096) and the global-memory loop (5000)
    const int shapes[][2] = {{1, 1}, {3, 7}, {37, 77}, {2, 33}, {5, 300}, {3, 1024}, {2, 1100}, {2, 4096}, {1, 5000}};
    uint64_t st = 5;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 9; k++) {
            const DType dt = DTS[di];
            const size_t N = (size_t)shapes[k][0];
            const int C = shapes[k][1];
            const size_t n = N * C;
            float *x = hrand(n, 3.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt), *dx0 = hrand(n, 0.1f, &st, dt);
            if (n > 3) x[1] += 1000.0f, round_through(x + 1, 1, dt);  // a row with a large offset
            float *y = hnew(n);
            softmax_fwd(y, x, N, C);
            // backward from the y the GPU side sees (bf16-rounded)
            float *yin = hcopy(y, n), *dx = hcopy(dx0, n);
            round_through(yin, n, dt);
            softmax_bwd(dx, dy, yin, N, C);
            void *dX = dput(x, n, dt, 0), *dY = dput(y, n, dt, 0), *dYin = dput(yin, n, dt, 0);
            void *dDY = dput(dy, n, dt, 0), *dDX = dput(dx0, n, dt, 0);
            char w[96];
            // fwd: e * (1 / sum), sum of C exps in fp32 (tree) vs double: a
            // few ulp; probabilities keep relative accuracy, so atol is tiny.
            snprintf(w, sizeof w, "softmax fwd %s N=%zu C=%d", dtype_name(dt), N, C);
            if (!gpu_ok(cuda_softmax_fwd(dt, dY, dX, N, C, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dY, n, dt), y, n, 1e-8, rtol_of(dt, 1e-5));
            // bwd: dot(dy, y) in fp32 has absolute error ~1e-7 (|y| sums to 1, |dy| ~ 1)
            snprintf(w, sizeof w, "softmax bwd %s N=%zu C=%d", dtype_name(dt), N, C);
            if (!gpu_ok(cuda_softmax_bwd(dt, dDX, dDY, dYin, N, C, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dDX, n, dt), dx, n, dt == DT_BF16 ? 1e-5 : 1e-6, rtol_of(dt, 1e-5));
            gpu_free_all();
        }
    gpu_free_all();
}
