// optim.c: AdamW and the global gradient norm on the CPU (see optim.h).
#include "optim.h"

#include <math.h>
#include <stdlib.h>

AdamWCoef adamw_coef(const AdamWHyper *h, int64_t step) {
    // Python computes these in double; torch rounds each scalar to float
    // when it meets the float tensor.
    double t = (double)step;
    double bc1 = 1.0 - pow(h->beta1, t), bc2 = 1.0 - pow(h->beta2, t);
    AdamWCoef c;
    c.decay = (float)(1.0 - h->lr * h->weight_decay);
    c.w1 = (float)(1.0 - h->beta1);
    c.beta2 = (float)h->beta2;
    c.one_m_b2 = (float)(1.0 - h->beta2);
    c.bc2_sqrt = (float)pow(bc2, 0.5);
    c.neg_step = (float)(-(h->lr / bc1));
    c.eps = (float)h->eps;
    return c;
}

void adamw_step(float *p, float *m, float *v, const float *grad, size_t n, const AdamWHyper *h, int64_t step,
                float grad_scale) {
    AdamWCoef c = adamw_coef(h, step);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;  // exact when grad_scale == 1
        adamw_elem(&p[i], &m[i], &v[i], g, c);
    }
}

void bf16_stochastic_round_buf(uint16_t *work, const float *p, size_t n, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) work[i] = bf16_stochastic_round(p[i], philox_u32(seed, offset, i));
}

#define NORM_CHUNK 65536

// Sum of squares of chunk c (NORM_CHUNK elements, the last one shorter).
static double chunk_sumsq(const float *g, size_t n, size_t c) {
    size_t lo = c * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
    return s;
}

double grad_norm_l2(const float *g, size_t n) {
    size_t nchunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double total = 0.0;
    double *part = nchunks > 1 ? (double *)malloc(nchunks * sizeof(double)) : NULL;
    if (!part) {  // one chunk, or no memory for the partials: the same sums on one thread
        for (size_t c = 0; c < nchunks; c++) total += chunk_sumsq(g, n, c);
        return sqrt(total);
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) part[c] = chunk_sumsq(g, n, c);
    for (size_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return sqrt(total);
}
