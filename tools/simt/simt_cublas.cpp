// simt_cublas.cpp: the SIMT emulator's cuBLAS / cuBLASLt stand-in (declared in
// include/cublas_api.h, cublas_v2.h, cublasLt.h). Every GEMM runs on the host at
// once (the emulator's streams are synchronous) with cuBLAS's real COLUMN-major
// semantics: element (r, c) of a matrix with leading dimension ld is at r + c*ld
// (cuBLASLt's CUBLASLT_ORDER_ROW layouts: r*ld + c).
//
// Numerics model a tensor-core GEMM with fp32 accumulation: operands (fp32, bf16
// or fp16) are converted to float, each output element is a float dot product
// (eight partial sums in a fixed order, so results are bit-identical run to run
// and independent of the thread count), then alpha * acc + beta * C (+ bias,
// ReLU) is formed in float and rounded once to the output type. C is not read
// when beta == 0. Only the summation order differs from the GPU.
//
// Arguments are validated like cuBLAS does (leading dimensions, sizes, type
// combinations, attribute sizes), so a wrong row-major <-> column-major mapping
// fails here as it would on the GPU: INVALID_VALUE or NOT_SUPPORTED.
// An algorithm from cublasLtMatmulAlgoGetHeuristic remembers the preference's
// MIN_ALIGNMENT_{A,B,C,D}_BYTES (default 256) and cublasLtMatmul refuses pointers
// aligned less (INVALID_VALUE), so offset views must declare their alignment.
// Supported: COMPUTE_32F(_PEDANTIC) with fp32 scale; A/B/C types fp32/fp32/fp32,
// bf16/bf16/{bf16,fp32}, fp16/fp16/{fp16,fp32}. Not supported (NOT_SUPPORTED):
// the _FAST_ compute types (they round inputs on the GPU), GELU and BGRAD epilogues.
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "include/cublasLt.h"
#include "include/cublas_v2.h"

namespace {

const uint64_t kMagic = 0x73696d74626c6173ull;  // "simtblas"

struct BlasCtx {
    uint64_t magic;
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    cublasMath_t math;
    cublasPointerMode_t pointer_mode;
};

struct LtCtx {
    uint64_t magic;
};

struct Layout {
    cudaDataType type;
    int32_t order;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};

struct Desc {
    int32_t compute, scale, pointer_mode, transa, transb, transc;
    uint32_t epilogue;
    const void *bias;
    int32_t bias_type;  // -1: the output type
};

struct Pref {
    uint64_t max_workspace;
    uint32_t reduction_mask, search_mode;
    uint32_t align[4];  // minimum alignment in bytes promised for A, B, C, D
};

// A strided view of a matrix: element (i, j) at p[i*rs + j*cs] (in elements).
struct View {
    const void *p;
    cudaDataType t;
    int64_t rs, cs;
};

size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

float load(const void *p, cudaDataType t, int64_t idx) {
    switch (t) {
        case CUDA_R_32F: return ((const float *)p)[idx];
        case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[idx]);
        default: return __half2float(((const __half *)p)[idx]);
    }
}

void store(void *p, cudaDataType t, int64_t idx, float v) {
    switch (t) {
        case CUDA_R_32F: ((float *)p)[idx] = v; break;
        case CUDA_R_16BF: ((__nv_bfloat16 *)p)[idx] = __float2bfloat16_rn(v); break;
        default: ((__half *)p)[idx] = __float2half_rn(v); break;
    }
}

// A/B type, C/D type combinations cuBLAS accepts with CUBLAS_COMPUTE_32F.
bool types_ok(cudaDataType a, cudaDataType b, cudaDataType c) {
    if (a != b) return false;
    if (a == CUDA_R_32F) return c == CUDA_R_32F;
    if (a == CUDA_R_16BF) return c == CUDA_R_16BF || c == CUDA_R_32F;
    if (a == CUDA_R_16F) return c == CUDA_R_16F || c == CUDA_R_32F;
    return false;
}

bool compute_ok(int32_t c) { return c == CUBLAS_COMPUTE_32F || c == CUBLAS_COMPUTE_32F_PEDANTIC; }

