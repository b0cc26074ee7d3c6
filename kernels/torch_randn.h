// torch_randn.h: bit-exact re-implementation of PyTorch's CPU generator for
// torch.randn, so a seed reproduces diffusers' initial latents:
//   g = torch.Generator("cpu").manual_seed(seed); torch.randn(shape, generator=g)
// (float32, contiguous; any shape is the same flat stream of numel values).
//
// What torch does (ATen, checked against torch 2.15 source and output):
//  - engine: MT19937 (Matsumoto-Nishimura init_genrand) seeded with the LOW 32
//    BITS of the 64-bit seed; manual_seed also clears the cached normal.
//  - numel >= 16 (normal_fill): n float uniforms u = (w & 0xFFFFFF) / 2^24 from
//    successive 32-bit outputs w; then Box-Muller on each chunk of 16 in place:
//    for j < 8: u1 = 1 - d[j], u2 = d[j+8], r = sqrt(-2 ln u1),
//    d[j] = r cos(2 pi u2), d[j+8] = r sin(2 pi u2). If n % 16 != 0, the last
//    16 slots d[n-16 .. n-1] are refilled with 16 fresh uniforms and
//    transformed again (overwriting part of the last full chunk).
//    The float log/sin/cos depend on the CPU kernel torch dispatches to:
//      AVX2 and AVX512 (any x86 with AVX2): Cephes-style polynomial log/sincos
//        from avx_mathfun.h, compiled with FMA contraction;
//      DEFAULT (no AVX2, or ATEN_CPU_CAPABILITY=default): libm logf/cosf/sinf.
//  - numel < 16: scalar at::normal_distribution<double>: per pair,
//    u1, u2 = 53-bit doubles from random64() = (w0 << 32 | w1) & (2^53 - 1),
//    r = sqrt(-2 log1p(-u2)), theta = 2 pi u1; returns r cos(theta) and caches
//    r sin(theta) for the next element (libm double log1p/sin/cos/sqrt).
#pragma once
#include <stddef.h>
#include <stdint.h>

// at::mt19937 engine state.
typedef struct {
    uint32_t state[624];
    int next;  // index of the next state word to temper; 624 = regenerate
} TorchMT19937;

// torch CPUGeneratorImpl: the engine plus the cached second Box-Muller value of
// the scalar (numel < 16) path, which carries over between randn calls.
typedef struct {
    TorchMT19937 mt;
    int has_next_normal;
    double next_normal;
} TorchGenerator;

typedef enum {
    TORCH_CPU_AVX2 = 0,    // torch's kernel on AVX2/AVX512 machines (the usual x86 case)
    TORCH_CPU_DEFAULT = 1  // torch's portable kernel (libm logf/sinf/cosf)
} TorchCpuKernel;

void torch_mt19937_seed(TorchMT19937 *mt, uint32_t seed);
uint32_t torch_mt19937_next(TorchMT19937 *mt);

// g = torch.Generator("cpu").manual_seed(seed)
void torch_generator_seed(TorchGenerator *g, uint64_t seed);
// x [n] = torch.randn(n, generator=g) (float32), advancing g like torch does.
void torch_generator_randn(TorchGenerator *g, float *x, size_t n, TorchCpuKernel kernel);

// x [n] = torch.randn(n, generator=torch.Generator("cpu").manual_seed(seed)),
// as torch computes it on an AVX2/AVX512 x86 CPU.
void torch_randn(float *x, size_t n, uint64_t seed);
