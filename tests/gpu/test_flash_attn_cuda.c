// test_flash_attn_cuda.c: the tensor-core flash attention (kernels/cuda/flash_attn.cu)
// against attention_fwd / attention_bwd of kernels/cpu/ops.h, bf16 (its only dtype):
// self-attention with N = 1, 17, 64, 130, cross-attention with Nk = 77, causal with
// Nq == Nk and Nq != Nk (both ways), D in {40, 64, 80, 160} (forward for each,
// backward for 40, 64, 80 and 160), B = 2, H = 2, q/k/v as slices of one fused
// [B, N, 3*H*D] qkv buffer (gradients into one fused dqkv buffer) and as separate
// buffers; o, lse, and dq/dk/dv added to random starting values; determinism (forward
// and backward twice, memcmp); the dispatch (A2F_ATTN=flash through cuda_attention_*
// and cuda_attention_path) and the fallback for shapes the kernels do not take.
// The same cases run through cuDNN's fused attention (kernels/cuda/cudnn_sdpa.cu) where
// the build has it (GPU builds with cuDNN; the emulator has none: those tests say so
// and check only the gradient-accumulation kernel), deterministic and non-deterministic
// backward, with the same tolerances (cuDNN also rounds P and dS to bf16 for its GEMMs).
//
// Tolerances (inputs rounded through bf16 on the host, Q, K, V, dO and the starting
// gradients ~ N(0, 1), so outputs are O(1)):
//  - o: rounded once to bf16 (2^-8 relative, dtype_eps). The kernel rounds the
//    unnormalised probabilities p = exp(x - m_running) in (0, 1] to bf16 before P V
//    (2^-9 relative each), which moves o = sum_j p_j v_j / l by at most
//    2^-9 sum_j p_j |v_j| / l <= 2^-9 max|v|; with max|v| ~ 4 and max|o| ~ 1..2 that is
//    within atol = max|want| / 128 (the same bound as the plain bf16 attention test).
//  - lse: float, from an fp32 online max/sum (exp2 in the log2 domain, rescaled sums):
//    scores are sums of D <= 160 bf16 products in fp32, |lse| < 20: 2e-5 absolute +
//    1e-5 relative.
//  - dq, dk, dv: rounded once (2^-8 relative); the GEMM operands P (dV) and dS (dQ, dK)
//    are rounded to bf16 (2^-9 relative each), moving e.g. dq = scale sum_j dS_ij k_j by
//    at most 2^-9 scale sum_j |dS_ij| |k_j|, a small multiple of max|dq| at these sizes
//    (Nk <= 130): atol 2^-7 max|want| + rtol 2^-8, as for the plain bf16 attention.
//    The starting gradients are added in fp32 before the single rounding.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/attention.h"
#include "../../kernels/cuda/cudnn_sdpa.h"
#include "../../kernels/cuda/flash_attn.h"
#include "../test.h"
#include "gpu_test.h"

static double g_worst;  // worst |got - want| / max|want| over all bf16 comparisons (printed once)

static void expect_near(const char *what, const float *got, const float *want, size_t n) {
    const double m = max_abs(want, n);
    for (size_t i = 0; i < n; i++) g_worst = fmax(g_worst, fabs(got[i] - want[i]) / (m > 0 ? m : 1));
    EXPECT_CLOSE(what, got, want, n, m / 128.0, dtype_eps(DT_BF16));
}

typedef struct {
    int B, H, Nq, Nk, D, causal, fused, bwd;  // fused: q, k, v are views of one [B, N, 3*H*D] tensor (Nq = Nk)
} FlashCase;

enum { VIA_FLASH = 0, VIA_DISPATCH = 1, VIA_CUDNN = 2 };
static const char *const via_name[3] = {"", " (dispatch)", " (cudnn)"};

static int fwd_via(int via, void *o, float *lse, const void *q, const void *k, const void *v, const AttnShape *s) {
    if (via == VIA_DISPATCH) return cuda_attention_fwd(DT_BF16, o, lse, q, k, v, s, dev_stream());
    if (via == VIA_CUDNN) return cuda_cudnn_sdpa_fwd(DT_BF16, o, lse, q, k, v, s, dev_stream());
    return cuda_flash_attn_fwd(DT_BF16, o, lse, q, k, v, s, dev_stream());
}

