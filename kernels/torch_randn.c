// torch_randn.c: PyTorch's CPU generator (MT19937) and its torch.randn paths,
// reproduced bit for bit (see torch_randn.h for what torch does).
#include "torch_randn.h"

#include <math.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------- MT19937

void torch_mt19937_seed(TorchMT19937 *mt, uint32_t seed) {
    mt->state[0] = seed;
    for (uint32_t j = 1; j < 624; j++)
        mt->state[j] = 1812433253u * (mt->state[j - 1] ^ (mt->state[j - 1] >> 30)) + j;
    mt->next = 624;
}

// Regenerates all 624 words (the standard twist).
static void mt_regenerate(TorchMT19937 *mt) {
    uint32_t *s = mt->state;
    for (int k = 0; k < 624; k++) {
        uint32_t y = (s[k] & 0x80000000u) | (s[(k + 1) % 624] & 0x7FFFFFFFu);
        s[k] = s[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908B0DFu : 0u);
    }
    mt->next = 0;
}

uint32_t torch_mt19937_next(TorchMT19937 *mt) {
    if (mt->next >= 624) mt_regenerate(mt);
    uint32_t y = mt->state[mt->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9D2C5680u;
    y ^= (y << 15) & 0xEFC60000u;
    y ^= y >> 18;
    return y;
}

void torch_generator_seed(TorchGenerator *g, uint64_t seed) {
    torch_mt19937_seed(&g->mt, (uint32_t)seed);  // torch keeps only the low 32 bits
    g->has_next_normal = 0;
    g->next_normal = 0.0;
}

// at::uniform_real_distribution<float>(0, 1): low 24 bits of one 32-bit draw.
static float uniform_float(TorchGenerator *g) {
    return (float)(torch_mt19937_next(&g->mt) & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

// at::uniform_real_distribution<double>(0, 1): low 53 bits of random64().
static double uniform_double(TorchGenerator *g) {
    uint64_t hi = torch_mt19937_next(&g->mt);
    uint64_t lo = torch_mt19937_next(&g->mt);
    return (double)(((hi << 32) | lo) & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// ---------------------------------------------------------------- AVX2 kernel math
// Scalar transcription of the Cephes-derived log/sincos torch's AVX2 kernel
// uses, with the fused multiply-adds that gcc's contraction produces in the
// compiled torch binary written out as fmaf (Horner steps; y*z + e*q1 in the
// log; the DP3 step and the last sin step in sincos). The remaining
// multiply-then-add pairs have exact products, so fusing them or not is the
// same. Verified bitwise against torch output by tests/test_rng.c.

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ln x for x in (0, 1] (log256_ps without the NaN/denormal handling, which
// these inputs never reach).
static float avx2_logf(float x) {
    uint32_t bits = f2u(x);
    float e = (float)((int32_t)(bits >> 23) - 127) + 1.0f;
    float m = u2f((bits & 0x807FFFFFu) | 0x3F000000u);  // mantissa in [0.5, 1)
    float xm = m - 1.0f;
    if (m < 0.707106781186547524f) {  // x = 2m - 1, e -= 1 (both exact)
        e = e - 1.0f;
        xm = xm + m;
    }
    float z = xm * xm;
    float y = fmaf(7.0376836292e-2f, xm, -1.1514610310e-1f);
    y = fmaf(y, xm, 1.1676998740e-1f);
    y = fmaf(y, xm, -1.2420140846e-1f);
    y = fmaf(y, xm, 1.4249322787e-1f);
    y = fmaf(y, xm, -1.6668057665e-1f);
    y = fmaf(y, xm, 2.0000714765e-1f);
    y = fmaf(y, xm, -2.4999993993e-1f);
    y = fmaf(y, xm, 3.3333331174e-1f);
    y = y * xm;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(z, -0.5f, y);  // z * 0.5 is exact
    float r = xm + y;
    return fmaf(e, 0.693359375f, r);  // e * 0.693359375 is exact
}

// sin and cos of x >= 0, x < 8 (sincos256_ps).
static void avx2_sincosf(float x, float *s_out, float *c_out) {
    uint32_t sign_sin = f2u(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * 1.27323954473516f;  // 4 / pi
    int32_t j = (int32_t)y;           // truncation, like cvttps
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    int poly_mask = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);  // exact product
    x = fmaf(y, -2.4187564849853515625e-4f, x);  // exact product
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));  // z * 0.5 is exact
    yc = yc + 1.0f;
    float ys = fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    // Blend exactly as the vector code does (it adds +0.0 to the picked value).
    float ysin2 = poly_mask ? ys : 0.0f;
    float ysin1 = poly_mask ? 0.0f : yc;
    float y2 = ys - ysin2;
    float y1 = yc - ysin1;
    *s_out = u2f(f2u(ysin1 + ysin2) ^ sign_sin);
    *c_out = u2f(f2u(y1 + y2) ^ sign_cos);
}

// One chunk of 16 (NormalFill16, mean 0, std 1). d [16]
static void normal_fill_16(float *d, TorchCpuKernel kernel) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float s, c, radius;
        if (kernel == TORCH_CPU_AVX2) {
            radius = sqrtf(-2.0f * avx2_logf(u1));
            avx2_sincosf(6.28318530717958647692f * u2, &s, &c);
        } else {
            radius = sqrtf(-2.0f * logf(u1));
            float theta = (float)(6.28318530717958647692 * (double)u2);  // double 2 pi * u2, then float
            s = sinf(theta);
            c = cosf(theta);
        }
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

void torch_generator_randn(TorchGenerator *g, float *x, size_t n, TorchCpuKernel kernel) {
    CHECK(kernel == TORCH_CPU_AVX2 || kernel == TORCH_CPU_DEFAULT);
    if (n >= 16) {
        for (size_t i = 0; i < n; i++) x[i] = uniform_float(g);
        for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(x + i, kernel);
        if (n % 16 != 0) {
            float *tail = x + n - 16;
            for (int i = 0; i < 16; i++) tail[i] = uniform_float(g);
            normal_fill_16(tail, kernel);
        }
        return;
    }
    // numel < 16: at::normal_distribution<double>, one value per element.
    for (size_t i = 0; i < n; i++) {
        double v;
        if (g->has_next_normal) {
            v = g->next_normal;
            g->has_next_normal = 0;
        } else {
            double u1 = uniform_double(g);
            double u2 = uniform_double(g);
            double r = sqrt(-2.0 * log1p(-u2));
            double theta = 2.0 * 3.14159265358979323846 * u1;
            g->next_normal = r * sin(theta);
            g->has_next_normal = 1;
            v = r * cos(theta);
        }
        x[i] = (float)v;
    }
}

void torch_randn(float *x, size_t n, uint64_t seed) {
    TorchGenerator g;
    torch_generator_seed(&g, seed);
    torch_generator_randn(&g, x, n, TORCH_CPU_AVX2);
}