bool op_ok(int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// Dot product of two contiguous float rows, eight partial sums in a fixed order.
float dot(const float *a, const float *b, int k) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int l = 0;
    for (; l + 8 <= k; l += 8)
        for (int u = 0; u < 8; u++) s[u] += a[l + u] * b[l + u];
    for (int u = 0; l < k; l++, u++) s[u] += a[l] * b[l];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

struct Epilogue {
    const void *bias;  // [m] or NULL
    cudaDataType bias_type;
    bool relu;
};

// D (m x n) = alpha * opA (m x k) @ opB (k x n) + beta * C (+ bias[i]) (ReLU), one batch.
void gemm_one(int m, int n, int k, float alpha, View A, View B, float beta, View C, void *D, cudaDataType dt,
              int64_t d_rs, int64_t d_cs, const Epilogue &ep) {
    if (m == 0 || n == 0) return;
    // Pack op(A) as rows [m][k] and op(B) as columns [n][k] so every dot is contiguous.
    std::vector<float> a((size_t)m * k), b((size_t)n * k);
    for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++) a[(size_t)i * k + l] = load(A.p, A.t, i * A.rs + l * A.cs);
    for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++) b[(size_t)j * k + l] = load(B.p, B.t, l * B.rs + j * B.cs);
    const double work = (double)m * n * (k + 1);
#pragma omp parallel for schedule(static) if (work > 65536.0)
    for (int j = 0; j < n; j++) {
        const float *bj = b.data() + (size_t)j * k;
        for (int i = 0; i < m; i++) {
            float v = alpha * dot(a.data() + (size_t)i * k, bj, k);
            if (beta != 0.0f) v += beta * load(C.p, C.t, i * C.rs + j * C.cs);
            if (ep.bias) v += load(ep.bias, ep.bias_type, i);
            if (ep.relu) v = v > 0.0f ? v : 0.0f;
            store(D, dt, i * d_rs + j * d_cs, v);
        }
    }
}

const char *status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *status_string(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "an internal operation failed";
    }
}

BlasCtx *blas(cublasHandle_t h) {
    BlasCtx *c = (BlasCtx *)h;
    return c && c->magic == kMagic ? c : nullptr;
}

// Column-major op(X) view of a stored matrix with leading dimension ld.
View op_view(const void *p, cudaDataType t, int op, int ld) {
    return op == CUBLAS_OP_N ? View{p, t, 1, ld} : View{p, t, ld, 1};
}

int imax1(int a) { return a > 1 ? a : 1; }

