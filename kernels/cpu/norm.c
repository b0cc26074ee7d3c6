// norm.c: normalisation layers, forward and backward (fp32, NHWC).
//
//  - GroupNorm over x [B, HW, C] (optionally followed by SiLU, as in every
//    diffusers ResnetBlock2D), statistics per (batch, group).
//  - LayerNorm over the last dim of x [N, C].
//  - BatchNorm2d on x [N, C] rows (N = B*H*W): inference with running stats,
//    training with batch stats and a PyTorch-style running-stat update.
//
// Determinism: every result is independent of the OpenMP thread count. A
// reduction is either done entirely inside one thread (one (b, g) group, one
// row), or split into fixed row chunks (NORM_CHUNK rows, independent of the
// thread count) whose partial sums are then added in chunk order.
//
// Precision: statistics are two-pass sums in double; the forward centres x
// with the double mean, so inputs with |mean| >> std lose nothing there. The
// saved mean/rstd are fp32 (ops.h), so the backward's recomputed xhat carries
// ~|mean|/std fp32 ulps of error -- 3e-5 relative at |mean|/std = 500.
#include <math.h>
#include <string.h>

#include "../common.h"
#include "ops.h"

#define NORM_CHUNK 64  // rows per partial sum in the cross-row reductions

// Numerically safe SiLU pieces (exp never overflows).
static inline float sigm(float z) {
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

// ------------------------------------------------------------------ GroupNorm

void groupnorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                   int B, int HW, int C, int G, float eps, int silu) {
    CHECK(B >= 0 && HW > 0 && C > 0 && G > 0 && C % G == 0);
    const int Cg = C / G;
    const double n = (double)HW * Cg;
#pragma omp parallel for schedule(static) if ((long)B * HW * C > 16384)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        const float *xb = x + (size_t)b * HW * C + (size_t)g * Cg;  // rows of stride C, Cg channels each
        float *yb = y + (size_t)b * HW * C + (size_t)g * Cg;
        // two passes in double: mean, then the biased variance around it
        double s = 0;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < Cg; c++) s += xb[(size_t)p * C + c];
        const double mu = s / n;
        double ss = 0;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < Cg; c++) {
                double d = xb[(size_t)p * C + c] - mu;
                ss += d * d;
            }
        const double rsd = 1.0 / sqrt(ss / n + (double)eps);
        if (mean) mean[bg] = (float)mu;
        if (rstd) rstd[bg] = (float)rsd;
        const float *ga = gamma ? gamma + (size_t)g * Cg : NULL;  // [Cg]
        const float *be = beta ? beta + (size_t)g * Cg : NULL;    // [Cg]
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < Cg; c++) {
                // centre in double: a float-rounded mean would cost |mean|/std ulps
                float z = (float)((xb[(size_t)p * C + c] - mu) * rsd);
                if (ga) z *= ga[c];
                if (be) z += be[c];
                yb[(size_t)p * C + c] = silu ? z * sigm(z) : z;
            }
    }
}

