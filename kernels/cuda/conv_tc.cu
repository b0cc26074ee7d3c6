// conv_tc.cu: NHWC convolution on tensor cores as implicit GEMM (see conv_tc.h),
// built on the mma.sync / ldmatrix / cp.async primitives of mma.cuh.
//
// One kernel template, three GEMMs (P = B*Ho*Wo output pixels, taps = KH*KW):
//   fwd    y [P, Cout]         = A [P, taps*Cin]     (im2col of x, gathered)  @ w [Cout, taps*Cin]^T
//   dgrad  dx [B*H*W, Cin]    += A [B*H*W, taps*Cout] (dy gathered per tap)   @ Wt [taps*Cout, Cin]
//          (Wt[(tap,co), ci] = w[co, tap, ci]; a tap contributes to input pixel ih only where
//          ih + pt - kh = oh*sh for a valid oh: other (pixel, tap) pairs load zeros)
//   wgrad  dw [Cout, taps*Cin] += dy^T [Cout, P] @ im2col(x) [P, taps*Cin]
// Block tile BM x BN = 128 x 128 (8 warps of 64 x 32: 4 x 4 mma tiles, 64 fp32
// accumulators per thread), or 128 x 64, 64 x 128, 64 x 64 (warps of 32 x 32 / 32 x 16)
// where that wastes less of the last wave or of a partial tile (choose_tile); BK = 32
// reduction elements per stage, STAGES-deep cp.async pipeline. Operands live in shared memory in one of two
// layouts, both XOR-swizzled at 16-byte granularity so that ldmatrix (8 rows of
// 16 bytes per matrix) and the loader's stores are free of bank conflicts:
//   K-major [BM|BN rows][32 k]  (row = 64 B, chunk' = chunk ^ ((row >> 1) & 3)): read by ldmatrix
//   MN-major [32 k][BM|BN cols] (row >= 128 B, chunk' = chunk ^ (row & 7)):     read by ldmatrix.trans
// fwd: A, B K-major; dgrad: A K-major, B MN-major; wgrad: A, B MN-major.
// The loader gathers 16-byte chunks (8 channels of one tap of one pixel) with
// per-thread precomputed pixel coordinates; padding and out-of-range rows are
// zero-filled (cp_async_16_zfill with 0 source bytes). Channel counts that are not
// multiples of 8 (conv_in: Cin = 3, 4) pad the channel axis of the reduction to a
// multiple of 8 and use a scalar loader (plain loads, zeros past the count).
// Epilogue: accumulators -> shared memory (fp32) -> each thread finishes 8
// consecutive outputs of one row (16-byte bf16 stores / 2 x 16-byte fp32): bias and
// residual (fwd), dx += (dgrad), dw += (wgrad). When the grid has too few tiles to
// fill the GPU, the reduction is split over blockIdx.z: fp32 partials
// [split][M][N] in dev_workspace(), summed in split order by a second kernel that
// applies the same epilogue (deterministic, no atomics).
#include "common.cuh"
#include "conv_tc.h"
#include "device.h"
#include "mma.cuh"

#define BK 32       // reduction elements per pipeline stage
#define STAGES 4
#define THREADS 256  // 8 warps

static int g_force_split = 0, g_force_tile = -1;
extern "C" void cuda_conv_tc_set_split(int split) { g_force_split = split > 0 ? split : 0; }
extern "C" void cuda_conv_tc_set_tile(int tile) { g_force_tile = tile >= 0 && tile < 4 ? tile : -1; }

