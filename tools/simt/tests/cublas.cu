// cublas.cu (simt test): the cuBLAS / cuBLASLt stand-in (simt_cublas.cpp) against a
// naive column-major loop in double: cublasGemmEx / cublasGemmStridedBatchedEx /
// cublasSgemm with both transposes, odd sizes, padded leading dimensions, alpha and
// beta, fp32 and bf16 operands with fp32 or bf16 output; beta = 0 must not read C;
// argument errors (ld too small, mixed or unsupported type combinations); cuBLASLt
// matmul with TRANSA/TRANSB, the BIAS epilogue, row-ordered and strided-batched
// layouts, an A pointer only element-aligned (declared in the preference). The same
// source builds with nvcc against the real libraries (nvcc -std=c++17 cublas.cu
// -lcublasLt -lcublas) to check the stand-in's semantics on a GPU.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0;
#define CHECK(c, ...)                                        \
    do {                                                     \
        if (!(c)) {                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);      \
            printf(__VA_ARGS__);                             \
            printf("\n");                                    \
            g_fail = 1;                                      \
        }                                                    \
    } while (0)

static unsigned g_rng = 12345;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

// Host matrix of `n` random values (rounded through bf16 when bf), uploaded as fp32 or bf16.
struct Buf {
    float *h;
    void *d;
    size_t n;
    bool bf;
};
static Buf make(size_t n, bool bf, bool random = true) {
    Buf b;
    b.n = n;
    b.bf = bf;
    b.h = (float *)malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) b.h[i] = random ? (bf ? round_bf16(frand()) : frand()) : 0.0f;
    size_t es = bf ? 2 : 4;
    cudaMalloc(&b.d, n * es + 1);
    if (bf) {
        __nv_bfloat16 *t = (__nv_bfloat16 *)malloc(n * 2 + 2);
        for (size_t i = 0; i < n; i++) t[i] = __float2bfloat16(b.h[i]);
        cudaMemcpy(b.d, t, n * 2, cudaMemcpyHostToDevice);
        free(t);
    } else {
        cudaMemcpy(b.d, b.h, n * 4, cudaMemcpyHostToDevice);
    }
    return b;
}
static void download(float *out, const Buf &b) {
    cudaDeviceSynchronize();
    if (b.bf) {
        __nv_bfloat16 *t = (__nv_bfloat16 *)malloc(b.n * 2 + 2);
        cudaMemcpy(t, b.d, b.n * 2, cudaMemcpyDeviceToHost);
        for (size_t i = 0; i < b.n; i++) out[i] = __bfloat162float(t[i]);
        free(t);
    } else {
        cudaMemcpy(out, b.d, b.n * 4, cudaMemcpyDeviceToHost);
    }
}
static void release(Buf &b) {
    free(b.h);
    cudaFree(b.d);
}

// Column-major reference: C(i,j) = alpha * sum_l opA(i,l) opB(l,j) + beta * C(i,j) (+ bias[i]),
// with element (r,c) of X at X[r*rs + c*cs]. Also returns sum |terms| per element in mag.
static void ref_gemm(int m, int n, int k, double alpha, const float *A, long ars, long acs, const float *B,
                     long brs, long bcs, double beta, const float *C0, float *Cref, double *mag, long crs,
                     long ccs, const float *bias) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0, a = 0;
            for (int l = 0; l < k; l++) {
                double t = (double)A[i * ars + l * acs] * B[l * brs + j * bcs];
                s += t;
                a += fabs(t);
            }
            double v = alpha * s + (beta != 0 ? beta * C0[i * crs + j * ccs] : 0) + (bias ? bias[i] : 0);
            Cref[i * crs + j * ccs] = (float)v;
            mag[i * crs + j * ccs] = fabs(alpha) * a + fabs(beta * (beta != 0 ? C0[i * crs + j * ccs] : 0)) +
                                     (bias ? fabs(bias[i]) : 0);
        }
}

