// flash_attn.cu: flash attention on tensor cores (mma.sync m16n8k16 bf16 with
// fp32 accumulation, ldmatrix, cp.async from kernels/cuda/mma.cuh), forward and
// backward, on the strided AttnShape views (see flash_attn.h).
//
// Conventions: DP = D rounded up to 16 (40 -> 48: the K dimension of Q K^T is
// padded with zero columns in shared memory, which add 0); shared tiles are
// [rows][DP + 8] bf16 (the 16-byte row pad makes ldmatrix conflict-free).
// Rows past Nq / Nk are zero-filled by cp.async and masked. Scores are kept in
// the log2 domain: y = (q.k) * scale * log2(e), p = exp2(y - m).
//
// Forward (flash_fwd_kernel<D, MT>): a block of 4 warps owns BQ = 64*MT query
// rows of one (b, h); warp w rows [16*MT*w, 16*MT*(w+1)). Its Q fragments stay
// in registers. Key/value tiles of 64 rows are double-buffered with cp.async.
// Per tile: S = Q K^T (mma, K as the "col" B operand via ldmatrix), masking
// (keys >= Nk, causal j > i), online softmax (running max m and sum l in fp32
// per row, the four lanes of a quad reduce with shuffles), P rounded to bf16
// A fragments straight from the S accumulators, O += P V (V via ldmatrix
// .trans). At the end O / l is stored and lse = m ln2 + ln l.
//
// Backward (FlashAttention-2 recomputation, deterministic, no atomics):
//   1. flash_prep_kernel: Di = rowsum(dO * O) and L2 = lse * log2(e) per row
//      (scratch [B*H*Nq] each; rows are padded with L2 = +inf so P = 0 there).
//   2. flash_dkdv_kernel<D, BQ2, KREG>: a block owns 64 keys (16 per warp) and
//      loops over query tiles of BQ2 rows (Q, dO, L2, Di double-buffered):
//      S^T = K Q^T, P^T = exp2(S^T c - L2), dV += P^T dO, dP^T = V dO^T,
//      dS^T = P^T (dP^T - Di), dK += dS^T Q; finally dk += scale dK, dv += dV.
//   3. flash_dq_kernel<D, QREG>: a block owns 64 query rows (16 per warp) and
//      loops over key tiles: S, P, dP = dO V^T, dS, dQ += dS K; dq += scale dQ.
//   Each output element is written by exactly one thread of one block; S and
//   dP are computed twice (once per kernel) instead of accumulating dQ with
//   float atomics.
// P and dS are rounded to bf16 as GEMM operands (as in any flash kernel).
#include <math.h>

#include "common.cuh"
#include "device.h"
#include "flash_attn.h"
#include "mma.cuh"

namespace {

constexpr int FA_WARPS = 4, FA_THREADS = 128, FA_BK = 64;
constexpr float FA_LOG2E = 1.4426950408889634f, FA_LN2 = 0.6931471805599453f;

template <int D>
struct Dims {
    static constexpr int DP = (D + 15) / 16 * 16;  // padded head dim (k dimension of Q K^T)
    static constexpr int LD = DP + 8;              // shared row stride in elements
    static constexpr int KS = DP / 16;             // k16 steps over the head dim
    static constexpr int NT = D / 8;               // n8 tiles of the output head dim
    static constexpr int CH = DP / 8;              // 16-byte chunks per shared row
};

// cp.async of rows [0, ROWS) of a tile: row r from src + r*st (D real
// columns), into sm[r*LD ...]; rows >= n and columns >= D are zero-filled.
template <int D, int ROWS>
__device__ __forceinline__ void load_rows(bf16 *sm, const bf16 *src, long st, int n) {
    constexpr int CH = Dims<D>::CH, LD = Dims<D>::LD;
    for (int idx = threadIdx.x; idx < ROWS * CH; idx += FA_THREADS) {
        const int r = idx / CH, c = idx % CH;
        const bool ok = r < n && c < D / 8;
        const bf16 *g = ok ? src + (size_t)r * st + c * 8 : src;
        cp_async_16_zfill(sm + r * LD + c * 8, g, ok ? 16 : 0);
    }
}

// A fragment (16x16, row-major) of rows r0.., cols c0.. of a shared tile.
template <int LD>
__device__ __forceinline__ void ld_a(uint32_t a[4], const bf16 *sm, int r0, int c0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(a, sm + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + c0 + (lane >> 4) * 8);
}
// B fragments of two n8 tiles where B[k][n] = M[n0 + n][k0 + k] (M row-major: the "col" operand
// of X M^T): b[0..1] for rows n0..n0+7, b[2..3] for rows n0+8..n0+15.
template <int LD>
__device__ __forceinline__ void ld_bt(uint32_t b[4], const bf16 *sm, int n0, int k0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(b, sm + (n0 + (lane >> 4) * 8 + (lane & 7)) * LD + k0 + ((lane >> 3) & 1) * 8);
}
// B fragments of two n8 tiles where B[k][n] = M[k0 + k][n0 + n] (the operand of X M):
// b[0..1] for columns n0..n0+7, b[2..3] for n0+8..n0+15.
template <int LD>
__device__ __forceinline__ void ld_bn(uint32_t b[4], const bf16 *sm, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(b, sm + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0 + (lane >> 4) * 8);
}
// As ld_bn for one n8 tile (lanes 0-15 give the addresses).
template <int LD>
__device__ __forceinline__ void ld_bn1(uint32_t b[2], const bf16 *sm, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldmatrix_x2_trans(b, sm + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0);
}

__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    mma_bf16_m16n8k16(c, a, b, c);
}