namespace {

enum { FWD = 0, DGRAD = 1, WGRAD = 2 };

// Block tile BM x BN with WM x WN warps (each (BM/WM) x (BN/WN): MI m16 tiles x NJ n8 tiles).
template <int BM_, int BN_, int WM_, int WN_>
struct Cfg {
    static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_;
    static constexpr int MI = BM / WM / 16, NJ = BN / WN / 8;
    static constexpr int A_ELEMS = BM * BK, STAGE_ELEMS = (BM + BN) * BK;
    static constexpr int CS_LD = BN + 8;  // fp32 epilogue staging row stride (conflict-free float2 stores)
    static constexpr int PIPE_BYTES = STAGES * STAGE_ELEMS * 2, EPI_BYTES = BM * CS_LD * 4;
    static constexpr int SMEM_BYTES = PIPE_BYTES > EPI_BYTES ? PIPE_BYTES : EPI_BYTES;
    static_assert(WM * WN * 32 == THREADS, "8 warps");
    static_assert(MI >= 1 && NJ >= 2 && NJ % 2 == 0, "warp tile");
    static_assert(BM % 64 == 0 && BN % 64 == 0 && BM <= 128 && BN <= 128, "loader mapping");
};
typedef Cfg<128, 128, 2, 4> Cfg128x128;  // warp tile 64 x 32
typedef Cfg<128, 64, 4, 2> Cfg128x64;    // 32 x 32
typedef Cfg<64, 128, 2, 4> Cfg64x128;    // 32 x 32
typedef Cfg<64, 64, 2, 4> Cfg64x64;      // 32 x 16

struct TcArgs {
    const bf16 *x, *w, *dy, *bias, *res;  // inputs (bias, res may be null)
    bf16 *y, *dx;
    float *dw, *part;  // part: [split][M][N] fp32 partials (split > 1)
    int B, H, W, Cin, Cout, KH, KW, sh, sw, pt, pl, Ho, Wo;
    int M, N, K;  // GEMM sizes: rows, columns (padded channels for wgrad), reduction (padded for fwd/dgrad)
    int Cp;       // padded channel count of the gathered axis: fwd Cin, dgrad Cout, wgrad Cin (multiple of 8)
    int ktiles;   // BK tiles of the reduction
    int kt_per;   // tiles per blockIdx.z
    int out_vec;  // 16-byte epilogue (N % 8 == 0, outputs aligned)
    int mt0;      // first row tile of this launch (grids of more than 65535 row tiles take several)
};

// Element offsets inside one operand tile (16-byte chunk = 8 bf16). K-major: [rows][BK];
// MN-major: [BK][width], width = 64 or 128.
__device__ __forceinline__ int kmaj_off(int row, int chunk) { return row * BK + ((chunk ^ ((row >> 1) & 3)) << 3); }
__device__ __forceinline__ int mnmaj_off(int row, int chunk, int width) {
    return row * width + ((chunk ^ (row & 7)) << 3);
}

// One 16-byte chunk into shared memory: src (global, chunk-aligned) or zeros when
// src is null. VEC: cp.async; else scalar loads of the first nvalid (0..8) elements.
template <bool VEC>
__device__ __forceinline__ void load_chunk(bf16 *dst, const bf16 *src, int nvalid, const void *any) {
    if constexpr (VEC) {
        cp_async_16_zfill(dst, src ? (const void *)src : any, src ? 16 : 0);
    } else {
        unsigned short v[8];
        const unsigned short *s = (const unsigned short *)src;
        for (int e = 0; e < 8; e++) v[e] = (src && e < nvalid) ? s[e] : (unsigned short)0;
        uint4 u;
        u.x = v[0] | ((uint32_t)v[1] << 16);
        u.y = v[2] | ((uint32_t)v[3] << 16);
        u.z = v[4] | ((uint32_t)v[5] << 16);
        u.w = v[6] | ((uint32_t)v[7] << 16);
        *(uint4 *)dst = u;
    }
}

// Per-thread loader state, fixed for the whole kernel. Thread tid loads:
//   K-major tiles (R rows x 4 chunks): chunk tid & 3 of rows (tid >> 2) + 64 i, i < R / 64;
//   MN-major tiles (32 rows x C/8 chunks): chunk tid % (C/8) of rows tid / (C/8) + (256 / (C/8)) i.
struct Loader {
    const bf16 *pa[2];  // fwd / dgrad A: pixel base pointer per row (null = row out of range)
    int ph[2], pw[2];   // and its origin
    const bf16 *pb[2];  // fwd B: weight row pointers
    int colb;           // dgrad B: ci; wgrad B: padded column n
    int cola;           // wgrad A: co
    int tap_kh, tap_kw, tap_c;  // wgrad B: decomposition of colb
};

template <int MODE, class C>
__device__ __forceinline__ void loader_init(Loader &L, const TcArgs &a, int m0, int n0) {
    const int tid = threadIdx.x;
    if (MODE == FWD || MODE == DGRAD) {
        for (int i = 0; i < C::BM / 64; i++) {
            const int m = m0 + (tid >> 2) + i * 64;
            L.pa[i] = nullptr;
            L.ph[i] = L.pw[i] = 0;
            if (m < a.M) {
                if (MODE == FWD) {
                    const int hw = a.Ho * a.Wo, b = m / hw, r = m - b * hw, oh = r / a.Wo, ow = r - oh * a.Wo;
                    L.pa[i] = a.x + (size_t)b * a.H * a.W * a.Cin;
                    L.ph[i] = oh * a.sh - a.pt;
                    L.pw[i] = ow * a.sw - a.pl;
                } else {
                    const int hw = a.H * a.W, b = m / hw, r = m - b * hw, ih = r / a.W, iw = r - ih * a.W;
                    L.pa[i] = a.dy + (size_t)b * a.Ho * a.Wo * a.Cout;
                    L.ph[i] = ih + a.pt;
                    L.pw[i] = iw + a.pl;
                }
            }
        }
        if (MODE == FWD) {
            const size_t kd = (size_t)a.KH * a.KW * a.Cin;
            for (int i = 0; i < C::BN / 64; i++) {
                const int n = n0 + (tid >> 2) + i * 64;
                L.pb[i] = n < a.N ? a.w + (size_t)n * kd : nullptr;
            }
        } else {
            L.colb = n0 + (tid % (C::BN / 8)) * 8;  // ci
        }
    } else {  // WGRAD
        L.cola = m0 + (tid % (C::BM / 8)) * 8;  // co
        L.colb = n0 + (tid % (C::BN / 8)) * 8;  // padded (tap, ci) column
        const int tap = L.colb / a.Cp;
        L.tap_c = L.colb - tap * a.Cp;
        L.tap_kh = tap / a.KW;
        L.tap_kw = tap - L.tap_kh * a.KW;
        if (L.colb >= a.N) L.tap_kh = -1000000;  // never inside
    }
}

// Issues the loads of reduction tile kt into stage buffers As, Bs.
template <int MODE, bool VEC, class C>
__device__ __forceinline__ void load_tile(const Loader &L, const TcArgs &a, bf16 *As, bf16 *Bs, int kt) {
    const int tid = threadIdx.x;
    if (MODE == FWD || MODE == DGRAD) {
        // the chunk this thread loads in both tiles' (fwd) or A's (dgrad) k range
        const int kc = tid & 3, k = kt * BK + kc * 8;
        const int tap = k / a.Cp, c = k - tap * a.Cp, kh = tap / a.KW, kw = tap - kh * a.KW;
        const bool kin = k < a.K;
        const int climit = MODE == FWD ? a.Cin : a.Cout;
        for (int i = 0; i < C::BM / 64; i++) {
            const int row = (tid >> 2) + i * 64;
            const bf16 *src = nullptr;
            if (kin && L.pa[i]) {
                if (MODE == FWD) {
                    const int ih = L.ph[i] + kh, iw = L.pw[i] + kw;
                    if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W)
                        src = L.pa[i] + ((size_t)ih * a.W + iw) * a.Cin + c;
                } else {
                    const int th = L.ph[i] - kh, tw = L.pw[i] - kw;
                    if (th >= 0 && tw >= 0) {
                        const int oh = th / a.sh, ow = tw / a.sw;
                        if (oh * a.sh == th && ow * a.sw == tw && oh < a.Ho && ow < a.Wo)
                            src = L.pa[i] + ((size_t)oh * a.Wo + ow) * a.Cout + c;
                    }
                }
            }
            load_chunk<VEC>(As + kmaj_off(row, kc), src, climit - c, a.x);
        }
        if (MODE == FWD) {
            for (int i = 0; i < C::BN / 64; i++) {
                const int row = (tid >> 2) + i * 64;
                const bf16 *src = (kin && L.pb[i]) ? L.pb[i] + (size_t)tap * a.Cin + c : nullptr;
                load_chunk<VEC>(Bs + kmaj_off(row, kc), src, a.Cin - c, a.x);
            }
        } else {
            // B MN-major: rows k = kt*BK + kr, chunk = ci block
            constexpr int CH = C::BN / 8, RP = THREADS / CH;
            const int taps = a.KH * a.KW;
            for (int i = 0; i < BK / RP; i++) {
                const int kr = tid / CH + i * RP, kk = kt * BK + kr;
                const int tp = kk / a.Cp, co = kk - tp * a.Cp;
                const bf16 *src = nullptr;
                if (kk < a.K && co < a.Cout && L.colb < a.Cin)
                    src = a.w + ((size_t)co * taps + tp) * a.Cin + L.colb;
                load_chunk<VEC>(Bs + mnmaj_off(kr, tid % CH, C::BN), src, a.Cin - L.colb, a.x);
            }
        }
    } else {  // WGRAD: rows = pixels kt*BK + kr
        const int hw = a.Ho * a.Wo;
        constexpr int CHA = C::BM / 8, RPA = THREADS / CHA, CHB = C::BN / 8, RPB = THREADS / CHB;
        for (int i = 0; i < BK / RPA; i++) {
            const int kr = tid / CHA + i * RPA, p = kt * BK + kr;
            const bf16 *sa = (p < a.K && L.cola < a.Cout) ? a.dy + (size_t)p * a.Cout + L.cola : nullptr;
            load_chunk<VEC>(As + mnmaj_off(kr, tid % CHA, C::BM), sa, a.Cout - L.cola, a.x);
        }
        for (int i = 0; i < BK / RPB; i++) {
            const int kr = tid / CHB + i * RPB, p = kt * BK + kr;
            const bf16 *sb = nullptr;
            if (p < a.K) {
                const int b = p / hw, r = p - b * hw, oh = r / a.Wo, ow = r - oh * a.Wo;
                const int ih = oh * a.sh - a.pt + L.tap_kh, iw = ow * a.sw - a.pl + L.tap_kw;
                if (ih >= 0 && ih < a.H && iw >= 0 && iw < a.W)
                    sb = a.x + (((size_t)b * a.H + ih) * a.W + iw) * a.Cin + L.tap_c;
            }
            load_chunk<VEC>(Bs + mnmaj_off(kr, tid % CHB, C::BN), sb, a.Cin - L.tap_c, a.x);
        }
    }
}

