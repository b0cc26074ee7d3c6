// attention.cu: multi-head attention launchers (see attention.h): the dispatch between
// the flash kernels (flash_attn.cu), cuDNN's fused attention (cudnn_sdpa.cu) and the
// plain path (at the end of this file), and the plain path itself, on cuBLAS batched GEMMs.
//
// For each batch element b (the heads of one b are one strided batch: head h of a
// view starts h*D elements in, rows are q_st apart):
//   forward:  S [H,Nq,Nk] = scale Q K^T                 (GEMM, fp32 output)
//             P = softmax(S) (causal keys j > i masked), lse = max + log(sum exp)
//                                                       (one block per row, P in T)
//             O = P V                                   (GEMM, T output)
//   backward: S again; P = exp(S - lse) (T);  dV += P^T dO;  dP = dO V^T (fp32);
//             dS = scale * P * (dP - Di), Di = rowsum(dO * O)  (P recomputed in fp32);
//             dQ += dS K;  dK += dS^T Q                 (GEMMs with beta = 1, T output)
// Scratch per b in dev_workspace(): S and dP (float) and P / dS (T), H*Nq*Nk each.
// In bf16 the GEMM operands P and dS are rounded to bf16 (as a flash kernel does).
// Row reductions are block-wide in a fixed order: deterministic.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "cudnn_sdpa.h"
#include "common.cuh"
#include "device.h"
#include "flash_attn.h"
#include "gemm.h"

#define ROW_THREADS 128

namespace {

// Rows of S [H*Nq, Nk] (row = h*Nq + i): P (T) = softmax, lse [H*Nq] = max + log(sum).
template <typename T>
__global__ void __launch_bounds__(ROW_THREADS)
    softmax_rows_kernel(T *__restrict__ P, float *__restrict__ lse, const float *__restrict__ S, int Nq, int Nk,
                        int causal) {
    __shared__ float sh[ROW_THREADS / 32];
    const size_t row = blockIdx.x;
    const int i = (int)(row % Nq);
    const int jn = causal ? min(Nk, i + 1) : Nk;  // keys [0, jn) are visible
    const float *s = S + row * Nk;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < jn; j += ROW_THREADS) m = fmaxf(m, s[j]);
    m = block_max(m, sh);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < jn; j += ROW_THREADS) sum += expf(s[j] - m);
    sum = block_sum(sum, sh);
    const float inv = 1.0f / sum;
    T *p = P + row * Nk;
    for (int j = threadIdx.x; j < Nk; j += ROW_THREADS) p[j] = from_f32<T>(j < jn ? expf(s[j] - m) * inv : 0.0f);
    if (threadIdx.x == 0) lse[row] = m + logf(sum);
}

// P [H*Nq*Nk] (T) = exp(S - lse[row]), 0 for masked keys.
template <typename T>
__global__ void probs_kernel(T *__restrict__ P, const float *__restrict__ S, const float *__restrict__ lse, int Nq,
                             int Nk, size_t n, int causal) {
    GRID_STRIDE(idx, n) {
        const size_t row = idx / Nk;
        const int j = (int)(idx % Nk), i = (int)(row % Nq);
        P[idx] = from_f32<T>(causal && j > i ? 0.0f : expf(S[idx] - lse[row]));
    }
}