// acc[m][NT] += A[m] (16 x 16k) * M[k0 .. k0+15][0 .. 8 NT) (M shared, row-major): the P V / dS K product.
template <int D, int MT>
__device__ __forceinline__ void mma_an(float (*acc)[Dims<D>::NT][4], const uint32_t (*a)[4], const bf16 *sm, int k0) {
    constexpr int NT = Dims<D>::NT, LD = Dims<D>::LD;
#pragma unroll
    for (int dn = 0; dn < NT / 2; dn++) {
        uint32_t b[4];
        ld_bn<LD>(b, sm, k0, dn * 16);
#pragma unroll
        for (int m = 0; m < MT; m++) {
            mma(acc[m][2 * dn], a[m], b);
            mma(acc[m][2 * dn + 1], a[m], b + 2);
        }
    }
    if (NT % 2) {
        uint32_t b[2];
        ld_bn1<LD>(b, sm, k0, (NT - 1) * 8);
#pragma unroll
        for (int m = 0; m < MT; m++) mma(acc[m][NT - 1], a[m], b);
    }
}

// Two products sharing one key loop, as the backward kernels need them:
// c0 = A0 B0^T and c1 = A1 B1^T, [16 rows] x [8 N columns] each, over KS k-steps of 16.
// A fragments come from the registers a0r / a1r when AREG (ld_a'd once), else from
// rows ra.. of sA0 / sA1; B rows are 0 .. 8 N of sB0 / sB1 (shared, row-major).
template <int LD, int KS, int N, bool AREG>
__device__ __forceinline__ void mma_abt2(float (&c0)[N][4], float (&c1)[N][4], const uint32_t (&a0r)[AREG ? KS : 1][4],
                                         const uint32_t (&a1r)[AREG ? KS : 1][4], const bf16 *sA0, const bf16 *sA1,
                                         int ra, const bf16 *sB0, const bf16 *sB1) {
#pragma unroll
    for (int n = 0; n < N; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) c0[n][e] = c1[n][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        uint32_t a0[4], a1[4];
        if (AREG) {
#pragma unroll
            for (int e = 0; e < 4; e++) a0[e] = a0r[AREG ? ks : 0][e], a1[e] = a1r[AREG ? ks : 0][e];
        } else {
            ld_a<LD>(a0, sA0, ra, ks * 16);
            ld_a<LD>(a1, sA1, ra, ks * 16);
        }
#pragma unroll
        for (int np = 0; np < N / 2; np++) {
            uint32_t b0[4], b1[4];
            ld_bt<LD>(b0, sB0, np * 16, ks * 16);
            ld_bt<LD>(b1, sB1, np * 16, ks * 16);
            mma(c0[2 * np], a0, b0);
            mma(c0[2 * np + 1], a0, b0 + 2);
            mma(c1[2 * np], a1, b1);
            mma(c1[2 * np + 1], a1, b1 + 2);
        }
    }
}

// Four bf16 A-fragment registers of k-step kk from the fp32 accumulators of n8 tiles 2kk, 2kk+1.
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack_bf16x2(c0[0], c0[1]);
    a[1] = pack_bf16x2(c0[2], c0[3]);
    a[2] = pack_bf16x2(c1[0], c1[1]);
    a[3] = pack_bf16x2(c1[2], c1[3]);
}

__device__ __forceinline__ float2 ld_bf16x2(const bf16 *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}
__device__ __forceinline__ void st_bf16x2(bf16 *p, float lo, float hi) {
    *reinterpret_cast<uint32_t *>(p) = pack_bf16x2(lo, hi);
}

