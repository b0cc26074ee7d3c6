// norm.cu: GroupNorm (+ fused SiLU), LayerNorm and BatchNorm, forward and
// backward (see norm.h for the interface and kernels/cpu/norm.c for the
// reference semantics).
//
// Building blocks:
//  - "Row tiles": a block owns a chunk of rows of an [rows, C] matrix (per
//    batch b = blockIdx.y) and all C channels. Its threads are (rowoff, lane)
//    items: a lane holds V contiguous channels (16-byte loads when C % V == 0
//    and the pointers are aligned, else V = 1), rows_par items share a lane and
//    take every rows_par-th row, so a warp reads contiguous memory along C.
//  - colsum_kernel: per chunk, two per-channel sums (an Op decides of what),
//    reduced over the block's rowoffs in shared memory in a fixed order and
//    written to part [nb, nchunk, 2, C] in dev_workspace().
//  - chunksum_kernel: adds part over the chunks in a fixed order -> [nb, 2, C].
//  - rowtile_map_kernel: elementwise pass with per-channel constants hoisted
//    per item (normalise / dx).
//  - LayerNorm: one warp per row, row cached in registers, warp shuffles.
// Chunk sizes depend on the shape only (not the device), so every result is
// bit-identical run to run and across GPUs.
//
// Variance: sums of (x - K) and (x - K)^2 with K = x[b, 0, c] (a sample of the
// same channel) -- a shifted single pass that stays accurate when |mean| >> std
// (BatchNorm, GroupNorm); GroupNorm then merges the per-channel (mean, M2) of
// a group exactly: M2 = sum_c M2_c + n sum_c (mean_c - mean)^2. LayerNorm keeps
// the row in registers and does two true passes.
#include <cuda_runtime.h>

#include "common.cuh"
#include "device.h"
#include "norm.h"

#define NORM_THREADS 256       // items per row-tile block (rounded to warps)
#define NORM_TARGET_BLOCKS 512 // chunks per reduction: ~4 blocks per SM of a 132-SM part
#define NORM_MIN_CHUNK 8       // rows per chunk at least (and 2 rows per item)

static int g_chunk_override = 0;
extern "C" void cuda_norm_set_chunk_rows(int rows) { g_chunk_override = rows > 0 ? rows : 0; }

namespace {  // internal linkage: helpers and kernels cannot collide with other .cu files

// ------------------------------------------------------------------ helpers

// Optional per-channel parameter (gamma/beta may be NULL).
template <typename T, int V> __device__ __forceinline__ void ldv_or(const T *p, float (&f)[V], float dflt) {
    if (p) {
        ldv<T, V>(p, f);
    } else {
#pragma unroll
        for (int k = 0; k < V; k++) f[k] = dflt;
    }
}


// Row-tile geometry for an [rows, C] matrix per batch (nb batches).
struct Tile {
    int V, L, nt, rows_par, chunk, nchunk;
};

static Tile make_tile(int rows, int C, int nb, int V) {
    Tile t;
    t.V = V;
    t.L = C / V;
    t.rows_par = t.L >= NORM_THREADS ? 1 : NORM_THREADS / t.L;
    int items = t.rows_par * t.L;
    t.nt = items >= 1024 ? 1024 : (items + 31) / 32 * 32;
    int want = (NORM_TARGET_BLOCKS + nb - 1) / nb;  // chunks per batch
    int chunk = (rows + want - 1) / want;
    if (chunk < NORM_MIN_CHUNK) chunk = NORM_MIN_CHUNK;
    if (chunk < 2 * t.rows_par) chunk = 2 * t.rows_par;
    chunk = (chunk + t.rows_par - 1) / t.rows_par * t.rows_par;
    if (g_chunk_override > 0) chunk = g_chunk_override;
    t.chunk = chunk;
    t.nchunk = rows > 0 ? (rows + chunk - 1) / chunk : 0;
    return t;
}

static size_t colsum_smem(const Tile &t, int C) { return (size_t)t.rows_par * 2 * C * sizeof(float); }

// ------------------------------------------------------------------ generic row-tile kernels

// part [nb, nchunk, 2, C]: per chunk of rows, the two per-channel sums of Op.
// Op provides: struct Ch (per-item constants), begin(b, c0, ch),
// accum(b, r, c0, ch, a0, a1) adding the row's contributions for channels c0..c0+V-1.
template <typename T, int V, class Op>
__global__ void colsum_kernel(Op op, float *__restrict__ part, int rows, int C, int chunk, int rows_par) {
    extern __shared__ float sm[];  // [rows_par, 2, C]
    const int b = blockIdx.y, k = blockIdx.x, nchunk = gridDim.x;
    const int r0 = k * chunk, r1 = min(rows, r0 + chunk);
    const int L = C / V, items = rows_par * L;
    for (int it = threadIdx.x; it < items; it += blockDim.x) {
        const int ro = it / L, c0 = (it - ro * L) * V;
        float a0[V], a1[V];
#pragma unroll
        for (int q = 0; q < V; q++) a0[q] = a1[q] = 0.0f;
        typename Op::Ch ch;
        op.begin(b, c0, ch);
#pragma unroll 4
        for (int r = r0 + ro; r < r1; r += rows_par) op.accum(b, r, c0, ch, a0, a1);
        float *s0 = sm + (size_t)ro * 2 * C + c0;
#pragma unroll
        for (int q = 0; q < V; q++) s0[q] = a0[q], s0[C + q] = a1[q];
    }
    __syncthreads();
    float *pb = part + ((size_t)b * nchunk + k) * 2 * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float t0 = 0.0f, t1 = 0.0f;
        for (int ro = 0; ro < rows_par; ro++) {
            t0 += sm[(size_t)ro * 2 * C + c];
            t1 += sm[(size_t)ro * 2 * C + C + c];
        }
        pb[c] = t0;
        pb[C + c] = t1;
    }
}