static int bwd_via(int via, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                   const void *v, const void *o, const float *lse, const AttnShape *s) {
    if (via == VIA_DISPATCH) return cuda_attention_bwd(DT_BF16, dq, dk, dv, dout, q, k, v, o, lse, s, dev_stream());
    if (via == VIA_CUDNN) return cuda_cudnn_sdpa_bwd(DT_BF16, dq, dk, dv, dout, q, k, v, o, lse, s, dev_stream());
    return cuda_flash_attn_bwd(DT_BF16, dq, dk, dv, dout, q, k, v, o, lse, s, dev_stream());
}

// check_repro = 0 skips the determinism comparison (cuDNN's non-deterministic backward).
static void run_case(const FlashCase *c, uint64_t *rng, int via, int check_repro) {
    const DType dt = DT_BF16;
    const int B = c->B, H = c->H, Nq = c->Nq, Nk = c->Nk, D = c->D;
    AttnLayout L;
    AttnShape s = attn_layout(B, H, Nq, Nk, D, c->causal, c->fused, &L);
    const size_t nq = L.nq, nk = L.nk, nv = L.nv, no = L.no;
    const size_t off_k = L.off_k, off_v = L.off_v;  // element offsets of k, v inside the fused buffer
    char what[128];
    snprintf(what, sizeof what, "flash B%d H%d Nq%d Nk%d D%d causal%d fused%d%s", B, H, Nq, Nk, D, c->causal,
             c->fused, via_name[via]);

    float *q = rand_buf(nq, dt, rng);
    float *k = c->fused ? q : rand_buf(nk, dt, rng), *v = c->fused ? q : rand_buf(nv, dt, rng);
    float *dout = rand_buf(no, dt, rng);
    float *dq0 = rand_buf(nq, dt, rng);
    float *dk0 = c->fused ? dq0 : rand_buf(nk, dt, rng), *dv0 = c->fused ? dq0 : rand_buf(nv, dt, rng);
    void *d_q = gpu_put(q, nq, dt);
    void *d_k = c->fused ? d_q : gpu_put(k, nk, dt), *d_v = c->fused ? d_q : gpu_put(v, nv, dt);
    void *d_dout = gpu_put(dout, no, dt), *d_o = gpu_fill(no, dt, NAN), *d_o2 = gpu_fill(no, dt, NAN);
    float *d_lse = gpu_fill((size_t)B * H * Nq, DT_F32, NAN), *d_lse2 = gpu_fill((size_t)B * H * Nq, DT_F32, NAN);
    const size_t es = dtype_size(dt);
    const char *kp = (const char *)d_k + off_k * es, *vp = (const char *)d_v + off_v * es;
    int rc = fwd_via(via, d_o, d_lse, d_q, kp, vp, &s);
    if (!gpu_ok(rc, what)) return;
    float *o_gpu = gpu_get(d_o, no, dt);
    float *lse_gpu = gpu_get(d_lse, (size_t)B * H * Nq, DT_F32);
    float *o = xmalloc(no * sizeof(float)), *lse = xmalloc((size_t)B * H * Nq * sizeof(float));
    attention_fwd(o, lse, q, k + off_k, v + off_v, &s);
    expect_near(what, o_gpu, o, no);
    EXPECT_CLOSE(what, lse_gpu, lse, (size_t)B * H * Nq, 2e-5, 1e-5);
    // forward determinism
    if (!gpu_ok(fwd_via(via, d_o2, d_lse2, d_q, kp, vp, &s), what)) return;
    EXPECT(memcmp(gpu_get(d_o2, no, dt), o_gpu, no * sizeof(float)) == 0, "%s: o not reproducible", what);
    EXPECT(memcmp(gpu_get(d_lse2, (size_t)B * H * Nq, DT_F32), lse_gpu, (size_t)B * H * Nq * sizeof(float)) == 0,
           "%s: lse not reproducible", what);

    if (c->bwd) {
        void *d_dq = gpu_put(dq0, nq, dt);
        void *d_dk = c->fused ? d_dq : gpu_put(dk0, nk, dt), *d_dv = c->fused ? d_dq : gpu_put(dv0, nv, dt);
        char *dkp = (char *)d_dk + off_k * es, *dvp = (char *)d_dv + off_v * es;
        rc = bwd_via(via, d_dq, dkp, dvp, d_dout, d_q, kp, vp, d_o, d_lse, &s);
        if (!gpu_ok(rc, what)) return;
        float *dq = copy_buf(dq0, nq);
        float *dk = c->fused ? dq : copy_buf(dk0, nk), *dv = c->fused ? dq : copy_buf(dv0, nv);
        // reference backward from the GPU's o (as in training) and the reference lse
        attention_bwd(dq, dk + off_k, dv + off_v, dout, q, k + off_k, v + off_v, o_gpu, lse, &s);
        float *got_dq = gpu_get(d_dq, nq, dt);
        expect_near(what, got_dq, dq, nq);
        float *got_dk = c->fused ? NULL : gpu_get(d_dk, nk, dt), *got_dv = c->fused ? NULL : gpu_get(d_dv, nv, dt);
        if (!c->fused) {
            expect_near(what, got_dk, dk, nk);
            expect_near(what, got_dv, dv, nv);
        }
        // determinism: the backward again from the same starting gradients
        void *d_dq2 = check_repro ? gpu_put(dq0, nq, dt) : NULL;
        void *d_dk2 = c->fused || !check_repro ? d_dq2 : gpu_put(dk0, nk, dt);
        void *d_dv2 = c->fused || !check_repro ? d_dq2 : gpu_put(dv0, nv, dt);
        if (check_repro && !gpu_ok(bwd_via(via, d_dq2, (char *)d_dk2 + off_k * es, (char *)d_dv2 + off_v * es,
                                           d_dout, d_q, kp, vp, d_o, d_lse, &s),
                                   what))
            return;
        if (check_repro) {
            EXPECT(memcmp(gpu_get(d_dq2, nq, dt), got_dq, nq * sizeof(float)) == 0, "%s: dq not reproducible", what);
            if (!c->fused) {
                EXPECT(memcmp(gpu_get(d_dk2, nk, dt), got_dk, nk * sizeof(float)) == 0, "%s: dk not reproducible",
                       what);
                EXPECT(memcmp(gpu_get(d_dv2, nv, dt), got_dv, nv * sizeof(float)) == 0, "%s: dv not reproducible",
                       what);
            }
        }
        free(dq);
        if (!c->fused) free(dk), free(dv);
    }
    free(q), free(dout), free(dq0), free(o), free(lse);
    if (!c->fused) free(k), free(v), free(dk0), free(dv0);
    gpu_free_all();
}

