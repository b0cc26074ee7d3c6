// activation.c: pointwise activations and row softmax, forward and backward
// (fp32): ReLU, PReLU, sigmoid, SiLU, exact GELU, quick-GELU (CLIP), GEGLU
// (diffusers), softmax over the last dim.
//
// Numerics: sigmoid is evaluated as 1/(1+e^-x) for x >= 0 and e^x/(1+e^x)
// otherwise, so exp never overflows (x = +-100 give finite, correct values).
// The GELU CDF uses erfc, accurate in the far negative tail. Softmax reduces
// each row inside one thread (max-subtracted, sum in double), so results do
// not depend on the thread count; PReLU's dslope uses fixed row chunks.
#include <math.h>
#include <string.h>

#include "../common.h"
#include "ops.h"

#define ACT_PAR_MIN 32768  // below this many values, threads cost more than they save
#define ACT_CHUNK 64       // rows per partial sum in PReLU's dslope

static inline float sigmoidf_(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// Phi(x) = 0.5 erfc(-x / sqrt 2), the standard normal CDF.
static inline float phi_cdf(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
// phi(x) = exp(-x^2/2) / sqrt(2 pi), the standard normal density.
static inline float phi_pdf(float x) { return 0.39894228040143268f * expf(-0.5f * x * x); }
static inline float gelu1(float x) { return x * phi_cdf(x); }
static inline float gelu1_grad(float x) { return phi_cdf(x) + x * phi_pdf(x); }

// ------------------------------------------------------------------ ReLU

void relu_fwd(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// Gradient 0 at x == 0 (PyTorch's threshold_backward convention).
void relu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (x[i] > 0.0f) dx[i] += dy[i];
}

// ------------------------------------------------------------------ PReLU

// x, y [N, C]; slope [C].
void prelu_fwd(float *y, const float *x, const float *slope, size_t N, int C) {
    CHECK(C > 0);
#pragma omp parallel for schedule(static) if (N * (size_t)C > ACT_PAR_MIN)
    for (size_t r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            const float v = x[r * C + c];
            y[r * C + c] = v > 0.0f ? v : slope[c] * v;
        }
}

// dx [N, C] += dy * (x > 0 ? 1 : slope); dslope [C] += sum_{x <= 0} dy * x.
void prelu_bwd(float *dx, float *dslope, const float *dy, const float *x, const float *slope, size_t N, int C) {
    CHECK(C > 0);
    if (dx) {
#pragma omp parallel for schedule(static) if (N * (size_t)C > ACT_PAR_MIN)
        for (size_t r = 0; r < N; r++)
            for (int c = 0; c < C; c++) {
                const size_t i = r * C + c;
                dx[i] += x[i] > 0.0f ? dy[i] : slope[c] * dy[i];
            }
    }
    if (dslope) {
        const size_t nch = CEIL_DIV(N, ACT_CHUNK);
        double *part = xcalloc(nch * C, sizeof(double));  // [nch, C]
#pragma omp parallel for schedule(static) if (N * (size_t)C > ACT_PAR_MIN)
        for (size_t k = 0; k < nch; k++) {
            double *p = part + k * C;
            const size_t r1 = A2F_MIN(N, (k + 1) * ACT_CHUNK);
            for (size_t r = k * ACT_CHUNK; r < r1; r++)
                for (int c = 0; c < C; c++) {
                    const size_t i = r * C + c;
                    if (x[i] <= 0.0f) p[c] += (double)dy[i] * x[i];
                }
        }
        for (int c = 0; c < C; c++) {
            double t = 0;
            for (size_t k = 0; k < nch; k++) t += part[k * C + c];
            dslope[c] += (float)t;
        }
        free(part);
    }
}

// ------------------------------------------------------------------ sigmoid, SiLU

void sigmoid_fwd(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = sigmoidf_(x[i]);
}

// d sigmoid = s (1 - s).
void sigmoid_bwd(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoidf_(x[i]);
        dx[i] += dy[i] * s * (1.0f - s);
    }
}

void silu_fwd(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf_(x[i]);
}

// d silu = s (1 + x (1 - s)).
void silu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoidf_(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

// ------------------------------------------------------------------ GELU, quick-GELU

void gelu_fwd(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = gelu1(x[i]);
}

// d gelu = Phi(x) + x phi(x).
void gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * gelu1_grad(x[i]);
}

#define QUICKGELU_K 1.702f

void quickgelu_fwd(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf_(QUICKGELU_K * x[i]);
}

// d/dx x s(kx) = s + k x s (1 - s).
void quickgelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoidf_(QUICKGELU_K * x[i]);
        dx[i] += dy[i] * (s + QUICKGELU_K * x[i] * s * (1.0f - s));
    }
}

// ------------------------------------------------------------------ GEGLU

// x [N, 2D] = [hidden | gate] per row; y [N, D] = hidden * gelu(gate).
void geglu_fwd(float *y, const float *x, size_t N, int D) {
    CHECK(D > 0);
#pragma omp parallel for schedule(static) if (N * (size_t)D > ACT_PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *h = x + r * 2 * D, *g = h + D;  // [D] each
        float *yr = y + r * D;                       // [D]
        for (int d = 0; d < D; d++) yr[d] = h[d] * gelu1(g[d]);
    }
}

// dx [N, 2D]: d hidden += dy * gelu(gate); d gate += dy * hidden * gelu'(gate).
void geglu_bwd(float *dx, const float *dy, const float *x, size_t N, int D) {
    CHECK(D > 0);
    if (!dx) return;
#pragma omp parallel for schedule(static) if (N * (size_t)D > ACT_PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *h = x + r * 2 * D, *g = h + D;
        const float *dyr = dy + r * D;
        float *dh = dx + r * 2 * D, *dg = dh + D;
        for (int d = 0; d < D; d++) {
            dh[d] += dyr[d] * gelu1(g[d]);
            dg[d] += dyr[d] * h[d] * gelu1_grad(g[d]);
        }
    }
}

// ------------------------------------------------------------------ softmax

// Row softmax of x [N, C] into y [N, C].
void softmax_fwd(float *y, const float *x, size_t N, int C) {
    CHECK(C > 0);
#pragma omp parallel for schedule(static) if (N * (size_t)C > ACT_PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float mx = xr[0];
        for (int c = 1; c < C; c++) mx = xr[c] > mx ? xr[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++) {
            const float e = expf(xr[c] - mx);
            yr[c] = e;
            s += e;
        }
        const float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++) yr[c] *= inv;
    }
}

// dx [N, C] += y * (dy - sum_c dy * y).
void softmax_bwd(float *dx, const float *dy, const float *y, size_t N, int C) {
    CHECK(C > 0);
    if (!dx) return;
#pragma omp parallel for schedule(static) if (N * (size_t)C > ACT_PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *dyr = dy + r * C, *yr = y + r * C;
        float *dxr = dx + r * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)dyr[c] * yr[c];
        const float sf = (float)s;
        for (int c = 0; c < C; c++) dxr[c] += yr[c] * (dyr[c] - sf);
    }
}