// Row (h, i): Di = dO_i . O_i, then dS_j (T) = scale * P_j * (dP_j - Di), P_j = exp(S_j - lse).
// dout, o: head-0 row-0 pointers of batch element b (strides o_st per row, D per head).
template <typename T>
__global__ void __launch_bounds__(ROW_THREADS)
    dscores_kernel(T *__restrict__ dS, const float *__restrict__ S, const float *__restrict__ dP,
                   const float *__restrict__ lse, const T *__restrict__ dout, const T *__restrict__ o, long o_st,
                   int Nq, int Nk, int D, int causal, float scale) {
    __shared__ float sh[ROW_THREADS / 32];
    const size_t row = blockIdx.x;
    const int h = (int)(row / Nq), i = (int)(row % Nq);
    const T *g = dout + (size_t)i * o_st + (size_t)h * D, *y = o + (size_t)i * o_st + (size_t)h * D;
    float di = 0.0f;
    for (int d = threadIdx.x; d < D; d += ROW_THREADS) di += to_f32(g[d]) * to_f32(y[d]);
    di = block_sum(di, sh);
    const float l = lse[row];
    const int jn = causal ? min(Nk, i + 1) : Nk;
    const float *s = S + row * Nk, *dp = dP + row * Nk;
    T *ds = dS + row * Nk;
    for (int j = threadIdx.x; j < Nk; j += ROW_THREADS)
        ds[j] = from_f32<T>(j < jn ? scale * expf(s[j] - l) * (dp[j] - di) : 0.0f);
}

bool fits_int(long x) { return x >= 0 && x <= 0x7fffffffL; }

bool shape_ok(const AttnShape *s) {
    return s->B >= 1 && s->H >= 1 && s->Nq >= 1 && s->Nk >= 1 && s->D >= 1 && fits_int(s->q_st) &&
           fits_int(s->k_st) && fits_int(s->v_st) && fits_int(s->o_st) && s->q_st >= (long)s->H * s->D &&
           s->k_st >= (long)s->H * s->D && s->v_st >= (long)s->H * s->D && s->o_st >= (long)s->H * s->D;
}

}  // namespace

static int plain_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v, const AttnShape *s,
                     cudaStream_t st) {
    if (!shape_ok(s)) return (int)cudaErrorInvalidValue;
    const int H = s->H, Nq = s->Nq, Nk = s->Nk, D = s->D;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t hnn = (size_t)H * Nq * Nk;
    DISPATCH_T(dt, {
        const size_t s_bytes = (hnn * sizeof(float) + 255) & ~(size_t)255;
        char *ws = (char *)dev_workspace(s_bytes + hnn * sizeof(T));
        if (!ws) return (int)cudaErrorMemoryAllocation;
        float *S = (float *)ws;     // [H, Nq, Nk]
        T *P = (T *)(ws + s_bytes);  // [H, Nq, Nk]
        for (int b = 0; b < s->B; b++) {
            const T *qb = (const T *)q + (size_t)b * s->q_sb, *kb = (const T *)k + (size_t)b * s->k_sb;
            const T *vb = (const T *)v + (size_t)b * s->v_sb;
            T *ob = (T *)o + (size_t)b * s->o_sb;
            int rc = cuda_gemm_batched_f32out(dt, 0, 1, Nq, Nk, D, scale, qb, (int)s->q_st, D, kb, (int)s->k_st, D,
                                              0.0f, S, Nk, (long)Nq * Nk, H, st);  // S = scale Q K^T
            if (rc) return rc;
            softmax_rows_kernel<T><<<(unsigned)(H * Nq), ROW_THREADS, 0, st>>>(P, lse + (size_t)b * H * Nq, S, Nq,
                                                                               Nk, s->causal);
            if ((rc = (int)cudaGetLastError())) return rc;
            rc = cuda_gemm_batched(dt, 0, 0, Nq, D, Nk, 1.0f, P, Nk, (long)Nq * Nk, vb, (int)s->v_st, D, 0.0f, ob,
                                   (int)s->o_st, D, H, st);  // O = P V
            if (rc) return rc;
        }
    });
    return (int)cudaGetLastError();
}

