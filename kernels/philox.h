// philox.h: Philox4x32-10 counter-based RNG, one source for CPU and CUDA.
//
// Every random number is a pure function of (seed, offset, index), so a CPU
// run and a GPU run with the same seed draw the same numbers, whatever the
// thread layout. Uniforms are exact integer arithmetic, hence bit-identical.
//
// Stream layout: element i uses 32-bit word (i % 4) of the Philox block with
// counter c = offset + i / 4 (64-bit, in c0,c1; c2 = c3 = 0) and key = seed.
//
// Normals (philox_normal) use the same blocks: words (0,1) of block b give
// elements 4b and 4b+1 (Box-Muller cos and sin), words (2,3) give 4b+2, 4b+3.
// They are bit-identical on gcc (any -O, -ffp-contract) and nvcc (even with
// --use_fast_math) because they use no libm/CUDA math functions: log and
// sin/cos are polynomials written below, every multiply-add is an explicit
// fmaf (correctly rounded on both), every other operation is a single IEEE
// float operation (on the device the __f*_rn intrinsics, which fast-math and
// --fmad cannot change), and no product ever feeds an addition outside an
// fmaf, so there is nothing a compiler may contract. Intermediates never
// become subnormal, so flush-to-zero changes nothing either; a zero normal is
// always +0. (Checked: gcc -O0 -ffp-contract=off, gcc -O2 -march=native,
// gcc -O3 -ffast-math, gcc -mno-fma and clang -O2 agree on 2^24 normals.)
#pragma once
#include <stdint.h>
#include <string.h>
#include <math.h>

#ifdef __CUDACC__
#define A2F_HD __host__ __device__ __forceinline__
#else
#define A2F_HD static inline
#endif

// ---------------------------------------------------------------- float helpers
// Exact IEEE float ops that no compiler flag may reorder or contract.
#ifdef __CUDA_ARCH__
#define PHILOX_MUL(a, b) __fmul_rn((a), (b))
#define PHILOX_ADD(a, b) __fadd_rn((a), (b))
#define PHILOX_SUB(a, b) __fsub_rn((a), (b))
#define PHILOX_DIV(a, b) __fdiv_rn((a), (b))
#define PHILOX_SQRT(a) __fsqrt_rn(a)
#else
#define PHILOX_MUL(a, b) ((a) * (b))
#define PHILOX_ADD(a, b) ((a) + (b))
#define PHILOX_SUB(a, b) ((a) - (b))
#define PHILOX_DIV(a, b) ((a) / (b))
#define PHILOX_SQRT(a) sqrtf(a)  // IEEE correctly rounded
#endif

typedef struct {
    uint32_t v[4];
} Philox4;

A2F_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

// One Philox4x32 block with 10 rounds (Salmon et al., SC'11; Random123 constants).
A2F_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = philox_mulhilo(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, ctr.v[2], &hi1);
        Philox4 n;
        n.v[0] = hi1 ^ ctr.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ ctr.v[3] ^ k1;
        n.v[3] = lo0;
        ctr = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

// Block number `block` of the stream (seed, offset).
A2F_HD Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
    uint64_t c = offset + block;
    Philox4 ctr;
    ctr.v[0] = (uint32_t)c;
    ctr.v[1] = (uint32_t)(c >> 32);
    ctr.v[2] = 0;
    ctr.v[3] = 0;
    return philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// Raw 32 random bits for element i.
A2F_HD uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t i) {
    Philox4 b = philox_block(seed, offset, i >> 2);
    return b.v[i & 3];
}

// One raw word -> uniform in [0, 1) with its top 24 bits: exact on every backend.
A2F_HD float philox_word_to_uniform(uint32_t w) {
    return PHILOX_MUL((float)(w >> 8), 1.0f / 16777216.0f);
}

// Uniform in [0, 1) with 24 random bits: exact on every backend.
A2F_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
    return philox_word_to_uniform(philox_u32(seed, offset, i));
}