// ---------------------------------------------------------------- forward
// grid (ceil(Nq / BQ), B*H), FA_THREADS; dynamic shared (BQ + 4*64) * LD bf16.
template <int D, int MT, bool QREG>
__global__ void __launch_bounds__(FA_THREADS)
    flash_fwd_kernel(bf16 *__restrict__ o, float *__restrict__ lse, const bf16 *__restrict__ q,
                     const bf16 *__restrict__ k, const bf16 *__restrict__ v, AttnShape s, float sl2) {
    constexpr int LD = Dims<D>::LD, KS = Dims<D>::KS, NT = Dims<D>::NT, BQ = 16 * FA_WARPS * MT, BK = FA_BK;
    extern __shared__ uint4 fa_smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(fa_smem);
    bf16 *sK = sQ + BQ * LD;      // [2][BK][LD]
    bf16 *sV = sK + 2 * BK * LD;  // [2][BK][LD]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int H = s.H, Nq = s.Nq, Nk = s.Nk;
    const int b = blockIdx.y / H, h = blockIdx.y % H;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;  // heaviest (causal) blocks first
    const bf16 *qb = q + (size_t)b * s.q_sb + (size_t)h * D + (size_t)q0 * s.q_st;
    const bf16 *kb = k + (size_t)b * s.k_sb + (size_t)h * D;
    const bf16 *vb = v + (size_t)b * s.v_sb + (size_t)h * D;
    const int kend = s.causal ? min(Nk, q0 + BQ) : Nk;  // keys [0, kend) can be visible here
    const int nkt = (kend + BK - 1) / BK;

    load_rows<D, BQ>(sQ, qb, s.q_st, Nq - q0);
    load_rows<D, BK>(sK, kb, s.k_st, Nk);
    load_rows<D, BK>(sV, vb, s.v_st, Nk);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    const int r0 = warp * 16 * MT;  // the warp's first row in the tile
    uint32_t qf[QREG ? MT : 1][QREG ? KS : 1][4];
    if (QREG) {
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int ks = 0; ks < KS; ks++) ld_a<LD>(qf[QREG ? m : 0][QREG ? ks : 0], sQ, r0 + m * 16, ks * 16);
    }

    float oacc[MT][NT][4];
    float mrow[MT][2], lrow[MT][2];
#pragma unroll
    for (int m = 0; m < MT; m++) {
#pragma unroll
        for (int n = 0; n < NT; n++) oacc[m][n][0] = oacc[m][n][1] = oacc[m][n][2] = oacc[m][n][3] = 0.0f;
        mrow[m][0] = mrow[m][1] = -INFINITY;
        lrow[m][0] = lrow[m][1] = 0.0f;
    }

    for (int kt = 0; kt < nkt; kt++) {
        const int cur = kt & 1, k0 = kt * BK;
        if (kt > 0) {
            cp_async_wait<0>();
            __syncthreads();  // tile kt landed; every warp is done with tile kt-1's buffer
        }
        if (kt + 1 < nkt) {
            const int k1 = k0 + BK;
            load_rows<D, BK>(sK + (cur ^ 1) * BK * LD, kb + (size_t)k1 * s.k_st, s.k_st, Nk - k1);
            load_rows<D, BK>(sV + (cur ^ 1) * BK * LD, vb + (size_t)k1 * s.v_st, s.v_st, Nk - k1);
            cp_async_commit();
        }
        const bf16 *cK = sK + cur * BK * LD, *cV = sV + cur * BK * LD;

        // S = Q K^T: [16*MT rows] x [64 keys] per warp
        float sc[MT][8][4];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int n = 0; n < 8; n++) sc[m][n][0] = sc[m][n][1] = sc[m][n][2] = sc[m][n][3] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int m = 0; m < MT; m++) {
                if (QREG) {
#pragma unroll
                    for (int e = 0; e < 4; e++) qa[m][e] = qf[QREG ? m : 0][QREG ? ks : 0][e];
                } else {
                    ld_a<LD>(qa[m], sQ, r0 + m * 16, ks * 16);
                }
            }