// Stores 8 consecutive outputs v[0..7] of GEMM row m, columns n..n+nvalid-1.
template <int MODE>
__device__ __forceinline__ void epilogue8(const TcArgs &a, int m, int n, const float *v, int nvalid) {
    if (MODE == FWD) {
        const size_t o = (size_t)m * a.N + n;
        if (a.out_vec && nvalid == 8) {
            float t[8];
            for (int e = 0; e < 8; e++) t[e] = v[e];
            if (a.bias) {
                const uint4 u = *(const uint4 *)(a.bias + n);
                const bf16 *h = (const bf16 *)&u;
                for (int e = 0; e < 8; e++) t[e] += to_f32(h[e]);
            }
            if (a.res) {
                const uint4 u = *(const uint4 *)(a.res + o);
                const bf16 *h = (const bf16 *)&u;
                for (int e = 0; e < 8; e++) t[e] += to_f32(h[e]);
            }
            uint4 u;
            u.x = pack_bf16x2(t[0], t[1]);
            u.y = pack_bf16x2(t[2], t[3]);
            u.z = pack_bf16x2(t[4], t[5]);
            u.w = pack_bf16x2(t[6], t[7]);
            *(uint4 *)(a.y + o) = u;
        } else {
            for (int e = 0; e < nvalid; e++) {
                float t = v[e];
                if (a.bias) t += to_f32(a.bias[n + e]);
                if (a.res) t += to_f32(a.res[o + e]);
                a.y[o + e] = from_f32<bf16>(t);
            }
        }
    } else if (MODE == DGRAD) {
        const size_t o = (size_t)m * a.N + n;
        if (a.out_vec && nvalid == 8) {
            const uint4 u = *(const uint4 *)(a.dx + o);
            const bf16 *h = (const bf16 *)&u;
            uint4 r;
            r.x = pack_bf16x2(to_f32(h[0]) + v[0], to_f32(h[1]) + v[1]);
            r.y = pack_bf16x2(to_f32(h[2]) + v[2], to_f32(h[3]) + v[3]);
            r.z = pack_bf16x2(to_f32(h[4]) + v[4], to_f32(h[5]) + v[5]);
            r.w = pack_bf16x2(to_f32(h[6]) + v[6], to_f32(h[7]) + v[7]);
            *(uint4 *)(a.dx + o) = r;
        } else {
            for (int e = 0; e < nvalid; e++) a.dx[o + e] = from_f32<bf16>(to_f32(a.dx[o + e]) + v[e]);
        }
    } else {  // WGRAD: column n = (tap, ci) in padded channels
        const int tap = n / a.Cp, ci = n - tap * a.Cp;
        float *d = a.dw + (size_t)m * a.KH * a.KW * a.Cin + (size_t)tap * a.Cin + ci;
        if (a.out_vec && nvalid == 8) {
            float4 p = *(float4 *)d, q = *(float4 *)(d + 4);
            p.x += v[0], p.y += v[1], p.z += v[2], p.w += v[3];
            q.x += v[4], q.y += v[5], q.z += v[6], q.w += v[7];
            *(float4 *)d = p;
            *(float4 *)(d + 4) = q;
        } else {
            for (int e = 0; e < nvalid && ci + e < a.Cin; e++) d[e] += v[e];
        }
    }
}

