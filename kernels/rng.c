// rng.c: OpenMP fills of the Philox uniform and normal streams (see philox.h).
// Work is split by Philox block (4 elements), so the output does not depend on
// the number of threads.
#include "rng.h"

#include <math.h>

#include "philox.h"

void philox_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t offset) {
    int64_t nblocks = (int64_t)((n + 3) / 4);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < nblocks; b++) {
        Philox4 r = philox_block(seed, offset, (uint64_t)b);
        size_t base = (size_t)b * 4;
        for (size_t k = 0; k < 4 && base + k < n; k++)
            x[base + k] = philox_word_to_uniform(r.v[k]);
    }
}

void philox_fill_normal(float *x, size_t n, uint64_t seed, uint64_t offset, float mean, float std) {
    int64_t nblocks = (int64_t)((n + 3) / 4);
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t b = 0; b < nblocks; b++) {
        float z[4];
        philox_normal4(seed, offset, (uint64_t)b, z);
        size_t base = (size_t)b * 4;
        for (size_t k = 0; k < 4 && base + k < n; k++) x[base + k] = fmaf(z[k], std, mean);
    }
}
