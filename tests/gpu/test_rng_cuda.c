// test_rng_cuda.c: the CUDA Philox fills must equal the CPU fills bit for bit
// (same element functions in kernels/philox.h; see kernels/rng.h).
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"

#include "../../kernels/cuda/rng_cuda.h"
#include "../../kernels/rng.h"
#include "../test.h"
#include "gpu_test.h"

TEST(cuda_philox_matches_cpu) {
    if (!gpu_ready()) return;
    size_t sizes[] = {1, 3, 4, 7, 1000, 65537};
    for (int k = 0; k < 6; k++) {
        size_t n = sizes[k];
        float *want = xmalloc(n * sizeof(float));
        float *d = gpu_fill(n, DT_F32, 0.0f);
        philox_fill_normal(want, n, 42, 5, 0.0f, 1.0f);
        if (!gpu_ok(cuda_philox_fill_normal(d, n, 42, 5, dev_stream()), "normal")) break;
        float *got = gpu_get(d, n, DT_F32);
        EXPECT(memcmp(got, want, n * sizeof(float)) == 0, "normal n=%zu differs from the CPU stream", n);
        philox_fill_uniform(want, n, 7, 123);
        if (!gpu_ok(cuda_philox_fill_uniform(d, n, 7, 123, dev_stream()), "uniform")) break;
        got = gpu_get(d, n, DT_F32);
        EXPECT(memcmp(got, want, n * sizeof(float)) == 0, "uniform n=%zu differs from the CPU stream", n);
        free(want);
        gpu_free_all();
    }
    gpu_free_all();
}