// grid (ceil(N/BN), row tiles from a.mt0 (<= 65535), split), THREADS threads,
// C::SMEM_BYTES dynamic shared memory.
template <int MODE, bool VEC, class C>
__global__ void __launch_bounds__(THREADS, 2) conv_tc_kernel(TcArgs a) {
    extern __shared__ uint4 smem_u4[];
    bf16 *smem = (bf16 *)smem_u4;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp / C::WN, wn = warp % C::WN;
    constexpr int MI = C::MI, NJ = C::NJ, WTM = C::BM / C::WM, WTN = C::BN / C::WN;
    const int m0 = (blockIdx.y + a.mt0) * C::BM, n0 = blockIdx.x * C::BN;
    const int kt0 = blockIdx.z * a.kt_per;
    const int nkt = min(a.ktiles, kt0 + a.kt_per) - kt0;

    Loader L;
    loader_init<MODE, C>(L, a, m0, n0);

    float acc[MI][NJ][4];
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < NJ; j++)
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nkt) {
            bf16 *st = smem + s * C::STAGE_ELEMS;
            load_tile<MODE, VEC, C>(L, a, st, st + C::A_ELEMS, kt0 + s);
        }
        cp_async_commit();
    }
    const int q = lane >> 3, r = lane & 7;
    for (int it = 0; it < nkt; it++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile `it` visible to all; stage (it - 1) % STAGES free for the prefetch
        {
            const int pf = it + STAGES - 1;
            if (pf < nkt) {
                bf16 *st = smem + (pf % STAGES) * C::STAGE_ELEMS;
                load_tile<MODE, VEC, C>(L, a, st, st + C::A_ELEMS, kt0 + pf);
            }
            cp_async_commit();
        }
        const bf16 *As = smem + (it % STAGES) * C::STAGE_ELEMS, *Bs = As + C::A_ELEMS;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t af[MI][4], bfr[NJ][2];
#pragma unroll
            for (int i = 0; i < MI; i++) {
                const int mb = wm * WTM + i * 16;
                if (MODE == WGRAD)
                    ldmatrix_x4_trans(af[i], As + mnmaj_off(kk * 16 + r + (q >> 1) * 8, (mb >> 3) + (q & 1), C::BM));
                else
                    ldmatrix_x4(af[i], As + kmaj_off(mb + (lane & 15), kk * 2 + (lane >> 4)));
            }
#pragma unroll
            for (int jp = 0; jp < NJ / 2; jp++) {
                const int nb = wn * WTN + jp * 16;
                uint32_t t[4];
                if (MODE == FWD)
                    ldmatrix_x4(t, Bs + kmaj_off(nb + r + (q >> 1) * 8, kk * 2 + (q & 1)));
                else
                    ldmatrix_x4_trans(t, Bs + mnmaj_off(kk * 16 + r + (q & 1) * 8, (nb >> 3) + (q >> 1), C::BN));
                bfr[2 * jp][0] = t[0], bfr[2 * jp][1] = t[1];
                bfr[2 * jp + 1][0] = t[2], bfr[2 * jp + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NJ; j++) mma_bf16_m16n8k16(acc[i][j], af[i], bfr[j], acc[i][j]);
        }
    }
    cp_async_wait<0>();
    __syncthreads();  // every warp done with the pipeline buffers: reuse them for the epilogue

    float *cs = (float *)smem_u4;  // [BM][CS_LD]
    {
        const int g = lane >> 2, t4 = lane & 3;
        for (int i = 0; i < MI; i++)
            for (int j = 0; j < NJ; j++) {
                const int row = wm * WTM + i * 16 + g, col = wn * WTN + j * 8 + 2 * t4;
                *(float2 *)(cs + row * C::CS_LD + col) = make_float2(acc[i][j][0], acc[i][j][1]);
                *(float2 *)(cs + (row + 8) * C::CS_LD + col) = make_float2(acc[i][j][2], acc[i][j][3]);
            }
    }
    __syncthreads();
    constexpr int CH = C::BN / 8;
    for (int idx = tid; idx < C::BM * CH; idx += THREADS) {
        const int row = idx / CH, ch = idx % CH, m = m0 + row, n = n0 + ch * 8;
        if (m >= a.M || n >= a.N) continue;
        const int nvalid = min(8, a.N - n);
        float v[8];
        const float4 p0 = *(const float4 *)(cs + row * C::CS_LD + ch * 8);
        const float4 p1 = *(const float4 *)(cs + row * C::CS_LD + ch * 8 + 4);
        v[0] = p0.x, v[1] = p0.y, v[2] = p0.z, v[3] = p0.w, v[4] = p1.x, v[5] = p1.y, v[6] = p1.z, v[7] = p1.w;
        if (gridDim.z > 1) {
            float *d = a.part + ((size_t)blockIdx.z * a.M + m) * a.N + n;
            if (nvalid == 8 && (a.N & 3) == 0) {
                *(float4 *)d = p0;
                *(float4 *)(d + 4) = p1;
            } else {
                for (int e = 0; e < nvalid; e++) d[e] = v[e];
            }
        } else {
            epilogue8<MODE>(a, m, n, v, nvalid);
        }
    }
}

