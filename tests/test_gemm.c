// test_gemm.c: gemm / gemm_batched against a double-precision triple loop.
//
// Tolerance: gemm accumulates in fp32 (as BLAS does). The standard bound for a
// length-K dot product in floating point is |fl(a.b) - a.b| <= gamma_K
// sum|a_k b_k|, gamma_K ~= K u, u = 2^-24; scaling by alpha and adding beta*C
// costs two more roundings. We accept
//   |got - ref| <= 2 * (K + 3) * u * (|alpha| sum_k |a_k b_k| + |beta c|) + 1e-30
// (2x margin over the worst case; any indexing or blocking bug produces errors
// of the size of the values themselves, orders of magnitude above this).
// Sizes cross the micro-tile (12x32 / 6x16 / 4x16) and block (MC 240, KC 256,
// NC 768) boundaries so edge tiles and multi-block accumulation are covered.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "test.h"

#define U 5.960464477539063e-08  // 2^-24

static float a_at(int ta, const float *A, int lda, int m, int k) {
    return ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
}
static float b_at(int tb, const float *B, int ldb, int k, int n) {
    return tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
}

// Checks C (after gemm) against the reference computed from A, B and C0 (C before).
// Also checks that the padding columns [N, ldc) of C were left untouched.
static int check_gemm(const char *label, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, const float *C0, const float *C, int ldc) {
    long bad = 0;
    int wm = 0, wn = 0;
    double wgot = 0, wref = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)a_at(ta, A, lda, m, k) * b_at(tb, B, ldb, k, n);
                s += p;
                sa += fabs(p);
            }
            double c0 = C0[(size_t)m * ldc + n];
            double ref = alpha * s + (beta == 0.0f ? 0.0 : beta * c0);
            double tol = 2.0 * (K + 3) * U * (fabs(alpha) * sa + (beta == 0.0f ? 0.0 : fabs(beta * c0))) + 1e-30;
            double got = C[(size_t)m * ldc + n];
            if (!(fabs(got - ref) <= tol)) {
                if (!bad) wm = m, wn = n, wgot = got, wref = ref;
                bad++;
            }
        }
        for (int n = N; n < ldc; n++)
            if (memcmp(&C[(size_t)m * ldc + n], &C0[(size_t)m * ldc + n], sizeof(float))) {
                test_fail(__FILE__, __LINE__, "%s: padding C[%d,%d] was written", label, m, n);
                return 0;
            }
    }
    if (bad)
        test_fail(__FILE__, __LINE__, "%s: %ld of %ld wrong; first C[%d,%d] got %.9g want %.9g", label, bad,
                  (long)M * N, wm, wn, wgot, wref);
    return bad == 0;
}

// One gemm call with random A, B, C, leading dims padded by `pad`.
static void run_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad, int nan_c,
                     uint64_t seed) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(sizeof(float) * (na ? na : 1)), *B = malloc(sizeof(float) * (nb ? nb : 1));
    float *C0 = malloc(sizeof(float) * nc), *C = malloc(sizeof(float) * nc);
    uint64_t st = seed;
    test_fill_uniform(A, na, -1.0f, 1.0f, &st);
    test_fill_uniform(B, nb, -1.0f, 1.0f, &st);
    test_fill_uniform(C0, nc, -1.0f, 1.0f, &st);
    if (nan_c)
        for (size_t i = 0; i < nc; i++)
            if ((int)(i % (size_t)ldc) < N) C0[i] = NAN;
    memcpy(C, C0, sizeof(float) * nc);
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    char label[160];
    snprintf(label, sizeof label, "gemm ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d%s", ta, tb, M, N, K,
             alpha, beta, pad, nan_c ? " (NaN C)" : "");
    check_gemm(label, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, C, ldc);
    free(A), free(B), free(C0), free(C);
}

TEST(gemm_transposes_odd_sizes) {
    static const int sz[][3] = {{1, 1, 1},     {1, 7, 3},     {3, 1, 17},    {7, 17, 1},    {17, 65, 3},
                                {65, 3, 129},  {13, 33, 257}, {129, 257, 7}, {257, 65, 65}, {33, 129, 300}};
    int ncase = (int)(sizeof sz / sizeof sz[0]);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < ncase; i++)
            run_case(t >> 1, t & 1, sz[i][0], sz[i][1], sz[i][2], 1.0f, 0.0f, 0, 0, 100 + 10 * i + t);
}

