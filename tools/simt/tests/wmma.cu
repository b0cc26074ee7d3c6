// wmma.cu (simt test): WMMA GEMMs (nvcuda::wmma, tools/simt/include/mma.h),
// one warp per output tile, against a double CPU loop on the same rounded
// inputs:
//  - bf16 64x48x80 -> fp32, A row-major [M,K], B row-major [K,N], C = alpha A B
//    (alpha applied elementwise to the accumulator fragment), 4 warps per block;
//  - bf16 with B given as W [N,K] (col_major matrix_b: the nn.Linear layout),
//    D = A W^T + C with C loaded from memory, stored column-major;
//  - __half 32x8x16 and 8x32x16 tiles, col_major A, __half accumulator for one;
//  - tf32 16x16x8 (inputs rounded with __float_to_tf32), double 8x8x4.
// Tolerance: products of bf16/f16/tf32 values are exact in fp32, the sum of K
// terms in fp32 (or the tensor core's own order) errs by at most
// K * 2^-24 * sum |a b|; the bound used is 2 K 2^-24 sum|a b| + 1e-30. A
// __half accumulator is rounded (2^-11 relative to partial sums <= sum|a b|)
// after each of the 3 k-steps and once more on output: + 2^-9 sum|a b|.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

using namespace nvcuda;

static int g_ok = 1;

// C [M,N] row-major (fp32) = alpha A [M,K] B [K,N]; blockDim 160 = 5 warps;
// global warp w computes tile (w / (N/16), w % (N/16)); surplus warps exit.
__global__ void gemm_bf16_rr(float *c, const __nv_bfloat16 *a, const __nv_bfloat16 *b, int M, int N, int K,
                             float alpha) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int tiles_n = N / 16;
    if (warp >= (M / 16) * tiles_n) return;  // whole warps leave together
    int tm = warp / tiles_n, tn = warp % tiles_n;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 16) {
        wmma::load_matrix_sync(fa, a + (size_t)tm * 16 * K + k, K);
        wmma::load_matrix_sync(fb, b + (size_t)k * N + tn * 16, N);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    for (int i = 0; i < acc.num_elements; i++) acc.x[i] *= alpha;
    wmma::store_matrix_sync(c + (size_t)tm * 16 * N + tn * 16, acc, N, wmma::mem_row_major);
}

// D = A [M,K] W^T + C, W [N,K] as a col_major matrix_b; C and D column-major
// ([N][M], ld M). One warp per block, grid (N/16, M/16).
__global__ void gemm_bf16_linear(float *d, const float *c, const __nv_bfloat16 *a, const __nv_bfloat16 *w, int M,
                                 int N, int K) {
    int tn = blockIdx.x, tm = blockIdx.y;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, c + (size_t)tn * 16 * M + tm * 16, M, wmma::mem_col_major);
    for (int k = 0; k < K; k += 16) {
        wmma::load_matrix_sync(fa, a + (size_t)tm * 16 * K + k, K);
        wmma::load_matrix_sync(fb, w + (size_t)tn * 16 * K + k, K);  // (k, n) at w[n*K + k]
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(d + (size_t)tn * 16 * M + tm * 16, acc, M, wmma::mem_col_major);
}

// Half tiles TM x TN x 16, A col-major (A^T stored [K,M]), B row-major; TACC
// float or __half; out row-major [M,N] (as TACC). grid (N/TN, M/TM), 1 warp.
template <int TM, int TN, class TACC>
__global__ void gemm_half(TACC *out, const __half *at, const __half *b, int M, int N, int K) {
    int tn = blockIdx.x, tm = blockIdx.y;
    wmma::fragment<wmma::matrix_a, TM, TN, 16, __half, wmma::col_major> fa;
    wmma::fragment<wmma::matrix_b, TM, TN, 16, __half, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, TM, TN, 16, TACC> acc;
    wmma::fill_fragment(acc, (TACC)0.0f);
    for (int k = 0; k < K; k += 16) {
        wmma::load_matrix_sync(fa, at + (size_t)k * M + tm * TM, M);
        wmma::load_matrix_sync(fb, b + (size_t)k * N + tn * TN, N);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + (size_t)tm * TM * N + tn * TN, acc, N, wmma::mem_row_major);
}

// tf32 16x16x8, both row-major, fp32 storage rounded in the fragment.
__global__ void gemm_tf32(float *c, const float *a, const float *b, int M, int N, int K) {
    int tn = blockIdx.x, tm = blockIdx.y;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 8) {
        wmma::load_matrix_sync(fa, a + (size_t)tm * 16 * K + k, K);
        wmma::load_matrix_sync(fb, b + (size_t)k * N + tn * 16, N);
        for (int i = 0; i < fa.num_elements; i++) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
        for (int i = 0; i < fb.num_elements; i++) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + (size_t)tm * 16 * N + tn * 16, acc, N, wmma::mem_row_major);
}