// Sums the split partials in split order and applies the epilogue: one thread
// per 8 consecutive columns of one row.
template <int MODE>
__global__ void conv_tc_finish(TcArgs a, int split) {
    const int nch = (a.N + 7) / 8;
    GRID_STRIDE(i, (size_t)a.M * nch) {
        const int m = (int)(i / nch), n = (int)(i % nch) * 8, nvalid = min(8, a.N - n);
        float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int z = 0; z < split; z++) {
            const float *p = a.part + ((size_t)z * a.M + m) * a.N + n;
            for (int e = 0; e < nvalid; e++) v[e] += p[e];
        }
        epilogue8<MODE>(a, m, n, v, nvalid);
    }
}

static int out_h(const Conv2dShape *s) { return (s->H + s->pt + s->pb - s->KH) / s->sh + 1; }
static int out_w(const Conv2dShape *s) { return (s->W + s->pl + s->pr - s->KW) / s->sw + 1; }

static int shape_ok(const Conv2dShape *s) {
    return s->B > 0 && s->H > 0 && s->W > 0 && s->Cin > 0 && s->Cout > 0 && s->KH > 0 && s->KW > 0 && s->sh > 0 &&
           s->sw > 0 && s->pt >= 0 && s->pb >= 0 && s->pl >= 0 && s->pr >= 0 && s->H + s->pt + s->pb >= s->KH &&
           s->W + s->pl + s->pr >= s->KW;
}

