// linear.cu: fully connected layer on the GEMMs of gemm.cu, plus the deterministic
// bias-gradient column sum (see linear.h).
//
// Forward: y = x W^T + b in one cuBLASLt call (bias epilogue, one rounding).
// Backward: dx += dy W (cuBLAS, beta = 1, T output), dW += dy^T x (bf16 operands,
// fp32 output, beta = 1), db += column sums of dy:
//   pass 1: grid (column tiles of 32, R row chunks), block 32 x 8; thread (tx, ty)
//           sums rows ty, ty+8, ... of its chunk for column tx (a warp reads 32
//           consecutive channels: coalesced), the 8 row lanes are combined in order
//           in shared memory, and the chunk's partial goes to ws[chunk][col];
//   pass 2: one thread per column adds the R partials in chunk order into db.
// R depends only on (M, N), so the summation order -- and the result -- is fixed.
#include "common.cuh"
#include "device.h"
#include "gemm.h"
#include "linear.h"

#define BG_COLS 32
#define BG_ROWS 8
#define BG_MIN_ROWS 64     // rows per chunk at least
#define BG_MAX_CHUNKS 1024
#define BG_TARGET_BLOCKS 528  // ~4 blocks per SM on a 132-SM H100

namespace {

// ws [R, N]: partial column sums of dy [M, N] over row chunk blockIdx.y.
template <typename T>
__global__ void __launch_bounds__(BG_COLS *BG_ROWS)
    colsum_partial_kernel(float *__restrict__ ws, const T *__restrict__ dy, long M, int N, long rows_per_chunk) {
    __shared__ float part[BG_ROWS][BG_COLS + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * BG_COLS + tx;
    const long r0 = (long)blockIdx.y * rows_per_chunk;
    long r1 = r0 + rows_per_chunk;
    if (r1 > M) r1 = M;
    float acc = 0.0f;
    if (c < N)
        for (long r = r0 + ty; r < r1; r += BG_ROWS) acc += to_f32(dy[(size_t)r * N + c]);
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < N) {
        float s = 0.0f;
        for (int k = 0; k < BG_ROWS; k++) s += part[k][tx];
        ws[(size_t)blockIdx.y * N + c] = s;
    }
}

// db [N] += sum over chunks of ws [R, N], in chunk order.
__global__ void colsum_final_kernel(float *__restrict__ db, const float *__restrict__ ws, int R, int N) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= N) return;
    float s = 0.0f;
    for (int r = 0; r < R; r++) s += ws[(size_t)r * N + c];
    db[c] += s;
}

}  // namespace

extern "C" int cuda_bias_grad(DType dt, float *db, const void *dy, long M, int N, cudaStream_t s) {
    if (M < 0 || N < 0) return (int)cudaErrorInvalidValue;
    if (M == 0 || N == 0 || !db) return (int)cudaGetLastError();
    const int col_tiles = (N + BG_COLS - 1) / BG_COLS;
    long chunks = (BG_TARGET_BLOCKS + col_tiles - 1) / col_tiles;
    long max_by_rows = (M + BG_MIN_ROWS - 1) / BG_MIN_ROWS;
    if (chunks > max_by_rows) chunks = max_by_rows;
    if (chunks > BG_MAX_CHUNKS) chunks = BG_MAX_CHUNKS;
    if (chunks < 1) chunks = 1;
    const long rows_per_chunk = (M + chunks - 1) / chunks;
    const int R = (int)((M + rows_per_chunk - 1) / rows_per_chunk);
    float *ws = (float *)dev_workspace((size_t)R * N * sizeof(float));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    DISPATCH_T(dt, {
        colsum_partial_kernel<T><<<dim3(col_tiles, R), dim3(BG_COLS, BG_ROWS), 0, s>>>(ws, (const T *)dy, M, N,
                                                                                      rows_per_chunk);
    });
    colsum_final_kernel<<<(N + 255) / 256, 256, 0, s>>>(db, ws, R, N);
    return (int)cudaGetLastError();
}

extern "C" int cuda_linear_fwd(DType dt, void *y, const void *x, const void *W, const void *b, int M, int K, int N,
                               cudaStream_t s) {
    // y [M,N] = x [M,K] @ W[N,K]^T + b
    return cuda_gemm_bias(dt, 0, 1, M, N, K, x, K, W, K, b, y, N, s);
}

extern "C" int cuda_linear_bwd(DType dt, void *dx, float *dW, float *db, const void *dy, const void *x, const void *W,
                               int M, int K, int N, cudaStream_t s) {
    int rc = 0;
    if (dx && (rc = cuda_gemm(dt, 0, 0, M, K, N, 1.0f, dy, N, W, K, 1.0f, dx, K, s))) return rc;  // dx += dy W
    if (dW && (rc = cuda_gemm_f32out(dt, 1, 0, N, K, M, 1.0f, dy, N, x, K, 1.0f, dW, K, s))) return rc;  // dW += dy^T x
    if (db && (rc = cuda_bias_grad(dt, db, dy, M, N, s))) return rc;
    return (int)cudaGetLastError();
}
