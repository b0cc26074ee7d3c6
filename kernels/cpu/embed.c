// embed.c: token embedding lookup (CLIP) and the sinusoidal timestep
// embedding of diffusers' get_timestep_embedding (UNet), forward and backward.
#include <math.h>

#include "../common.h"
#include "ops.h"

// y [N,D] = table [V,D] rows picked by ids [N].
void embedding_fwd(float *y, const int32_t *ids, const float *table, int N, int V, int D) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        CHECKM(ids[i] >= 0 && ids[i] < V, "embedding id out of range");
        const float *row = table + (size_t)ids[i] * D;
        for (int d = 0; d < D; d++) y[(size_t)i * D + d] = row[d];
    }
}

// dtable [V,D] += dy rows scattered to ids. Repeated ids add up; threads
// split the D columns so two threads never touch the same element.
void embedding_bwd(float *dtable, const float *dy, const int32_t *ids, int N, int V, int D) {
    for (int i = 0; i < N; i++) CHECKM(ids[i] >= 0 && ids[i] < V, "embedding id out of range");
#pragma omp parallel for schedule(static) if (N * D > 65536)
    for (int d = 0; d < D; d++)
        for (int i = 0; i < N; i++) dtable[(size_t)ids[i] * D + d] += dy[(size_t)i * D + d];
}

// freq [half]: the fp32 frequencies diffusers computes,
//   exponent = (-ln(max_period) * arange(half)) / (half - freq_shift)   (fp32 ops)
//   freq = exp(exponent)                                                 (fp32)
// Each fp32 step is reproduced: the product and quotient are rounded to
// float, and exp is evaluated in double and rounded (correctly rounded in
// practice; torch's fp32 exp is within 1 ulp).
static void timestep_freqs(float *freq, int half, float freq_shift, float max_period) {
    const float neg_log = (float)(-log((double)max_period));
    const float denom = (float)half - freq_shift;
    for (int k = 0; k < half; k++) {
        float e = (neg_log * (float)k) / denom;
        freq[k] = (float)exp((double)e);
    }
}

// t [B] -> y [B,dim]; arg_k = (float)(t * freq_k) rounded to fp32 like diffusers,
// then [sin(arg) | cos(arg)], halves swapped with flip_sin_to_cos, zero last
// column for odd dim.
void timestep_embedding_fwd(float *y, const float *t, int B, int dim, int flip_sin_to_cos, float freq_shift,
                            float max_period) {
    const int half = dim / 2;
    CHECK(half >= 1);
    float *freq = xmalloc((size_t)half * sizeof(float));
    timestep_freqs(freq, half, freq_shift, max_period);
    const int sin_at = flip_sin_to_cos ? half : 0, cos_at = flip_sin_to_cos ? 0 : half;
    for (int b = 0; b < B; b++) {
        float *yb = y + (size_t)b * dim;
        for (int k = 0; k < half; k++) {
            float arg = t[b] * freq[k];
            yb[sin_at + k] = (float)sin((double)arg);
            yb[cos_at + k] = (float)cos((double)arg);
        }
        if (dim & 1) yb[dim - 1] = 0.0f;
    }
    free(freq);
}

// dt [B] += sum_k dy_sin_k * freq_k cos(arg_k) - dy_cos_k * freq_k sin(arg_k) (double).
void timestep_embedding_bwd(float *dt, const float *dy, const float *t, int B, int dim, int flip_sin_to_cos,
                            float freq_shift, float max_period) {
    const int half = dim / 2;
    CHECK(half >= 1);
    float *freq = xmalloc((size_t)half * sizeof(float));
    timestep_freqs(freq, half, freq_shift, max_period);
    const int sin_at = flip_sin_to_cos ? half : 0, cos_at = flip_sin_to_cos ? 0 : half;
    for (int b = 0; b < B; b++) {
        const float *g = dy + (size_t)b * dim;
        double acc = 0;
        for (int k = 0; k < half; k++) {
            double arg = (double)(t[b] * freq[k]);
            acc += freq[k] * (g[sin_at + k] * cos(arg) - g[cos_at + k] * sin(arg));
        }
        dt[b] += (float)acc;
    }
    free(freq);
}