// part [nb, nchunk, n2] -> out [nb, n2] (may be NULL) = sum over chunks in order;
// add0 [C] += out[0, 0..C), add1 [C] += out[0, C..2C) when given (nb == 1 only).
// Block (32, 8): 32 columns, 8 row groups taking chunks k = ty (mod 8).
__global__ void chunksum_kernel(const float *__restrict__ part, float *__restrict__ out, float *__restrict__ add0,
                                float *__restrict__ add1, int nchunk, int C) {
    __shared__ float sm[8][33];
    const int n2 = 2 * C, b = blockIdx.y;
    const int j = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (j < n2)
        for (int k = threadIdx.y; k < nchunk; k += 8) acc += part[((size_t)b * nchunk + k) * n2 + j];
    sm[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < n2) {
        float t = sm[0][threadIdx.x];
        for (int q = 1; q < 8; q++) t += sm[q][threadIdx.x];
        if (out) out[(size_t)b * n2 + j] = t;
        if (j < C) {
            if (add0) add0[j] += t;
        } else {
            if (add1) add1[j - C] += t;
        }
    }
}

// Elementwise row-tile pass: Op provides Ch, begin(b, c0, ch), map(b, r, c0, ch).
template <typename T, int V, class Op>
__global__ void rowtile_map_kernel(Op op, int rows, int C, int chunk, int rows_par) {
    const int b = blockIdx.y, k = blockIdx.x;
    const int r0 = k * chunk, r1 = min(rows, r0 + chunk);
    const int L = C / V, items = rows_par * L;
    for (int it = threadIdx.x; it < items; it += blockDim.x) {
        const int ro = it / L, c0 = (it - ro * L) * V;
        typename Op::Ch ch;
        op.begin(b, c0, ch);
#pragma unroll 4
        for (int r = r0 + ro; r < r1; r += rows_par) op.map(b, r, c0, ch);
    }
}

template <typename T, int V, class Op>
static void launch_colsum(const Op &op, float *part, const Tile &t, int rows, int C, int nb, cudaStream_t s) {
    colsum_kernel<T, V, Op><<<dim3(t.nchunk, nb), t.nt, colsum_smem(t, C), s>>>(op, part, rows, C, t.chunk,
                                                                                t.rows_par);
}
template <typename T, int V, class Op>
static void launch_map(const Op &op, const Tile &t, int rows, int C, int nb, cudaStream_t s) {
    rowtile_map_kernel<T, V, Op><<<dim3(t.nchunk, nb), t.nt, 0, s>>>(op, rows, C, t.chunk, t.rows_par);
}
static void launch_chunksum(const float *part, float *out, float *add0, float *add1, int nchunk, int C, int nb,
                            cudaStream_t s) {
    chunksum_kernel<<<dim3((2 * C + 31) / 32, nb), dim3(32, 8), 0, s>>>(part, out, add0, add1, nchunk, C);
}

// ------------------------------------------------------------------ Ops

// Shifted sums of x: a0 += x - K, a1 += (x - K)^2 with K = x[b, 0, c].
template <typename T, int V> struct OpShiftStat {
    const T *x;  // [nb, rows, C]
    int rows, C;
    struct Ch {
        float K[V];
    };
    __device__ void begin(int b, int c0, Ch &ch) const { ldv<T, V>(x + (size_t)b * rows * C + c0, ch.K); }
    __device__ void accum(int b, int r, int c0, const Ch &ch, float (&a0)[V], float (&a1)[V]) const {
        float v[V];
        ldv<T, V>(x + ((size_t)b * rows + r) * C + c0, v);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const float d = v[q] - ch.K[q];
            a0[q] += d;
            a1[q] = fmaf(d, d, a1[q]);
        }
    }
};

// dgamma/dbeta sums: a0 += dy * xhat, a1 += dy with xhat = (x - m) * rs; m, rs per row
// (LayerNorm: mean/rstd [rows]) or per channel (BatchNorm: mean [C], and rstd [C]
// or rs = 1/sqrt(var[C] + eps) when var is given).
template <typename T, int V> struct OpDGammaBeta {
    const T *x, *dy;  // [rows, C]
    const float *mean, *rstd, *var;
    float eps;
    int rows, C, per_row;
    struct Ch {
        float m[V], rs[V];
    };
    __device__ void begin(int, int c0, Ch &ch) const {
        if (per_row) return;
#pragma unroll
        for (int q = 0; q < V; q++) {
            ch.m[q] = mean[c0 + q];
            ch.rs[q] = var ? 1.0f / sqrtf(var[c0 + q] + eps) : rstd[c0 + q];
        }
    }
    __device__ void accum(int, int r, int c0, const Ch &ch, float (&a0)[V], float (&a1)[V]) const {
        float xv[V], g[V];
        ldv<T, V>(x + (size_t)r * C + c0, xv);
        ldv<T, V>(dy + (size_t)r * C + c0, g);
        const float mr = per_row ? mean[r] : 0.0f, rr = per_row ? rstd[r] : 0.0f;
#pragma unroll
        for (int q = 0; q < V; q++) {
            const float xh = per_row ? (xv[q] - mr) * rr : (xv[q] - ch.m[q]) * ch.rs[q];
            a0[q] = fmaf(g[q], xh, a0[q]);
            a1[q] += g[q];
        }
    }
};

// Per-(b, c) group constants shared by the GroupNorm ops.
template <typename T, int V> struct GNCh {
    float m[V], rs[V], ga[V], be[V];
};
template <typename T, int V>
__device__ __forceinline__ void gn_begin(GNCh<T, V> &ch, int b, int c0, const float *mean, const float *rstd,
                                         const T *gamma, const T *beta, int G, int Cg) {
    ldv_or<T, V>(gamma ? gamma + c0 : nullptr, ch.ga, 1.0f);
    ldv_or<T, V>(beta ? beta + c0 : nullptr, ch.be, 0.0f);
#pragma unroll
    for (int q = 0; q < V; q++) {
        const int g = (c0 + q) / Cg;
        ch.m[q] = mean[b * G + g];
        ch.rs[q] = rstd[b * G + g];
    }
}