#pragma unroll
            for (int np = 0; np < 4; np++) {
                uint32_t bf[4];
                ld_bt<LD>(bf, cK, np * 16, ks * 16);
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    mma(sc[m][2 * np], qa[m], bf);
                    mma(sc[m][2 * np + 1], qa[m], bf + 2);
                }
            }
        }

        // mask keys >= Nk and (causal) j > i
        if (k0 + BK > Nk || (s.causal && k0 + BK - 1 > q0 + r0)) {
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int n = 0; n < 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int j = k0 + n * 8 + 2 * t + (e & 1), i = q0 + r0 + m * 16 + g + (e >> 1) * 8;
                        if (j >= Nk || (s.causal && j > i)) sc[m][n][e] = -INFINITY;
                    }
        }

        // online softmax; rows g (r = 0) and g + 8 (r = 1) of each m tile
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < 8; n++) mx = fmaxf(mx, fmaxf(sc[m][n][2 * r], sc[m][n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mnew = fmaxf(mrow[m][r], mx * sl2);
                const float msub = mnew == -INFINITY ? 0.0f : mnew;  // fully masked so far: p = 0, no NaN
                const float alpha = exp2f(mrow[m][r] - msub);
                mrow[m][r] = mnew;
                float sum = 0.0f;
#pragma unroll
                for (int n = 0; n < 8; n++) {
                    const float p0 = exp2f(fmaf(sc[m][n][2 * r], sl2, -msub));
                    const float p1 = exp2f(fmaf(sc[m][n][2 * r + 1], sl2, -msub));
                    sc[m][n][2 * r] = p0, sc[m][n][2 * r + 1] = p1;
                    sum += p0 + p1;
                }
                lrow[m][r] = lrow[m][r] * alpha + sum;  // this lane's partial sum over its columns
#pragma unroll
                for (int n = 0; n < NT; n++) oacc[m][n][2 * r] *= alpha, oacc[m][n][2 * r + 1] *= alpha;
            }

        // O += P V
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int m = 0; m < MT; m++) acc_to_a(pa[m], sc[m][2 * kk], sc[m][2 * kk + 1]);
            mma_an<D, MT>(oacc, pa, cV, kk * 16);
        }
    }

    // O / l, lse = m ln2 + ln l
    float *lb = lse + (size_t)blockIdx.y * Nq;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float l = lrow[m][r];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const int i = q0 + r0 + m * 16 + g + r * 8;
            if (i >= Nq) continue;
            const float inv = 1.0f / l;
            bf16 *orow = o + (size_t)b * s.o_sb + (size_t)i * s.o_st + (size_t)h * D + 2 * t;
#pragma unroll
            for (int n = 0; n < NT; n++) st_bf16x2(orow + n * 8, oacc[m][n][2 * r] * inv, oacc[m][n][2 * r + 1] * inv);
            if (t == 0) lb[i] = mrow[m][r] * FA_LN2 + logf(l);
        }
}

// ---------------------------------------------------------------- backward
// Di [B*H*Nq] = rowsum(dO * O) (fp32 of the bf16 values), L2 [B*H*Nq] = lse * log2(e).
__global__ void flash_prep_kernel(float *__restrict__ Di, float *__restrict__ L2, const bf16 *__restrict__ dout,
                                  const bf16 *__restrict__ o, const float *__restrict__ lse, AttnShape s) {
    const size_t n = (size_t)s.B * s.H * s.Nq;
    GRID_STRIDE(idx, n) {
        const int i = (int)(idx % s.Nq);
        const int bh = (int)(idx / s.Nq), b = bh / s.H, h = bh % s.H;
        const size_t off = (size_t)b * s.o_sb + (size_t)i * s.o_st + (size_t)h * s.D;
        const bf16 *g = dout + off, *y = o + off;
        float acc = 0.0f;
        for (int d = 0; d < s.D; d += 2) {
            const float2 a = ld_bf16x2(g + d), c = ld_bf16x2(y + d);
            acc = fmaf(a.x, c.x, acc);
            acc = fmaf(a.y, c.y, acc);
        }
        Di[idx] = acc;
        L2[idx] = lse[idx] * FA_LOG2E;
    }
}

// Per-row statistics of query tile rows [q0, q0 + ROWS) into shared: L2 (+inf past Nq: P = 0) and Di.
template <int ROWS>
__device__ __forceinline__ void load_stats(float *sL, float *sD, const float *L2, const float *Di, int q0, int Nq) {
    for (int r = threadIdx.x; r < ROWS; r += FA_THREADS) {
        const int i = q0 + r;
        sL[r] = i < Nq ? L2[i] : INFINITY;
        sD[r] = i < Nq ? Di[i] : 0.0f;
    }
}