// |got - want| <= 4e-6 * mag (fp32 summation order) + half an ulp of the output type.
static int compare(const char *what, const float *got, const float *want, const double *mag, int m, int n,
                   long rs, long cs, bool out_bf) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            long o = i * rs + j * cs;
            double tol = 4e-6 * mag[o] + (out_bf ? fabs(want[o]) / 256.0 : 0) + 1e-30;
            if (!(fabs((double)got[o] - want[o]) <= tol)) {
                printf("FAIL %s: (%d,%d) got %.8g want %.8g\n", what, i, j, got[o], want[o]);
                g_fail = 1;
                return 0;
            }
        }
    return 1;
}

static void test_gemm_ex(cublasHandle_t h) {
    const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 1, 17}, {33, 29, 64}, {64, 96, 40}, {5, 9, 0}};
    for (const auto &sh : shapes)
        for (int ab_bf = 0; ab_bf < 2; ab_bf++)
            for (int c_bf = 0; c_bf <= ab_bf; c_bf++)
                for (int ta = 0; ta < 2; ta++)
                    for (int tb = 0; tb < 2; tb++)
                        for (int use_beta = 0; use_beta < 2; use_beta++) {
                            const int m = sh[0], n = sh[1], k = sh[2];
                            const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                            const int lda = ar + 3, ldb = br + 1, ldc = m + 2;
                            Buf A = make((size_t)lda * (ac > 0 ? ac : 1), ab_bf);
                            Buf B = make((size_t)ldb * (bc > 0 ? bc : 1), ab_bf);
                            Buf C = make((size_t)ldc * n, c_bf);
                            if (!use_beta) {  // beta = 0: C is garbage (NaN) and must not be read
                                cudaMemset(C.d, 0xff, C.n * (c_bf ? 2 : 4));
                                for (size_t i = 0; i < C.n; i++) C.h[i] = NAN;
                            }
                            float alpha = 0.75f, beta = use_beta ? -1.25f : 0.0f;
                            cudaDataType abt = ab_bf ? CUDA_R_16BF : CUDA_R_32F, ct = c_bf ? CUDA_R_16BF : CUDA_R_32F;
                            cublasStatus_t st = cublasGemmEx(
                                h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, A.d,
                                abt, lda, B.d, abt, ldb, &beta, C.d, ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                            CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasGemmEx status %d", (int)st);
                            float *got = (float *)malloc(C.n * 4), *want = (float *)malloc(C.n * 4);
                            double *mag = (double *)malloc(C.n * 8);
                            download(got, C);
                            ref_gemm(m, n, k, alpha, A.h, ta ? lda : 1, ta ? 1 : lda, B.h, tb ? ldb : 1,
                                     tb ? 1 : ldb, beta, C.h, want, mag, 1, ldc, nullptr);
                            char what[128];
                            snprintf(what, sizeof what, "GemmEx m%d n%d k%d ab_bf%d c_bf%d ta%d tb%d beta%d", m, n,
                                     k, ab_bf, c_bf, ta, tb, use_beta);
                            compare(what, got, want, mag, m, n, 1, ldc, c_bf);
                            free(got), free(want), free(mag);
                            release(A), release(B), release(C);
                        }
}