// GroupNorm backward sums per channel: a0 += dz * xhat, a1 += dz (dz = dy * SiLU'(z)).
template <typename T, int V> struct OpGNBwdSum {
    const T *x, *dy, *gamma, *beta;  // x, dy [B, HW, C]; gamma, beta [C]
    const float *mean, *rstd;        // [B, G]
    int rows, C, G, Cg, silu;
    typedef GNCh<T, V> Ch;
    __device__ void begin(int b, int c0, Ch &ch) const { gn_begin<T, V>(ch, b, c0, mean, rstd, gamma, beta, G, Cg); }
    __device__ void accum(int b, int r, int c0, const Ch &ch, float (&a0)[V], float (&a1)[V]) const {
        float xv[V], g[V];
        const size_t o = ((size_t)b * rows + r) * C + c0;
        ldv<T, V>(x + o, xv);
        ldv<T, V>(dy + o, g);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const float xh = (xv[q] - ch.m[q]) * ch.rs[q];
            float dz = g[q];
            if (silu) {
                const float z = xh * ch.ga[q] + ch.be[q];
                const float sg = sigm(z);
                dz *= sg * (1.0f + z * (1.0f - sg));
            }
            a0[q] = fmaf(dz, xh, a0[q]);
            a1[q] += dz;
        }
    }
};

// y = (x - m) * rs * gamma + beta (+ SiLU): stats [B, G, 2] (mean, rstd).
template <typename T, int V> struct OpGNApply {
    T *y;
    const T *x, *gamma, *beta;
    const float *stats;
    int rows, C, G, Cg, silu;
    typedef GNCh<T, V> Ch;
    __device__ void begin(int b, int c0, Ch &ch) const {
        ldv_or<T, V>(gamma ? gamma + c0 : nullptr, ch.ga, 1.0f);
        ldv_or<T, V>(beta ? beta + c0 : nullptr, ch.be, 0.0f);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const int g = (c0 + q) / Cg;
            ch.m[q] = stats[(size_t)(b * G + g) * 2];
            ch.rs[q] = stats[(size_t)(b * G + g) * 2 + 1];
        }
    }
    __device__ void map(int b, int r, int c0, const Ch &ch) const {
        float v[V];
        const size_t o = ((size_t)b * rows + r) * C + c0;
        ldv<T, V>(x + o, v);
#pragma unroll
        for (int q = 0; q < V; q++) {
            float z = (v[q] - ch.m[q]) * ch.rs[q];
            z = z * ch.ga[q] + ch.be[q];
            v[q] = silu ? z * sigm(z) : z;
        }
        stv<T, V>(y + o, v);
    }
};

// dx += rs * (dz * gamma - a1 - xhat * a2); coef [B, G, 2] = (a1, a2).
template <typename T, int V> struct OpGNBwdDx {
    T *dx;
    const T *x, *dy, *gamma, *beta;
    const float *mean, *rstd, *coef;
    int rows, C, G, Cg, silu;
    struct Ch {
        GNCh<T, V> g;
        float a1[V], a2[V];
    };
    __device__ void begin(int b, int c0, Ch &ch) const {
        gn_begin<T, V>(ch.g, b, c0, mean, rstd, gamma, beta, G, Cg);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const int g = (c0 + q) / Cg;
            ch.a1[q] = coef[(size_t)(b * G + g) * 2];
            ch.a2[q] = coef[(size_t)(b * G + g) * 2 + 1];
        }
    }
    __device__ void map(int b, int r, int c0, const Ch &ch) const {
        float xv[V], g[V], d[V];
        const size_t o = ((size_t)b * rows + r) * C + c0;
        ldv<T, V>(x + o, xv);
        ldv<T, V>(dy + o, g);
        ldv<T, V>(dx + o, d);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const float xh = (xv[q] - ch.g.m[q]) * ch.g.rs[q];
            float dz = g[q];
            if (silu) {
                const float z = xh * ch.g.ga[q] + ch.g.be[q];
                const float sg = sigm(z);
                dz *= sg * (1.0f + z * (1.0f - sg));
            }
            const float dxh = dz * ch.g.ga[q];
            d[q] += ch.g.rs[q] * (dxh - ch.a1[q] - xh * ch.a2[q]);
        }
        stv<T, V>(dx + o, d);
    }
};

// BatchNorm normalise: y = (x - m) * (rs * gamma) + beta. m, rs from (mean, rstd)
// or (mean, 1/sqrt(var + eps)) when var is given.
template <typename T, int V> struct OpBNApply {
    T *y;
    const T *x, *gamma, *beta;
    const float *mean, *rstd, *var;
    float eps;
    int C;
    struct Ch {
        float m[V], sc[V], be[V];
    };
    __device__ void begin(int, int c0, Ch &ch) const {
        float ga[V];
        ldv_or<T, V>(gamma ? gamma + c0 : nullptr, ga, 1.0f);
        ldv_or<T, V>(beta ? beta + c0 : nullptr, ch.be, 0.0f);
#pragma unroll
        for (int q = 0; q < V; q++) {
            ch.m[q] = mean[c0 + q];
            const float rs = var ? 1.0f / sqrtf(var[c0 + q] + eps) : rstd[c0 + q];
            ch.sc[q] = rs * ga[q];
        }
    }
    __device__ void map(int, int r, int c0, const Ch &ch) const {
        float v[V];
        const size_t o = (size_t)r * C + c0;
        ldv<T, V>(x + o, v);
#pragma unroll
        for (int q = 0; q < V; q++) v[q] = (v[q] - ch.m[q]) * ch.sc[q] + ch.be[q];
        stv<T, V>(y + o, v);
    }
};