// grid (ceil(Nk / 64), B*H), FA_THREADS. Shared: K, V [64][LD]; Q, dO [2][BQ2][LD]; L2, Di [2][BQ2] float.
// KREG: the warp's K and V A-fragments stay in registers (else re-read from shared per query tile).
template <int D, int BQ2, bool KREG>
__global__ void __launch_bounds__(FA_THREADS)
    flash_dkdv_kernel(bf16 *__restrict__ dk, bf16 *__restrict__ dv, const bf16 *__restrict__ q,
                      const bf16 *__restrict__ k, const bf16 *__restrict__ v, const bf16 *__restrict__ dout,
                      const float *__restrict__ L2, const float *__restrict__ Di, AttnShape s, float sl2,
                      float scale) {
    constexpr int LD = Dims<D>::LD, KS = Dims<D>::KS, NT = Dims<D>::NT, BK = FA_BK, NQT = BQ2 / 8;
    extern __shared__ uint4 fa_smem[];
    bf16 *sK = reinterpret_cast<bf16 *>(fa_smem);
    bf16 *sV = sK + BK * LD;
    bf16 *sQ = sV + BK * LD;        // [2][BQ2][LD]
    bf16 *sG = sQ + 2 * BQ2 * LD;   // dO, [2][BQ2][LD]
    float *sL = reinterpret_cast<float *>(sG + 2 * BQ2 * LD);  // [2][BQ2]
    float *sD = sL + 2 * BQ2;                                   // [2][BQ2]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int H = s.H, Nq = s.Nq, Nk = s.Nk;
    const int b = blockIdx.y / H, h = blockIdx.y % H;
    const int k0 = blockIdx.x * BK;
    const int qt0 = s.causal ? k0 / BQ2 : 0, nqt = (Nq + BQ2 - 1) / BQ2;
    if (qt0 >= nqt) return;  // causal keys that no query sees: gradients += 0
    const bf16 *qb = q + (size_t)b * s.q_sb + (size_t)h * D;
    const bf16 *gb = dout + (size_t)b * s.o_sb + (size_t)h * D;
    const bf16 *kb = k + (size_t)b * s.k_sb + (size_t)h * D + (size_t)k0 * s.k_st;
    const bf16 *vb = v + (size_t)b * s.v_sb + (size_t)h * D + (size_t)k0 * s.v_st;
    const float *Lb = L2 + (size_t)blockIdx.y * Nq, *Db = Di + (size_t)blockIdx.y * Nq;

    load_rows<D, BK>(sK, kb, s.k_st, Nk - k0);
    load_rows<D, BK>(sV, vb, s.v_st, Nk - k0);
    {
        const int q1 = qt0 * BQ2;
        load_rows<D, BQ2>(sQ, qb + (size_t)q1 * s.q_st, s.q_st, Nq - q1);
        load_rows<D, BQ2>(sG, gb + (size_t)q1 * s.o_st, s.o_st, Nq - q1);
        load_stats<BQ2>(sL, sD, Lb, Db, q1, Nq);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    const int kr = warp * 16;  // the warp's first key in the block
    uint32_t kf[KREG ? KS : 1][4], vf[KREG ? KS : 1][4];
    if (KREG) {
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            ld_a<LD>(kf[KREG ? ks : 0], sK, kr, ks * 16);
            ld_a<LD>(vf[KREG ? ks : 0], sV, kr, ks * 16);
        }
    }
    float dka[1][NT][4], dva[1][NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dka[0][n][e] = dva[0][n][e] = 0.0f;

    for (int qt = qt0; qt < nqt; qt++) {
        const int cur = (qt - qt0) & 1, q0 = qt * BQ2;
        if (qt > qt0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (qt + 1 < nqt) {
            const int q1 = q0 + BQ2, nb = cur ^ 1;
            load_rows<D, BQ2>(sQ + nb * BQ2 * LD, qb + (size_t)q1 * s.q_st, s.q_st, Nq - q1);
            load_rows<D, BQ2>(sG + nb * BQ2 * LD, gb + (size_t)q1 * s.o_st, s.o_st, Nq - q1);
            load_stats<BQ2>(sL + nb * BQ2, sD + nb * BQ2, Lb, Db, q1, Nq);
            cp_async_commit();
        }
        const bf16 *cQ = sQ + cur * BQ2 * LD, *cG = sG + cur * BQ2 * LD;
        const float *cL = sL + cur * BQ2, *cD = sD + cur * BQ2;

        // S^T = K Q^T and dP^T = V dO^T: [16 keys] x [BQ2 queries]
        float st[NQT][4], dpt[NQT][4];
        mma_abt2<LD, KS, NQT, KREG>(st, dpt, kf, vf, sK, sV, kr, cQ, cG);
        // P^T = exp2(S^T c - L2[i]) (0 past Nq through L2 = inf; causal j > i -> 0), dS^T = P^T (dP^T - Di)
        const bool cmask = s.causal && k0 + kr + 15 > q0;
#pragma unroll
        for (int n = 0; n < NQT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int ii = n * 8 + 2 * t + (e & 1);
                float p = exp2f(fmaf(st[n][e], sl2, -cL[ii]));
                if (cmask && k0 + kr + g + (e >> 1) * 8 > q0 + ii) p = 0.0f;
                st[n][e] = p;
                dpt[n][e] = p * (dpt[n][e] - cD[ii]);
            }
        // dV += P^T dO, dK += dS^T Q (k = query)
#pragma unroll
        for (int kk = 0; kk < BQ2 / 16; kk++) {
            uint32_t pa[1][4], da[1][4];
            acc_to_a(pa[0], st[2 * kk], st[2 * kk + 1]);
            acc_to_a(da[0], dpt[2 * kk], dpt[2 * kk + 1]);
            mma_an<D, 1>(dva, pa, cG, kk * 16);
            mma_an<D, 1>(dka, da, cQ, kk * 16);
        }
    }

    // dk += scale dK, dv += dV for keys < Nk (load, add in fp32, round once)
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int j = k0 + kr + g + r * 8;
        if (j >= Nk) continue;
        bf16 *dkr = dk ? dk + (size_t)b * s.k_sb + (size_t)j * s.k_st + (size_t)h * D + 2 * t : nullptr;
        bf16 *dvr = dv ? dv + (size_t)b * s.v_sb + (size_t)j * s.v_st + (size_t)h * D + 2 * t : nullptr;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            if (dkr) {
                const float2 x = ld_bf16x2(dkr + n * 8);
                st_bf16x2(dkr + n * 8, x.x + scale * dka[0][n][2 * r], x.y + scale * dka[0][n][2 * r + 1]);
            }
            if (dvr) {
                const float2 x = ld_bf16x2(dvr + n * 8);
                st_bf16x2(dvr + n * 8, x.x + dva[0][n][2 * r], x.y + dva[0][n][2 * r + 1]);
            }
        }
    }
}

