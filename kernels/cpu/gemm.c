// gemm.c: row-major single-precision GEMM (placeholder: straightforward loops;
// to be replaced by the cache-blocked kernel).
#include "../common.h"
#include "ops.h"

void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                float b = tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                s += (double)a * b;
            }
            float *c = &C[(size_t)m * ldc + n];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

void gemm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, long sA,
                  const float *B, int ldb, long sB, float beta, float *C, int ldc, long sC, int batch) {
    for (int b = 0; b < batch; b++)
        gemm(ta, tb, M, N, K, alpha, A + b * sA, lda, B + b * sB, ldb, beta, C + b * sC, ldc);
}
