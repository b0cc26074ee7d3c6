// test_attention_cuda.c: the plain CUDA attention (kernels/cuda/attention.cu) against
// attention_fwd / attention_bwd of kernels/cpu/ops.h, f32 and bf16: self-attention,
// cross-attention with Nk = 77 keys, causal (square and Nq != Nk), a fused qkv
// projection output [B, N, 3*H*D] read through strided views with its gradient
// written into one fused dqkv buffer, D in {8, 40, 64}; o, lse, and dq/dk/dv added to
// random starting values; determinism (the backward twice, memcmp).
//
// Tolerances (inputs rounded through dt on the host; Q, K, V, dO and the starting
// gradients ~ N(0, 1), so outputs are O(1), max |x| ~ 4):
//  - f32: fp32 summation order and the GPU's expf/logf (<= 2 ulp) only; scores are
//    sums of D <= 64 products, softmax sums of <= 77 terms: atol 5e-6, rtol 2e-5
//    (measured worst under the emulator: 8e-7 absolute).
//  - bf16: each output is rounded once (2^-8 relative, dtype_eps), and the GPU rounds
//    the GEMM operands P and dS to bf16 (2^-9 relative each, as a flash kernel does).
//    That moves o = sum_j P_j v_j by at most 2^-9 sum_j P_j |v_j| <= 2^-9 max|v|, and
//    dq, dk, dv by 2^-9 times sums of |terms| (|dS| |K|, |P| |dO|) that for these
//    sizes stay within a small multiple of the largest output: atol 2^-7 * max|want|
//    plus rtol 2^-8 (measured worst: 0.0041 * max|want|, i.e. the output rounding).
//  - lse is float (no output rounding): 1e-5 absolute + 1e-5 relative.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/attention.h"
#include "../test.h"
#include "gpu_test.h"

static void expect_near(const char *what, const float *got, const float *want, size_t n, DType dt) {
    if (dt == DT_F32)
        EXPECT_CLOSE(what, got, want, n, 5e-6, 2e-5);
    else
        EXPECT_CLOSE(what, got, want, n, max_abs(want, n) / 128.0, dtype_eps(dt));
}

typedef struct {
    int B, H, Nq, Nk, D, causal, fused;  // fused: q, k, v are views of one [B, N, 3*H*D] tensor (Nq = Nk)
} AttnCase;

