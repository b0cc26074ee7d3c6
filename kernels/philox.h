// philox.h: Philox4x32-10 counter-based RNG, one source for CPU and CUDA.
//
// Every random number is a pure function of (seed, offset, index), so a CPU
// run and a GPU run with the same seed draw the same numbers, whatever the
// thread layout. Uniforms are exact integer arithmetic, hence bit-identical.
//
// Stream layout: element i uses 32-bit word (i % 4) of the Philox block with
// counter c = offset + i / 4 (64-bit, in c0,c1; c2 = c3 = 0) and key = seed.
#pragma once
#include <stdint.h>

#ifdef __CUDACC__
#define A2F_HD __host__ __device__ __forceinline__
#else
#define A2F_HD static inline
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

// Uniform in [0, 1) with 24 random bits: exact on every backend.
A2F_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
    return (float)(philox_u32(seed, offset, i) >> 8) * (1.0f / 16777216.0f);
}