static void test_batched_and_sgemm(cublasHandle_t h) {
    const int m = 9, n = 6, k = 11, batch = 3;
    const long sa = (long)m * k + 5, sb = (long)k * n + 2, sc = (long)m * n + 7;
    for (int bf = 0; bf < 2; bf++) {
        Buf A = make(sa * batch, bf), B = make(sb * batch, bf), C = make(sc * batch, bf);
        float alpha = 1.0f, beta = 0.5f;
        cudaDataType t = bf ? CUDA_R_16BF : CUDA_R_32F;
        // op(A) = A^T with A stored k x m (lda = k); op(B) = B stored k x n (ldb = k).
        cublasStatus_t st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.d, t, k, sa,
                                                       B.d, t, k, sb, &beta, C.d, t, m, sc, batch,
                                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        CHECK(st == CUBLAS_STATUS_SUCCESS, "strided batched status %d", (int)st);
        float *got = (float *)malloc(C.n * 4), *want = (float *)malloc(C.n * 4);
        double *mag = (double *)malloc(C.n * 8);
        download(got, C);
        memcpy(want, C.h, C.n * 4);
        for (int b = 0; b < batch; b++) {
            ref_gemm(m, n, k, alpha, A.h + b * sa, k, 1, B.h + b * sb, 1, k, beta, C.h + b * sc, want + b * sc,
                     mag + b * sc, 1, m, nullptr);
            compare(bf ? "strided batched bf16" : "strided batched f32", got + b * sc, want + b * sc, mag + b * sc,
                    m, n, 1, m, bf);
        }
        // the gaps between batches are untouched
        for (int b = 0; b < batch; b++)
            for (long i = (long)m * n; i < sc; i++)
                CHECK(got[b * sc + i] == C.h[b * sc + i], "gap element written");
        if (!bf) {  // cublasSgemm: C = A B^T on the first batch's buffers, beta = 0
            beta = 0.0f;
            Buf B2 = make((size_t)n * k, false);
            st = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &alpha, (const float *)A.d, k,
                             (const float *)B2.d, n, &beta, (float *)C.d, m);
            CHECK(st == CUBLAS_STATUS_SUCCESS, "cublasSgemm status %d", (int)st);
            download(got, C);
            ref_gemm(m, n, k, alpha, A.h, k, 1, B2.h, n, 1, 0.0, C.h, want, mag, 1, m, nullptr);
            compare("cublasSgemm", got, want, mag, m, n, 1, m, false);
            release(B2);
        }
        free(got), free(want), free(mag);
        release(A), release(B), release(C);
    }
}

static void test_errors(cublasHandle_t h) {
    Buf A = make(64, false), B = make(64, false), C = make(64, false), Ab = make(64, true);
    float one = 1.0f, zero = 0.0f;
    // lda < m for op N
    cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A.d, CUDA_R_32F, 3, B.d,
                                     CUDA_R_32F, 4, &zero, C.d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_INVALID_VALUE, "lda < m: status %d", (int)st);
    // ldb < n for op T
    st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, 4, 5, 2, &one, A.d, CUDA_R_32F, 4, B.d, CUDA_R_32F, 4, &zero,
                      C.d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_INVALID_VALUE, "ldb < n (op T): status %d", (int)st);
    // ldc < m
    st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A.d, CUDA_R_32F, 4, B.d, CUDA_R_32F, 4, &zero,
                      C.d, CUDA_R_32F, 3, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_INVALID_VALUE, "ldc < m: status %d", (int)st);
    // mixed A/B types
    st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, Ab.d, CUDA_R_16BF, 4, B.d, CUDA_R_32F, 4, &zero,
                      C.d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE, "mixed A/B: status %d", (int)st);
    // fp32 operands with bf16 output
    st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A.d, CUDA_R_32F, 4, B.d, CUDA_R_32F, 4, &zero,
                      Ab.d, CUDA_R_16BF, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE, "f32 -> bf16: status %d", (int)st);
    release(A), release(B), release(C), release(Ab);
}