static int round8(int c) { return (c + 7) & ~7; }

static int num_sms() {
    static int n = 0;
    if (!n) {
        int dev = 0;
        cudaGetDevice(&dev);
        if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) n = 132;
    }
    return n;
}

// Tile shape: the candidate with the least estimated time, modelled as
// ceil(tiles / SMs) * BM * BN / rate (rate: relative tensor-core throughput of one
// block of that shape -- larger warp tiles reuse each ldmatrix more; the numbers
// are estimates, not measurements). 0: 128x128, 1: 128x64, 2: 64x128, 3: 64x64.
static int choose_tile(int M, int N) {
    if (g_force_tile >= 0) return g_force_tile;
    static const int bm[4] = {128, 128, 64, 64}, bn[4] = {128, 64, 128, 64};
    static const double rate[4] = {1.0, 0.85, 0.85, 0.65};
    const long sms = num_sms();
    int best = 0;
    double best_t = 0;
    for (int c = 0; c < 4; c++) {
        const long tiles = (long)((M + bm[c] - 1) / bm[c]) * ((N + bn[c] - 1) / bn[c]);
        const double t = (double)((tiles + sms - 1) / sms) * bm[c] * bn[c] / rate[c];
        if (c == 0 || t < best_t) best = c, best_t = t;
    }
    return best;
}