static void run_cases(const FlashCase *cases, size_t n, uint64_t seed) {
    if (!gpu_ready()) return;
    uint64_t rng = seed;
    g_worst = 0;
    for (size_t i = 0; i < n; i++) run_case(&cases[i], &rng, VIA_FLASH, 1);
    printf("  worst |got - want| / max|want| = %.5f\n", g_worst);
}

// B, H, Nq, Nk, D, causal, fused, bwd
TEST(cuda_flash_attn_d64) {
    static const FlashCase cases[] = {
        {2, 2, 1, 1, 64, 0, 0, 1},    // one token
        {2, 2, 17, 17, 64, 0, 1, 1},  // fused qkv, partial tiles
        {2, 2, 77, 77, 64, 1, 0, 1},  // causal (CLIP)
        {2, 2, 70, 33, 64, 1, 0, 1},  // causal, Nq > Nk
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 4242);
}

TEST(cuda_flash_attn_d40) {
    static const FlashCase cases[] = {
        {2, 2, 64, 64, 40, 0, 0, 1},    // exactly one tile; D = 40 (padded to 48)
        {2, 2, 130, 130, 40, 0, 1, 1},  // several key tiles, partial last one, fused
        {2, 2, 17, 77, 40, 0, 0, 1},    // cross-attention over 77 text tokens
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 4343);
}