// grid (ceil(Nq / 64), B*H), FA_THREADS. Shared: Q, dO [64][LD]; K, V [2][64][LD].
// QREG: the warp's Q and dO A-fragments stay in registers (else re-read from shared per key tile).
template <int D, bool QREG>
__global__ void __launch_bounds__(FA_THREADS)
    flash_dq_kernel(bf16 *__restrict__ dq, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                    const bf16 *__restrict__ v, const bf16 *__restrict__ dout, const float *__restrict__ L2,
                    const float *__restrict__ Di, AttnShape s, float sl2, float scale) {
    constexpr int LD = Dims<D>::LD, KS = Dims<D>::KS, NT = Dims<D>::NT, BK = FA_BK, BQ = 16 * FA_WARPS;
    extern __shared__ uint4 fa_smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(fa_smem);
    bf16 *sG = sQ + BQ * LD;
    bf16 *sK = sG + BQ * LD;      // [2][BK][LD]
    bf16 *sV = sK + 2 * BK * LD;  // [2][BK][LD]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int H = s.H, Nq = s.Nq, Nk = s.Nk;
    const int b = blockIdx.y / H, h = blockIdx.y % H;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BQ;
    const bf16 *qb = q + (size_t)b * s.q_sb + (size_t)h * D + (size_t)q0 * s.q_st;
    const bf16 *gb = dout + (size_t)b * s.o_sb + (size_t)h * D + (size_t)q0 * s.o_st;
    const bf16 *kb = k + (size_t)b * s.k_sb + (size_t)h * D;
    const bf16 *vb = v + (size_t)b * s.v_sb + (size_t)h * D;
    const int kend = s.causal ? min(Nk, q0 + BQ) : Nk;
    const int nkt = (kend + BK - 1) / BK;

    load_rows<D, BQ>(sQ, qb, s.q_st, Nq - q0);
    load_rows<D, BQ>(sG, gb, s.o_st, Nq - q0);
    load_rows<D, BK>(sK, kb, s.k_st, Nk);
    load_rows<D, BK>(sV, vb, s.v_st, Nk);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    const int r0 = warp * 16;
    uint32_t qf[QREG ? KS : 1][4], gf[QREG ? KS : 1][4];
    if (QREG) {
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            ld_a<LD>(qf[QREG ? ks : 0], sQ, r0, ks * 16);
            ld_a<LD>(gf[QREG ? ks : 0], sG, r0, ks * 16);
        }
    }
    // rows g and g + 8: L2 (+inf past Nq: P = 0) and Di
    float lrow[2], drow[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = q0 + r0 + g + r * 8;
        lrow[r] = i < Nq ? L2[(size_t)blockIdx.y * Nq + i] : INFINITY;
        drow[r] = i < Nq ? Di[(size_t)blockIdx.y * Nq + i] : 0.0f;
    }
    float dqa[1][NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) dqa[0][n][0] = dqa[0][n][1] = dqa[0][n][2] = dqa[0][n][3] = 0.0f;

    for (int kt = 0; kt < nkt; kt++) {
        const int cur = kt & 1, k0 = kt * BK;
        if (kt > 0) {
            cp_async_wait<0>();
            __syncthreads();
        }
        if (kt + 1 < nkt) {
            const int k1 = k0 + BK;
            load_rows<D, BK>(sK + (cur ^ 1) * BK * LD, kb + (size_t)k1 * s.k_st, s.k_st, Nk - k1);
            load_rows<D, BK>(sV + (cur ^ 1) * BK * LD, vb + (size_t)k1 * s.v_st, s.v_st, Nk - k1);
            cp_async_commit();
        }
        const bf16 *cK = sK + cur * BK * LD, *cV = sV + cur * BK * LD;

        // S = Q K^T, dP = dO V^T: [16 rows] x [64 keys]
        float sc[8][4], dp[8][4];
        mma_abt2<LD, KS, 8, QREG>(sc, dp, qf, gf, sQ, sG, r0, cK, cV);
        // P = exp2(S c - L2), masked keys (>= Nk, causal j > i) 0; dS = P (dP - Di)
        const bool mask = k0 + BK > Nk || (s.causal && k0 + BK - 1 > q0 + r0);
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e >> 1;
                float p = exp2f(fmaf(sc[n][e], sl2, -lrow[r]));
                if (mask) {
                    const int j = k0 + n * 8 + 2 * t + (e & 1), i = q0 + r0 + g + r * 8;
                    if (j >= Nk || (s.causal && j > i)) p = 0.0f;
                }
                dp[n][e] = p * (dp[n][e] - drow[r]);
            }
        // dQ += dS K
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t da[1][4];
            acc_to_a(da[0], dp[2 * kk], dp[2 * kk + 1]);
            mma_an<D, 1>(dqa, da, cK, kk * 16);
        }
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = q0 + r0 + g + r * 8;
        if (i >= Nq) continue;
        bf16 *row = dq + (size_t)b * s.q_sb + (size_t)i * s.q_st + (size_t)h * D + 2 * t;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            const float2 x = ld_bf16x2(row + n * 8);
            st_bf16x2(row + n * 8, x.x + scale * dqa[0][n][2 * r], x.y + scale * dqa[0][n][2 * r + 1]);
        }
    }
}