A2F_HD uint32_t philox_f2u(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}
A2F_HD float philox_u2f(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

// Natural log for positive normal floats (no NaN/inf/zero handling: the
// stream only passes values in [2^-24, 1]). x = 2^e m with m in
// [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716,
// series 2s + s^3 (2/3 + s^2 (2/5 + s^2 (2/7 + s^2 (2/9 + s^2 2/11)))),
// truncation < 2e-11 relative. ln 2 is split so e*LN2_HI is exact (|e|<=126
// has 7 bits, LN2_HI 9 bits). Max error a few float ulps (tests bound it).
A2F_HD float philox_logf(float x) {
    uint32_t bits = philox_f2u(x);
    int e = (int)(bits >> 23) - 127;
    float m = philox_u2f((bits & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
    if (m > 1.41421356f) {
        m = PHILOX_MUL(m, 0.5f);  // exact
        e += 1;
    }
    float s = PHILOX_DIV(PHILOX_SUB(m, 1.0f), PHILOX_ADD(m, 1.0f));  // m - 1 exact (Sterbenz)
    float s2 = PHILOX_MUL(s, s);
    float p = fmaf(s2, 0.181818187f, 0.222222224f);  // 2/11, 2/9
    p = fmaf(p, s2, 0.285714298f);                    // 2/7
    p = fmaf(p, s2, 0.400000006f);                    // 2/5
    p = fmaf(p, s2, 0.666666687f);                    // 2/3
    float s3 = PHILOX_MUL(s2, s);
    float lnm = fmaf(s3, p, PHILOX_MUL(s, 2.0f));  // 2s exact
    float fe = (float)e;
    const float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;  // LN2_HI + LN2_LO = ln 2 (+8e-12)
    return fmaf(fe, LN2_HI, fmaf(fe, LN2_LO, lnm));
}

// sin(2 pi k / 2^24) and cos(2 pi k / 2^24) for k < 2^24. The reduction is
// exact integer arithmetic: k = q 2^22 + j with |j| <= 2^21, so the angle is
// q quarter turns plus 2 pi t, t = j / 2^24 in [-1/8, 1/8]. On that range
// sin(2 pi t) = t S(t^2) (Taylor to t^9, truncation < 4e-9) and
// cos(2 pi t) = C(t^2) (Taylor to t^10, truncation < 2e-10).
A2F_HD void philox_sincos2pi_u24(uint32_t k, float *s_out, float *c_out) {
    uint32_t q = (k + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
    int32_t j = (int32_t)k - (int32_t)(q << 22);
    float t = PHILOX_MUL((float)j, 5.9604644775390625e-08f);  // j / 2^24, exact
    float t2 = PHILOX_MUL(t, t);
    float ps = fmaf(t2, 42.0586929f, -76.7058563f);
    ps = fmaf(ps, t2, 81.6052475f);
    ps = fmaf(ps, t2, -41.3417015f);
    ps = fmaf(ps, t2, 6.28318548f);
    float sn = PHILOX_MUL(t, ps);
    float pc = fmaf(t2, -26.4262562f, 60.2446404f);
    pc = fmaf(pc, t2, -85.4568176f);
    pc = fmaf(pc, t2, 64.9393921f);
    pc = fmaf(pc, t2, -19.7392082f);
    float cs = fmaf(pc, t2, 1.0f);
    switch (q & 3u) {
    case 0: *s_out = sn; *c_out = cs; break;
    case 1: *s_out = cs; *c_out = -sn; break;
    case 2: *s_out = -sn; *c_out = -cs; break;
    default: *s_out = -cs; *c_out = sn; break;
    }
}

// Box-Muller on two raw words: u1 = ((a >> 8) + 1) / 2^24 in (0, 1] (never 0,
// so the log is finite), u2 = (b >> 8) / 2^24 in [0, 1).
// z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), r = sqrt(-2 ln u1).
A2F_HD void philox_box_muller(uint32_t a, uint32_t b, float *z0, float *z1) {
    float u1 = PHILOX_MUL((float)((a >> 8) + 1u), 5.9604644775390625e-08f);  // exact
    float r = PHILOX_SQRT(PHILOX_MUL(-2.0f, philox_logf(u1)));
    float sn, cs;
    philox_sincos2pi_u24(b >> 8, &sn, &cs);
    // fmaf(., ., +0) is the rounded product except that -0 becomes +0, so
    // a fill's fmaf(z, 1, 0) returns z unchanged for every z.
    *z0 = fmaf(r, cs, 0.0f);
    *z1 = fmaf(r, sn, 0.0f);
}

// The four standard normals of block `block` (elements 4 block .. 4 block + 3).
A2F_HD void philox_normal4(uint64_t seed, uint64_t offset, uint64_t block, float z[4]) {
    Philox4 b = philox_block(seed, offset, block);
    philox_box_muller(b.v[0], b.v[1], &z[0], &z[1]);
    philox_box_muller(b.v[2], b.v[3], &z[2], &z[3]);
}

// Standard normal for element i of the stream (seed, offset).
A2F_HD float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
    Philox4 b = philox_block(seed, offset, i >> 2);
    float z0, z1;
    if ((i & 2) == 0)
        philox_box_muller(b.v[0], b.v[1], &z0, &z1);
    else
        philox_box_muller(b.v[2], b.v[3], &z0, &z1);
    return (i & 1) ? z1 : z0;
}
