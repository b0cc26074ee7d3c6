// test_adamw_cuda.c: the fused CUDA AdamW step and gradient norm
// (kernels/cuda/adamw.h) against the CPU reference (kernels/cpu/optim.h).
//
// Master weights, moments and the stochastic-rounding choices must be
// BIT-IDENTICAL to the CPU: the element update is the same source
// (adamw_elem), written with single IEEE operations (__fmul_rn, __fadd_rn,
// __fdiv_rn, __fsqrt_rn and fmaf on the device: correctly rounded, never
// contracted or approximated, even under --use_fast_math; no subnormal
// flushing without fast-math), and the per-step scalars are computed once on
// the host by the same adamw_coef. The random bits are philox_u32 on both
// sides.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/optim.h"
#include "../../kernels/cuda/adamw.h"
#include "../test.h"
#include "gpu_test.h"

static const AdamWHyper HYPER = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};

static int bits_equal(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4) != 0) {
            test_fail(__FILE__, __LINE__, "%s[%zu]: %.9g (gpu) vs %.9g (cpu), n=%zu", what, i, got[i], want[i], n);
            return 0;
        }
    return 1;
}

// `skew` elements of offset make the buffers misaligned for the float4 path.
static void check_adamw(size_t n, DType dt, int skew, float grad_scale, int use_dscale) {
    uint64_t st = 1000 + n * 7 + skew;
    size_t tot = n + skew;
    float *p = malloc(tot * sizeof(float)), *m = malloc(tot * sizeof(float)), *v = malloc(tot * sizeof(float));
    float *g = malloc(tot * sizeof(float));
    test_fill_normal(p, tot, 1.0f, &st);
    test_fill_normal(m, tot, 0.01f, &st);
    test_fill_normal(v, tot, 1e-4f, &st);
    for (size_t i = 0; i < tot; i++) v[i] = v[i] * v[i];  // second moment >= 0
    test_fill_normal(g, tot, 0.1f, &st);
    if (tot > 5) g[3] = 0.0f;
    float *dp = gpu_put(p, tot, DT_F32), *dm = gpu_put(m, tot, DT_F32), *dv = gpu_put(v, tot, DT_F32);
    float *dg = gpu_put(g, tot, DT_F32);
    float dscale_h = 0.5f;
    float *dscale = use_dscale ? gpu_put(&dscale_h, 1, DT_F32) : NULL;
    void *dwork = gpu_fill(tot, dt, 0.0f);
    size_t wsz = dtype_size(dt);
    float total_scale = use_dscale ? grad_scale * dscale_h : grad_scale;
    uint64_t seed = 77, offset = 5;
    for (int step = 1; step <= 3; step++) {
        adamw_step(p + skew, m + skew, v + skew, g + skew, n, &HYPER, step, total_scale);
        int rc = cuda_adamw_step(dt, (char *)dwork + skew * wsz, dp + skew, dm + skew, dv + skew, dg + skew, n, HYPER,
                                 step, grad_scale, dscale, seed, offset + step, dev_stream());
        if (!gpu_ok(rc, "cuda_adamw_step")) break;
    }
    float *gp = gpu_get(dp, tot, DT_F32), *gm = gpu_get(dm, tot, DT_F32), *gv = gpu_get(dv, tot, DT_F32);
    char what[96];
    snprintf(what, sizeof what, "master (n=%zu %s skew=%d)", n, dtype_name(dt), skew);
    bits_equal(what, gp, p, tot);
    snprintf(what, sizeof what, "m (n=%zu %s skew=%d)", n, dtype_name(dt), skew);
    bits_equal(what, gm, m, tot);
    snprintf(what, sizeof what, "v (n=%zu %s skew=%d)", n, dtype_name(dt), skew);
    bits_equal(what, gv, v, tot);
    // The working copy of the last step.
    if (dt == DT_F32) {
        float *gw = gpu_get(dwork, tot, DT_F32);
        snprintf(what, sizeof what, "f32 work (n=%zu skew=%d)", n, skew);
        bits_equal(what, gw + skew, p + skew, n);
    } else {
        uint16_t *gw = malloc(tot * sizeof(uint16_t)), *want = malloc(n * sizeof(uint16_t));
        if (dev_download(gw, dwork, tot * sizeof(uint16_t)) == 0) {
            bf16_stochastic_round_buf(want, p + skew, n, seed, offset + 3);
            for (size_t i = 0; i < n; i++) {
                float x = p[skew + i], w = bf16_to_f32(gw[skew + i]);
                if (gw[skew + i] != want[i]) {
                    test_fail(__FILE__, __LINE__, "bf16 work[%zu] = %04x, CPU choice %04x (n=%zu skew=%d)", i,
                              gw[skew + i], want[i], n, skew);
                    break;
                }
                // one of the two bf16 neighbours: |w - x| < one bf16 ulp of x, same sign
                float ulp = ldexpf(1.0f, ilogbf(x) - 7);
                if (!(fabsf(w - x) < ulp) || (x != 0 && (w < 0) != (x < 0))) {
                    test_fail(__FILE__, __LINE__, "bf16 work[%zu] = %g is not a neighbour of %.9g", i, w, x);
                    break;
                }
            }
        } else {
            test_fail(__FILE__, __LINE__, "download: %s", a2f_last_error());
        }
        free(gw);
        free(want);
    }
    free(p);
    free(m);
    free(v);
    free(g);
    gpu_free_all();
}

