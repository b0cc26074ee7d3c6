// mma.cu: tests the tensor-core primitives of kernels/cuda/mma.cuh (mma.sync
// m16n8k16 bf16, ldmatrix x1/x2/x4 and .trans, cp.async with zero fill). The
// same program builds with simtcc (tools/simt/include/simt_mma.h) and with nvcc
// (the inline PTX), so on a GPU it checks the emulator's layouts against the
// hardware:
//   1. layouts: ldmatrix of a shared matrix of distinct values, every lane's
//      registers against the PTX formula (rows placed out of order, x1/x2 with
//      junk-but-valid addresses in the unused lanes); mma with small-integer
//      operands (exact) against a CPU product, d separate from and equal to c;
//      cp.async zero fill with src_bytes 0 (out-of-range source), 6, 16; pack_bf16x2.
//   2. a tiled GEMM C[M,N] = A[M,K] B[K,N] (bf16 -> fp32) built like the real
//      kernels: cp.async double-buffered tiles, ldmatrix fragments, mma; B given
//      as W[N,K] (plain ldmatrix) and as [K,N] (ldmatrix .trans); M = 64 and
//      M = 60 (rows past M zero-filled with src_bytes = 0 from out-of-range
//      addresses); against a CPU loop.
//   `mma nowait` / `mma waitcount` run the GEMM with cp_async_wait left out /
//   with wait<2> instead of wait<1>: wrong data under the emulator (exit 1).
// Prints PASS / FAIL; exit code 0 / 1.
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>

#include "mma.cuh"