// BatchNorm dx. Training (tot != NULL, tot [2, C] = (sum dy*xhat, sum dy)):
//   dx += rstd * gamma * (dy - sum dy / N - xhat * sum(dy xhat) / N);
// inference (tot == NULL): dx += dy * gamma * rsqrt(var + eps).
template <typename T, int V> struct OpBNBwdDx {
    T *dx;
    const T *x, *dy, *gamma;
    const float *mean, *rstd, *var, *tot;
    float eps;
    int N, C;
    struct Ch {
        float m[V], rs[V], k[V], a1[V], a2[V];
    };
    __device__ void begin(int, int c0, Ch &ch) const {
        float ga[V];
        ldv_or<T, V>(gamma ? gamma + c0 : nullptr, ga, 1.0f);
#pragma unroll
        for (int q = 0; q < V; q++) {
            const int c = c0 + q;
            if (tot) {
                ch.m[q] = mean[c];
                ch.rs[q] = rstd[c];
                ch.k[q] = rstd[c] * ga[q];
                ch.a1[q] = tot[C + c] / (float)N;
                ch.a2[q] = tot[c] / (float)N;
            } else {
                ch.m[q] = ch.a1[q] = ch.a2[q] = 0.0f;
                ch.rs[q] = 1.0f / sqrtf(var[c] + eps);
                ch.k[q] = ga[q] * ch.rs[q];
            }
        }
    }
    __device__ void map(int, int r, int c0, const Ch &ch) const {
        float xv[V], g[V], d[V];
        const size_t o = (size_t)r * C + c0;
        ldv<T, V>(dy + o, g);
        ldv<T, V>(dx + o, d);
        if (tot) {
            ldv<T, V>(x + o, xv);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const float xh = (xv[q] - ch.m[q]) * ch.rs[q];
                d[q] += ch.k[q] * (g[q] - ch.a1[q] - xh * ch.a2[q]);
            }
        } else {
#pragma unroll
            for (int q = 0; q < V; q++) d[q] += g[q] * ch.k[q];
        }
        stv<T, V>(dx + o, d);
    }
};

// ------------------------------------------------------------------ small finishing kernels

// One warp per (b, g): merges the per-channel shifted sums tot [B, 2, C] (shift
// K = x[b, 0, c]) into the group's mean and rstd. stats [B, G, 2]; mean, rstd [B, G] (may be NULL).
template <typename T>
__global__ void gn_stats_kernel(float *__restrict__ stats, float *__restrict__ mean, float *__restrict__ rstd,
                                const T *__restrict__ x, const float *__restrict__ tot, int B, int HW, int C, int G,
                                float eps) {
    const int bg = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (bg >= B * G) return;  // whole warp
    const int b = bg / G, g = bg % G, Cg = C / G;
    const float n = (float)HW;
    const float *t0 = tot + (size_t)b * 2 * C, *t1 = t0 + C;
    const T *xb = x + (size_t)b * HW * C;
    float sm = 0.0f;
    for (int j = lane; j < Cg; j += 32) {
        const int c = g * Cg + j;
        sm += to_f32(xb[c]) + t0[c] / n;  // channel mean
    }
    const float mu = warp_sum(sm) / (float)Cg;
    float m2 = 0.0f;
    for (int j = lane; j < Cg; j += 32) {
        const int c = g * Cg + j;
        const float mc = to_f32(xb[c]) + t0[c] / n;
        const float dm = mc - mu;
        m2 += (t1[c] - t0[c] * (t0[c] / n)) + n * dm * dm;
    }
    m2 = warp_sum(m2);
    if (lane == 0) {
        const float var = fmaxf(m2, 0.0f) / (n * (float)Cg);
        const float rs = 1.0f / sqrtf(var + eps);
        stats[(size_t)bg * 2] = mu;
        stats[(size_t)bg * 2 + 1] = rs;
        if (mean) mean[bg] = mu;
        if (rstd) rstd[bg] = rs;
    }
}

// GroupNorm backward coefficients, one warp per (b, g): tot [B, 2, C] = (sum dz*xhat,
// sum dz) per channel -> coef [B, G, 2] = (mean dxhat, mean dxhat*xhat), dxhat = dz*gamma.
template <typename T>
__global__ void gn_bwd_coef_kernel(float *__restrict__ coef, const float *__restrict__ tot,
                                   const T *__restrict__ gamma, int B, int HW, int C, int G) {
    const int bg = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (bg >= B * G) return;
    const int b = bg / G, g = bg % G, Cg = C / G;
    const float *t0 = tot + (size_t)b * 2 * C, *t1 = t0 + C;
    float s1 = 0.0f, s2 = 0.0f;
    for (int j = lane; j < Cg; j += 32) {
        const int c = g * Cg + j;
        const float ga = gamma ? to_f32(gamma[c]) : 1.0f;
        s1 = fmaf(ga, t1[c], s1);
        s2 = fmaf(ga, t0[c], s2);
    }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    if (lane == 0) {
        const float n = (float)HW * (float)Cg;
        coef[(size_t)bg * 2] = s1 / n;
        coef[(size_t)bg * 2 + 1] = s2 / n;
    }
}

// dgamma [C] += sum_b tot[b, 0, c], dbeta [C] += sum_b tot[b, 1, c] (b in order).
__global__ void gn_bwd_param_kernel(float *__restrict__ dgamma, float *__restrict__ dbeta,
                                    const float *__restrict__ tot, int B, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sg = 0.0f, sb = 0.0f;
    for (int b = 0; b < B; b++) {
        sg += tot[(size_t)b * 2 * C + c];
        sb += tot[(size_t)b * 2 * C + C + c];
    }
    if (dgamma) dgamma[c] += sg;
    if (dbeta) dbeta[c] += sb;
}

