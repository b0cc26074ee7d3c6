// gemm.c: row-major single-precision GEMM, cache-blocked in the BLIS style.
//
// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C (see ops.h).
// Loop nest, outermost first:
//   jc: NC columns of C at a time
//   pc: KC of the K dimension at a time; the KC x NC block of op(B) is packed
//       into NR-wide micro-panels (k-major, zero padded) shared by all threads
//   ic: MC rows of C at a time; each thread packs its MC x KC block of op(A)
//       into MR-tall micro-panels (k-major, zero padded)
//   ir, jr: MR / NR steps; the micro-kernel keeps an MR x NR tile of C in
//       registers and adds KC rank-1 updates to it (fp32 accumulation, as BLAS).
// The packed A micro-panel (KC*MR floats, 12 KiB) stays in L1 while the B
// micro-panels stream from L2 (the packed B block is sized for L2); walking C
// a row strip at a time also keeps its stores sequential (this order measured
// faster than BLIS's jr-outer order here, most of all for small K).
// Threads (OpenMP) split the rows of C (or its columns when M is small).
// Edge tiles are computed in full on the zero-padded panels into a scratch
// tile and only the valid part is merged into C.
// Micro-kernels: AVX-512 (12 x 32), AVX2+FMA (6 x 16), portable C (4 x 16).
#include <string.h>
#include <omp.h>

#include "../common.h"
#include "ops.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define MR 12
#define NR 32
#elif defined(__AVX2__) && defined(__FMA__)
#define MR 6
#define NR 16
#else
#define MR 4
#define NR 16
#endif
#define KC 256   // depth of a packed block: an A micro-panel is KC*MR*4 B = 12 KiB (L1 is 48 KiB)
#define MC 240   // rows of a packed A block: MC*KC*4 B = 240 KiB
#define NC 768   // columns of a packed B block: KC*NC*4 B = 768 KiB, streamed from L2 (2 MiB)

// ------------------------------------------------------------------ micro-kernels
// c[MR, NR] (row stride ldc) = alpha * a_panel^T b_panel + beta * c, where the
// packed panels are a [kc][MR], b [kc][NR]. beta == 0 does not read c.
#if defined(__AVX512F__)
static void ukernel(int kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc,
                    float alpha, float beta) {
    __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc0[i] = _mm512_setzero_ps(), acc1[i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
        a += MR;
        b += NR;
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, acc0[i]));
            _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, acc1[i]));
        }
    } else {
        __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, acc1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci + 16))));
        }
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
static void ukernel(int kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc,
                    float alpha, float beta) {
    __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc0[i] = _mm256_setzero_ps(), acc1[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        a += MR;
        b += NR;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc0[i]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc1[i]));
        }
    } else {
        __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
        }
    }
}
#else
static void ukernel(int kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc,
                    float alpha, float beta) {
    float acc[MR][NR] = {{0}};
    for (int k = 0; k < kc; k++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            c[i * ldc + j] = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
}
#endif

// ------------------------------------------------------------------ packing
// op(A) rows [m0, m0+mc), depth [k0, k0+kc) -> dst [ceil(mc/MR)][kc][MR], zero padded.
static void pack_a(float *restrict dst, int ta, const float *A, int lda, int m0, int mc, int k0, int kc) {
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = A2F_MIN(MR, mc - ir);
        float *d = dst + (size_t)ir * kc;
        if (ta) {  // A is [K, M]: element (m, k) at A[k*lda + m], rows contiguous in m
            for (int k = 0; k < kc; k++) {
                const float *s = A + (size_t)(k0 + k) * lda + m0 + ir;
                int i = 0;
                for (; i < mr; i++) d[k * MR + i] = s[i];
                for (; i < MR; i++) d[k * MR + i] = 0.0f;
            }
        } else {  // A is [M, K]: element (m, k) at A[m*lda + k]
            for (int i = 0; i < mr; i++) {
                const float *s = A + (size_t)(m0 + ir + i) * lda + k0;
                for (int k = 0; k < kc; k++) d[k * MR + i] = s[k];
            }
            for (int i = mr; i < MR; i++)
                for (int k = 0; k < kc; k++) d[k * MR + i] = 0.0f;
        }
    }
}

// One NR-wide micro-panel of op(B): columns [n0, n0+nr), depth [k0, k0+kc) -> dst [kc][NR].
static void pack_b_panel(float *restrict dst, int tb, const float *B, int ldb, int n0, int nr, int k0, int kc) {
    if (!tb) {  // B is [K, N]: row k contiguous in n
        for (int k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + n0;
            float *d = dst + (size_t)k * NR;
            if (nr == NR) {
                memcpy(d, s, NR * sizeof(float));
            } else {
                int j = 0;
                for (; j < nr; j++) d[j] = s[j];
                for (; j < NR; j++) d[j] = 0.0f;
            }
        }
    } else {  // B is [N, K]: element (k, n) at B[n*ldb + k]
        for (int j = 0; j < nr; j++) {
            const float *s = B + (size_t)(n0 + j) * ldb + k0;
            for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = s[k];
        }
        for (int j = nr; j < NR; j++)
            for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = 0.0f;
    }
}

// ------------------------------------------------------------------ scratch
// Packing buffers are cached per thread (grow-only) so repeated calls do not
// pay for page faults; OpenMP worker threads persist, so do their buffers.
static _Thread_local float *tl_buf[2];
static _Thread_local size_t tl_cap[2];