// The shared body of cublasGemmEx / cublasGemmStridedBatchedEx / cublasSgemm*.
cublasStatus_t gemm_ex(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                       int k, const void *alpha, const void *A, cudaDataType at, int lda, long long sa,
                       const void *B, cudaDataType bt, int ldb, long long sb, const void *beta, void *C,
                       cudaDataType ct, int ldc, long long sc, int batch, cublasComputeType_t compute) {
    if (!blas(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_ok(transa) || !op_ok(transb) || m < 0 || n < 0 || k < 0 || batch < 0 || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < imax1(transa == CUBLAS_OP_N ? m : k) || ldb < imax1(transb == CUBLAS_OP_N ? k : n) ||
        ldc < imax1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!compute_ok(compute) || !types_ok(at, bt, ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const Epilogue ep = {nullptr, CUDA_R_32F, false};
    for (int i = 0; i < batch; i++) {
        const char *a = (const char *)A + (size_t)(i * sa) * type_size(at);
        const char *b = (const char *)B + (size_t)(i * sb) * type_size(bt);
        char *c = (char *)C + (size_t)(i * sc) * type_size(ct);
        gemm_one(m, n, k, al, op_view(a, at, transa, lda), op_view(b, bt, transb, ldb), be, View{c, ct, 1, ldc}, c,
                 ct, 1, ldc, ep);
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

// ---------------------------------------------------------------------------------
// cuBLAS
extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    BlasCtx *c = new BlasCtx{kMagic, nullptr, nullptr, 0, CUBLAS_DEFAULT_MATH, CUBLAS_POINTER_MODE_HOST};
    *handle = (cublasHandle_t)c;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    c->magic = 0;
    delete c;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int *version) {
    if (!blas(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version) return CUBLAS_STATUS_INVALID_VALUE;
    *version = 130000;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    c->stream = streamId;
    c->workspace = nullptr;  // as in cuBLAS: setting the stream resets the user workspace
    c->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
    *streamId = c->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (workspaceSizeInBytes && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
    if (((uintptr_t)workspace & 255) != 0) return CUBLAS_STATUS_INVALID_VALUE;  // 256-byte alignment
    c->workspace = workspace;
    c->workspace_bytes = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    c->math = mode;  // fp32 accumulation throughout; TF32 math only matters to _FAST_ compute types
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = c->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
    c->pointer_mode = mode;  // device memory is host memory here: both read the same way
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t *mode) {
    BlasCtx *c = blas(handle);
    if (!c) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = c->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) { return status_name(status); }
const char *cublasGetStatusString(cublasStatus_t status) { return status_string(status); }

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                              int n, int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
    return gemm_ex(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, beta, C,
                   CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb, long long int strideB,
                                         const float *beta, float *C, int ldc, long long int strideC,
                                         int batchCount) {
    return gemm_ex(handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, strideA, B, CUDA_R_32F, ldb, strideB,
                   beta, C, CUDA_R_32F, ldc, strideC, batchCount, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_ex(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc,
                   0, 1, computeType);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B, cudaDataType Btype,
                                          int ldb, long long int strideB, const void *beta, void *C,
                                          cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_ex(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C,
                   Ctype, ldc, strideC, batchCount, computeType);
}

// ---------------------------------------------------------------------------------
// cuBLASLt

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
    *lightHandle = (cublasLtHandle_t) new LtCtx{kMagic};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
    LtCtx *c = (LtCtx *)lightHandle;
    if (!c || c->magic != kMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    c->magic = 0;
    delete c;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t status) { return status_name(status); }
const char *cublasLtGetStatusString(cublasStatus_t status) { return status_string(status); }
size_t cublasLtGetVersion(void) { return 130000; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    *matmulDesc = (cublasLtMatmulDesc_t) new Desc{(int32_t)computeType,
                                                   (int32_t)scaleType,
                                                   CUBLASLT_POINTER_MODE_HOST,
                                                   CUBLAS_OP_N,
                                                   CUBLAS_OP_N,
                                                   CUBLAS_OP_N,
                                                   CUBLASLT_EPILOGUE_DEFAULT,
                                                   nullptr,
                                                   -1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    delete (Desc *)matmulDesc;
    return CUBLAS_STATUS_SUCCESS;
}

#define SET_ATTR(field, type)                                           \
    do {                                                                \
        if (sizeInBytes != sizeof(type)) return CUBLAS_STATUS_INVALID_VALUE; \
        type v_;                                                        \
        memcpy(&v_, buf, sizeof v_);                                    \
        field = v_;                                                     \
    } while (0)

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes) {
    Desc *d = (Desc *)matmulDesc;
    if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: SET_ATTR(d->compute, int32_t); break;
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE: SET_ATTR(d->scale, int32_t); break;
        case CUBLASLT_MATMUL_DESC_POINTER_MODE: SET_ATTR(d->pointer_mode, int32_t); break;
        case CUBLASLT_MATMUL_DESC_TRANSA: SET_ATTR(d->transa, int32_t); break;
        case CUBLASLT_MATMUL_DESC_TRANSB: SET_ATTR(d->transb, int32_t); break;
        case CUBLASLT_MATMUL_DESC_TRANSC: SET_ATTR(d->transc, int32_t); break;
        case CUBLASLT_MATMUL_DESC_EPILOGUE: SET_ATTR(d->epilogue, uint32_t); break;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: SET_ATTR(d->bias, const void *); break;
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: SET_ATTR(d->bias_type, int32_t); break;
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
    *matLayout = (cublasLtMatrixLayout_t) new Layout{type, CUBLASLT_ORDER_COL, rows, cols, ld, 1, 0};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    delete (Layout *)matLayout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                cublasLtMatrixLayoutAttribute_t attr, const void *buf,
                                                size_t sizeInBytes) {
    Layout *l = (Layout *)matLayout;
    if (!l || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    uint32_t type;
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE:
            SET_ATTR(type, uint32_t);
            l->type = (cudaDataType)type;
            break;
        case CUBLASLT_MATRIX_LAYOUT_ORDER: SET_ATTR(l->order, int32_t); break;
        case CUBLASLT_MATRIX_LAYOUT_ROWS: SET_ATTR(l->rows, uint64_t); break;
        case CUBLASLT_MATRIX_LAYOUT_COLS: SET_ATTR(l->cols, uint64_t); break;
        case CUBLASLT_MATRIX_LAYOUT_LD: SET_ATTR(l->ld, int64_t); break;
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: SET_ATTR(l->batch, int32_t); break;
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: SET_ATTR(l->stride, int64_t); break;
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = (cublasLtMatmulPreference_t) new Pref{0, CUBLASLT_REDUCTION_SCHEME_MASK, 0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete (Pref *)pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes) {
    Pref *p = (Pref *)pref;
    if (!p || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_SEARCH_MODE: SET_ATTR(p->search_mode, uint32_t); break;
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: SET_ATTR(p->max_workspace, uint64_t); break;
        case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: SET_ATTR(p->reduction_mask, uint32_t); break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: SET_ATTR(p->align[0], uint32_t); break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: SET_ATTR(p->align[1], uint32_t); break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: SET_ATTR(p->align[2], uint32_t); break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: SET_ATTR(p->align[3], uint32_t); break;
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"

namespace {

// Checks a matmul problem; on success fills m, n, k.
cublasStatus_t lt_check(const Desc *d, const Layout *a, const Layout *b, const Layout *c, const Layout *dl,
                        uint64_t *m, uint64_t *n, uint64_t *k) {
    if (!d || !a || !b || !dl) return CUBLAS_STATUS_INVALID_VALUE;
    if (!c) c = dl;
    if (!op_ok(d->transa) || !op_ok(d->transb) || d->transc != CUBLAS_OP_N) return CUBLAS_STATUS_INVALID_VALUE;
    const Layout *ls[4] = {a, b, c, dl};
    for (const Layout *l : ls) {
        if (l->order != CUBLASLT_ORDER_COL && l->order != CUBLASLT_ORDER_ROW) return CUBLAS_STATUS_NOT_SUPPORTED;
        uint64_t need = l->order == CUBLASLT_ORDER_COL ? l->rows : l->cols;
        if (l->ld < 1 || (uint64_t)l->ld < need || l->batch < 1) return CUBLAS_STATUS_INVALID_VALUE;
        if (l->batch != dl->batch) return CUBLAS_STATUS_INVALID_VALUE;
    }
    const bool ta = d->transa != CUBLAS_OP_N, tb = d->transb != CUBLAS_OP_N;
    *m = ta ? a->cols : a->rows;
    *k = ta ? a->rows : a->cols;
    *n = tb ? b->rows : b->cols;
    const uint64_t kb = tb ? b->cols : b->rows;
    if (kb != *k || dl->rows != *m || dl->cols != *n || c->rows != *m || c->cols != *n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (*m > 0x7fffffff || *n > 0x7fffffff || *k > 0x7fffffff) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!compute_ok(d->compute) || d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!types_ok(a->type, b->type, dl->type) || c->type != dl->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    const uint32_t e = d->epilogue;
    if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_RELU && e != CUBLASLT_EPILOGUE_BIAS &&
        e != CUBLASLT_EPILOGUE_RELU_BIAS)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (e & CUBLASLT_EPILOGUE_BIAS) {
        const int32_t bt = d->bias_type < 0 ? (int32_t)dl->type : d->bias_type;
        if (bt != (int32_t)dl->type && bt != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// Strided view of a layout's matrix (batch i): (r, c) -> offset in elements.
View lt_view(const void *p, const Layout *l, int i, bool trans) {
    const char *base = (const char *)p + (size_t)(i * l->stride) * type_size(l->type);
    int64_t rs = l->order == CUBLASLT_ORDER_COL ? 1 : l->ld, cs = l->order == CUBLASLT_ORDER_COL ? l->ld : 1;
    return trans ? View{base, l->type, cs, rs} : View{base, l->type, rs, cs};
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount) {
    LtCtx *c = (LtCtx *)lightHandle;
    if (!c || c->magic != kMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!preference || requestedAlgoCount < 1 || !heuristicResultsArray || !returnAlgoCount)
        return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m, n, k;
    cublasStatus_t st = lt_check((const Desc *)operationDesc, (const Layout *)Adesc, (const Layout *)Bdesc,
                                 (const Layout *)Cdesc, (const Layout *)Ddesc, &m, &n, &k);
    *returnAlgoCount = 0;
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    // One algorithm: no workspace, fp32 accumulation, no split-K reduction.
    memset(&heuristicResultsArray[0], 0, sizeof heuristicResultsArray[0]);
    heuristicResultsArray[0].algo.data[0] = kMagic;
    for (int i = 0; i < 4; i++) heuristicResultsArray[0].algo.data[1 + i] = ((const Pref *)preference)->align[i];
    heuristicResultsArray[0].workspaceSize = 0;
    heuristicResultsArray[0].state = CUBLAS_STATUS_SUCCESS;
    heuristicResultsArray[0].wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                              cublasLtMatrixLayout_t Bdesc, const void *beta, const void *C,
                              cublasLtMatrixLayout_t Cdesc, void *D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspaceSizeInBytes,
                              cudaStream_t stream) {
    (void)workspace, (void)workspaceSizeInBytes, (void)stream;
    LtCtx *lc = (LtCtx *)lightHandle;
    if (!lc || lc->magic != kMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (algo && algo->data[0] != kMagic) return CUBLAS_STATUS_INVALID_VALUE;  // not from the heuristic
    const Desc *d = (const Desc *)computeDesc;
    const Layout *al = (const Layout *)Adesc, *bl = (const Layout *)Bdesc, *dl = (const Layout *)Ddesc;
    const Layout *cl = Cdesc ? (const Layout *)Cdesc : dl;
    uint64_t m, n, k;
    cublasStatus_t st = lt_check(d, al, bl, cl, dl, &m, &n, &k);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (!alpha || !beta || !D || (m && n && k && (!A || !B))) return CUBLAS_STATUS_INVALID_VALUE;
    const float a = *(const float *)alpha, be = *(const float *)beta;
    if (be != 0.0f && !C) return CUBLAS_STATUS_INVALID_VALUE;
    if (algo) {  // the chosen algorithm relies on the alignment the preference promised
        const void *ptrs[4] = {A, B, C, D};
        for (int i = 0; i < 4; i++)
            if (ptrs[i] && algo->data[1 + i] > 1 && (uintptr_t)ptrs[i] % algo->data[1 + i] != 0)
                return CUBLAS_STATUS_INVALID_VALUE;
    }
    Epilogue ep = {nullptr, dl->type, (d->epilogue & CUBLASLT_EPILOGUE_RELU) != 0};
    if (d->epilogue & CUBLASLT_EPILOGUE_BIAS) {
        if (!d->bias) return CUBLAS_STATUS_INVALID_VALUE;
        ep.bias = d->bias;
        ep.bias_type = d->bias_type < 0 ? dl->type : (cudaDataType)d->bias_type;
    }
    for (int i = 0; i < dl->batch; i++) {
        View va = lt_view(A, al, i, d->transa != CUBLAS_OP_N), vb = lt_view(B, bl, i, d->transb != CUBLAS_OP_N);
        View vc = lt_view(C ? C : D, cl, i, false), vd = lt_view(D, dl, i, false);
        gemm_one((int)m, (int)n, (int)k, a, va, vb, be, vc, (void *)vd.p, dl->type, vd.rs, vd.cs, ep);
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