// ---------------------------------------------------------------- launchers
bool fa_fits_int(long x) { return x >= 0 && x <= 0x7fffffffL; }

// Per head dim: forward m-tiles per warp, backward query tile, register-resident fragments.
template <int D>
struct Cfg {
    static constexpr int MT = D <= 80 ? 2 : 1;
    static constexpr bool FQREG = MT == 1 || D * MT <= 128;  // forward Q fragments in registers (D = 80: re-read from shared, no spills)
    static constexpr int BQ2 = D <= 80 ? 64 : 32;
    static constexpr bool KREG = D <= 80, QREG = D <= 80;
    static constexpr int LD = Dims<D>::LD;
    static constexpr size_t fwd_smem = (size_t)(16 * FA_WARPS * MT + 4 * FA_BK) * LD * sizeof(bf16);
    static constexpr size_t dkdv_smem = (size_t)(2 * FA_BK + 4 * BQ2) * LD * sizeof(bf16) + 4 * BQ2 * sizeof(float);
    static constexpr size_t dq_smem = (size_t)(2 * 16 * FA_WARPS + 4 * FA_BK) * LD * sizeof(bf16);
};

// Raises the dynamic shared-memory limit of a kernel once (above 48 KB needs the opt-in).
template <class K>
int set_smem(K *kernel, size_t bytes, int *done) {
    if (bytes <= 48 * 1024 || *done) return 0;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) return (int)e;
    *done = 1;
    return 0;
}

template <int D>
int fwd_d(bf16 *o, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const AttnShape *s, cudaStream_t st) {
    typedef Cfg<D> C;
    static int attr_done = 0;
    auto kern = flash_fwd_kernel<D, C::MT, C::FQREG>;
    int rc = set_smem(kern, C::fwd_smem, &attr_done);
    if (rc) return rc;
    const int BQ = 16 * FA_WARPS * C::MT;
    const float sl2 = FA_LOG2E / sqrtf((float)D);
    dim3 grid((unsigned)((s->Nq + BQ - 1) / BQ), (unsigned)(s->B * s->H));
    kern<<<grid, FA_THREADS, C::fwd_smem, st>>>(o, lse, q, k, v, *s, sl2);
    return (int)cudaGetLastError();
}