#define CK(x)                                                                          \
    do {                                                                               \
        cudaError_t e_ = (x);                                                          \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

// ---------------------------------------------------------------------------------
// 1. Layouts. One warp. errs[0] counts mismatches, errs[1..3] hold the first one.
__device__ void report(int *errs, int what, int lane, int reg) {
    if (atomicAdd(&errs[0], 1) == 0) {
        errs[1] = what;
        errs[2] = lane;
        errs[3] = reg;
    }
}

// Matrix i, row r of the ldmatrix test lives at shared row (r * 4 + (3 - i)) of a
// 32 x 24 array of 16-bit values (value = element index), column offset 8 * (r & 1):
// rows out of order, 16-byte aligned, not contiguous.
__device__ __host__ inline int ldm_off(int i, int r) { return (r * 4 + (3 - i)) * 24 + 8 * (r & 1); }

__global__ void layout_kernel(const uint16_t *A, const uint16_t *B, const float *C, float *D, const uint16_t *src,
                              int *errs) {
    __shared__ __align__(16) uint16_t sm[32 * 24];
    __shared__ __align__(16) uint16_t zf[3][8];
    int lane = threadIdx.x;
    for (int i = lane; i < 32 * 24; i += 32) sm[i] = (uint16_t)i;
    __syncthreads();

    // ldmatrix: lanes 8i..8i+7 give matrix i's rows; lanes past 8*num give row 0 of
    // matrix 0 (valid, ignored).
    int mi = lane >> 3, mr = lane & 7;
    const uint16_t *row4 = &sm[ldm_off(mi, mr)];
    const uint16_t *row2 = lane < 16 ? row4 : &sm[ldm_off(0, 0)];
    const uint16_t *row1 = lane < 8 ? row4 : &sm[ldm_off(0, 0)];
    uint32_t r[4];
    for (int variant = 0; variant < 6; variant++) {
        int num = variant % 3 == 0 ? 1 : variant % 3 == 1 ? 2 : 4, trans = variant >= 3;
        switch (variant) {
            case 0: ldmatrix_x1(r, row1); break;
            case 1: ldmatrix_x2(r, row2); break;
            case 2: ldmatrix_x4(r, row4); break;
            case 3: ldmatrix_x1_trans(r, row1); break;
            case 4: ldmatrix_x2_trans(r, row2); break;
            default: ldmatrix_x4_trans(r, row4); break;
        }
        for (int i = 0; i < num; i++) {
            uint32_t lo, hi;
            if (!trans) {  // (row lane/4, cols 2*(lane%4), +1)
                lo = (uint32_t)(ldm_off(i, lane >> 2) + 2 * (lane & 3));
                hi = lo + 1;
            } else {  // (rows 2*(lane%4), +1; col lane/4)
                lo = (uint32_t)(ldm_off(i, 2 * (lane & 3)) + (lane >> 2));
                hi = (uint32_t)(ldm_off(i, 2 * (lane & 3) + 1) + (lane >> 2));
            }
            if (r[i] != (lo | (hi << 16))) report(errs, 10 + variant, lane, i);
        }
    }

    // mma: fragments from the row-major A[16][16], B[16][8] (bf16 bits), C[16][8].
    int g = lane >> 2, t = lane & 3;
    uint32_t a[4], b[2];
    a[0] = A[g * 16 + 2 * t] | ((uint32_t)A[g * 16 + 2 * t + 1] << 16);
    a[1] = A[(g + 8) * 16 + 2 * t] | ((uint32_t)A[(g + 8) * 16 + 2 * t + 1] << 16);
    a[2] = A[g * 16 + 2 * t + 8] | ((uint32_t)A[g * 16 + 2 * t + 9] << 16);
    a[3] = A[(g + 8) * 16 + 2 * t + 8] | ((uint32_t)A[(g + 8) * 16 + 2 * t + 9] << 16);
    b[0] = B[(2 * t) * 8 + g] | ((uint32_t)B[(2 * t + 1) * 8 + g] << 16);
    b[1] = B[(2 * t + 8) * 8 + g] | ((uint32_t)B[(2 * t + 9) * 8 + g] << 16);
    float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
    float d[4];
    mma_bf16_m16n8k16(d, a, b, c);
    mma_bf16_m16n8k16(c, a, b, c);  // in place: c = A B + C again
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        D[row * 8 + col] = d[i];
        if (c[i] != d[i]) report(errs, 20, lane, i);
    }

    // pack_bf16x2: low half first, round to nearest even (1 + 2^-8 is a tie -> 1)
    if (pack_bf16x2(1.0f + 1.0f / 256, -2.0f) != 0xc0003f80u) report(errs, 40, lane, 0);

    // cp.async zero fill: src_bytes 0 (from an address past the 16-byte source), 6, 16.
    if (lane < 3) {
        int nb = lane == 0 ? 0 : lane == 1 ? 6 : 16;
        cp_async_16_zfill(zf[lane], lane == 0 ? src + 1024 : src, nb);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (lane < 3) {
        int nb = lane == 0 ? 0 : lane == 1 ? 6 : 16;
        for (int e = 0; e < 8; e++) {
            uint16_t want = 2 * e + 1 < nb ? src[e] : 2 * e < nb ? (uint16_t)(src[e] & 0xff) : 0;
            if (zf[lane][e] != want) report(errs, 30, lane, e);
        }
    }
}

static uint16_t bf16_bits(float f) {  // exact for the small values used here
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}
static float bits_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int test_layouts(void) {
    uint16_t hA[256], hB[128], hsrc[8];
    float hC[128], hD[128], want[128];
    for (int i = 0; i < 256; i++) hA[i] = bf16_bits((float)((i * 7) % 11 - 5));
    for (int i = 0; i < 128; i++) hB[i] = bf16_bits((float)((i * 5) % 9 - 4));
    for (int i = 0; i < 128; i++) hC[i] = (float)(i % 13 - 6) * 0.5f;
    for (int i = 0; i < 8; i++) hsrc[i] = (uint16_t)(0x1234 + 0x1111 * i);
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
            double s = hC[r * 8 + n];
            for (int k = 0; k < 16; k++) s += (double)bits_bf16(hA[r * 16 + k]) * bits_bf16(hB[k * 8 + n]);
            want[r * 8 + n] = (float)s;  // small integers / halves: exact in any order
        }
    uint16_t *dA, *dB, *dsrc;
    float *dC, *dD;
    int *derr, herr[4];
    CK(cudaMalloc(&dA, sizeof hA));
    CK(cudaMalloc(&dB, sizeof hB));
    CK(cudaMalloc(&dsrc, sizeof hsrc));
    CK(cudaMalloc(&dC, sizeof hC));
    CK(cudaMalloc(&dD, sizeof hD));
    CK(cudaMalloc(&derr, sizeof herr));
    CK(cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, hB, sizeof hB, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dsrc, hsrc, sizeof hsrc, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dC, hC, sizeof hC, cudaMemcpyHostToDevice));
    CK(cudaMemset(derr, 0, sizeof herr));
    layout_kernel<<<1, 32>>>(dA, dB, dC, dD, dsrc, derr);
    CK(cudaGetLastError());
    CK(cudaMemcpy(herr, derr, sizeof herr, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hD, dD, sizeof hD, cudaMemcpyDeviceToHost));
    int bad = 0;
    if (herr[0]) {
        fprintf(stderr, "layouts: %d mismatches, first: check %d (10-15 ldmatrix variants, 20 mma in place, 30 zfill, 40 pack_bf16x2) "
                        "lane %d reg %d\n", herr[0], herr[1], herr[2], herr[3]);
        bad = 1;
    }
    for (int i = 0; i < 128; i++)
        if (hD[i] != want[i]) {
            fprintf(stderr, "mma layout: D[%d][%d] = %g, want %g\n", i / 8, i % 8, hD[i], want[i]);
            bad = 1;
            break;
        }
    cudaFree(dA), cudaFree(dB), cudaFree(dsrc), cudaFree(dC), cudaFree(dD), cudaFree(derr);
    return bad;
}