TEST(cuda_flash_attn_d80) {
    static const FlashCase cases[] = {
        {2, 2, 33, 70, 80, 1, 0, 1},  // causal, Nq < Nk
        {2, 2, 20, 77, 80, 0, 0, 1},  // D = 80 cross-attention
        {2, 2, 17, 17, 80, 0, 1, 0},  // D = 80 fused
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 4444);
}

TEST(cuda_flash_attn_d160) {
    static const FlashCase cases[] = {
        {2, 2, 130, 130, 160, 1, 0, 0},  // D = 160, causal, several tiles
        {2, 2, 9, 77, 160, 0, 0, 1},     // D = 160 cross-attention, backward
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 4545);
}

TEST(cuda_flash_attn_dispatch) {
    if (!gpu_ready()) return;
    const char *old = getenv("A2F_ATTN");
    char *saved = old ? strdup(old) : NULL;
    setenv("A2F_ATTN", "flash", 1);
    uint64_t rng = 77;
    const FlashCase c = {1, 2, 24, 77, 64, 0, 0, 1};
    run_case(&c, &rng, VIA_DISPATCH, 1);
    AttnShape s = {1, 2, 24, 77, 64, 0, 24 * 128, 128, 77 * 128, 128, 77 * 128, 128, 24 * 128, 128};
    EXPECT(strcmp(cuda_attention_path(&s, 0), "flash") == 0, "forced flash: path %s", cuda_attention_path(&s, 0));
    s.D = 8;  // not a flash head dim: plain
    EXPECT(strcmp(cuda_attention_path(&s, 1), "plain") == 0, "D=8: path %s", cuda_attention_path(&s, 1));
    s.D = 64, s.q_st = 130;  // stride not a multiple of 8: plain
    EXPECT(strcmp(cuda_attention_path(&s, 0), "plain") == 0, "q_st=130: path %s", cuda_attention_path(&s, 0));
    EXPECT(!cuda_flash_attn_supported(DT_F32, &s, NULL, 0), "f32 must not take the flash path");
    setenv("A2F_ATTN", "plain", 1);
    s.q_st = 128;
    EXPECT(strcmp(cuda_attention_path(&s, 0), "plain") == 0, "forced plain: path %s", cuda_attention_path(&s, 0));
    if (saved) setenv("A2F_ATTN", saved, 1), free(saved);
    else unsetenv("A2F_ATTN");
}

// ---------------------------------------------------------------- cuDNN's fused attention
// The accumulation kernel behind cuda_cudnn_sdpa_bwd (scratch gradients added into strided
// views) against a host loop: exact for f32; bf16 rounds the f32 sum once.
TEST(cuda_view_add) {
    if (!gpu_ready()) return;
    uint64_t rng = 99;
    const int B = 2, N = 5, C = 24;
    const long dsb = 7 * 72, dst = 72;  // a [B, 7, 72] buffer, rows 72 apart, B 504 apart
    const size_t nd = (size_t)B * dsb, ns = (size_t)B * N * C;
    for (int t = 0; t < 2; t++) {
        const DType dt = t ? DT_BF16 : DT_F32;
        float *dst_h = hrand(nd, 1.0f, &rng, dt), *src = hrand(ns, 1.0f, &rng, dt);
        void *d = gpu_put(dst_h, nd, dt), *sd = gpu_put(src, ns, dt);
        if (!gpu_ok(cuda_view_add(dt, d, dsb, dst, sd, B, N, C, dev_stream()), "view_add")) return;
        float *want = hcopy(dst_h, nd);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < N; i++)
                for (int c = 0; c < C; c++) want[b * dsb + i * dst + c] += src[((size_t)b * N + i) * C + c];
        expect_rounded(t ? "view_add bf16" : "view_add f32", d, want, nd, dt);
        gpu_free_all();
    }
}