// double 8x8x4.
__global__ void gemm_f64(double *c, const double *a, const double *b, int M, int N, int K) {
    int tn = blockIdx.x, tm = blockIdx.y;
    wmma::fragment<wmma::matrix_a, 8, 8, 4, double, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 8, 8, 4, double, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 8, 8, 4, double> acc;
    wmma::fill_fragment(acc, 0.0);
    for (int k = 0; k < K; k += 4) {
        wmma::load_matrix_sync(fa, a + (size_t)tm * 8 * K + k, K);
        wmma::load_matrix_sync(fb, b + (size_t)k * N + tn * 8, N);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + (size_t)tm * 8 * N + tn * 8, acc, N, wmma::mem_row_major);
}

// ------------------------------------------------------------------ host side
static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) * (1.0f / 16777216.0f)) * 2.0f - 1.0f;
}

static float tf32_rna(float f) {  // reference rounding for __float_to_tf32
    unsigned u;
    memcpy(&u, &f, 4);
    u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&f, &u, 4);
    return f;
}

// got (M x N, element (i,j) at got[i*rs + j*cs]) vs alpha * A B + C (row-major
// doubles; a(i,k) = a[i*K+k], b(k,j) = b[k*N+j], c NULL or row-major).
static void check(const char *what, const double *got, int rs, int cs, const double *a, const double *b,
                  const double *c, double alpha, int M, int N, int K, double extra_rel) {
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double want = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                want += a[i * K + k] * b[k * N + j];
                mag += fabs(a[i * K + k] * b[k * N + j]);
            }
            want = alpha * want + (c ? c[i * N + j] : 0.0);
            mag = fabs(alpha) * mag + (c ? fabs(c[i * N + j]) : 0.0);
            double g = got[(size_t)i * rs + (size_t)j * cs], tol = 2.0 * K * mag / 16777216.0 + extra_rel * mag + 1e-30;
            if (!(fabs(g - want) <= tol)) {
                if (g_ok || worst == 0) printf("FAIL %s (%d,%d): got %.9g want %.9g tol %.3g\n", what, i, j, g, want, tol);
                g_ok = 0;
                worst = 1;
            }
        }
}

template <class T> static T *upload(const T *h, size_t n) {
    T *d;
    cudaMalloc(&d, n * sizeof(T));
    cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

static double *to_double_bf16(const __nv_bfloat16 *h, size_t n) {
    double *r = (double *)malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) r[i] = __bfloat162float(h[i]);
    return r;
}

static void test_bf16(void) {
    const int M = 64, N = 48, K = 80;
    unsigned s = 1;
    __nv_bfloat16 *a = (__nv_bfloat16 *)malloc(M * K * 2), *b = (__nv_bfloat16 *)malloc(K * N * 2);
    __nv_bfloat16 *w = (__nv_bfloat16 *)malloc(N * K * 2);
    for (int i = 0; i < M * K; i++) a[i] = __float2bfloat16(frand(&s));
    for (int i = 0; i < K * N; i++) b[i] = __float2bfloat16(frand(&s));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) w[n * K + k] = b[k * N + n];  // W = B^T
    double *ad = to_double_bf16(a, M * K), *bd = to_double_bf16(b, K * N);
    __nv_bfloat16 *da = upload(a, M * K), *db = upload(b, K * N), *dw = upload(w, N * K);
    float *dc;
    cudaMalloc(&dc, M * N * sizeof(float));
    float *hc = (float *)malloc(M * N * sizeof(float));
    double *got = (double *)malloc(M * N * sizeof(double));

    int tiles = (M / 16) * (N / 16);  // 12 tiles, 5 warps per block -> 3 blocks, 3 warps idle
    gemm_bf16_rr<<<(tiles + 4) / 5, 160>>>(dc, da, db, M, N, K, 0.5f);
    if (cudaGetLastError() != cudaSuccess) g_ok = 0;
    cudaMemcpy(hc, dc, M * N * sizeof(float), cudaMemcpyDeviceToHost);
    for (int i = 0; i < M * N; i++) got[i] = hc[i];
    check("bf16 row/row 64x48x80 alpha 0.5", got, N, 1, ad, bd, NULL, 0.5, M, N, K, 0.0);

    // linear layout, C column-major
    float *cinit = (float *)malloc(M * N * sizeof(float));
    double *crow = (double *)malloc(M * N * sizeof(double));
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) {
            cinit[j * M + i] = frand(&s);
            crow[i * N + j] = cinit[j * M + i];
        }
    float *dcin = upload(cinit, M * N);
    gemm_bf16_linear<<<dim3(N / 16, M / 16), 32>>>(dc, dcin, da, dw, M, N, K);
    if (cudaGetLastError() != cudaSuccess) g_ok = 0;
    cudaMemcpy(hc, dc, M * N * sizeof(float), cudaMemcpyDeviceToHost);
    for (int i = 0; i < M * N; i++) got[i] = hc[i];
    check("bf16 A W^T + C (col_major B, mem_col_major C)", got, 1, M, ad, bd, crow, 1.0, M, N, K, 0.0);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dw);
    cudaFree(dc);
    cudaFree(dcin);
    free(a);
    free(b);
    free(w);
    free(ad);
    free(bd);
    free(hc);
    free(got);
    free(cinit);
    free(crow);
}

