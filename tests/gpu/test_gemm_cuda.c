// test_gemm_cuda.c: the row-major cuBLAS / cuBLASLt GEMMs of kernels/cuda/gemm.cu
// against the CPU gemm() (kernels/cpu/ops.h): every transpose combination, odd
// sizes, padded leading dimensions, alpha and beta (beta = 0 with a NaN-filled C),
// bf16 and f32, strided batches with gaps, the fp32-output variant accumulating
// into C, the bias GEMM on its cuBLASLt path and on its fallback, determinism, and
// a cuBLAS argument error reported as a status.
//
// Tolerances. Inputs are rounded through dt on the host before both sides see
// them, so products are exact in fp32 on both sides and the only differences are
//  - fp32 summation order: |err| <= ~K * 2^-24 * sum|a_i b_i|; with N(0,1) data and
//    K <= 64 that is < 1e-5 absolute; we allow atol = 2e-6 * (K + 1) (f32 and bf16)
//    and rtol 1e-5 for f32 (the beta*C term and alpha add a few more roundings);
//  - bf16 output: one rounding of the fp32 result, half an ulp = 2^-8 relative at most
//    (dtype_eps), plus the summation-order term above before rounding.
// The fp32-output variant with bf16 inputs therefore gets the f32 tolerance.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/gemm.h"
#include "../test.h"
#include "gpu_test.h"


TEST(cuda_gemm_all_transposes) {
    if (!gpu_ready()) return;
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 17, 29}, {3, 100, 1}, {64, 48, 40}, {1, 33, 64}};
    uint64_t rng = 11;
    for (int di = 0; di < 2; di++) {
        DType dt = di ? DT_BF16 : DT_F32;
        for (int si = 0; si < 6; si++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (int bi = 0; bi < 2; bi++) {
                        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                        const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                        const int lda = ac + 3, ldb = bc + 1, ldc = N + 2;
                        const float alpha = 0.5f, beta = bi ? 1.5f : 0.0f;
                        float *A = rand_buf((size_t)ar * lda, dt, &rng), *B = rand_buf((size_t)br * ldb, dt, &rng);
                        float *C = rand_buf((size_t)M * ldc, dt, &rng);
                        void *dA = gpu_put(A, (size_t)ar * lda, dt), *dB = gpu_put(B, (size_t)br * ldb, dt);
                        void *dC = bi ? gpu_put(C, (size_t)M * ldc, dt) : gpu_fill((size_t)M * ldc, dt, NAN);
                        char what[128];
                        snprintf(what, sizeof what, "%s M%d N%d K%d ta%d tb%d beta%g", dtype_name(dt), M, N, K, ta,
                                 tb, beta);
                        if (!gpu_ok(cuda_gemm(dt, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc,
                                              dev_stream()),
                                    what))
                            return;
                        float *got = gpu_get(dC, (size_t)M * ldc, dt);
                        float *want = xmalloc((size_t)M * ldc * sizeof(float));
                        memcpy(want, C, (size_t)M * ldc * sizeof(float));
                        gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, want, ldc);
                        // compare the M x N block; the padding columns must be untouched
                        for (int m = 0; m < M; m++) {
                            EXPECT_CLOSE(what, got + (size_t)m * ldc, want + (size_t)m * ldc, N, atol_k(K),
                                         rtol_out(dt, 1));
                            if (bi)
                                for (int n = N; n < ldc; n++)
                                    EXPECT(got[(size_t)m * ldc + n] == C[(size_t)m * ldc + n], "%s: padding written",
                                           what);
                        }
                        free(A), free(B), free(C), free(want);
                        gpu_free_all();
                    }
    }
}

TEST(cuda_gemm_batched) {
    if (!gpu_ready()) return;
    uint64_t rng = 12;
    const int M = 9, N = 6, K = 11, batch = 3;
    for (int di = 0; di < 2; di++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                DType dt = di ? DT_BF16 : DT_F32;
                const int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
                const long sA = (long)M * K + 5, sB = (long)K * N + 2, sC = (long)M * N + 7;
                float *A = rand_buf(sA * batch, dt, &rng), *B = rand_buf(sB * batch, dt, &rng);
                float *C = rand_buf(sC * batch, dt, &rng);
                void *dA = gpu_put(A, sA * batch, dt), *dB = gpu_put(B, sB * batch, dt);
                void *dC = gpu_put(C, sC * batch, dt);
                char what[96];
                snprintf(what, sizeof what, "batched %s ta%d tb%d", dtype_name(dt), ta, tb);
                if (!gpu_ok(cuda_gemm_batched(dt, ta, tb, M, N, K, 1.25f, dA, lda, sA, dB, ldb, sB, -0.5f, dC, ldc,
                                              sC, batch, dev_stream()),
                            what))
                    return;
                float *got = gpu_get(dC, sC * batch, dt);
                gemm_batched(ta, tb, M, N, K, 1.25f, A, lda, sA, B, ldb, sB, -0.5f, C, ldc, sC, batch);
                // C now holds the reference, gaps included (the CPU leaves them alone too)
                EXPECT_CLOSE(what, got, C, sC * batch, atol_k(K), rtol_out(dt, 1));
                free(A), free(B), free(C);
                gpu_free_all();
            }
}