static int plain_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                     const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st) {
    if (!shape_ok(s)) return (int)cudaErrorInvalidValue;
    if (!dq && !dk && !dv) return (int)cudaGetLastError();
    const int H = s->H, Nq = s->Nq, Nk = s->Nk, D = s->D;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t hnn = (size_t)H * Nq * Nk;
    const long snn = (long)Nq * Nk;
    DISPATCH_T(dt, {
        const size_t f_bytes = (hnn * sizeof(float) + 255) & ~(size_t)255;
        char *ws = (char *)dev_workspace(2 * f_bytes + hnn * sizeof(T));
        if (!ws) return (int)cudaErrorMemoryAllocation;
        float *S = (float *)ws, *dP = (float *)(ws + f_bytes);  // [H, Nq, Nk]
        T *P = (T *)(ws + 2 * f_bytes);                          // [H, Nq, Nk]: P, then dS
        for (int b = 0; b < s->B; b++) {
            const T *qb = (const T *)q + (size_t)b * s->q_sb, *kb = (const T *)k + (size_t)b * s->k_sb;
            const T *vb = (const T *)v + (size_t)b * s->v_sb, *ob = (const T *)o + (size_t)b * s->o_sb;
            const T *gb = (const T *)dout + (size_t)b * s->o_sb;
            const float *lb = lse + (size_t)b * H * Nq;
            int rc = cuda_gemm_batched_f32out(dt, 0, 1, Nq, Nk, D, scale, qb, (int)s->q_st, D, kb, (int)s->k_st, D,
                                              0.0f, S, Nk, snn, H, st);  // S = scale Q K^T
            if (rc) return rc;
            if (dv) {
                probs_kernel<T><<<grid_for(hnn, 256), 256, 0, st>>>(P, S, lb, Nq, Nk, hnn, s->causal);
                if ((rc = (int)cudaGetLastError())) return rc;
                // dV [Nk, D] += P^T [Nk, Nq] dO [Nq, D]
                rc = cuda_gemm_batched(dt, 1, 0, Nk, D, Nq, 1.0f, P, Nk, snn, gb, (int)s->o_st, D, 1.0f,
                                       (T *)dv + (size_t)b * s->v_sb, (int)s->v_st, D, H, st);
                if (rc) return rc;
            }
            if (!dq && !dk) continue;
            // dP [Nq, Nk] = dO [Nq, D] V^T
            rc = cuda_gemm_batched_f32out(dt, 0, 1, Nq, Nk, D, 1.0f, gb, (int)s->o_st, D, vb, (int)s->v_st, D, 0.0f,
                                          dP, Nk, snn, H, st);
            if (rc) return rc;
            dscores_kernel<T><<<(unsigned)(H * Nq), ROW_THREADS, 0, st>>>(P, S, dP, lb, gb, ob, s->o_st, Nq, Nk, D,
                                                                          s->causal, scale);
            if ((rc = (int)cudaGetLastError())) return rc;
            // dQ [Nq, D] += dS [Nq, Nk] K [Nk, D]  (scale is inside dS)
            if (dq && (rc = cuda_gemm_batched(dt, 0, 0, Nq, D, Nk, 1.0f, P, Nk, snn, kb, (int)s->k_st, D, 1.0f,
                                              (T *)dq + (size_t)b * s->q_sb, (int)s->q_st, D, H, st)))
                return rc;
            // dK [Nk, D] += dS^T [Nk, Nq] Q [Nq, D]
            if (dk && (rc = cuda_gemm_batched(dt, 1, 0, Nk, D, Nq, 1.0f, P, Nk, snn, qb, (int)s->q_st, D, 1.0f,
                                              (T *)dk + (size_t)b * s->k_sb, (int)s->k_st, D, H, st)))
                return rc;
        }
    });
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- dispatch
// Paths: "flash" (flash_attn.cu: bf16, D in {40, 64, 80, 160}, 16-byte aligned
// views), "cudnn" (cudnn_sdpa.cu: cuDNN's fused attention, bf16, when cuDNN builds a
// plan for the shape on this device), "plain" (above: any dtype and shape).
// A2F_ATTN = auto (default) | flash | cudnn | plain is read at every call. A forced
// path whose preconditions fail falls back to the next of flash, plain (for cudnn:
// flash, then plain). auto: under the emulator, flash whenever it applies (cuDNN is
// never there); on a GPU the first call per shape (and direction) times every
// applicable candidate (cuDNN for key lengths >= CUDNN_AUTO_MIN_KEYS) once on the
// caller's stream and caches the fastest (backward
// candidates add into scratch gradient buffers, so the caller's gradients are added
// once); shapes with more than 2^24 scores per batch element never time plain.
enum { PATH_PLAIN = 0, PATH_FLASH = 1, PATH_CUDNN = 2, NPATH = 3 };
static const char *const path_names[NPATH] = {"plain", "flash", "cudnn"};

static int env_mode(void) {  // -1 = auto
    const char *e = getenv("A2F_ATTN");
    if (!e || !*e || !strcmp(e, "auto")) return -1;
    for (int p = 0; p < NPATH; p++)
        if (!strcmp(e, path_names[p])) return p;
    static int warned_bad = 0;
    if (!warned_bad) fprintf(stderr, "A2F_ATTN=%s: unknown (auto|flash|cudnn|plain); using auto\n", e);
    warned_bad = 1;
    return -1;
}

typedef struct {
    int B, H, Nq, Nk, D, causal, bwd, path;
    long q_st, k_st, v_st, o_st;
} TuneEntry;
#define TUNE_MAX 128
static TuneEntry g_tune[TUNE_MAX];
static int g_ntune = 0;

static TuneEntry *tune_find(const AttnShape *s, int bwd) {
    for (int i = 0; i < g_ntune; i++) {
        TuneEntry *e = &g_tune[i];
        if (e->B == s->B && e->H == s->H && e->Nq == s->Nq && e->Nk == s->Nk && e->D == s->D &&
            e->causal == s->causal && e->bwd == bwd && e->q_st == s->q_st && e->k_st == s->k_st &&
            e->v_st == s->v_st && e->o_st == s->o_st)
            return e;
    }
    return NULL;
}

static void tune_store(const AttnShape *s, int bwd, int path) {
    TuneEntry e = {s->B, s->H, s->Nq, s->Nk, s->D, s->causal, bwd, path, s->q_st, s->k_st, s->v_st, s->o_st};
    if (g_ntune < TUNE_MAX) g_tune[g_ntune++] = e;
    else g_tune[(s->Nq + s->Nk + s->D) % TUNE_MAX] = e;  // full: overwrite one (the choice is only a speed hint)
}

// auto asks cuDNN only where flash was slower on an H200 by more than cuDNN's first-use
// cost buys back: key lengths from 1024 (UNet self-attention at 64x64 and 32x32: flash
// 0.67x / 0.77x of cuDNN forward). Shorter keys (cross-attention over 77 tokens, 16x16
// and 8x8 self-attention, CLIP) ran faster or within microseconds on flash, and each
// cuDNN plan costs up to a second to build (runtime-compiled engines) on first use.
#define CUDNN_AUTO_MIN_KEYS 1024

// Which candidates apply: ok[PATH_*]. cuDNN is asked only when forced to it or, in
// auto, for long key sequences (asking builds its plan).
static void applicable(DType dt, const AttnShape *s, int bwd, const void *const *p, int np, int mode, int ok[NPATH]) {
    ok[PATH_PLAIN] = 1;
    ok[PATH_FLASH] = cuda_flash_attn_supported(dt, s, p, np);
    const bool ask = mode == PATH_CUDNN || (mode < 0 && s->Nk >= CUDNN_AUTO_MIN_KEYS);
    ok[PATH_CUDNN] = ask && cuda_cudnn_sdpa_available(dt, s, bwd, p, np, NULL);
}

// A forced mode's path, or -1 for auto.
static int forced_path(int mode, const int ok[NPATH]) {
    if (mode < 0) return -1;
    if (ok[mode]) return mode;
    return ok[PATH_FLASH] ? PATH_FLASH : PATH_PLAIN;
}

extern "C" const char *cuda_attention_path(const AttnShape *s, int bwd) {
    const int mode = env_mode();
    int ok[NPATH];
    applicable(DT_BF16, s, bwd, NULL, 0, mode, ok);
    const int f = forced_path(mode, ok);
    if (f >= 0) return path_names[f];
    const TuneEntry *e = tune_find(s, bwd);
    if (e) return path_names[e->path];
    return ok[PATH_FLASH] ? "flash" : "plain";  // what auto starts from (untimed)
}

static int run_fwd(int path, DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                   const AttnShape *s, cudaStream_t st) {
    if (path == PATH_FLASH) return cuda_flash_attn_fwd(dt, o, lse, q, k, v, s, st);
    if (path == PATH_CUDNN) return cuda_cudnn_sdpa_fwd(dt, o, lse, q, k, v, s, st);
    return plain_fwd(dt, o, lse, q, k, v, s, st);
}

static int run_bwd(int path, DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                   const void *v, const void *o, const float *lse, const AttnShape *s, cudaStream_t st) {
    if (path == PATH_FLASH) return cuda_flash_attn_bwd(dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
    if (path == PATH_CUDNN) return cuda_cudnn_sdpa_bwd(dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
    return plain_bwd(dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
}

// Milliseconds of TUNE_RUNS runs of fn on stream st after one warm-up run; < 0 on error.
// Several runs: one run of a ~20 us kernel is noisy (seen on an H200: single-run choices
// that the benchmark's medians contradicted).
#define TUNE_RUNS 5
#ifndef SIMT_EMULATOR
template <class F>
static float time_once(F fn, cudaStream_t st) {
    cudaEvent_t a, b;
    if (cudaEventCreate(&a) != cudaSuccess) return -1.0f;
    if (cudaEventCreate(&b) != cudaSuccess) {
        cudaEventDestroy(a);
        return -1.0f;
    }
    float ms = -1.0f;
    if (fn() == 0) {  // warm-up (module load, workspace growth)
        cudaEventRecord(a, st);
        int rc = 0;
        for (int r = 0; r < TUNE_RUNS && !rc; r++) rc = fn();
        cudaEventRecord(b, st);
        if (rc == 0 && cudaEventSynchronize(b) == cudaSuccess) cudaEventElapsedTime(&ms, a, b);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaGetLastError();
    return ms;
}

// Shapes whose plain path would need more than 2^24 scores of scratch per batch element
// never time plain: it loses there, and timing it would grow the workspace for good.
static bool plain_too_big(const AttnShape *s) { return (double)s->H * s->Nq * s->Nk > (double)(1 << 24); }

static bool capturing(cudaStream_t st) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone;
}

// Elements spanned by a strided [B, N, H*D] view.
static size_t view_extent(long sb, long st, int B, int N, int HD) {
    return (size_t)(B - 1) * sb + (size_t)(N - 1) * st + HD;
}

// Times the applicable candidates with fn(path) and returns the fastest (first
// applicable one when every timing failed).
template <class F>
static int fastest(const int ok[NPATH], const AttnShape *s, F fn, cudaStream_t st) {
    int best = -1;
    float best_ms = 0.0f;
    for (int p = 0; p < NPATH; p++) {
        if (!ok[p] || (p == PATH_PLAIN && plain_too_big(s) && (ok[PATH_FLASH] || ok[PATH_CUDNN]))) continue;
        const float ms = time_once([&] { return fn(p); }, st);
        if (ms >= 0.0f && (best < 0 || ms < best_ms)) best = p, best_ms = ms;
    }
    if (best < 0) best = ok[PATH_FLASH] ? PATH_FLASH : PATH_PLAIN;
    return best;
}
#endif

// The path auto takes untimed (emulator, stream capture): flash, else cudnn, else plain.
static int untimed_path(const int ok[NPATH]) {
    return ok[PATH_FLASH] ? PATH_FLASH : ok[PATH_CUDNN] ? PATH_CUDNN : PATH_PLAIN;
}

// 1 when only one path applies (nothing to time).
static bool single(const int ok[NPATH]) { return ok[PATH_PLAIN] + ok[PATH_FLASH] + ok[PATH_CUDNN] == 1; }

extern "C" int cuda_attention_fwd(DType dt, void *o, float *lse, const void *q, const void *k, const void *v,
                                  const AttnShape *s, cudaStream_t st) {
    const void *p[4] = {o, q, k, v};
    const int mode = env_mode();
    int ok[NPATH];
    applicable(dt, s, 0, p, 4, mode, ok);
    const int f = forced_path(mode, ok);
    if (f >= 0) return run_fwd(f, dt, o, lse, q, k, v, s, st);
    const TuneEntry *e = tune_find(s, 0);
    if (e && ok[e->path]) return run_fwd(e->path, dt, o, lse, q, k, v, s, st);
    if (single(ok)) return run_fwd(untimed_path(ok), dt, o, lse, q, k, v, s, st);
#ifdef SIMT_EMULATOR
    const int path = untimed_path(ok);
#else
    if (capturing(st)) return run_fwd(untimed_path(ok), dt, o, lse, q, k, v, s, st);
    // every candidate writes the same o and lse, so the timing runs are the result
    const int path = fastest(ok, s, [&](int c) { return run_fwd(c, dt, o, lse, q, k, v, s, st); }, st);
#endif
    tune_store(s, 0, path);
    return run_fwd(path, dt, o, lse, q, k, v, s, st);
}

extern "C" int cuda_attention_bwd(DType dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                  const void *k, const void *v, const void *o, const float *lse, const AttnShape *s,
                                  cudaStream_t st) {
    const void *p[8] = {dq, dk, dv, dout, q, k, v, o};
    const int mode = env_mode();
    int ok[NPATH];
    applicable(dt, s, 1, p, 8, mode, ok);
    const int f = forced_path(mode, ok);
    if (f >= 0) return run_bwd(f, dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
    const TuneEntry *e = tune_find(s, 1);
    if (e && ok[e->path]) return run_bwd(e->path, dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
    if (single(ok)) return run_bwd(untimed_path(ok), dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
    int path = untimed_path(ok);
#ifndef SIMT_EMULATOR
    if (!capturing(st) && (dq || dk || dv)) {
        // candidates add into scratch copies of the gradient views (same 16-byte alignment)
        const int HD = s->H * s->D;
        const size_t es = dtype_size(dt);
        const size_t nq = view_extent(s->q_sb, s->q_st, s->B, s->Nq, HD);
        const size_t nk = view_extent(s->k_sb, s->k_st, s->B, s->Nk, HD);
        const size_t nv = view_extent(s->v_sb, s->v_st, s->B, s->Nk, HD);
        char *scratch = NULL;
        const size_t bytes = (nq + nk + nv) * es + 3 * 256;
        if (cudaMalloc((void **)&scratch, bytes) == cudaSuccess) {
            cudaMemsetAsync(scratch, 0, bytes, st);
            char *sq = scratch + ((uintptr_t)dq & 255);
            char *sk = scratch + ((nq * es + 511) & ~(size_t)255) + ((uintptr_t)dk & 255);
            char *sv = scratch + ((nq * es + 511) & ~(size_t)255) + ((nk * es + 511) & ~(size_t)255) +
                       ((uintptr_t)dv & 255);
            void *tq = dq ? sq : NULL, *tk = dk ? sk : NULL, *tv = dv ? sv : NULL;
            path = fastest(ok, s, [&](int c) { return run_bwd(c, dt, tq, tk, tv, dout, q, k, v, o, lse, s, st); }, st);
            cudaStreamSynchronize(st);
            cudaFree(scratch);
            cudaGetLastError();
        }
    }
#endif
    tune_store(s, 1, path);
    return run_bwd(path, dt, dq, dk, dv, dout, q, k, v, o, lse, s, st);
}