// The flash cases through cuDNN (the same tolerances: cuDNN's engines round P and dS to
// bf16 for their GEMMs as the flash kernels do). On a build with cuDNN a shape cuDNN
// refuses fails the test (every case here is within cuDNN's documented support);
// without cuDNN (the emulator) the test says so and passes.
static void run_cudnn(const FlashCase *cases, size_t n, uint64_t seed, int nondet) {
    if (!gpu_ready()) return;
    if (!cuda_cudnn_sdpa_built()) {
        printf("  no cuDNN in this build (the emulator has none): cuDNN attention not run\n");
        return;
    }
    const char *old = getenv("A2F_CUDNN_SDPA_NONDET");
    char *saved = old ? strdup(old) : NULL;
    setenv("A2F_CUDNN_SDPA_NONDET", nondet ? "1" : "0", 1);
    uint64_t rng = seed;
    g_worst = 0;
    for (size_t i = 0; i < n; i++) {
        const FlashCase *c = &cases[i];
        AttnLayout L;
        AttnShape s = attn_layout(c->B, c->H, c->Nq, c->Nk, c->D, c->causal, c->fused, &L);
        const char *why = NULL;
        if (!cuda_cudnn_sdpa_available(DT_BF16, &s, c->bwd, NULL, 0, &why)) {
            test_fail(__FILE__, __LINE__, "cuDNN refuses B%d H%d Nq%d Nk%d D%d causal%d bwd%d: %s", c->B, c->H, c->Nq,
                      c->Nk, c->D, c->causal, c->bwd, why);
            continue;
        }
        run_case(c, &rng, VIA_CUDNN, !nondet);
    }
    printf("  worst |got - want| / max|want| = %.5f\n", g_worst);
    if (saved) setenv("A2F_CUDNN_SDPA_NONDET", saved, 1), free(saved);
    else unsetenv("A2F_CUDNN_SDPA_NONDET");
}

// B, H, Nq, Nk, D, causal, fused, bwd
static const FlashCase g_cudnn_cases[] = {
    {2, 2, 130, 130, 40, 0, 1, 1},  // fused qkv views, partial tiles
    {2, 2, 17, 77, 40, 0, 0, 1},    // cross-attention over 77 text tokens
    {2, 2, 77, 77, 64, 1, 0, 1},    // causal (CLIP)
    {2, 2, 33, 70, 80, 0, 0, 1},    // D = 80
    {2, 2, 9, 77, 160, 0, 0, 0},    // D = 160 forward (its backward needs sm_90)
};

TEST(cuda_cudnn_sdpa) { run_cudnn(g_cudnn_cases, sizeof g_cudnn_cases / sizeof g_cudnn_cases[0], 4646, 0); }

TEST(cuda_cudnn_sdpa_nondeterministic) { run_cudnn(g_cudnn_cases, 3, 4747, 1); }

// A2F_ATTN=cudnn through the dispatch, and its fallback where cuDNN does not apply.
TEST(cuda_cudnn_sdpa_dispatch) {
    if (!gpu_ready()) return;
    const char *old = getenv("A2F_ATTN");
    char *saved = old ? strdup(old) : NULL;
    setenv("A2F_ATTN", "cudnn", 1);
    AttnShape s = {1, 2, 24, 77, 64, 0, 24 * 128, 128, 77 * 128, 128, 77 * 128, 128, 24 * 128, 128};
    const char *want = cuda_cudnn_sdpa_built() ? "cudnn" : "flash";  // no cuDNN: falls back to flash
    EXPECT(strcmp(cuda_attention_path(&s, 0), want) == 0, "forced cudnn: path %s, want %s",
           cuda_attention_path(&s, 0), want);
    if (cuda_cudnn_sdpa_built()) {
        uint64_t rng = 78;
        const FlashCase c = {1, 2, 24, 77, 64, 0, 0, 1};
        run_case(&c, &rng, VIA_DISPATCH, 1);
    }
    s.D = 12;  // not a multiple of 8: neither cuDNN nor flash
    EXPECT(strcmp(cuda_attention_path(&s, 0), "plain") == 0, "D=12: path %s", cuda_attention_path(&s, 0));
    if (saved) setenv("A2F_ATTN", saved, 1), free(saved);
    else unsetenv("A2F_ATTN");
}