template <int TM, int TN, class TACC> static void test_half(const char *what, double extra_rel) {
    const int M = 2 * TM, N = 2 * TN, K = 48;
    unsigned s = 7 + TM;
    __half *at = (__half *)malloc(K * M * 2), *b = (__half *)malloc(K * N * 2);
    double *ad = (double *)malloc(M * K * sizeof(double)), *bd = (double *)malloc(K * N * sizeof(double));
    for (int k = 0; k < K; k++)
        for (int i = 0; i < M; i++) {
            at[k * M + i] = __float2half(frand(&s));
            ad[i * K + k] = __half2float(at[k * M + i]);
        }
    for (int i = 0; i < K * N; i++) {
        b[i] = __float2half(frand(&s));
        bd[i] = __half2float(b[i]);
    }
    __half *dat = upload(at, K * M), *db = upload(b, K * N);
    TACC *dout;
    cudaMalloc(&dout, M * N * sizeof(TACC));
    gemm_half<TM, TN, TACC><<<dim3(N / TN, M / TM), 32>>>(dout, dat, db, M, N, K);
    if (cudaGetLastError() != cudaSuccess) g_ok = 0;
    TACC *h = (TACC *)malloc(M * N * sizeof(TACC));
    cudaMemcpy(h, dout, M * N * sizeof(TACC), cudaMemcpyDeviceToHost);
    double *got = (double *)malloc(M * N * sizeof(double));
    for (int i = 0; i < M * N; i++) got[i] = (float)h[i];
    check(what, got, N, 1, ad, bd, NULL, 1.0, M, N, K, extra_rel);
    cudaFree(dat);
    cudaFree(db);
    cudaFree(dout);
    free(at);
    free(b);
    free(ad);
    free(bd);
    free(h);
    free(got);
}

static void test_tf32_f64(void) {
    const int M = 32, N = 16, K = 24;
    unsigned s = 99;
    float *a = (float *)malloc(M * K * 4), *b = (float *)malloc(K * N * 4);
    double *ad = (double *)malloc(M * K * 8), *bd = (double *)malloc(K * N * 8);
    for (int i = 0; i < M * K; i++) {
        a[i] = frand(&s);
        ad[i] = tf32_rna(a[i]);
    }
    for (int i = 0; i < K * N; i++) {
        b[i] = frand(&s);
        bd[i] = tf32_rna(b[i]);
    }
    float *da = upload(a, M * K), *db = upload(b, K * N), *dc;
    cudaMalloc(&dc, M * N * 4);
    gemm_tf32<<<dim3(N / 16, M / 16), 32>>>(dc, da, db, M, N, K);
    if (cudaGetLastError() != cudaSuccess) g_ok = 0;
    float *hc = (float *)malloc(M * N * 4);
    double *got = (double *)malloc(M * N * 8);
    cudaMemcpy(hc, dc, M * N * 4, cudaMemcpyDeviceToHost);
    for (int i = 0; i < M * N; i++) got[i] = hc[i];
    check("tf32 16x16x8", got, N, 1, ad, bd, NULL, 1.0, M, N, K, 0.0);

    // double: products and sums in double, bound scaled down accordingly
    double *dda = upload(ad, M * K), *ddb = upload(bd, K * N), *ddc;
    cudaMalloc(&ddc, M * N * 8);
    gemm_f64<<<dim3(N / 8, M / 8), 32>>>(ddc, dda, ddb, M, N, K);
    if (cudaGetLastError() != cudaSuccess) g_ok = 0;
    cudaMemcpy(got, ddc, M * N * 8, cudaMemcpyDeviceToHost);
    check("f64 8x8x4", got, N, 1, ad, bd, NULL, 1.0, M, N, K, 0.0);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(dda);
    cudaFree(ddb);
    cudaFree(ddc);
    free(a);
    free(b);
    free(ad);
    free(bd);
    free(hc);
    free(got);
}

int main(void) {
    test_bf16();
    test_half<32, 8, float>("f16 32x8x16 col_major A", 0.0);
    test_half<8, 32, __half>("f16 8x32x16 __half accumulator", 1.0 / 512);  // 3 k-steps, each rounded to f16
    test_tf32_f64();
    printf("%s wmma\n", g_ok ? "PASS" : "FAIL");
    return g_ok ? 0 : 1;
}