TEST(gemm_alpha_beta_nan) {
    for (int t = 0; t < 4; t++) {
        run_case(t >> 1, t & 1, 37, 45, 29, 1.0f, 0.0f, 0, 1, 1 + t);      // beta = 0 must ignore NaN in C
        run_case(t >> 1, t & 1, 65, 33, 300, -0.5f, 0.0f, 3, 1, 5 + t);    // over KC: second block uses beta 1
        run_case(t >> 1, t & 1, 37, 45, 29, 0.75f, 1.0f, 0, 0, 9 + t);
        run_case(t >> 1, t & 1, 50, 70, 270, 2.0f, -1.5f, 5, 0, 13 + t);
        run_case(t >> 1, t & 1, 17, 9, 7, 0.0f, 0.5f, 0, 0, 17 + t);      // alpha = 0: C = beta C
    }
    run_case(0, 0, 3, 5, 0, 1.0f, 2.0f, 0, 0, 21);                         // K = 0: C = beta C
    run_case(0, 0, 3, 5, 0, 1.0f, 0.0f, 0, 1, 22);                         // K = 0, beta = 0 over NaN
}

TEST(gemm_strides_and_blocks) {
    // lda/ldb/ldc larger than the row length (untouched padding checked).
    for (int t = 0; t < 4; t++) run_case(t >> 1, t & 1, 19, 23, 31, 1.0f, 0.0f, 7, 0, 30 + t);
    // Larger than MC (240) rows and KC (256) depth; several blocks per thread.
    run_case(0, 0, 501, 97, 531, 1.0f, 0.0f, 1, 0, 40);
    run_case(1, 1, 250, 130, 260, 1.0f, 1.0f, 0, 0, 41);
    // Wider than NC (768): several column blocks, with rows split over threads...
    run_case(1, 0, 100, 1700, 300, 1.0f, 0.5f, 0, 0, 44);
    // ...and with few rows, where threads split columns instead.
    run_case(0, 1, 5, 3100, 9, 1.0f, 0.0f, 0, 0, 42);
    run_case(1, 0, 3, 700, 100, 1.0f, 0.0f, 2, 0, 43);
}

TEST(gemm_batched_matches_loop) {
    // (batch, M, N, K): many small GEMMs (one per thread) and a few larger ones.
    static const int cfg[][4] = {{7, 5, 9, 13}, {3, 70, 65, 40}, {2, 300, 40, 33}};
    for (int c = 0; c < 3; c++)
        for (int t = 0; t < 4; t++) {
            int ta = t >> 1, tb = t & 1, bt = cfg[c][0], M = cfg[c][1], N = cfg[c][2], K = cfg[c][3];
            int lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
            long sA = (long)(ta ? K : M) * lda + 5, sB = (long)(tb ? N : K) * ldb + 1, sC = (long)M * ldc + 4;
            float *A = malloc(sizeof(float) * sA * bt), *B = malloc(sizeof(float) * sB * bt);
            float *C0 = malloc(sizeof(float) * sC * bt), *C = malloc(sizeof(float) * sC * bt);
            uint64_t st = 77 + c * 4 + t;
            test_fill_uniform(A, (size_t)sA * bt, -1, 1, &st);
            test_fill_uniform(B, (size_t)sB * bt, -1, 1, &st);
            test_fill_uniform(C0, (size_t)sC * bt, -1, 1, &st);
            memcpy(C, C0, sizeof(float) * sC * bt);
            float alpha = 0.5f, beta = c == 1 ? 0.0f : 1.25f;
            gemm_batched(ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, bt);
            for (int b = 0; b < bt; b++) {
                char label[96];
                snprintf(label, sizeof label, "gemm_batched[%d] ta=%d tb=%d %dx%dx%d", b, ta, tb, M, N, K);
                if (!check_gemm(label, ta, tb, M, N, K, alpha, A + b * sA, lda, B + b * sB, ldb, beta, C0 + b * sC,
                                C + b * sC, ldc))
                    break;
                // the gap between batches of C must be untouched
                for (long i = (long)M * ldc; i < sC; i++)
                    EXPECT(C[b * sC + i] == C0[b * sC + i], "batch %d gap %ld written", b, i);
            }
            free(A), free(B), free(C0), free(C);
        }
}