// BatchNorm training statistics per channel from the shifted sums tot [2, C]
// (K = x[0, c]): stats [2, C] = (mean, rstd); mean/rstd/run_mean/run_var [C] (may be NULL).
template <typename T>
__global__ void bn_stats_kernel(float *__restrict__ stats, float *__restrict__ mean, float *__restrict__ rstd,
                                float *__restrict__ run_mean, float *__restrict__ run_var, const T *__restrict__ x,
                                const float *__restrict__ tot, int N, int C, float eps, float momentum) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const float n = (float)N;
    const float s1 = tot[c], s2 = tot[C + c];
    const float mu = to_f32(x[c]) + s1 / n;
    const float ssd = fmaxf(s2 - s1 * (s1 / n), 0.0f);  // sum of squared deviations
    const float rs = 1.0f / sqrtf(ssd / n + eps);
    stats[c] = mu;
    stats[C + c] = rs;
    if (mean) mean[c] = mu;
    if (rstd) rstd[c] = rs;
    // running update in double, as the CPU op
    const double m = (double)momentum;
    if (run_mean) run_mean[c] = (float)((1.0 - m) * run_mean[c] + m * (double)mu);
    if (run_var) run_var[c] = (float)((1.0 - m) * run_var[c] + m * ((double)ssd / (double)(N - 1)));
}

// ------------------------------------------------------------------ GroupNorm

template <typename T, int V>
static int gn_fwd_impl(T *y, float *mean, float *rstd, const T *x, const T *gamma, const T *beta, int B, int HW,
                       int C, int G, float eps, int silu, cudaStream_t s) {
    const Tile t = make_tile(HW, C, B, V);
    if (colsum_smem(t, C) > 48 * 1024) return (int)cudaErrorInvalidValue;
    const size_t npart = (size_t)B * t.nchunk * 2 * C, ntot = (size_t)B * 2 * C, nstat = (size_t)B * G * 2;
    float *ws = (float *)dev_workspace((npart + ntot + nstat) * sizeof(float));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    float *part = ws, *tot = part + npart, *stats = tot + ntot;
    OpShiftStat<T, V> st{x, HW, C};
    launch_colsum<T, V>(st, part, t, HW, C, B, s);
    launch_chunksum(part, tot, nullptr, nullptr, t.nchunk, C, B, s);
    gn_stats_kernel<T><<<(B * G + 3) / 4, 128, 0, s>>>(stats, mean, rstd, x, tot, B, HW, C, G, eps);
    OpGNApply<T, V> ap{y, x, gamma, beta, stats, HW, C, G, C / G, silu};
    launch_map<T, V>(ap, t, HW, C, B, s);
    return (int)cudaGetLastError();
}

template <typename T, int V>
static int gn_bwd_impl(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *mean,
                       const float *rstd, const T *gamma, const T *beta, int B, int HW, int C, int G, int silu,
                       cudaStream_t s) {
    const Tile t = make_tile(HW, C, B, V);
    if (colsum_smem(t, C) > 48 * 1024) return (int)cudaErrorInvalidValue;
    const size_t npart = (size_t)B * t.nchunk * 2 * C, ntot = (size_t)B * 2 * C, ncoef = (size_t)B * G * 2;
    float *ws = (float *)dev_workspace((npart + ntot + ncoef) * sizeof(float));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    float *part = ws, *tot = part + npart, *coef = tot + ntot;
    const int Cg = C / G;
    OpGNBwdSum<T, V> op{x, dy, gamma, beta, mean, rstd, HW, C, G, Cg, silu};
    launch_colsum<T, V>(op, part, t, HW, C, B, s);
    launch_chunksum(part, tot, nullptr, nullptr, t.nchunk, C, B, s);
    if (dgamma || dbeta) gn_bwd_param_kernel<<<(C + 127) / 128, 128, 0, s>>>(dgamma, dbeta, tot, B, C);
    if (dx) {
        gn_bwd_coef_kernel<T><<<(B * G + 3) / 4, 128, 0, s>>>(coef, tot, gamma, B, HW, C, G);
        OpGNBwdDx<T, V> dop{dx, x, dy, gamma, beta, mean, rstd, coef, HW, C, G, Cg, silu};
        launch_map<T, V>(dop, t, HW, C, B, s);
    }
    return (int)cudaGetLastError();
}

// Largest vector width (16 bytes, else 1) usable for C channels and these pointers.
template <typename T> static int vec_for(int C, const void *const *ptrs, int n) {
    const int V = 16 / (int)sizeof(T);
    if (C % V) return 1;
    for (int i = 0; i < n; i++)
        if (ptrs[i] && !al16(ptrs[i])) return 1;
    return V;
}

}  // namespace

extern "C" int cuda_groupnorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                                  const void *beta, int B, int HW, int C, int G, float eps, int silu,
                                  cudaStream_t s) {
    if (B < 0 || HW <= 0 || C <= 0 || G <= 0 || C % G) return (int)cudaErrorInvalidValue;
    if (B == 0) return 0;
    const void *p[] = {y, x, gamma, beta};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return gn_fwd_impl<T, 16 / sizeof(T)>((T *)y, mean, rstd, (const T *)x, (const T *)gamma,
                                                  (const T *)beta, B, HW, C, G, eps, silu, s);
        return gn_fwd_impl<T, 1>((T *)y, mean, rstd, (const T *)x, (const T *)gamma, (const T *)beta, B, HW, C, G,
                                 eps, silu, s);
    });
    return 0;
}

extern "C" int cuda_groupnorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                                  const float *mean, const float *rstd, const void *gamma, const void *beta, int B,
                                  int HW, int C, int G, int silu, cudaStream_t s) {
    if (B < 0 || HW <= 0 || C <= 0 || G <= 0 || C % G) return (int)cudaErrorInvalidValue;
    if (B == 0 || (!dx && !dgamma && !dbeta)) return 0;
    const void *p[] = {dx, dy, x, gamma, beta};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 5) > 1)
            return gn_bwd_impl<T, 16 / sizeof(T)>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd,
                                                  (const T *)gamma, (const T *)beta, B, HW, C, G, silu, s);
        return gn_bwd_impl<T, 1>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd, (const T *)gamma,
                                 (const T *)beta, B, HW, C, G, silu, s);
    });
    return 0;
}

