// shape.c: data-movement ops of the UNet/VAE: nearest 2x upsampling,
// channel concatenation (skip connections) and the residual add.
#include <string.h>

#include "../common.h"
#include "ops.h"

#define PAR_MIN 32768  // below this many elements (or flops) threads cost more than they save

// x [B,H,W,C] -> y [B,2H,2W,C]: y[b, 2h+i, 2w+j] = x[b, h, w] for i, j in {0, 1}.
void upsample2x_fwd(float *y, const float *x, int B, int H, int W, int C) {
    const int Ho = 2 * H, Wo = 2 * W;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * H * W * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < Ho; oh++) {
            const float *xr = x + ((size_t)b * H + oh / 2) * W * C;
            float *yr = y + ((size_t)b * Ho + oh) * Wo * C;
            for (int ow = 0; ow < Wo; ow++) memcpy(yr + (size_t)ow * C, xr + (size_t)(ow / 2) * C, C * sizeof(float));
        }
}

// dx [B,H,W,C] += sum of the four dy [B,2H,2W,C] values each input fed.
void upsample2x_bwd(float *dx, const float *dy, int B, int H, int W, int C) {
    const int Wo = 2 * W;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * H * W * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                float *d = dx + (((size_t)b * H + h) * W + w) * C;
                const float *g00 = dy + (((size_t)b * 2 * H + 2 * h) * Wo + 2 * w) * C;
                const float *g01 = g00 + C;
                const float *g10 = g00 + (size_t)Wo * C;
                const float *g11 = g10 + C;
                for (int c = 0; c < C; c++) d[c] += (g00[c] + g01[c]) + (g10[c] + g11[c]);
            }
}

// a [P,Ca], b [P,Cb] -> y [P,Ca+Cb].
void concat_fwd(float *y, const float *a, const float *b, size_t P, int Ca, int Cb) {
    const size_t Cy = (size_t)Ca + Cb;
#pragma omp parallel for schedule(static) if (P * (Ca + Cb) > PAR_MIN)
    for (size_t p = 0; p < P; p++) {
        memcpy(y + p * Cy, a + p * Ca, (size_t)Ca * sizeof(float));
        memcpy(y + p * Cy + Ca, b + p * Cb, (size_t)Cb * sizeof(float));
    }
}

// da [P,Ca] += dy[:, :Ca]; db [P,Cb] += dy[:, Ca:] (either may be NULL).
void concat_bwd(float *da, float *db, const float *dy, size_t P, int Ca, int Cb) {
    const size_t Cy = (size_t)Ca + Cb;
#pragma omp parallel for schedule(static) if (P * (Ca + Cb) > PAR_MIN)
    for (size_t p = 0; p < P; p++) {
        const float *g = dy + p * Cy;
        if (da)
            for (int c = 0; c < Ca; c++) da[p * Ca + c] += g[c];
        if (db)
            for (int c = 0; c < Cb; c++) db[p * Cb + c] += g[Ca + c];
    }
}

// y [n] = a + b (y may alias a or b).
void add_fwd(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// da [n] += dy; db [n] += dy (either may be NULL).
void add_bwd(float *da, float *db, const float *dy, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dy[i];
        if (db) db[i] += dy[i];
    }
}
