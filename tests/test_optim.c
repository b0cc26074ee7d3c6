// test_optim.c: AdamW (kernels/cpu/optim.h) against torch.optim.AdamW
// (fixture tests/fixtures/optim/adamw.safetensors, tools/ref/make_adamw_fixture.py),
// the global gradient norm against a direct double loop, and the bf16
// stochastic rounding helper.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/cpu/optim.h"
#include "../kernels/tensor.h"
#include "fixture.h"
#include "test.h"

#define FX_N 259
#define FX_STEPS 5

// Runs one fixture case through adamw_step and compares after every step.
// Tolerance: adamw_elem performs torch's operations in torch's order with
// the same float-rounded scalars, so most elements are bit-identical; the
// remaining differences come from how ATen evaluates some of them (its
// scalar tail vs vector body for lerp: fma or not; `sqrt(v)/c` fused or not):
// a few float roundings per step. m and v are convex combinations of the
// grads, so such a difference is a few ulps of |m|, |v| (rtol 8 * 2^-23
// ~ 1e-6) -- atol 1e-30 for the exact zeros. p moves by at most ~lr per step
// (|mhat / (sqrt(vhat)+eps)| <~ 1 for Adam): an ulp-level difference in the
// update is ~1e-3 * 1e-6 absolute, but it can flip the rounding of p itself,
// so allow 2 ulps of p per step: rtol 2 * 5 * 2^-24 ~ 6e-7, atol 1e-9.
static void run_case(const char *tag, double lr) {
    Fixture *fx = fx_open("optim/adamw.safetensors");
    if (!fx) return;
    float *p = fx_f32(fx, FX_N, "%s.p0", tag);
    float *scale = fx_f32(fx, 1, "%s.scale", tag);
    if (!p || !scale) {
        fx_close(fx);
        return;
    }
    float *m = calloc(FX_N, sizeof(float)), *v = calloc(FX_N, sizeof(float)), *p0 = malloc(FX_N * sizeof(float));
    memcpy(p0, p, FX_N * sizeof(float));
    AdamWHyper h = {.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
    size_t same = 0;
    for (int s = 1; s <= FX_STEPS; s++) {
        float *g = fx_f32(fx, FX_N, "%s.g%d", tag, s);
        float *wp = fx_f32(fx, FX_N, "%s.p%d", tag, s);
        float *wm = fx_f32(fx, FX_N, "%s.m%d", tag, s);
        float *wv = fx_f32(fx, FX_N, "%s.v%d", tag, s);
        if (!g || !wp || !wm || !wv) break;
        adamw_step(p, m, v, g, FX_N, &h, s, scale[0]);
        char what[64];
        snprintf(what, sizeof what, "%s step %d m", tag, s);
        EXPECT_CLOSE(what, m, wm, FX_N, 1e-30, 8.0 / 8388608);
        snprintf(what, sizeof what, "%s step %d v", tag, s);
        EXPECT_CLOSE(what, v, wv, FX_N, 1e-30, 8.0 / 8388608);
        snprintf(what, sizeof what, "%s step %d p", tag, s);
        EXPECT_CLOSE(what, p, wp, FX_N, 1e-9, 2.0 * s / 16777216);
        for (int i = 0; i < FX_N; i++) same += memcmp(&p[i], &wp[i], 4) == 0;
    }
    // Most of p should be bit-identical to torch (see the tolerance note).
    if (getenv("OPTIM_VERBOSE")) printf("    %s: %zu of %d p values bit-identical to torch\n", tag, same, FX_N * FX_STEPS);
    EXPECT(same >= FX_N * FX_STEPS * 9 / 10, "%s: only %zu of %d p values bit-identical to torch", tag, same,
           FX_N * FX_STEPS);
    // The update must not be rounded away: at lr 1e-6 every non-frozen weight
    // moves by ~1e-6, i.e. several fp32 ulps of |p| ~ 1, after 5 steps.
    int moved = 0;
    for (int i = 0; i < FX_N; i++) moved += p[i] != p0[i];
    EXPECT(moved > FX_N * 9 / 10, "%s: only %d of %d weights changed", tag, moved, FX_N);
    free(m);
    free(v);
    free(p0);
    fx_close(fx);
}

TEST(adamw_matches_torch_lr1e3) { run_case("lr1e3", 1e-3); }
TEST(adamw_matches_torch_lr1e6) { run_case("lr1e6", 1e-6); }
TEST(adamw_matches_torch_grad_scale) { run_case("scaled", 1e-3); }

// Per-step scalars are torch's: Python doubles rounded once to float.
TEST(adamw_coef_values) {
    AdamWHyper h = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
    AdamWCoef c = adamw_coef(&h, 1);
    EXPECT(c.decay == (float)(1.0 - 1e-5), "decay %.9g", c.decay);
    EXPECT(c.w1 == (float)(1.0 - 0.9), "w1 %.9g", c.w1);
    EXPECT(c.bc2_sqrt == (float)sqrt(1.0 - 0.999), "bc2_sqrt %.9g", c.bc2_sqrt);
    EXPECT(c.neg_step == (float)(-1e-3 / (1.0 - 0.9)), "neg_step %.9g", c.neg_step);
    c = adamw_coef(&h, 1000);
    EXPECT(c.neg_step == (float)-1e-3, "bias correction at step 1000: %.9g", c.neg_step);
}

TEST(grad_norm_matches_double_loop) {
    size_t sizes[] = {0, 1, 7, 65536, 65537, 300001};
    uint64_t st = 99;
    for (int k = 0; k < 6; k++) {
        size_t n = sizes[k];
        float *g = malloc((n + 1) * sizeof(float));
        test_fill_normal(g, n, 3.0f, &st);
        double want = 0.0;
        for (size_t i = 0; i < n; i++) want += (double)g[i] * (double)g[i];
        want = sqrt(want);
        double got = grad_norm_l2(g, n);
        // Both sum exact double squares in double: only the summation order
        // differs (chunked), relative error <= n * 2^-53 ~ 3e-11 here.
        EXPECT(fabs(got - want) <= 1e-10 * want + 1e-300, "n=%zu: %.17g vs %.17g", n, got, want);
        EXPECT(grad_norm_l2(g, n) == got, "n=%zu: not deterministic", n);
        free(g);
    }
    float big[3] = {3e30f, 4e30f, 0.0f};  // squares overflow float, not double
    double nb = grad_norm_l2(big, 3);
    EXPECT(fabs(nb - 5e30) < 1e-6 * 5e30, "norm of (3e30, 4e30) = %g", nb);
}

TEST(clip_grad_coef_like_torch) {
    EXPECT(clip_grad_coef(0.5f, 1.0f) == 1.0f, "below max_norm: no clipping");
    EXPECT(clip_grad_coef(4.0f, 1.0f) == 1.0f / (4.0f + 1e-6f), "coef %.9g", clip_grad_coef(4.0f, 1.0f));
}

// Stochastic rounding picks one of the two neighbours, by the top 16 bits.
TEST(bf16_stochastic_round_rule) {
    float x = 1.0f + 0.25f / 128;  // 1 + 1/4 ulp of bf16 at 1 (ulp 2^-7)
    EXPECT(bf16_stochastic_round(x, 0) == 0x3f80, "bits 0 -> round down");
    EXPECT(bf16_stochastic_round(x, 0xbfff0000u) == 0x3f80, "r < 3/4 -> down");
    EXPECT(bf16_stochastic_round(x, 0xc0000000u) == 0x3f81, "r >= 3/4 -> up");
    EXPECT(bf16_stochastic_round(-x, 0xc0000000u) == 0xbf81, "negative: away from zero");
    EXPECT(bf16_stochastic_round(2.0f, 0xffffffffu) == 0x4000, "representable values are exact");
    EXPECT(bf16_stochastic_round(NAN, 0) == 0x7fff, "NaN");
    EXPECT(bf16_stochastic_round(INFINITY, 0xffffffffu) == 0x7f80, "inf");
    EXPECT(bf16_stochastic_round(-INFINITY, 0xffffffffu) == 0xff80, "-inf");
    // Unbiased: over many elements of the Philox stream the rate of rounding up
    // is 1/4 (binomial, sd sqrt(p(1-p)/N) = 0.0017 at N = 65536; bound 5 sd).
    size_t n = 65536, up = 0;
    float *p = malloc(n * sizeof(float));
    uint16_t *w = malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) p[i] = x;
    bf16_stochastic_round_buf(w, p, n, 7, 3);
    for (size_t i = 0; i < n; i++) {
        EXPECT(w[i] == 0x3f80 || w[i] == 0x3f81, "element %zu: %04x is not a neighbour", i, w[i]);
        up += w[i] == 0x3f81;
    }
    double rate = (double)up / n;
    EXPECT(fabs(rate - 0.25) < 5 * 0.0017, "round-up rate %.4f, want 0.25", rate);
    free(p);
    free(w);
}