TEST(cuda_adamw_matches_cpu_bitwise) {
    if (!gpu_ready()) return;
    size_t sizes[] = {1, 3, 4, 7, 13, 1000, 4099};
    for (int k = 0; k < 7; k++) {
        check_adamw(sizes[k], DT_BF16, 0, 1.0f, 0);
        check_adamw(sizes[k], DT_F32, 0, 1.0f, 0);
    }
    check_adamw(1001, DT_BF16, 1, 1.0f, 0);  // misaligned: scalar path throughout
    check_adamw(1001, DT_F32, 3, 1.0f, 0);
    check_adamw(515, DT_BF16, 0, 0.25f, 1);  // host scale x device scale (clip coefficient)
    check_adamw(515, DT_F32, 2, 3.0f, 0);
}

// No working copy: master/m/v only.
TEST(cuda_adamw_without_work) {
    if (!gpu_ready()) return;
    size_t n = 517;
    uint64_t st = 5;
    float *p = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4), *g = malloc(n * 4);
    test_fill_normal(p, n, 1.0f, &st);
    test_fill_normal(g, n, 1.0f, &st);
    float *dp = gpu_put(p, n, DT_F32), *dm = gpu_put(m, n, DT_F32), *dv = gpu_put(v, n, DT_F32);
    float *dg = gpu_put(g, n, DT_F32);
    AdamWHyper h = HYPER;
    h.lr = 1e-6;  // Arc2Face's learning rate: the update is a few fp32 ulps
    adamw_step(p, m, v, g, n, &h, 1, 1.0f);
    if (gpu_ok(cuda_adamw_step(DT_BF16, NULL, dp, dm, dv, dg, n, h, 1, 1.0f, NULL, 0, 0, dev_stream()), "adamw")) {
        bits_equal("master (no work)", gpu_get(dp, n, DT_F32), p, n);
        bits_equal("v (no work)", gpu_get(dv, n, DT_F32), v, n);
    }
    EXPECT(cuda_adamw_step(DT_BF16, NULL, dp, dm, dv, dg, n, h, 0, 1.0f, NULL, 0, 0, dev_stream()) != 0,
           "step 0 must be rejected");
    free(p);
    free(m);
    free(v);
    free(g);
    gpu_free_all();
}

