// gemm.cu: row-major GEMMs on cuBLAS / cuBLASLt (see gemm.h).
//
// cuBLAS is column-major. A row-major matrix X [R, C] with leading dim ld is the
// column-major matrix X^T [C, R] with the same ld, so the row-major product
//   C[M,N] = op(A) op(B)   is computed as   C^T[N,M] = op(B)^T op(A)^T
// in column-major terms: cuBLAS's first operand is our B (transposed iff tb), its
// second our A (transposed iff ta), m = N, n = M, k = K, and every leading
// dimension stays as given.
//
// Precision: CUBLAS_COMPUTE_32F (fp32 accumulation on tensor cores for bf16, plain
// fp32 FMA for f32 -- no TF32), math mode DISALLOW_REDUCED_PRECISION_REDUCTION and,
// for cuBLASLt, reduction schemes NONE | COMPUTE_TYPE only, so split-K partial sums
// are never rounded to bf16: each output is rounded exactly once.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <string.h>

#include <mutex>

#include "common.cuh"
#include "gemm.h"

#define GEMM_MAX_DEVICES 16
#define GEMM_WORKSPACE_BYTES (32u << 20)  // cuBLAS's recommendation for Hopper
#define LT_CACHE 64                       // cached cuBLASLt algorithms per device

namespace {

struct LtKey {
    int dt, ta, tb, M, N, K, lda, ldb, ldc;
    uint32_t align_a, align_b, align_c, align_bias;  // 0 align_bias: no bias
};

struct LtEntry {
    LtKey key;
    cublasLtMatmulAlgo_t algo;
    int used;  // 0: empty, 1: algo valid, 2: cuBLASLt has no algorithm (use the fallback)
};

struct Ctx {
    int ready;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *ws;
    cudaStream_t stream;  // stream the cuBLAS handle is set to
    int stream_set;
    LtEntry cache[LT_CACHE];
    int next;  // round-robin replacement
};

Ctx g_ctx[GEMM_MAX_DEVICES];
std::mutex g_mu;
int g_use_lt = 1;

int blas_error(cublasStatus_t st, const char *what) {
    fprintf(stderr, "cuda gemm: %s failed: %s\n", what, cublasGetStatusName(st));
    switch (st) {
        case CUBLAS_STATUS_INVALID_VALUE: return (int)cudaErrorInvalidValue;
        case CUBLAS_STATUS_NOT_SUPPORTED: return (int)cudaErrorNotSupported;
        case CUBLAS_STATUS_ALLOC_FAILED: return (int)cudaErrorMemoryAllocation;
        case CUBLAS_STATUS_NOT_INITIALIZED: return (int)cudaErrorInitializationError;
        default: return (int)cudaErrorUnknown;
    }
}

// The current device's context, created on first use; NULL after printing why not.
// Sets the cuBLAS handle's stream (and, since that resets it, the workspace).
// Called with g_mu held.
Ctx *ctx_for(cudaStream_t s, int *err) {
    int dev = 0;
    cudaError_t ce = cudaGetDevice(&dev);
    if (ce != cudaSuccess || dev < 0 || dev >= GEMM_MAX_DEVICES) {
        *err = ce != cudaSuccess ? (int)ce : (int)cudaErrorInvalidDevice;
        fprintf(stderr, "cuda gemm: no usable current device (%d)\n", dev);
        return nullptr;
    }
    Ctx *c = &g_ctx[dev];
    if (!c->ready) {
        cublasStatus_t st = cublasCreate(&c->blas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            *err = blas_error(st, "cublasCreate");
            return nullptr;
        }
        st = cublasLtCreate(&c->lt);
        if (st != CUBLAS_STATUS_SUCCESS) {
            cublasDestroy(c->blas);
            *err = blas_error(st, "cublasLtCreate");
            return nullptr;
        }
        ce = cudaMalloc(&c->ws, GEMM_WORKSPACE_BYTES);
        if (ce != cudaSuccess) {
            cudaGetLastError();
            cublasLtDestroy(c->lt);
            cublasDestroy(c->blas);
            fprintf(stderr, "cuda gemm: cudaMalloc(%u bytes) for the cuBLAS workspace: %s\n", GEMM_WORKSPACE_BYTES,
                    cudaGetErrorString(ce));
            *err = (int)ce;
            return nullptr;
        }
        st = cublasSetMathMode(c->blas,
                               (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
        if (st != CUBLAS_STATUS_SUCCESS) {
            *err = blas_error(st, "cublasSetMathMode");
            return nullptr;
        }
        c->stream_set = 0;
        c->ready = 1;
    }
    if (!c->stream_set || c->stream != s) {
        cublasStatus_t st = cublasSetStream(c->blas, s);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetWorkspace(c->blas, c->ws, GEMM_WORKSPACE_BYTES);
        if (st != CUBLAS_STATUS_SUCCESS) {
            *err = blas_error(st, "cublasSetStream/cublasSetWorkspace");
            return nullptr;
        }
        c->stream = s;
        c->stream_set = 1;
    }
    return c;
}

cudaDataType cuda_type(DType dt) { return dt == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

cublasOperation_t op(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// Row-major C = alpha op(A) op(B) + beta C with A, B of type ab and C of type c.
int gemm_core(DType ab, DType c, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
              long sA, const void *B, int ldb, long sB, float beta, void *C, int ldc, long sC, int batch,
              cudaStream_t s) {
    if ((ab != DT_F32 && ab != DT_BF16) || (c != DT_F32 && c != ab)) return (int)cudaErrorInvalidValue;
    if (M < 0 || N < 0 || K < 0 || batch < 0) return (int)cudaErrorInvalidValue;
    if (M == 0 || N == 0 || batch == 0) return (int)cudaGetLastError();
    std::lock_guard<std::mutex> lock(g_mu);
    int err = 0;
    Ctx *cx = ctx_for(s, &err);
    if (!cx) return err;
    const cudaDataType tab = cuda_type(ab), tc = cuda_type(c);
    cublasStatus_t st;
    if (batch == 1)
        st = cublasGemmEx(cx->blas, op(tb), op(ta), N, M, K, &alpha, B, tab, ldb, A, tab, lda, &beta, C, tc, ldc,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    else
        st = cublasGemmStridedBatchedEx(cx->blas, op(tb), op(ta), N, M, K, &alpha, B, tab, ldb, sB, A, tab, lda, sA,
                                        &beta, C, tc, ldc, sC, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) {
        char what[192];
        snprintf(what, sizeof what, "cublasGemm%sEx(row-major M=%d N=%d K=%d ta=%d tb=%d lda=%d ldb=%d ldc=%d batch=%d)",
                 batch == 1 ? "" : "StridedBatched", M, N, K, ta, tb, lda, ldb, ldc, batch);
        return blas_error(st, what);
    }
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------------------------
// Bias: cuBLASLt epilogue (f32), or the fallback C[m, n] = bias[n] then GEMM with beta = 1
// (the bias is already of type T, so the result is still rounded once; always for bf16).

template <typename T>
__global__ void broadcast_rows_kernel(T *__restrict__ C, const T *__restrict__ bias, int M, int N, int ldc) {
    GRID_STRIDE(i, (size_t)M * N) {
        size_t m = i / N, n = i % N;
        C[m * ldc + n] = bias[n];
    }
}

uint32_t alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

#define LT_TRY(call)                                              \
    do {                                                          \
        cublasStatus_t st_ = (call);                              \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                       \
            rc = blas_error(st_, #call);                          \
            goto done;                                            \
        }                                                         \
    } while (0)

// Returns 0 and sets *fallback when cuBLASLt has no algorithm for the problem.
int lt_bias(DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
            const void *bias, void *C, int ldc, cudaStream_t s, int *fallback) {
    std::lock_guard<std::mutex> lock(g_mu);
    int rc = 0;
    Ctx *cx = ctx_for(s, &rc);
    if (!cx) return rc;
    const cudaDataType t = cuda_type(dt);
    // Column-major problem D^T [N, M] = op(B)^T [N, K] op(A)^T [K, M] (see the top of the file).
    LtKey key;
    memset(&key, 0, sizeof key);
    key = LtKey{(int)dt, ta, tb, M, N, K, lda, ldb, ldc, alignment(B), alignment(A), alignment(C),
                bias ? alignment(bias) : 0u};
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    LtEntry *e = nullptr;
    const int32_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const uint32_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    const float one = 1.0f, zero = 0.0f;
    LT_TRY(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (bias) LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    LT_TRY(cublasLtMatrixLayoutCreate(&la, t, tb ? K : N, tb ? N : K, ldb));  // our B, stored column-major
    LT_TRY(cublasLtMatrixLayoutCreate(&lb, t, ta ? M : K, ta ? K : M, lda));  // our A
    LT_TRY(cublasLtMatrixLayoutCreate(&ld, t, N, M, ldc));                    // our C

    for (int i = 0; i < LT_CACHE; i++)
        if (cx->cache[i].used && memcmp(&cx->cache[i].key, &key, sizeof key) == 0) e = &cx->cache[i];
    if (!e) {
        e = &cx->cache[cx->next];
        cx->next = (cx->next + 1) % LT_CACHE;
        e->used = 0;
        const uint64_t ws = GEMM_WORKSPACE_BYTES;
        const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
        LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                    sizeof schemes));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_a,
                                                    sizeof key.align_a));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_b,
                                                    sizeof key.align_b));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_c,
                                                    sizeof key.align_c));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_c,
                                                    sizeof key.align_c));
        cublasLtMatmulHeuristicResult_t res;
        int nres = 0;
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cx->lt, desc, la, lb, ld, ld, pref, 1, &res, &nres);
        e->key = key;
        if (st == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
            e->algo = res.algo;
            e->used = 1;
        } else {
            e->used = 2;  // no algorithm: remember, and use the fallback
        }
    }
    if (e->used == 2) {
        *fallback = 1;
    } else {
        char what[160];
        cublasStatus_t st = cublasLtMatmul(cx->lt, desc, &one, B, la, A, lb, &zero, C, ld, C, ld, &e->algo, cx->ws,
                                           GEMM_WORKSPACE_BYTES, s);
        if (st != CUBLAS_STATUS_SUCCESS) {
            snprintf(what, sizeof what, "cublasLtMatmul(row-major M=%d N=%d K=%d ta=%d tb=%d lda=%d ldb=%d ldc=%d)",
                     M, N, K, ta, tb, lda, ldb, ldc);
            rc = blas_error(st, what);
        }
    }
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (desc) cublasLtMatmulDescDestroy(desc);
    return rc;
}

}  // namespace