// Splits of the reduction: when the tiles fill less than one wave of the SMs, enough
// splits for ~2 waves, at least 4 BK tiles (128 reduction elements) per split, fp32
// partials at most 256 MiB.
static int choose_split(int M, int N, int bm, int bn, int ktiles) {
    if (g_force_split) return g_force_split < ktiles ? g_force_split : ktiles;
    const long tiles = (long)((M + bm - 1) / bm) * ((N + bn - 1) / bn);
    const long want = 2L * num_sms();
    if (tiles >= want / 2) return 1;
    long split = (want + tiles - 1) / tiles;
    if (split > ktiles / 4) split = ktiles / 4;
    if (split > 64) split = 64;
    while (split > 1 && split * M * (long)N * 4 > (256L << 20)) split--;
    return split < 1 ? 1 : (int)split;
}

template <int MODE, bool VEC, class C>
static int launch_cfg(TcArgs a, cudaStream_t st) {
    static bool attr = false;
    if (!attr) {
        cudaError_t e = cudaFuncSetAttribute(conv_tc_kernel<MODE, VEC, C>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM_BYTES);
        if (e != cudaSuccess) return (int)e;
        attr = true;
    }
    a.ktiles = (a.K + BK - 1) / BK;
    int split = choose_split(a.M, a.N, C::BM, C::BN, a.ktiles);
    a.kt_per = (a.ktiles + split - 1) / split;
    split = (a.ktiles + a.kt_per - 1) / a.kt_per;  // no empty splits
    if (split > 1) {
        a.part = (float *)dev_workspace((size_t)split * a.M * a.N * sizeof(float));
        if (!a.part) return (int)cudaErrorMemoryAllocation;
    }
    const int mtiles = (a.M + C::BM - 1) / C::BM;
    for (int mt = 0; mt < mtiles; mt += 65535) {
        a.mt0 = mt;
        const dim3 grid((a.N + C::BN - 1) / C::BN, mtiles - mt < 65535 ? mtiles - mt : 65535, split);
        conv_tc_kernel<MODE, VEC, C><<<grid, THREADS, C::SMEM_BYTES, st>>>(a);
    }
    if (split > 1) {
        const size_t items = (size_t)a.M * ((a.N + 7) / 8);
        conv_tc_finish<MODE><<<grid_for(items, 256), 256, 0, st>>>(a, split);
    }
    return (int)cudaGetLastError();
}