// cuBLASLt: D = alpha op(A) op(B) + beta C + bias, column- and row-ordered, batched.
static void test_lt(void) {
    cublasLtHandle_t lt;
    CHECK(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
    void *ws;
    const size_t ws_bytes = 4 << 20;
    cudaMalloc(&ws, ws_bytes);
    const int m = 10, n = 7, k = 13, batch = 2;
    for (int bf = 0; bf < 2; bf++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int row = 0; row < 2; row++)
                    for (int bias_on = 0; bias_on < 2; bias_on++) {
                        cudaDataType t = bf ? CUDA_R_16BF : CUDA_R_32F;
                        const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                        // ld = the stored matrix's column length (COL) or row length (ROW), padded
                        const int lda = (row ? ac : ar) + 1, ldb = (row ? bc : br) + 2, ldd = (row ? n : m) + 3;
                        const long sa = (long)lda * (row ? ar : ac), sb = (long)ldb * (row ? br : bc),
                                   sd = (long)ldd * (row ? m : n);
                        // A starts one element into its buffer: only element-aligned, declared below
                        Buf A = make(sa * batch + 1, bf), B = make(sb * batch, bf), D = make(sd * batch, bf);
                        const void *a_dev = (const char *)A.d + (bf ? 2 : 4);
                        Buf bias = make(m, bf);
                        cublasLtMatmulDesc_t desc;
                        cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
                        int32_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
                        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
                        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
                        if (bias_on) {
                            uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
                            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
                            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias.d,
                                                           sizeof bias.d);
                        }
                        cublasLtMatrixLayout_t la, lb, ld;
                        cublasLtMatrixLayoutCreate(&la, t, ar, ac, lda);
                        cublasLtMatrixLayoutCreate(&lb, t, br, bc, ldb);
                        cublasLtMatrixLayoutCreate(&ld, t, m, n, ldd);
                        int32_t order = row ? CUBLASLT_ORDER_ROW : CUBLASLT_ORDER_COL, nb = batch;
                        cublasLtMatrixLayout_t ls[3] = {la, lb, ld};
                        const long strides[3] = {sa, sb, sd};
                        for (int i = 0; i < 3; i++) {
                            int64_t s64 = strides[i];
                            cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order);
                            cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb);
                            cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s64,
                                                             sizeof s64);
                        }
                        cublasLtMatmulPreference_t pref;
                        cublasLtMatmulPreferenceCreate(&pref);
                        uint64_t wsb = ws_bytes;
                        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                                             sizeof wsb);
                        uint32_t align_a = bf ? 2 : 4;
                        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                             sizeof align_a);
                        cublasLtMatmulHeuristicResult_t res;
                        int nres = 0;
                        cublasStatus_t st =
                            cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &res, &nres);
                        char what[128];
                        snprintf(what, sizeof what, "Lt bf%d ta%d tb%d row%d bias%d", bf, ta, tb, row, bias_on);
                        CHECK(st == CUBLAS_STATUS_SUCCESS && nres == 1, "%s: heuristic status %d, %d algos", what,
                              (int)st, nres);
                        float alpha = 1.5f, beta = bias_on ? 0.0f : 1.0f;
                        if (nres == 1) {
                            st = cublasLtMatmul(lt, desc, &alpha, a_dev, la, B.d, lb, &beta, D.d, ld, D.d, ld, &res.algo,
                                                ws, ws_bytes, 0);
                            CHECK(st == CUBLAS_STATUS_SUCCESS, "%s: matmul status %d", what, (int)st);
                        }
                        float *got = (float *)malloc(D.n * 4), *want = (float *)malloc(D.n * 4);
                        double *mag = (double *)malloc(D.n * 8);
                        download(got, D);
                        memcpy(want, D.h, D.n * 4);
                        const long ars = row ? lda : 1, acs = row ? 1 : lda, brs = row ? ldb : 1, bcs = row ? 1 : ldb;
                        const long drs = row ? ldd : 1, dcs = row ? 1 : ldd;
                        for (int b = 0; b < batch; b++) {
                            const float *Ab = A.h + 1 + b * sa, *Bb = B.h + b * sb;
                            ref_gemm(m, n, k, alpha, Ab, ta ? acs : ars, ta ? ars : acs, Bb, tb ? bcs : brs,
                                     tb ? brs : bcs, beta, D.h + b * sd, want + b * sd, mag + b * sd, drs, dcs,
                                     bias_on ? bias.h : nullptr);
                            compare(what, got + b * sd, want + b * sd, mag + b * sd, m, n, drs, dcs, bf);
                        }
                        free(got), free(want), free(mag);
                        cublasLtMatmulPreferenceDestroy(pref);
                        cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb),
                            cublasLtMatrixLayoutDestroy(ld);
                        cublasLtMatmulDescDestroy(desc);
                        release(A), release(B), release(D), release(bias);
                    }
    cudaFree(ws);
    cublasLtDestroy(lt);
}

int main(void) {
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        printf("FAIL cublasCreate\n");
        return 1;
    }
    void *ws;
    cudaMalloc(&ws, 1 << 20);
    cublasSetStream(h, 0);
    cublasSetWorkspace(h, ws, 1 << 20);
    test_gemm_ex(h);
    test_batched_and_sgemm(h);
    test_errors(h);
    test_lt();
    cublasDestroy(h);
    cudaFree(ws);
    printf(g_fail ? "FAIL\n" : "PASS\n");
    return g_fail;
}