// ---------------------------------------------------------------------------------
// 2. Tiled GEMM: C[M,N] = A[M,K] B with B either W[N,K] (b_kn = 0) or B[K,N] (b_kn = 1).
// Block: 64 threads = 2 warps, a 32 x 40 tile of C (each warp 16 rows x 5 n-tiles);
// K in steps of 16, double-buffered with cp.async. Needs N == 40, K % 16 == 0.
enum { BM = 32, BN = 40, BK = 16, PAD = 8 };
enum { WAIT_OK = 0, WAIT_NONE = 1, WAIT_TWO = 2 };

__device__ void load_tile(__nv_bfloat16 (*As)[BK + PAD], __nv_bfloat16 *Bs, const __nv_bfloat16 *A,
                          const __nv_bfloat16 *B, int M, int K, int m0, int k0, int b_kn) {
    int tid = threadIdx.x;
    {  // A: 32 rows x 2 chunks of 8 bf16 = 64 chunks, one per thread
        int r = tid >> 1, ch = tid & 1, row = m0 + r;
        // rows past M: nothing read (the address is out of range on purpose)
        cp_async_16_zfill(&As[r][ch * 8], A + (size_t)row * K + k0 + ch * 8, row < M ? 16 : 0);
    }
    if (!b_kn) {  // W[N,K]: 40 rows x 2 chunks -> Bs[n][k], row stride BK + PAD
        for (int c = tid; c < BN * 2; c += 64) {
            int n = c >> 1, ch = c & 1;
            cp_async_16(&Bs[n * (BK + PAD) + ch * 8], B + (size_t)n * K + k0 + ch * 8);
        }
    } else {  // B[K,N]: 16 rows x 5 chunks -> Bs[k][n], row stride BN + PAD
        for (int c = tid; c < BK * 5; c += 64) {
            int k = c / 5, ch = c % 5;
            cp_async_16(&Bs[k * (BN + PAD) + ch * 8], B + (size_t)(k0 + k) * BN + ch * 8);
        }
    }
}