namespace {

// ------------------------------------------------------------------ LayerNorm

#define LN_WARPS 4  // rows (warps) per block

// One warp per row. NV > 0: the lane's vectors j = lane + 32 i (i < NV) are
// cached in registers (needs C / V <= 32 NV); NV == 0: re-read from memory.
template <typename T, int V, int NV>
__global__ void __launch_bounds__(LN_WARPS * 32)
    ln_fwd_kernel(T *__restrict__ y, float *__restrict__ mean, float *__restrict__ rstd, const T *__restrict__ x,
                  const T *__restrict__ gamma, const T *__restrict__ beta, int N, int C, float eps) {
    const int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;  // whole warp
    const int L = C / V;
    const T *xr = x + (size_t)row * C;
    T *yr = y + (size_t)row * C;
    float cache[NV > 0 ? NV * V : 1];
    float s = 0.0f;
    if constexpr (NV > 0) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            const int j = lane + 32 * i;
            float v[V];
            if (j < L) {
                ldv<T, V>(xr + (size_t)j * V, v);
            } else {
#pragma unroll
                for (int q = 0; q < V; q++) v[q] = 0.0f;
            }
#pragma unroll
            for (int q = 0; q < V; q++) cache[i * V + q] = v[q], s += v[q];
        }
    } else {
        for (int j = lane; j < L; j += 32) {
            float v[V];
            ldv<T, V>(xr + (size_t)j * V, v);
#pragma unroll
            for (int q = 0; q < V; q++) s += v[q];
        }
    }
    const float mu = warp_sum(s) / (float)C;
    float ss = 0.0f;
    if constexpr (NV > 0) {
#pragma unroll
        for (int i = 0; i < NV; i++)
            if (lane + 32 * i < L) {
#pragma unroll
                for (int q = 0; q < V; q++) {
                    const float d = cache[i * V + q] - mu;
                    ss = fmaf(d, d, ss);
                }
            }
    } else {
        for (int j = lane; j < L; j += 32) {
            float v[V];
            ldv<T, V>(xr + (size_t)j * V, v);
#pragma unroll
            for (int q = 0; q < V; q++) {
                const float d = v[q] - mu;
                ss = fmaf(d, d, ss);
            }
        }
    }
    const float rs = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
    if (lane == 0) {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
    auto out = [&](int j, float (&v)[V]) {
        float ga[V], be[V];
        ldv_or<T, V>(gamma ? gamma + (size_t)j * V : nullptr, ga, 1.0f);
        ldv_or<T, V>(beta ? beta + (size_t)j * V : nullptr, be, 0.0f);
#pragma unroll
        for (int q = 0; q < V; q++) v[q] = (v[q] - mu) * rs * ga[q] + be[q];
        stv<T, V>(yr + (size_t)j * V, v);
    };
    if constexpr (NV > 0) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            const int j = lane + 32 * i;
            if (j < L) {
                float v[V];
#pragma unroll
                for (int q = 0; q < V; q++) v[q] = cache[i * V + q];
                out(j, v);
            }
        }
    } else {
        for (int j = lane; j < L; j += 32) {
            float v[V];
            ldv<T, V>(xr + (size_t)j * V, v);
            out(j, v);
        }
    }
}

// dx += rs * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), dxh = dy * gamma. One warp per row;
// x and dy cached in registers as in ln_fwd_kernel.
template <typename T, int V, int NV>
__global__ void __launch_bounds__(LN_WARPS * 32)
    ln_bwd_dx_kernel(T *__restrict__ dx, const T *__restrict__ dy, const T *__restrict__ x,
                     const float *__restrict__ mean, const float *__restrict__ rstd, const T *__restrict__ gamma,
                     int N, int C) {
    const int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const int L = C / V;
    const size_t ro = (size_t)row * C;
    const float m = mean[row], rs = rstd[row];
    float cx[NV > 0 ? NV * V : 1], cg[NV > 0 ? NV * V : 1];  // xhat, dxhat
    float s1 = 0.0f, s2 = 0.0f;
    auto load = [&](int j, float (&xh)[V], float (&dxh)[V]) {
        float ga[V];
        ldv<T, V>(x + ro + (size_t)j * V, xh);
        ldv<T, V>(dy + ro + (size_t)j * V, dxh);
        ldv_or<T, V>(gamma ? gamma + (size_t)j * V : nullptr, ga, 1.0f);
#pragma unroll
        for (int q = 0; q < V; q++) {
            xh[q] = (xh[q] - m) * rs;
            dxh[q] *= ga[q];
        }
    };
    if constexpr (NV > 0) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            const int j = lane + 32 * i;
            float xh[V], dxh[V];
            if (j < L) {
                load(j, xh, dxh);
            } else {
#pragma unroll
                for (int q = 0; q < V; q++) xh[q] = dxh[q] = 0.0f;
            }
#pragma unroll
            for (int q = 0; q < V; q++) {
                cx[i * V + q] = xh[q], cg[i * V + q] = dxh[q];
                s1 += dxh[q];
                s2 = fmaf(dxh[q], xh[q], s2);
            }
        }
    } else {
        for (int j = lane; j < L; j += 32) {
            float xh[V], dxh[V];
            load(j, xh, dxh);
#pragma unroll
            for (int q = 0; q < V; q++) {
                s1 += dxh[q];
                s2 = fmaf(dxh[q], xh[q], s2);
            }
        }
    }
    const float a1 = warp_sum(s1) / (float)C, a2 = warp_sum(s2) / (float)C;
    auto out = [&](int j, const float (&xh)[V], const float (&dxh)[V]) {
        float d[V];
        ldv<T, V>(dx + ro + (size_t)j * V, d);
#pragma unroll
        for (int q = 0; q < V; q++) d[q] += rs * (dxh[q] - a1 - xh[q] * a2);
        stv<T, V>(dx + ro + (size_t)j * V, d);
    };
    if constexpr (NV > 0) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            const int j = lane + 32 * i;
            if (j < L) {
                float xh[V], dxh[V];
#pragma unroll
                for (int q = 0; q < V; q++) xh[q] = cx[i * V + q], dxh[q] = cg[i * V + q];
                out(j, xh, dxh);
            }
        }
    } else {
        for (int j = lane; j < L; j += 32) {
            float xh[V], dxh[V];
            load(j, xh, dxh);
            out(j, xh, dxh);
        }
    }
}