// z = xhat * gamma + beta, y = silu(z) or z. With dz = dy * dy/dz and
// dxhat = dz * gamma, over the n values of a group:
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
//   dgamma[c] += sum dz * xhat, dbeta[c] += sum dz.
void groupnorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *gamma, const float *beta, int B, int HW, int C, int G, int silu) {
    CHECK(B >= 0 && HW > 0 && C > 0 && G > 0 && C % G == 0);
    const int Cg = C / G;
    const double n = (double)HW * Cg;
    // per-(b, channel) partial sums for dgamma/dbeta, added over b in order afterwards
    double *pg = (dgamma || dbeta) ? xcalloc((size_t)B * C * 2, sizeof(double)) : NULL;  // [B, 2, C]
#pragma omp parallel for schedule(static) if ((long)B * HW * C > 16384)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        const size_t off = (size_t)b * HW * C + (size_t)g * Cg;
        const float *xb = x + off, *dyb = dy + off;
        const float m = mean[bg], rs = rstd[bg];
        const float *ga = gamma ? gamma + (size_t)g * Cg : NULL;
        const float *be = beta ? beta + (size_t)g * Cg : NULL;
        double *sg = pg ? pg + (size_t)b * 2 * C + (size_t)g * Cg : NULL;  // [Cg] dgamma partials
        double *sb = pg ? sg + C : NULL;                                     // [Cg] dbeta partials
        double s1 = 0, s2 = 0;  // sum dxhat, sum dxhat * xhat
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < Cg; c++) {
                const size_t i = (size_t)p * C + c;
                const float xh = (xb[i] - m) * rs;
                float dz = dyb[i];
                if (silu) {
                    float z = xh * (ga ? ga[c] : 1.0f) + (be ? be[c] : 0.0f);
                    float s = sigm(z);
                    dz *= s * (1.0f + z * (1.0f - s));
                }
                const float dxh = dz * (ga ? ga[c] : 1.0f);
                s1 += dxh;
                s2 += (double)dxh * xh;
                if (sg) {
                    sg[c] += (double)dz * xh;
                    sb[c] += dz;
                }
            }
        if (!dx) continue;
        const float a1 = (float)(s1 / n), a2 = (float)(s2 / n);
        float *dxb = dx + off;
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < Cg; c++) {
                const size_t i = (size_t)p * C + c;
                const float xh = (xb[i] - m) * rs;
                float dz = dyb[i];
                if (silu) {
                    float z = xh * (ga ? ga[c] : 1.0f) + (be ? be[c] : 0.0f);
                    float s = sigm(z);
                    dz *= s * (1.0f + z * (1.0f - s));
                }
                const float dxh = dz * (ga ? ga[c] : 1.0f);
                dxb[i] += rs * (dxh - a1 - xh * a2);
            }
    }
    if (pg) {
        for (int c = 0; c < C; c++) {
            double tg = 0, tb = 0;
            for (int b = 0; b < B; b++) {
                tg += pg[(size_t)b * 2 * C + c];
                tb += pg[(size_t)b * 2 * C + C + c];
            }
            if (dgamma) dgamma[c] += (float)tg;
            if (dbeta) dbeta[c] += (float)tb;
        }
        free(pg);
    }
}

// ------------------------------------------------------------------ LayerNorm

void layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma, const float *beta, int N,
                   int C, float eps) {
    CHECK(N >= 0 && C > 0);
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C;  // [C]
        float *yr = y + (size_t)r * C;        // [C]
        double s = 0;
        for (int c = 0; c < C; c++) s += xr[c];
        const double mu = s / C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (xr[c] - mu) * (xr[c] - mu);
        const double rsd = 1.0 / sqrt(ss / C + (double)eps);
        if (mean) mean[r] = (float)mu;
        if (rstd) rstd[r] = (float)rsd;
        for (int c = 0; c < C; c++) {
            float z = (float)((xr[c] - mu) * rsd);  // centred in double, as in groupnorm_fwd
            if (gamma) z *= gamma[c];
            if (beta) z += beta[c];
            yr[c] = z;
        }
    }
}

// Cross-row sums for dgamma [C] += sum_r dy * xhat and dbeta [C] += sum_r dy,
// with xhat = (x - mean[r]) * rstd[r] (mean may be NULL: zero; rstd per row
// when per_row, else per channel). Deterministic fixed-chunk reduction.
static void colsum_dgamma_dbeta(float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                                const float *rstd, int per_row, int N, int C) {
    if (!dgamma && !dbeta) return;
    const int nch = CEIL_DIV(N, NORM_CHUNK);
    double *part = xcalloc((size_t)nch * 2 * C, sizeof(double));  // [nch, 2, C]
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
    for (int k = 0; k < nch; k++) {
        double *pgm = part + (size_t)k * 2 * C, *pbt = pgm + C;
        const int r1 = A2F_MIN(N, (k + 1) * NORM_CHUNK);
        for (int r = k * NORM_CHUNK; r < r1; r++) {
            const float *xr = x + (size_t)r * C, *dyr = dy + (size_t)r * C;
            for (int c = 0; c < C; c++) {
                const float m = per_row ? mean[r] : mean[c];
                const float rs = per_row ? rstd[r] : rstd[c];
                const float xh = (xr[c] - m) * rs;
                pgm[c] += (double)dyr[c] * xh;
                pbt[c] += dyr[c];
            }
        }
    }
    for (int c = 0; c < C; c++) {
        double tg = 0, tb = 0;
        for (int k = 0; k < nch; k++) {
            tg += part[(size_t)k * 2 * C + c];
            tb += part[(size_t)k * 2 * C + C + c];
        }
        if (dgamma) dgamma[c] += (float)tg;
        if (dbeta) dbeta[c] += (float)tb;
    }
    free(part);
}

void layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                   const float *rstd, const float *gamma, int N, int C) {
    CHECK(N >= 0 && C > 0);
    if (dx) {
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
        for (int r = 0; r < N; r++) {
            const float *xr = x + (size_t)r * C, *dyr = dy + (size_t)r * C;  // [C]
            float *dxr = dx + (size_t)r * C;                                 // [C]
            const float m = mean[r], rs = rstd[r];
            double s1 = 0, s2 = 0;  // sum dxhat, sum dxhat * xhat
            for (int c = 0; c < C; c++) {
                const float dxh = dyr[c] * (gamma ? gamma[c] : 1.0f);
                s1 += dxh;
                s2 += (double)dxh * ((xr[c] - m) * rs);
            }
            const float a1 = (float)(s1 / C), a2 = (float)(s2 / C);
            for (int c = 0; c < C; c++) {
                const float dxh = dyr[c] * (gamma ? gamma[c] : 1.0f);
                dxr[c] += rs * (dxh - a1 - (xr[c] - m) * rs * a2);
            }
        }
    }
    colsum_dgamma_dbeta(dgamma, dbeta, dy, x, mean, rstd, 1, N, C);
}

// ------------------------------------------------------------------ BatchNorm

void batchnorm_fwd_infer(float *y, const float *x, const float *gamma, const float *beta, const float *run_mean,
                         const float *run_var, int N, int C, float eps) {
    CHECK(N >= 0 && C > 0);
    float *sc = xmalloc((size_t)C * sizeof(float));  // [C] gamma * rsqrt(var + eps)
    for (int c = 0; c < C; c++) sc[c] = (float)(1.0 / sqrt((double)run_var[c] + eps)) * (gamma ? gamma[c] : 1.0f);
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - run_mean[c]) * sc[c] + (beta ? beta[c] : 0.0f);
    }
    free(sc);
}

// Per-channel column sums of f over rows, fixed chunks: out [C] (double).
// mode 0: sum x; mode 1: sum (x - mu)^2.
static void colsum_stats(double *out, const float *x, const double *mu, int mode, int N, int C) {
    const int nch = CEIL_DIV(N, NORM_CHUNK);
    double *part = xcalloc((size_t)nch * C, sizeof(double));  // [nch, C]
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
    for (int k = 0; k < nch; k++) {
        double *p = part + (size_t)k * C;
        const int r1 = A2F_MIN(N, (k + 1) * NORM_CHUNK);
        for (int r = k * NORM_CHUNK; r < r1; r++) {
            const float *xr = x + (size_t)r * C;
            if (mode == 0)
                for (int c = 0; c < C; c++) p[c] += xr[c];
            else
                for (int c = 0; c < C; c++) p[c] += (xr[c] - mu[c]) * (xr[c] - mu[c]);
        }
    }
    for (int c = 0; c < C; c++) {
        double t = 0;
        for (int k = 0; k < nch; k++) t += part[(size_t)k * C + c];
        out[c] = t;
    }
    free(part);
}