__global__ void gemm_kernel(const __nv_bfloat16 *A, const __nv_bfloat16 *B, float *C, int M, int K, int b_kn,
                            int wait_mode) {
    __shared__ __align__(16) __nv_bfloat16 As[2][BM][BK + PAD];
    __shared__ __align__(16) __nv_bfloat16 Bs[2][BN * (BK + PAD) > BK * (BN + PAD) ? BN * (BK + PAD) : BK * (BN + PAD)];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int m0 = blockIdx.x * BM;
    float acc[5][4];
    for (int j = 0; j < 5; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = 0.0f;
    int KT = K / BK;
    load_tile(As[0], Bs[0], A, B, M, K, m0, 0, b_kn);
    cp_async_commit();
    for (int kt = 0; kt < KT; kt++) {
        int cur = kt & 1;
        if (kt + 1 < KT) load_tile(As[cur ^ 1], Bs[cur ^ 1], A, B, M, K, m0, (kt + 1) * BK, b_kn);
        cp_async_commit();  // possibly empty group: keeps the count uniform
        if (wait_mode == WAIT_OK) cp_async_wait<1>();  // tile kt has landed
        else if (wait_mode == WAIT_TWO) cp_async_wait<2>();  // wrong count: one group too few
        __syncthreads();
        // A fragment: ldmatrix.x4, lane l gives row l % 16, column 8 * (l / 16)
        uint32_t a[4];
        ldmatrix_x4(a, &As[cur][warp * 16 + (lane & 15)][8 * (lane >> 4)]);
        for (int j = 0; j < 5; j++) {
            uint32_t b[2];
            int l = lane & 15;  // lanes 16-31 repeat lanes 0-15 (ignored by .x2)
            if (!b_kn)  // Bs[n][k]: matrix 0 = k 0..7, matrix 1 = k 8..15, rows n
                ldmatrix_x2(b, &Bs[cur][(j * 8 + (l & 7)) * (BK + PAD) + 8 * (l >> 3)]);
            else  // Bs[k][n]: rows k (0..7, then 8..15), transposed
                ldmatrix_x2_trans(b, &Bs[cur][l * (BN + PAD) + j * 8]);
            mma_bf16_m16n8k16(acc[j], a, b, acc[j]);
        }
        __syncthreads();  // everyone is done with buffer cur before it is refilled
    }
    cp_async_wait<0>();
    int g = lane >> 2, t = lane & 3;
    for (int j = 0; j < 5; j++)
        for (int i = 0; i < 4; i++) {
            int row = m0 + warp * 16 + g + 8 * (i >> 1), col = j * 8 + 2 * t + (i & 1);
            if (row < M) C[(size_t)row * BN + col] = acc[j][i];
        }
}

static uint32_t rng_state = 12345;
static float rnd(void) {  // bf16-representable values in [-2, 2)
    rng_state = rng_state * 1664525u + 1013904223u;
    return bits_bf16(bf16_bits((float)((int)(rng_state >> 8) % 4096) / 1024.0f - 2.0f));
}

// Returns 0 when the GPU result matches the CPU loop.
static int test_gemm(int M, int K, int b_kn, int wait_mode) {
    const int N = BN;
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    uint16_t *hA = (uint16_t *)malloc(na * 2), *hB = (uint16_t *)malloc(nb * 2);
    float *hC = (float *)malloc(nc * 4);
    for (size_t i = 0; i < na; i++) hA[i] = bf16_bits(rnd());
    for (size_t i = 0; i < nb; i++) hB[i] = bf16_bits(rnd());  // W[N,K] or B[K,N] bits
    __nv_bfloat16 *dA, *dB;
    float *dC;
    CK(cudaMalloc(&dA, na * 2));
    CK(cudaMalloc(&dB, nb * 2));
    CK(cudaMalloc(&dC, nc * 4));
    CK(cudaMemcpy(dA, hA, na * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, hB, nb * 2, cudaMemcpyHostToDevice));
    CK(cudaMemset(dC, 0, nc * 4));
    gemm_kernel<<<(M + BM - 1) / BM, 64>>>(dA, dB, dC, M, K, b_kn, wait_mode);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hC, dC, nc * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < M && !bad; m++)
        for (int n = 0; n < N; n++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)bits_bf16(hA[(size_t)m * K + k]) *
                           bits_bf16(b_kn ? hB[(size_t)k * N + n] : hB[(size_t)n * K + k]);
                s += p;
                mag += fabs(p);
            }
            // products are exact in fp32; K fp32 additions in any order: K * 2^-24 * sum|p|
            double tol = K * 6e-8 * mag + 1e-30;
            if (!(fabs(hC[(size_t)m * N + n] - s) <= tol)) {
                if (wait_mode == WAIT_OK)
                    fprintf(stderr, "gemm M=%d K=%d %s: C[%d][%d] = %.9g, want %.9g (tol %.3g)\n", M, K,
                            b_kn ? "B[K,N] .trans" : "W[N,K]", m, n, hC[(size_t)m * N + n], s, tol);
                bad = 1;
                break;
            }
        }
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
    free(hA), free(hB), free(hC);
    return bad;
}

int main(int argc, char **argv) {
    if (argc > 1) {  // a broken pipeline: must give a wrong result (under the emulator)
        int mode = strcmp(argv[1], "nowait") == 0 ? WAIT_NONE : strcmp(argv[1], "waitcount") == 0 ? WAIT_TWO : -1;
        if (mode < 0) {
            fprintf(stderr, "usage: %s [nowait|waitcount]\n", argv[0]);
            return 2;
        }
        int wrong = test_gemm(64, 48, 0, mode) | test_gemm(64, 48, 1, mode);
        printf("%s pipeline: %s\n", argv[1], wrong ? "wrong result (FAIL)" : "right result (PASS)");
        return wrong ? 1 : 0;
    }
    int bad = test_layouts();
    bad |= test_gemm(64, 48, 0, WAIT_OK);
    bad |= test_gemm(64, 48, 1, WAIT_OK);
    bad |= test_gemm(60, 48, 0, WAIT_OK);
    bad |= test_gemm(60, 32, 1, WAIT_OK);
    printf("%s\n", bad ? "FAIL" : "PASS");
    return bad;
}