static float *scratch(int which, size_t n) {
    if (tl_cap[which] < n) {
        free(tl_buf[which]);
        size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
        tl_buf[which] = aligned_alloc(64, bytes);
        CHECKM(tl_buf[which] != NULL, "gemm: out of memory for packing buffers");
        tl_cap[which] = n;
    }
    return tl_buf[which];
}

// ------------------------------------------------------------------ driver
typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
} GemmArgs;

// C[mr, nr] (valid part of a tile) from a full MR x NR micro-kernel run.
static void tile(const GemmArgs *g, int kc, const float *ap, const float *bp, int i0, int j0, int mr, int nr,
                 float beta) {
    float *c = g->C + (size_t)i0 * g->ldc + j0;
    if (mr == MR && nr == NR) {
        ukernel(kc, ap, bp, c, g->ldc, g->alpha, beta);
        return;
    }
    float t[MR * NR] __attribute__((aligned(64)));
    ukernel(kc, ap, bp, t, NR, 1.0f, 0.0f);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float v = g->alpha * t[i * NR + j];
            c[(size_t)i * g->ldc + j] = beta == 0.0f ? v : v + beta * c[(size_t)i * g->ldc + j];
        }
}

// Executed by each of nt threads (tid); bpack is shared, packed cooperatively.
static void gemm_team(const GemmArgs *g, float *bpack, int tid, int nt) {
    const int M = g->M, N = g->N, K = g->K;
    int mtiles = CEIL_DIV(M, MR), ntiles_all = CEIL_DIV(N, NR);
    // Split rows of C over threads unless there are too few of them.
    int split_m = nt == 1 || mtiles >= 2 * nt || mtiles >= ntiles_all;
    int m_lo = 0, m_hi = M;
    if (split_m && nt > 1) {
        m_lo = A2F_MIN(M, (int)((long)mtiles * tid / nt) * MR);
        m_hi = A2F_MIN(M, (int)((long)mtiles * (tid + 1) / nt) * MR);
    }
    float *apack = scratch(0, (size_t)MC * KC);
    for (int jc = 0; jc < N; jc += NC) {
        int nc = A2F_MIN(NC, N - jc);
        int npan = CEIL_DIV(nc, NR);
        for (int pc = 0; pc < K; pc += KC) {
            int kc = A2F_MIN(KC, K - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            for (int p = tid; p < npan; p += nt)
                pack_b_panel(bpack + (size_t)p * kc * NR, g->tb, g->B, g->ldb, jc + p * NR,
                             A2F_MIN(NR, nc - p * NR), pc, kc);
            if (nt > 1) {
#pragma omp barrier
            }
            int p_lo = 0, p_hi = npan;
            if (!split_m) p_lo = npan * tid / nt, p_hi = npan * (tid + 1) / nt;
            for (int ic = m_lo; ic < m_hi; ic += MC) {
                int mc = A2F_MIN(MC, m_hi - ic);
                pack_a(apack, g->ta, g->A, g->lda, ic, mc, pc, kc);
                for (int ir = 0; ir < mc; ir += MR)
                    for (int p = p_lo; p < p_hi; p++) {
                        int nr = A2F_MIN(NR, nc - p * NR);
                        const float *bp = bpack + (size_t)p * kc * NR;
                        tile(g, kc, apack + (size_t)ir * kc, bp, ic + ir, jc + p * NR, A2F_MIN(MR, mc - ir), nr,
                             beta);
                    }
            }
            if (nt > 1) {
#pragma omp barrier
            }
        }
    }
}

// C = beta * C (used when K == 0 or alpha == 0, as BLAS: A and B are not read).
static void scale_c(const GemmArgs *g) {
    for (int m = 0; m < g->M; m++) {
        float *c = g->C + (size_t)m * g->ldc;
        for (int n = 0; n < g->N; n++) c[n] = g->beta == 0.0f ? 0.0f : g->beta * c[n];
    }
}

// Runs one GEMM with the calling thread alone (nt = 1) or a new team.
static void gemm_args(const GemmArgs *g, int parallel) {
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0 || g->alpha == 0.0f) {
        scale_c(g);
        return;
    }
    size_t bsize = (size_t)A2F_MIN(KC, g->K) * CEIL_DIV(A2F_MIN(NC, g->N), NR) * NR;
    float *bpack = scratch(1, bsize);
    double work = (double)g->M * g->N * g->K;
    if (!parallel || omp_in_parallel() || work < 64.0 * 64 * 64 || omp_get_max_threads() == 1) {
        gemm_team(g, bpack, 0, 1);
        return;
    }
#pragma omp parallel
    gemm_team(g, bpack, omp_get_thread_num(), omp_get_num_threads());
}

void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc) {
    GemmArgs g = {ta, tb, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C};
    gemm_args(&g, 1);
}

void gemm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, long sA,
                  const float *B, int ldb, long sB, float beta, float *C, int ldc, long sC, int batch) {
    double work = (double)M * N * K;
    // Many small problems: one whole GEMM per thread; otherwise each GEMM uses all threads.
    if (batch >= 2 * omp_get_max_threads() && work < 256.0 * 256 * 256 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < batch; b++) {
            GemmArgs g = {ta, tb, M, N, K, alpha, beta, A + b * sA, B + b * sB, lda, ldb, ldc, C + b * sC};
            gemm_args(&g, 0);
        }
        return;
    }
    for (int b = 0; b < batch; b++) {
        GemmArgs g = {ta, tb, M, N, K, alpha, beta, A + b * sA, B + b * sB, lda, ldb, ldc, C + b * sC};
        gemm_args(&g, 1);
    }
}