// Vectors per lane cached in registers: the smallest of {2, 4, 6, 8, 12, 16} covering
// ceil(L / 32) and not above maxnv, else 0 (uncached). The backward caches two
// arrays and spills at 16 (bf16), so it stops at 12.
static int ln_nv(int L, int maxnv) {
    const int need = (L + 31) / 32;
    const int opts[] = {2, 4, 6, 8, 12, 16};
    for (int i = 0; i < 6 && opts[i] <= maxnv; i++)
        if (need <= opts[i]) return opts[i];
    return 0;
}

#define LN_NV_SWITCH(nv, CALL) \
    switch (nv) {              \
    case 2: CALL(2); break;    \
    case 4: CALL(4); break;    \
    case 6: CALL(6); break;    \
    case 8: CALL(8); break;    \
    case 12: CALL(12); break;  \
    case 16: CALL(16); break;  \
    default: CALL(0); break;   \
    }

template <typename T, int V>
static int ln_fwd_impl(T *y, float *mean, float *rstd, const T *x, const T *gamma, const T *beta, int N, int C,
                       float eps, cudaStream_t s) {
    const unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
#define LN_FWD(NV) ln_fwd_kernel<T, V, NV><<<grid, LN_WARPS * 32, 0, s>>>(y, mean, rstd, x, gamma, beta, N, C, eps)
    if constexpr (V == 1) {
        LN_FWD(0);  // odd C: uncached scalar path
    } else {
        const int nv = ln_nv(C / V, 16);
        LN_NV_SWITCH(nv, LN_FWD)
    }
#undef LN_FWD
    return (int)cudaGetLastError();
}

template <typename T, int V>
static int ln_bwd_impl(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *mean,
                       const float *rstd, const T *gamma, int N, int C, cudaStream_t s) {
    if (dgamma || dbeta) {
        const Tile t = make_tile(N, C, 1, V);
        if (colsum_smem(t, C) > 48 * 1024) return (int)cudaErrorInvalidValue;
        float *part = (float *)dev_workspace((size_t)t.nchunk * 2 * C * sizeof(float));
        if (!part) return (int)cudaErrorMemoryAllocation;
        OpDGammaBeta<T, V> op{x, dy, mean, rstd, nullptr, 0.0f, N, C, 1};
        launch_colsum<T, V>(op, part, t, N, C, 1, s);
        launch_chunksum(part, nullptr, dgamma, dbeta, t.nchunk, C, 1, s);
    }
    if (dx) {
        const unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
#define LN_BWD(NV) ln_bwd_dx_kernel<T, V, NV><<<grid, LN_WARPS * 32, 0, s>>>(dx, dy, x, mean, rstd, gamma, N, C)
        if constexpr (V == 1) {
            LN_BWD(0);
        } else {
            const int nv = ln_nv(C / V, 12);
            switch (nv) {
            case 2: LN_BWD(2); break;
            case 4: LN_BWD(4); break;
            case 6: LN_BWD(6); break;
            case 8: LN_BWD(8); break;
            case 12: LN_BWD(12); break;
            default: LN_BWD(0); break;
            }
        }
#undef LN_BWD
    }
    return (int)cudaGetLastError();
}

}  // namespace

extern "C" int cuda_layernorm_fwd(DType dt, void *y, float *mean, float *rstd, const void *x, const void *gamma,
                                  const void *beta, int N, int C, float eps, cudaStream_t s) {
    if (N < 0 || C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    const void *p[] = {y, x, gamma, beta};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return ln_fwd_impl<T, 16 / sizeof(T)>((T *)y, mean, rstd, (const T *)x, (const T *)gamma,
                                                  (const T *)beta, N, C, eps, s);
        return ln_fwd_impl<T, 1>((T *)y, mean, rstd, (const T *)x, (const T *)gamma, (const T *)beta, N, C, eps, s);
    });
    return 0;
}

extern "C" int cuda_layernorm_bwd(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy, const void *x,
                                  const float *mean, const float *rstd, const void *gamma, int N, int C,
                                  cudaStream_t s) {
    if (N < 0 || C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || (!dx && !dgamma && !dbeta)) return 0;
    const void *p[] = {dx, dy, x, gamma};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return ln_bwd_impl<T, 16 / sizeof(T)>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd,
                                                  (const T *)gamma, N, C, s);
        return ln_bwd_impl<T, 1>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd, (const T *)gamma, N,
                                 C, s);
    });
    return 0;
}