void batchnorm_fwd_train(float *y, float *mean, float *rstd, float *run_mean, float *run_var, const float *x,
                         const float *gamma, const float *beta, int N, int C, float eps, float momentum) {
    // PyTorch raises "Expected more than 1 value per channel when training" for N == 1
    // (the unbiased variance would divide by zero).
    CHECKM(N > 1 && C > 0, "batchnorm training needs more than one value per channel");
    double *mu = xmalloc((size_t)C * sizeof(double));   // [C]
    double *var = xmalloc((size_t)C * sizeof(double));  // [C] sum of squared deviations
    colsum_stats(mu, x, NULL, 0, N, C);
    for (int c = 0; c < C; c++) mu[c] /= N;
    colsum_stats(var, x, mu, 1, N, C);
    double *rs = xmalloc((size_t)C * sizeof(double));  // [C] 1/sqrt(var + eps)
    for (int c = 0; c < C; c++) {
        const double ssd = var[c];
        rs[c] = 1.0 / sqrt(ssd / N + (double)eps);
        if (mean) mean[c] = (float)mu[c];
        if (rstd) rstd[c] = (float)rs[c];
        if (run_mean) run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mu[c]);
        if (run_var) run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * (ssd / (N - 1)));
    }
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        for (int c = 0; c < C; c++) {
            const float xh = (float)((xr[c] - mu[c]) * rs[c]);  // centred in double, as in groupnorm_fwd
            yr[c] = xh * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
        }
    }
    free(mu), free(var), free(rs);
}

// Same algebra as LayerNorm, but the reduction runs over the N rows of each
// channel: dx = rstd * gamma * (dy - mean_r(dy) - xhat * mean_r(dy * xhat)).
void batchnorm_bwd_train(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *mean, const float *rstd, const float *gamma, int N, int C) {
    CHECK(N > 0 && C > 0);
    float *sg = xmalloc((size_t)C * sizeof(float)), *sb = xmalloc((size_t)C * sizeof(float));  // [C] sums
    memset(sg, 0, (size_t)C * sizeof(float));
    memset(sb, 0, (size_t)C * sizeof(float));
    colsum_dgamma_dbeta(sg, sb, dy, x, mean, rstd, 0, N, C);  // sg = sum dy*xhat, sb = sum dy
    if (dx) {
        float *a1 = xmalloc((size_t)C * sizeof(float)), *a2 = xmalloc((size_t)C * sizeof(float));  // [C]
        float *k = xmalloc((size_t)C * sizeof(float));                                           // [C]
        for (int c = 0; c < C; c++) {
            a1[c] = sb[c] / N;
            a2[c] = sg[c] / N;
            k[c] = rstd[c] * (gamma ? gamma[c] : 1.0f);
        }
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
        for (int r = 0; r < N; r++) {
            const float *xr = x + (size_t)r * C, *dyr = dy + (size_t)r * C;
            float *dxr = dx + (size_t)r * C;
            for (int c = 0; c < C; c++) {
                const float xh = (xr[c] - mean[c]) * rstd[c];
                dxr[c] += k[c] * (dyr[c] - a1[c] - xh * a2[c]);
            }
        }
        free(a1), free(a2), free(k);
    }
    for (int c = 0; c < C; c++) {
        if (dgamma) dgamma[c] += sg[c];
        if (dbeta) dbeta[c] += sb[c];
    }
    free(sg), free(sb);
}

void batchnorm_bwd_infer(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, const float *run_mean, const float *run_var, int N, int C, float eps) {
    CHECK(N >= 0 && C > 0);
    float *rs = xmalloc((size_t)C * sizeof(float));  // [C] rsqrt(var + eps)
    for (int c = 0; c < C; c++) rs[c] = (float)(1.0 / sqrt((double)run_var[c] + eps));
    if (dx) {
#pragma omp parallel for schedule(static) if ((long)N * C > 16384)
        for (int r = 0; r < N; r++) {
            const float *dyr = dy + (size_t)r * C;
            float *dxr = dx + (size_t)r * C;
            for (int c = 0; c < C; c++) dxr[c] += dyr[c] * (gamma ? gamma[c] : 1.0f) * rs[c];
        }
    }
    colsum_dgamma_dbeta(dgamma, dbeta, dy, x, run_mean, rs, 0, N, C);
    free(rs);
}
