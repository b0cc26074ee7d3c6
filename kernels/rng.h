// rng.h: CPU fills from the counter-based Philox streams of philox.h.
//
// x[i] is a pure function of (seed, offset, i): the same as philox_uniform /
// philox_normal element by element, whatever the OpenMP thread count, and the
// same bits as the CUDA fills in kernels/cuda/rng.cu. An offset of k skips k
// Philox blocks, i.e. 4k elements: fill(n, offset=k) == fill(n + 4k, 0)[4k:].
#pragma once
#include <stddef.h>
#include <stdint.h>

// x [n]: uniform in [0, 1), 24 random bits each.
void philox_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t offset);
// x [n]: mean + std * z, z standard normal (Box-Muller), as fmaf(z, std, mean).
void philox_fill_normal(float *x, size_t n, uint64_t seed, uint64_t offset, float mean, float std);
