// linear.c: fully connected layer on top of gemm (PyTorch [out, in] weights).
#include "../common.h"
#include "ops.h"

// y[M,N] = x[M,K] @ W[N,K]^T + b[N]
void linear_fwd(float *y, const float *x, const float *W, const float *b, int M, int K, int N) {
    gemm(0, 1, M, N, K, 1.0f, x, K, W, K, 0.0f, y, N);
    if (!b) return;
#pragma omp parallel for schedule(static) if ((long)M * N > 32768)
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) y[(size_t)m * N + n] += b[n];
}

void linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int M, int K,
                int N) {
    if (dx) gemm(0, 0, M, K, N, 1.0f, dy, N, W, K, 1.0f, dx, K);  // dx[M,K] += dy[M,N] @ W[N,K]
    if (dW) gemm(1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dW, K);  // dW[N,K] += dy^T[N,M] @ x[M,K]
    if (db) {
#pragma omp parallel for schedule(static) if ((long)M * N > 32768)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int m = 0; m < M; m++) s += dy[(size_t)m * N + n];
            db[n] += (float)s;
        }
    }
}