// Stochastic rounding is unbiased. lr = wd = 0 leaves the master weights
// unchanged (p*1 + (-0*m)/denom = p exactly), so the rounded values are known.
//  (a) x = b + f ulp with f = b/4 in [0.25, 0.5): the round-up count is a sum
//      of Bernoulli(f_i), sd <= sqrt(1/(4N)) = 0.0028 in the rate at
//      N = 32768; bound 5 sd around the exact mean of f (round to nearest
//      would give rate 0).
//  (b) x with random positions between neighbours: z = (w - x) / ulp has mean
//      0 and variance f(1-f) <= 1/4, so the mean over N = 32768 has sd <=
//      1/(2 sqrt N) = 0.0028; bound 5 sd = 0.014.
TEST(cuda_adamw_stochastic_rounding_unbiased) {
    if (!gpu_ready()) return;
    size_t n = 32768;
    float *p = malloc(n * 4), *zero = calloc(n, 4);
    uint64_t st = 11;
    test_fill_uniform(p, n, 1.0f, 2.0f, &st);
    AdamWHyper h = {.lr = 0.0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    for (int pass = 0; pass < 2; pass++) {
        // pass 0: b in [1, 2) a bf16 value (ulp 2^-7), x = b (1 + 2^-9) lies b/4
        // of an ulp above b: round-up probability b/4 in [0.25, 0.5), never
        // taken by round-to-nearest. pass 1: uniform in [-3, 3).
        if (pass == 0)
            for (size_t i = 0; i < n; i++) p[i] = bf16_to_f32(f32_to_bf16(p[i])) * (1.0f + 0.25f / 128);
        else
            test_fill_uniform(p, n, -3.0f, 3.0f, &st);
        float *dp = gpu_put(p, n, DT_F32), *dm = gpu_put(zero, n, DT_F32), *dv = gpu_put(zero, n, DT_F32);
        float *dg = gpu_put(zero, n, DT_F32);
        uint16_t *dw = gpu_fill(n, DT_BF16, 0.0f);
        if (!gpu_ok(cuda_adamw_step(DT_BF16, dw, dp, dm, dv, dg, n, h, 1, 1.0f, NULL, 123, 0, dev_stream()), "sr"))
            break;
        float *gp = gpu_get(dp, n, DT_F32), *w = gpu_get(dw, n, DT_BF16);
        bits_equal("master with lr 0", gp, p, n);
        double zsum = 0.0, want_rate = 0.0;
        for (size_t i = 0; i < n; i++) {
            float x = p[i];
            uint32_t u;
            memcpy(&u, &x, 4);
            uint32_t lo_bits = u & 0xffff0000u;
            float lo, hi;
            uint32_t hb = lo_bits + 0x10000u;
            memcpy(&lo, &lo_bits, 4);
            memcpy(&hi, &hb, 4);
            double f = (fabs((double)x) - fabs((double)lo)) / (fabs((double)hi) - fabs((double)lo));
            want_rate += f;
            EXPECT(w[i] == lo || w[i] == hi, "element %zu: %g is not %g or %g", i, w[i], lo, hi);
            if (w[i] != lo && w[i] != hi) break;
            zsum += (fabs((double)w[i]) - fabs((double)x)) / (fabs((double)hi) - fabs((double)lo));
        }
        double zmean = zsum / n;
        want_rate /= n;
        if (pass == 0) {  // mean z = rate(up) - mean f
            double up = zmean + want_rate;
            EXPECT(fabs(up - want_rate) < 5 * sqrt(0.25 / n), "round-up rate %.4f, expected %.4f", up, want_rate);
            EXPECT(want_rate > 0.1, "test setup: positions should be far from 0 (%.3f)", want_rate);
        } else {
            EXPECT(fabs(zmean) < 5 * 0.5 / sqrt((double)n), "mean rounding error %.5f ulp (bias)", zmean);
        }
        gpu_free_all();
    }
    free(p);
    free(zero);
}

TEST(cuda_grad_norm_matches_cpu) {
    if (!gpu_ready()) return;
    size_t sizes[] = {0, 1, 5, 1000, 4099, 300001};
    for (int k = 0; k < 6; k++) {
        size_t n = sizes[k];
        uint64_t st = 31 + n;
        float *g = malloc((n + 1) * sizeof(float));
        test_fill_normal(g, n, 0.01f, &st);
        if (n > 10) g[7] = 40.0f;  // one outlier dominates, as a clipping-relevant spike would
        float *dg = gpu_put(g, n + 1, DT_F32);
        float *dout = gpu_fill(2, DT_F32, -1.0f);
        if (!gpu_ok(cuda_grad_norm(dout, dout + 1, dg, n, 1.0f, dev_stream()), "grad_norm")) break;
        float *got = gpu_get(dout, 2, DT_F32);
        double want = grad_norm_l2(g, n);
        // Each group of 4 squares is formed in float (x*x then 3 fmaf: 4
        // roundings of <= 2^-24 relative, all terms non-negative), everything
        // else in double: sum of squares within 4 * 2^-24 relative, the norm
        // within half that, plus the final rounding to float: 3 * 2^-24 =
        // 1.8e-7; bound 3e-7.
        EXPECT(fabs(got[0] - want) <= 3e-7 * want, "n=%zu: norm %.9g vs %.9g", n, got[0], want);
        EXPECT(got[1] == clip_grad_coef(got[0], 1.0f), "n=%zu: clip coef %.9g vs %.9g", n, got[1],
               clip_grad_coef(got[0], 1.0f));
        // Deterministic: run again (fresh output), compare bits.
        float *dout2 = gpu_fill(2, DT_F32, -1.0f);
        if (gpu_ok(cuda_grad_norm(dout2, dout2 + 1, dg, n, 1.0f, dev_stream()), "grad_norm 2")) {
            float *got2 = gpu_get(dout2, 2, DT_F32);
            EXPECT(memcmp(got, got2, 8) == 0, "n=%zu: second run differs", n);
        }
        // Misaligned input (scalar path) gives the same value within the bound.
        if (n > 2) {
            if (gpu_ok(cuda_grad_norm(dout, NULL, dg + 1, n - 1, 1.0f, dev_stream()), "grad_norm skew")) {
                double want1 = grad_norm_l2(g + 1, n - 1);
                float *got1 = gpu_get(dout, 1, DT_F32);
                EXPECT(fabs(got1[0] - want1) <= 3e-7 * want1, "n=%zu skew 1: %.9g vs %.9g", n, got1[0], want1);
            }
        }
        free(g);
        gpu_free_all();
    }
}