namespace {

// ------------------------------------------------------------------ BatchNorm

template <typename T, int V>
static int bn_fwd_infer_impl(T *y, const T *x, const T *gamma, const T *beta, const float *run_mean,
                             const float *run_var, int N, int C, float eps, cudaStream_t s) {
    const Tile t = make_tile(N, C, 1, V);
    OpBNApply<T, V> op{y, x, gamma, beta, run_mean, nullptr, run_var, eps, C};
    launch_map<T, V>(op, t, N, C, 1, s);
    return (int)cudaGetLastError();
}

template <typename T, int V>
static int bn_fwd_train_impl(T *y, float *mean, float *rstd, float *run_mean, float *run_var, const T *x,
                             const T *gamma, const T *beta, int N, int C, float eps, float momentum, cudaStream_t s) {
    const Tile t = make_tile(N, C, 1, V);
    if (colsum_smem(t, C) > 48 * 1024) return (int)cudaErrorInvalidValue;
    const size_t npart = (size_t)t.nchunk * 2 * C, ntot = (size_t)2 * C;
    float *ws = (float *)dev_workspace((npart + 2 * ntot) * sizeof(float));
    if (!ws) return (int)cudaErrorMemoryAllocation;
    float *part = ws, *tot = part + npart, *stats = tot + ntot;
    OpShiftStat<T, V> st{x, N, C};
    launch_colsum<T, V>(st, part, t, N, C, 1, s);
    launch_chunksum(part, tot, nullptr, nullptr, t.nchunk, C, 1, s);
    bn_stats_kernel<T><<<(C + 127) / 128, 128, 0, s>>>(stats, mean, rstd, run_mean, run_var, x, tot, N, C, eps,
                                                       momentum);
    OpBNApply<T, V> op{y, x, gamma, beta, stats, stats + C, nullptr, 0.0f, C};
    launch_map<T, V>(op, t, N, C, 1, s);
    return (int)cudaGetLastError();
}

template <typename T, int V>
static int bn_bwd_impl(T *dx, float *dgamma, float *dbeta, const T *dy, const T *x, const float *mean,
                       const float *rstd, const float *var, float eps, const T *gamma, int N, int C, int train,
                       cudaStream_t s) {
    const Tile t = make_tile(N, C, 1, V);
    const bool need_sums = (dgamma || dbeta) || (train && dx);
    float *tot = nullptr;
    if (need_sums) {
        if (colsum_smem(t, C) > 48 * 1024) return (int)cudaErrorInvalidValue;
        const size_t npart = (size_t)t.nchunk * 2 * C;
        float *ws = (float *)dev_workspace((npart + 2 * (size_t)C) * sizeof(float));
        if (!ws) return (int)cudaErrorMemoryAllocation;
        float *part = ws;
        tot = part + npart;
        OpDGammaBeta<T, V> op{x, dy, mean, rstd, var, eps, N, C, 0};
        launch_colsum<T, V>(op, part, t, N, C, 1, s);
        launch_chunksum(part, tot, dgamma, dbeta, t.nchunk, C, 1, s);
    }
    if (dx) {
        OpBNBwdDx<T, V> op{dx, x, dy, gamma, mean, rstd, var, train ? tot : nullptr, eps, N, C};
        launch_map<T, V>(op, t, N, C, 1, s);
    }
    return (int)cudaGetLastError();
}

}  // namespace

extern "C" int cuda_batchnorm_fwd_infer(DType dt, void *y, const void *x, const void *gamma, const void *beta,
                                        const float *run_mean, const float *run_var, int N, int C, float eps,
                                        cudaStream_t s) {
    if (N < 0 || C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0) return 0;
    const void *p[] = {y, x, gamma, beta};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return bn_fwd_infer_impl<T, 16 / sizeof(T)>((T *)y, (const T *)x, (const T *)gamma, (const T *)beta,
                                                        run_mean, run_var, N, C, eps, s);
        return bn_fwd_infer_impl<T, 1>((T *)y, (const T *)x, (const T *)gamma, (const T *)beta, run_mean, run_var, N,
                                       C, eps, s);
    });
    return 0;
}

extern "C" int cuda_batchnorm_fwd_train(DType dt, void *y, float *mean, float *rstd, float *run_mean, float *run_var,
                                        const void *x, const void *gamma, const void *beta, int N, int C, float eps,
                                        float momentum, cudaStream_t s) {
    if (N <= 1 || C <= 0) return (int)cudaErrorInvalidValue;  // PyTorch: more than one value per channel
    const void *p[] = {y, x, gamma, beta};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return bn_fwd_train_impl<T, 16 / sizeof(T)>((T *)y, mean, rstd, run_mean, run_var, (const T *)x,
                                                        (const T *)gamma, (const T *)beta, N, C, eps, momentum, s);
        return bn_fwd_train_impl<T, 1>((T *)y, mean, rstd, run_mean, run_var, (const T *)x, (const T *)gamma,
                                       (const T *)beta, N, C, eps, momentum, s);
    });
    return 0;
}

extern "C" int cuda_batchnorm_bwd_train(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy,
                                        const void *x, const float *mean, const float *rstd, const void *gamma, int N,
                                        int C, cudaStream_t s) {
    if (N <= 0 || C <= 0) return (int)cudaErrorInvalidValue;
    if (!dx && !dgamma && !dbeta) return 0;
    const void *p[] = {dx, dy, x, gamma};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return bn_bwd_impl<T, 16 / sizeof(T)>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd,
                                                  nullptr, 0.0f, (const T *)gamma, N, C, 1, s);
        return bn_bwd_impl<T, 1>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, mean, rstd, nullptr, 0.0f,
                                 (const T *)gamma, N, C, 1, s);
    });
    return 0;
}

extern "C" int cuda_batchnorm_bwd_infer(DType dt, void *dx, float *dgamma, float *dbeta, const void *dy,
                                        const void *x, const void *gamma, const float *run_mean,
                                        const float *run_var, int N, int C, float eps, cudaStream_t s) {
    if (N < 0 || C <= 0) return (int)cudaErrorInvalidValue;
    if (N == 0 || (!dx && !dgamma && !dbeta)) return 0;
    const void *p[] = {dx, dy, x, gamma};
    DISPATCH_T(dt, {
        if (vec_for<T>(C, p, 4) > 1)
            return bn_bwd_impl<T, 16 / sizeof(T)>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, run_mean,
                                                  nullptr, run_var, eps, (const T *)gamma, N, C, 0, s);
        return bn_bwd_impl<T, 1>((T *)dx, dgamma, dbeta, (const T *)dy, (const T *)x, run_mean, nullptr, run_var, eps,
                                 (const T *)gamma, N, C, 0, s);
    });
    return 0;
}
