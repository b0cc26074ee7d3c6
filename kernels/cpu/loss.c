// loss.c: seeded dropout, mean squared error, row L2 normalisation
// (F.normalize) and row cosine similarity (F.cosine_similarity).
#include <math.h>

#include "../common.h"
#include "../philox.h"
#include "ops.h"

#define PAR_MIN 32768  // below this many elements (or flops) threads cost more than they save

// Shared by forward and backward: y [n] = x * keep_i / (1 - p), keep_i =
// philox_uniform(seed, offset, i) >= p. p = 0 copies, p = 1 zeroes (no 1/0).
// One call consumes Philox counters offset .. offset + ceil(n/4) - 1 (four
// values per counter, see philox.h): callers must advance offset by at least
// that much between dropout calls, else masks are shifted copies of each other.
static void dropout_apply(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t offset, int acc) {
    CHECK(p >= 0.0f && p <= 1.0f);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = (p < 1.0f && philox_uniform(seed, offset, i) >= p) ? x[i] * scale : 0.0f;
        if (acc) y[i] += v;
        else y[i] = v;
    }
}

// y [n] = dropout(x [n]).
void dropout_fwd(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t offset) {
    dropout_apply(y, x, n, p, seed, offset, 0);
}

// dx [n] += dy masked and scaled exactly as the forward did.
void dropout_bwd(float *dx, const float *dy, size_t n, float p, uint64_t seed, uint64_t offset) {
    dropout_apply(dx, dy, n, p, seed, offset, 1);
}

// mean((a - b)^2) over a, b [n], accumulated in double.
float mse_loss_fwd(const float *a, const float *b, size_t n) {
    double acc = 0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        acc += d * d;
    }
    return (float)(acc / (double)n);
}

// da [n] += dloss * 2 (a - b) / n; db [n] -= the same (either may be NULL).
void mse_loss_bwd(float *da, float *db, float dloss, const float *a, const float *b, size_t n) {
    const float k = 2.0f * dloss / (float)n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = k * (a[i] - b[i]);
        if (da) da[i] += g;
        if (db) db[i] -= g;
    }
}

// ||row|| of a [D] row in double.
static double row_norm(const float *x, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += (double)x[d] * x[d];
    return sqrt(s);
}

// y [N,D] = x / max(||x||, eps) per row.
void l2norm_fwd(float *y, const float *x, int N, int D, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * D;
        double inv = 1.0 / fmax(row_norm(xi, D), (double)eps);
        for (int d = 0; d < D; d++) y[(size_t)i * D + d] = (float)(xi[d] * inv);
    }
}

// dx [N,D] += derivative of x / max(||x||, eps): with n = ||x|| > eps,
// dx = (dy - y (y . dy)) / n, y = x / n; when clamped (n <= eps) the divisor
// is the constant eps and dx = dy / eps (what autograd gives for clamp_min).
void l2norm_bwd(float *dx, const float *dy, const float *x, int N, int D, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * D, *gi = dy + (size_t)i * D;
        float *di = dx + (size_t)i * D;
        double n = row_norm(xi, D);
        if (n > eps) {
            double dot = 0;
            for (int d = 0; d < D; d++) dot += (double)xi[d] * gi[d];
            double c = dot / (n * n * n);
            for (int d = 0; d < D; d++) di[d] += (float)(gi[d] / n - xi[d] * c);
        } else {
            for (int d = 0; d < D; d++) di[d] += (float)(gi[d] / eps);
        }
    }
}

// y [N] = sum_d (a / max(||a||, eps)) * (b / max(||b||, eps)) per row: each
// norm is clamped on its own, as torch's cosine_similarity does now.
void cosine_sim_fwd(float *y, const float *a, const float *b, int N, int D, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *ai = a + (size_t)i * D, *bi = b + (size_t)i * D;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)ai[d] * bi[d];
        double na = fmax(row_norm(ai, D), (double)eps), nb = fmax(row_norm(bi, D), (double)eps);
        y[i] = (float)(dot / (na * nb));
    }
}

// da, db [N,D] += gradient of cosine_sim_fwd, dy [N]. With ca = max(||a||, eps):
// da = dy (b / (ca cb) - y a / (ca ||a||)). This is torch's gradient: it
// clamps the norms under no_grad, so autograd differentiates ||a|| itself
// even where the clamp is active (rows with ||a|| <= eps; 0 for a = 0).
void cosine_sim_bwd(float *da, float *db, const float *dy, const float *a, const float *b, int N, int D,
                    float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *ai = a + (size_t)i * D, *bi = b + (size_t)i * D;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)ai[d] * bi[d];
        double ra = row_norm(ai, D), rb = row_norm(bi, D);
        double ca = fmax(ra, (double)eps), cb = fmax(rb, (double)eps);
        double y = dot / (ca * cb), g = dy[i];
        // d||a||/da = a / ||a|| (torch's norm backward gives 0 at a = 0)
        double ka = ra > 0 ? y / (ca * ra) : 0.0, kb = rb > 0 ? y / (cb * rb) : 0.0;
        for (int d = 0; d < D; d++) {
            if (da) da[(size_t)i * D + d] += (float)(g * (bi[d] / (ca * cb) - ka * ai[d]));
            if (db) db[(size_t)i * D + d] += (float)(g * (ai[d] / (ca * cb) - kb * bi[d]));
        }
    }
}