static void run_case(const AttnCase *c, DType dt, uint64_t *rng) {
    const int B = c->B, H = c->H, Nq = c->Nq, Nk = c->Nk, D = c->D;
    AttnLayout L;
    AttnShape s = attn_layout(B, H, Nq, Nk, D, c->causal, c->fused, &L);
    const size_t nq = L.nq, nk = L.nk, nv = L.nv, no = L.no;
    const size_t off_k = L.off_k, off_v = L.off_v;  // element offsets of k, v inside the fused buffer
    char what[128];
    snprintf(what, sizeof what, "attn %s B%d H%d Nq%d Nk%d D%d causal%d fused%d", dtype_name(dt), B, H, Nq, Nk, D,
             c->causal, c->fused);

    float *q = rand_buf(nq, dt, rng);
    float *k = c->fused ? q : rand_buf(nk, dt, rng), *v = c->fused ? q : rand_buf(nv, dt, rng);
    float *dout = rand_buf(no, dt, rng);
    float *dq0 = rand_buf(nq, dt, rng);
    float *dk0 = c->fused ? dq0 : rand_buf(nk, dt, rng), *dv0 = c->fused ? dq0 : rand_buf(nv, dt, rng);
    void *d_q = gpu_put(q, nq, dt);
    void *d_k = c->fused ? d_q : gpu_put(k, nk, dt), *d_v = c->fused ? d_q : gpu_put(v, nv, dt);
    void *d_dout = gpu_put(dout, no, dt), *d_o = gpu_fill(no, dt, NAN);
    float *d_lse = gpu_fill((size_t)B * H * Nq, DT_F32, NAN);
    void *d_dq = gpu_put(dq0, nq, dt);
    void *d_dk = c->fused ? d_dq : gpu_put(dk0, nk, dt), *d_dv = c->fused ? d_dq : gpu_put(dv0, nv, dt);
    const size_t es = dtype_size(dt);
    const char *kp = (const char *)d_k + off_k * es, *vp = (const char *)d_v + off_v * es;
    char *dkp = (char *)d_dk + off_k * es, *dvp = (char *)d_dv + off_v * es;
    if (!gpu_ok(cuda_attention_fwd(dt, d_o, d_lse, d_q, kp, vp, &s, dev_stream()), what)) return;
    // the GPU's own o (rounded to dt) feeds both backward passes, as in training
    float *o_gpu = gpu_get(d_o, no, dt);
    float *lse_gpu = gpu_get(d_lse, (size_t)B * H * Nq, DT_F32);
    if (!gpu_ok(cuda_attention_bwd(dt, d_dq, dkp, dvp, d_dout, d_q, kp, vp, d_o, d_lse, &s, dev_stream()), what))
        return;

    float *o = xmalloc(no * sizeof(float)), *lse = xmalloc((size_t)B * H * Nq * sizeof(float));
    attention_fwd(o, lse, q, k + off_k, v + off_v, &s);
    expect_near(what, o_gpu, o, no, dt);
    EXPECT_CLOSE(what, lse_gpu, lse, (size_t)B * H * Nq, 1e-5, 1e-5);
    float *dq = copy_buf(dq0, nq);
    float *dk = c->fused ? dq : copy_buf(dk0, nk), *dv = c->fused ? dq : copy_buf(dv0, nv);
    // reference backward from the GPU's o and the reference lse
    attention_bwd(dq, dk + off_k, dv + off_v, dout, q, k + off_k, v + off_v, o_gpu, lse, &s);
    float *got_dq = gpu_get(d_dq, nq, dt);
    expect_near(what, got_dq, dq, nq, dt);
    if (!c->fused) {
        expect_near(what, gpu_get(d_dk, nk, dt), dk, nk, dt);
        expect_near(what, gpu_get(d_dv, nv, dt), dv, nv, dt);
    }
    // determinism: the backward again from the same starting gradients
    void *d_dq2 = gpu_put(dq0, nq, dt);
    void *d_dk2 = c->fused ? d_dq2 : gpu_put(dk0, nk, dt), *d_dv2 = c->fused ? d_dq2 : gpu_put(dv0, nv, dt);
    if (!gpu_ok(cuda_attention_bwd(dt, d_dq2, (char *)d_dk2 + off_k * es, (char *)d_dv2 + off_v * es, d_dout, d_q,
                                   kp, vp, d_o, d_lse, &s, dev_stream()),
                what))
        return;
    float *again = gpu_get(d_dq2, nq, dt);
    EXPECT(memcmp(again, got_dq, nq * sizeof(float)) == 0, "%s: dq not reproducible", what);
    if (!c->fused) {
        EXPECT(memcmp(gpu_get(d_dk2, nk, dt), gpu_get(d_dk, nk, dt), nk * sizeof(float)) == 0,
               "%s: dk not reproducible", what);
        EXPECT(memcmp(gpu_get(d_dv2, nv, dt), gpu_get(d_dv, nv, dt), nv * sizeof(float)) == 0,
               "%s: dv not reproducible", what);
    }
    free(q), free(dout), free(dq0), free(o), free(lse), free(dq);
    if (!c->fused) free(k), free(v), free(dk0), free(dv0), free(dk), free(dv);
    gpu_free_all();
}

TEST(cuda_attention_fwd_bwd) {
    if (!gpu_ready()) return;
    static const AttnCase cases[] = {
        {2, 2, 13, 13, 8, 0, 0},   // self-attention
        {1, 3, 10, 77, 40, 0, 0},  // cross-attention over 77 text tokens
        {2, 1, 17, 17, 64, 1, 0},  // causal
        {1, 2, 5, 9, 8, 1, 0},     // causal with Nq != Nk (keys j > i masked)
        {2, 2, 9, 9, 8, 0, 1},     // fused qkv views
        {1, 2, 11, 11, 40, 1, 1},  // fused and causal
        {2, 1, 1, 77, 64, 0, 0},   // one query
    };
    uint64_t rng = 31;
    // The plain kernels are the fallback of the flash path (tested in
    // test_flash_attn_cuda.c): force them here so bf16 heads of 40/64 keep
    // exercising them too.
    char *saved = getenv("A2F_ATTN") ? strdup(getenv("A2F_ATTN")) : NULL;
    setenv("A2F_ATTN", "plain", 1);
    for (int di = 0; di < 2; di++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], di ? DT_BF16 : DT_F32, &rng);
    if (saved) setenv("A2F_ATTN", saved, 1), free(saved);
    else unsetenv("A2F_ATTN");
}