template <int D>
int bwd_d(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
          const float *L2, const float *Di, const AttnShape *s, cudaStream_t st) {
    typedef Cfg<D> C;
    static int attr_kv = 0, attr_q = 0;
    const float scale = 1.0f / sqrtf((float)D), sl2 = FA_LOG2E * scale;
    const unsigned bh = (unsigned)(s->B * s->H);
    if (dk || dv) {
        auto kern = flash_dkdv_kernel<D, C::BQ2, C::KREG>;
        int rc = set_smem(kern, C::dkdv_smem, &attr_kv);
        if (rc) return rc;
        dim3 grid((unsigned)((s->Nk + FA_BK - 1) / FA_BK), bh);
        kern<<<grid, FA_THREADS, C::dkdv_smem, st>>>(dk, dv, q, k, v, dout, L2, Di, *s, sl2, scale);
        if ((rc = (int)cudaGetLastError())) return rc;
    }
    if (dq) {
        auto kern = flash_dq_kernel<D, C::QREG>;
        int rc = set_smem(kern, C::dq_smem, &attr_q);
        if (rc) return rc;
        const int BQ = 16 * FA_WARPS;
        dim3 grid((unsigned)((s->Nq + BQ - 1) / BQ), bh);
        kern<<<grid, FA_THREADS, C::dq_smem, st>>>(dq, q, k, v, dout, L2, Di, *s, sl2, scale);
        if ((rc = (int)cudaGetLastError())) return rc;
    }
    return 0;
}

}  // namespace

extern "C" int cuda_flash_attn_supported(DType dt, const AttnShape *s, const void *const *ptrs, int nptrs) {
    if (dt != DT_BF16) return 0;
    if (!(s->D == 40 || s->D == 64 || s->D == 80 || s->D == 160)) return 0;
    if (s->B < 1 || s->H < 1 || s->Nq < 1 || s->Nk < 1 || (long)s->B * s->H > 65535) return 0;
    const long hd = (long)s->H * s->D;
    const long st[8] = {s->q_sb, s->q_st, s->k_sb, s->k_st, s->v_sb, s->v_st, s->o_sb, s->o_st};
    for (int i = 0; i < 8; i++)
        if (st[i] % 8 != 0 || st[i] < 0) return 0;
    if (!fa_fits_int(s->q_st) || !fa_fits_int(s->k_st) || !fa_fits_int(s->v_st) || !fa_fits_int(s->o_st)) return 0;
    if (s->q_st < hd || s->k_st < hd || s->v_st < hd || s->o_st < hd) return 0;
    for (int i = 0; i < nptrs; i++)
        if (ptrs[i] && ((uintptr_t)ptrs[i] & 15)) return 0;
    return 1;
}

extern "C" int cuda_flash_attn_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                                   const AttnShape *s, cudaStream_t st) {
    const void *p[4] = {o, q, k, v};
    if (!cuda_flash_attn_supported(dt, s, p, 4) || !o || !lse || !q || !k || !v) return (int)cudaErrorInvalidValue;
    bf16 *O = (bf16 *)o;
    const bf16 *Q = (const bf16 *)q, *K = (const bf16 *)k, *V = (const bf16 *)v;
    switch (s->D) {
        case 40: return fwd_d<40>(O, lse, Q, K, V, s, st);
        case 64: return fwd_d<64>(O, lse, Q, K, V, s, st);
        case 80: return fwd_d<80>(O, lse, Q, K, V, s, st);
        case 160: return fwd_d<160>(O, lse, Q, K, V, s, st);
    }
    return (int)cudaErrorInvalidValue;
}

extern "C" int cuda_flash_attn_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                   const void *k, const void *v, const void *o, const float *lse, const AttnShape *s,
                                   cudaStream_t st) {
    const void *p[8] = {dq, dk, dv, dout, q, k, v, o};
    if (!cuda_flash_attn_supported(dt, s, p, 8) || !dout || !q || !k || !v || !o || !lse)
        return (int)cudaErrorInvalidValue;
    if (!dq && !dk && !dv) return (int)cudaGetLastError();
    const size_t n = (size_t)s->B * s->H * s->Nq;
    float *ws = (float *)dev_workspace(2 * n * sizeof(float));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    float *Di = ws, *L2 = ws + n;
    flash_prep_kernel<<<grid_for(n, 256), 256, 0, st>>>(Di, L2, (const bf16 *)dout, (const bf16 *)o, lse, *s);
    int rc = (int)cudaGetLastError();
    if (rc) return rc;
    bf16 *DQ = (bf16 *)dq, *DK = (bf16 *)dk, *DV = (bf16 *)dv;
    const bf16 *G = (const bf16 *)dout, *Q = (const bf16 *)q, *K = (const bf16 *)k, *V = (const bf16 *)v;
    switch (s->D) {
        case 40: return bwd_d<40>(DQ, DK, DV, G, Q, K, V, L2, Di, s, st);
        case 64: return bwd_d<64>(DQ, DK, DV, G, Q, K, V, L2, Di, s, st);
        case 80: return bwd_d<80>(DQ, DK, DV, G, Q, K, V, L2, Di, s, st);
        case 160: return bwd_d<160>(DQ, DK, DV, G, Q, K, V, L2, Di, s, st);
    }
    return (int)cudaErrorInvalidValue;
}