// bf16 inputs, fp32 output accumulated with beta = 1 (parameter gradients).
TEST(cuda_gemm_f32out) {
    if (!gpu_ready()) return;
    uint64_t rng = 13;
    for (int di = 0; di < 2; di++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                DType dt = di ? DT_BF16 : DT_F32;
                const int M = 13, N = 7, K = 37;
                const int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
                float *A = rand_buf((size_t)M * K, dt, &rng), *B = rand_buf((size_t)K * N, dt, &rng);
                float *C = rand_buf((size_t)M * N, DT_F32, &rng);
                void *dA = gpu_put(A, (size_t)M * K, dt), *dB = gpu_put(B, (size_t)K * N, dt);
                float *dC = gpu_put(C, (size_t)M * N, DT_F32);
                char what[96];
                snprintf(what, sizeof what, "f32out %s ta%d tb%d", dtype_name(dt), ta, tb);
                if (!gpu_ok(cuda_gemm_f32out(dt, ta, tb, M, N, K, 1.0f, dA, lda, dB, ldb, 1.0f, dC, ldc,
                                             dev_stream()),
                            what))
                    return;
                // and the batched form, two batches of the same problem into two C copies
                float *C2 = rand_buf((size_t)2 * M * N, DT_F32, &rng);
                float *dC2 = gpu_put(C2, (size_t)2 * M * N, DT_F32);
                if (!gpu_ok(cuda_gemm_batched_f32out(dt, ta, tb, M, N, K, 1.0f, dA, lda, 0, dB, ldb, 0, 1.0f, dC2,
                                                     ldc, (long)M * N, 2, dev_stream()),
                            what))
                    return;
                float *got = gpu_get(dC, (size_t)M * N, DT_F32), *got2 = gpu_get(dC2, (size_t)2 * M * N, DT_F32);
                gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
                gemm_batched(ta, tb, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, 1.0f, C2, ldc, (long)M * N, 2);
                EXPECT_CLOSE(what, got, C, (size_t)M * N, atol_k(K), 1e-5);
                EXPECT_CLOSE(what, got2, C2, (size_t)2 * M * N, atol_k(K), 1e-5);
                free(A), free(B), free(C), free(C2);
                gpu_free_all();
            }
}

// C = op(A) op(B) + bias[N] on the cuBLASLt path and on the fallback path.
TEST(cuda_gemm_bias) {
    if (!gpu_ready()) return;
    uint64_t rng = 14;
    static const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {17, 24, 40}, {64, 13, 8}};
    for (int lt = 1; lt >= 0; lt--) {
        cuda_gemm_use_lt(lt);
        for (int di = 0; di < 2; di++)
            for (int si = 0; si < 4; si++)
                for (int ta = 0; ta < 2; ta++)
                    for (int tb = 0; tb < 2; tb++)
                        for (int has_bias = 0; has_bias < 2; has_bias++) {
                            DType dt = di ? DT_BF16 : DT_F32;
                            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                            const int lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 1;
                            float *A = rand_buf((size_t)M * K, dt, &rng), *B = rand_buf((size_t)K * N, dt, &rng);
                            float *bias = rand_buf(N, dt, &rng);
                            void *dA = gpu_put(A, (size_t)M * K, dt), *dB = gpu_put(B, (size_t)K * N, dt);
                            void *dbias = gpu_put(bias, N, dt);
                            void *dC = gpu_fill((size_t)M * ldc, dt, NAN);
                            char what[128];
                            snprintf(what, sizeof what, "bias lt%d %s M%d N%d K%d ta%d tb%d bias%d", lt,
                                     dtype_name(dt), M, N, K, ta, tb, has_bias);
                            if (!gpu_ok(cuda_gemm_bias(dt, ta, tb, M, N, K, dA, lda, dB, ldb,
                                                       has_bias ? dbias : NULL, dC, ldc, dev_stream()),
                                        what))
                                goto out;
                            float *got = gpu_get(dC, (size_t)M * ldc, dt);
                            float *want = xmalloc((size_t)M * ldc * sizeof(float));
                            for (int m = 0; m < M; m++)
                                for (int n = 0; n < ldc; n++) want[(size_t)m * ldc + n] = has_bias && n < N ? bias[n] : 0;
                            gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, want, ldc);
                            for (int m = 0; m < M; m++)
                                EXPECT_CLOSE(what, got + (size_t)m * ldc, want + (size_t)m * ldc, N, atol_k(K),
                                             rtol_out(dt, 1));
                            for (int m = 0; m < M; m++)
                                EXPECT(isnan(got[(size_t)m * ldc + N]), "%s: padding column written", what);
                            free(A), free(B), free(bias), free(want);
                            gpu_free_all();
                        }
    }