template <int MODE, bool VEC>
static int launch(const TcArgs &a, cudaStream_t st) {
    switch (choose_tile(a.M, a.N)) {
        case 1: return launch_cfg<MODE, VEC, Cfg128x64>(a, st);
        case 2: return launch_cfg<MODE, VEC, Cfg64x128>(a, st);
        case 3: return launch_cfg<MODE, VEC, Cfg64x64>(a, st);
        default: return launch_cfg<MODE, VEC, Cfg128x128>(a, st);
    }
}

static TcArgs base_args(const Conv2dShape *s) {
    TcArgs a = {};
    a.B = s->B, a.H = s->H, a.W = s->W, a.Cin = s->Cin, a.Cout = s->Cout, a.KH = s->KH, a.KW = s->KW;
    a.sh = s->sh, a.sw = s->sw, a.pt = s->pt, a.pl = s->pl, a.Ho = out_h(s), a.Wo = out_w(s);
    return a;
}

static bool sizes_ok(const Conv2dShape *s) {
    const long P = (long)s->B * out_h(s) * out_w(s), PI = (long)s->B * s->H * s->W;
    const long taps = (long)s->KH * s->KW;
    return shape_ok(s) && P < 0x7fffffffL && PI < 0x7fffffffL && taps * round8(s->Cin) < 0x7fffffffL &&
           taps * round8(s->Cout) < 0x7fffffffL;
}

}  // namespace

extern "C" int cuda_conv_tc_fwd(void *y, const void *x, const void *w, const void *bias, const void *res,
                                const Conv2dShape *s, cudaStream_t st) {
    if (!sizes_ok(s)) return (int)cudaErrorInvalidValue;
    TcArgs a = base_args(s);
    a.x = (const bf16 *)x, a.w = (const bf16 *)w, a.bias = (const bf16 *)bias, a.res = (const bf16 *)res;
    a.y = (bf16 *)y;
    const bool vec = s->Cin % 8 == 0 && al16(x) && al16(w);
    a.Cp = vec ? s->Cin : round8(s->Cin);
    a.M = s->B * a.Ho * a.Wo, a.N = s->Cout, a.K = s->KH * s->KW * a.Cp;
    a.out_vec = s->Cout % 8 == 0 && al16(y) && (!bias || al16(bias)) && (!res || al16(res));
    return vec ? launch<FWD, true>(a, st) : launch<FWD, false>(a, st);
}

extern "C" int cuda_conv_tc_bwd_data(void *dx, const void *dy, const void *w, const Conv2dShape *s, cudaStream_t st) {
    if (!sizes_ok(s)) return (int)cudaErrorInvalidValue;
    if (!dx) return (int)cudaGetLastError();
    TcArgs a = base_args(s);
    a.dy = (const bf16 *)dy, a.w = (const bf16 *)w, a.dx = (bf16 *)dx, a.x = (const bf16 *)dy;
    const bool vec = s->Cin % 8 == 0 && s->Cout % 8 == 0 && al16(dy) && al16(w);
    a.Cp = vec ? s->Cout : round8(s->Cout);
    a.M = s->B * s->H * s->W, a.N = s->Cin, a.K = s->KH * s->KW * a.Cp;
    a.out_vec = s->Cin % 8 == 0 && al16(dx);
    return vec ? launch<DGRAD, true>(a, st) : launch<DGRAD, false>(a, st);
}

extern "C" int cuda_conv_tc_bwd_weight(float *dw, const void *dy, const void *x, const Conv2dShape *s,
                                       cudaStream_t st) {
    if (!sizes_ok(s)) return (int)cudaErrorInvalidValue;
    if (!dw) return (int)cudaGetLastError();
    TcArgs a = base_args(s);
    a.dy = (const bf16 *)dy, a.x = (const bf16 *)x, a.dw = dw;
    const bool vec = s->Cin % 8 == 0 && s->Cout % 8 == 0 && al16(dy) && al16(x);
    a.Cp = vec ? s->Cin : round8(s->Cin);
    a.M = s->Cout, a.N = s->KH * s->KW * a.Cp, a.K = s->B * a.Ho * a.Wo;
    a.out_vec = s->Cin % 8 == 0 && al16(dw);
    return vec ? launch<WGRAD, true>(a, st) : launch<WGRAD, false>(a, st);
}