extern "C" int cuda_gemm(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                         const void *B, int ldb, float beta, void *C, int ldc, cudaStream_t s) {
    return gemm_core(dt, dt, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, s);
}

extern "C" int cuda_gemm_batched(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                                 long sA, const void *B, int ldb, long sB, float beta, void *C, int ldc, long sC,
                                 int batch, cudaStream_t s) {
    return gemm_core(dt, dt, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, s);
}

extern "C" int cuda_gemm_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                                const void *B, int ldb, float beta, float *C, int ldc, cudaStream_t s) {
    return gemm_core(dt, DT_F32, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, s);
}

extern "C" int cuda_gemm_batched_f32out(DType dt, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                                        int lda, long sA, const void *B, int ldb, long sB, float beta, float *C,
                                        int ldc, long sC, int batch, cudaStream_t s) {
    return gemm_core(dt, DT_F32, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, s);
}

extern "C" int cuda_gemm_bias(DType dt, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B,
                              int ldb, const void *bias, void *C, int ldc, cudaStream_t s) {
    if (dt != DT_F32 && dt != DT_BF16) return (int)cudaErrorInvalidValue;
    if (M < 0 || N < 0 || K < 0) return (int)cudaErrorInvalidValue;
    if (M == 0 || N == 0) return (int)cudaGetLastError();
    // bf16 with bias: not the cuBLASLt bias epilogue. On an H200 (cuBLAS 13, 2026-11-28) it
    // rounded the product to bf16 before adding the bias (errors beyond one rounding; exact
    // zeros where bias ~ -product: tests/gpu/test_gemm_cuda.c, test_linear_conv_cuda.c
    // failed). The fallback reads the bias through C with beta = 1: one rounding, verified there.
    int fallback = !g_use_lt || K == 0 || (bias && dt == DT_BF16);
    if (!fallback) {
        int rc = lt_bias(dt, ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc, s, &fallback);
        if (rc || !fallback) return rc ? rc : (int)cudaGetLastError();
    }
    if (!bias) return cuda_gemm(dt, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, s);
    DISPATCH_T(dt, {
        broadcast_rows_kernel<T><<<grid_for((size_t)M * N, 256), 256, 0, s>>>((T *)C, (const T *)bias, M, N, ldc);
        int rc = (int)cudaGetLastError();
        if (rc) return rc;
    });
    return cuda_gemm(dt, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc, s);
}

extern "C" void cuda_gemm_use_lt(int enabled) { g_use_lt = enabled != 0; }