out:
    cuda_gemm_use_lt(1);
    gpu_free_all();
}

// Offset (only element-aligned) views through the cuBLASLt path, and determinism.
TEST(cuda_gemm_offset_views_deterministic) {
    if (!gpu_ready()) return;
    uint64_t rng = 15;
    const DType dt = DT_BF16;
    const int M = 19, N = 21, K = 45;
    float *A = rand_buf((size_t)M * K + 1, dt, &rng), *B = rand_buf((size_t)N * K + 3, dt, &rng);
    float *bias = rand_buf(N + 1, dt, &rng);
    void *dA = gpu_put(A, (size_t)M * K + 1, dt), *dB = gpu_put(B, (size_t)N * K + 3, dt);
    void *dbias = gpu_put(bias, N + 1, dt);
    void *dC = gpu_fill((size_t)M * N + 1, dt, 0.0f);
    const size_t es = dtype_size(dt);
    // x W^T + b with x, W, b and y all one element into their buffers
    if (!gpu_ok(cuda_gemm_bias(dt, 0, 1, M, N, K, (char *)dA + es, K, (char *)dB + 3 * es, K, (char *)dbias + es,
                               (char *)dC + es, N, dev_stream()),
                "offset views"))
        return;
    float *got = gpu_get(dC, (size_t)M * N + 1, dt);
    float *want = xmalloc(((size_t)M * N + 1) * sizeof(float));
    want[0] = 0.0f;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) want[1 + (size_t)m * N + n] = bias[1 + n];
    gemm(0, 1, M, N, K, 1.0f, A + 1, K, B + 3, K, 1.0f, want + 1, N);
    EXPECT_CLOSE("offset views", got, want, (size_t)M * N + 1, atol_k(K), rtol_out(dt, 1));
    // same call again: bit-identical
    if (!gpu_ok(cuda_gemm_bias(dt, 0, 1, M, N, K, (char *)dA + es, K, (char *)dB + 3 * es, K, (char *)dbias + es,
                               (char *)dC + es, N, dev_stream()),
                "offset views again"))
        return;
    float *again = gpu_get(dC, (size_t)M * N + 1, dt);
    EXPECT(memcmp(got, again, ((size_t)M * N + 1) * sizeof(float)) == 0, "cuda_gemm_bias is not deterministic");
    free(A), free(B), free(bias), free(want);
    gpu_free_all();
}

// A leading dimension smaller than the row length is a cuBLAS argument error,
// reported as a nonzero status (not a crash); an unsupported dtype too.
TEST(cuda_gemm_reports_errors) {
    if (!gpu_ready()) return;
    void *dA = gpu_fill(64, DT_F32, 1.0f), *dB = gpu_fill(64, DT_F32, 1.0f), *dC = gpu_fill(64, DT_F32, 0.0f);
    int rc = cuda_gemm(DT_F32, 0, 0, 4, 4, 4, 1.0f, dA, 3, dB, 4, 0.0f, dC, 4, dev_stream());
    EXPECT(rc != 0, "lda < K accepted");
    rc = cuda_gemm(DT_F16, 0, 0, 4, 4, 4, 1.0f, dA, 4, dB, 4, 0.0f, dC, 4, dev_stream());
    EXPECT(rc != 0, "DT_F16 accepted");
    // the context stays usable
    EXPECT(gpu_ok(cuda_gemm(DT_F32, 0, 0, 4, 4, 4, 1.0f, dA, 4, dB, 4, 0.0f, dC, 4, dev_stream()), "after error"),
           "gemm after an error");
    float *got = gpu_get(dC, 16, DT_F32);
    EXPECT(got[0] == 4.0f && got[15] == 4.0f, "4x4 ones product: %g %g", got[0], got[15]);
    gpu_free_all();
}
