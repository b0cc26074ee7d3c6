// attention.c: multi-head scaled-dot-product attention, forward and
// backward, on strided Q/K/V/O views (see AttnShape in ops.h).
//
// Work is done in blocks of ATT_BQ query rows of one (batch, head):
//   S = scale * Q_blk K^T            [bq, Nk]   (gemm on the strided views)
//   P = softmax(S) (max-subtracted, causal keys j > i masked)
//   O_blk = P V                      [bq, D]
// and lse = max + log(sum exp(S - max)) per row is saved. Backward recomputes
// P = exp(S - lse) and, with Di = rowsum(dO * O):
//   dV += P^T dO, dP = dO V^T, dS = P * (dP - Di),
//   dQ += scale dS K, dK += scale dS^T Q.
// The forward is parallel over (b, h, query block); the backward over (b, h),
// since every query block of a head adds into the same dK, dV rows.
#include <math.h>
#include <string.h>

#include "../common.h"
#include "ops.h"

#define ATT_BQ 256  // query rows per block: S block is ATT_BQ * Nk floats
#define ATT_PAR_MIN (1 << 18)  // multiply-adds below which threads cost more than they save

// exp(x) for the max-subtracted scores x <= 0 (masked keys: -inf -> 0), written
// so the compiler vectorises it: 2^n * p(r), r = x - n ln2 (two-part ln2),
// |r| <= ln2/2, p the degree-6 Taylor polynomial (relative error < 2e-7, about
// expf's); below -87 (exp < 1.7e-38, under float's normal range) gives 0.
static inline float fast_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666668f + r * (0.008333334f + r * 0.0013888889f)))));
    union { float f; int i; } b = {.f = p};
    b.i += (int)n << 23;
    return x <= -87.0f ? 0.0f : b.f;
}

// Base pointer of head h of batch b in a strided view.
static inline const float *head_ptr(const float *p, long sb, int b, int h, int D) {
    return p + (size_t)b * sb + (size_t)h * D;
}

// S [bq, Nk] = scale * Q_blk K^T, causal keys j > i set to -inf (i = i0 + row).
static void scores(float *S, const float *qb, long q_st, const float *kb, long k_st, int bq, int Nk, int D,
                   float scale, int causal, int i0) {
    gemm(0, 1, bq, Nk, D, scale, qb, (int)q_st, kb, (int)k_st, 0.0f, S, Nk);
    if (causal)
        for (int r = 0; r < bq; r++)
            for (int j = i0 + r + 1; j < Nk; j++) S[(size_t)r * Nk + j] = -INFINITY;
}

// o [B,Nq,H*D] (strided), lse [B,H,Nq].
void attention_fwd(float *o, float *lse, const float *q, const float *k, const float *v, const AttnShape *s) {
    const int B = s->B, H = s->H, Nq = s->Nq, Nk = s->Nk, D = s->D;
    CHECK(B >= 1 && H >= 1 && Nq >= 1 && Nk >= 1 && D >= 1);
    const float scale = 1.0f / sqrtf((float)D);
    const int nblk = CEIL_DIV(Nq, ATT_BQ);
#pragma omp parallel if ((double)B * H * Nq * Nk * D > ATT_PAR_MIN)
    {
        float *S = xmalloc((size_t)ATT_BQ * Nk * sizeof(float));
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int blk = 0; blk < nblk; blk++) {
                    const int i0 = blk * ATT_BQ, bq = A2F_MIN(ATT_BQ, Nq - i0);
                    const float *qb = head_ptr(q, s->q_sb, b, h, D) + (size_t)i0 * s->q_st;
                    const float *kb = head_ptr(k, s->k_sb, b, h, D);
                    const float *vb = head_ptr(v, s->v_sb, b, h, D);
                    float *ob = o + (size_t)b * s->o_sb + (size_t)h * D + (size_t)i0 * s->o_st;
                    float *lb = lse + ((size_t)b * H + h) * Nq + i0;
                    scores(S, qb, s->q_st, kb, s->k_st, bq, Nk, D, scale, s->causal, i0);
                    for (int r = 0; r < bq; r++) {
                        float *Sr = S + (size_t)r * Nk;
                        float mx = -INFINITY;
                        #pragma omp simd reduction(max : mx)
                        for (int j = 0; j < Nk; j++) mx = Sr[j] > mx ? Sr[j] : mx;
                        float acc[16] = {0};
                        int j = 0;
                        for (; j + 16 <= Nk; j += 16)
#pragma omp simd
                            for (int u = 0; u < 16; u++) {
                                float e = fast_exp(Sr[j + u] - mx);
                                Sr[j + u] = e;
                                acc[u] += e;
                            }
                        double sum = 0;
                        for (int u = 0; u < 16; u++) sum += acc[u];
                        for (; j < Nk; j++) sum += (Sr[j] = expf(Sr[j] - mx));
                        const float inv = (float)(1.0 / sum);
#pragma omp simd
                        for (int j = 0; j < Nk; j++) Sr[j] *= inv;
                        lb[r] = mx + (float)log(sum);
                    }
                    gemm(0, 0, bq, D, Nk, 1.0f, S, Nk, vb, (int)s->v_st, 0.0f, ob, (int)s->o_st);
                }
        free(S);
    }
}

// dq, dk, dv (strides of q, k, v) +=; dout has the strides of o.
void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                   const float *v, const float *o, const float *lse, const AttnShape *s) {
    const int B = s->B, H = s->H, Nq = s->Nq, Nk = s->Nk, D = s->D;
    CHECK(B >= 1 && H >= 1 && Nq >= 1 && Nk >= 1 && D >= 1);
    const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel if ((double)B * H * Nq * Nk * D > ATT_PAR_MIN)
    {
        float *P = xmalloc((size_t)ATT_BQ * Nk * sizeof(float));
        float *dS = xmalloc((size_t)ATT_BQ * Nk * sizeof(float));
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const float *kb = head_ptr(k, s->k_sb, b, h, D);
                const float *vb = head_ptr(v, s->v_sb, b, h, D);
                const float *lb = lse + ((size_t)b * H + h) * Nq;
                for (int i0 = 0; i0 < Nq; i0 += ATT_BQ) {
                    const int bq = A2F_MIN(ATT_BQ, Nq - i0);
                    const float *qb = head_ptr(q, s->q_sb, b, h, D) + (size_t)i0 * s->q_st;
                    const float *ob = head_ptr(o, s->o_sb, b, h, D) + (size_t)i0 * s->o_st;
                    const float *gb = head_ptr(dout, s->o_sb, b, h, D) + (size_t)i0 * s->o_st;
                    // P = exp(S - lse), exactly the forward's probabilities up to rounding
                    scores(P, qb, s->q_st, kb, s->k_st, bq, Nk, D, scale, s->causal, i0);
                    for (int r = 0; r < bq; r++) {
                        float *Pr = P + (size_t)r * Nk;
                        for (int j = 0; j < Nk; j++) Pr[j] = expf(Pr[j] - lb[i0 + r]);
                    }
                    // dV [Nk, D] += P^T [Nk, bq] dO [bq, D]
                    if (dv)
                        gemm(1, 0, Nk, D, bq, 1.0f, P, Nk, gb, (int)s->o_st, 1.0f,
                             dv + (size_t)b * s->v_sb + (size_t)h * D, (int)s->v_st);
                    if (!dq && !dk) continue;
                    // dP [bq, Nk] = dO V^T, then dS = P * (dP - Di), Di = rowsum(dO * O)
                    gemm(0, 1, bq, Nk, D, 1.0f, gb, (int)s->o_st, vb, (int)s->v_st, 0.0f, dS, Nk);
                    for (int r = 0; r < bq; r++) {
                        const float *gr = gb + (size_t)r * s->o_st, *orow = ob + (size_t)r * s->o_st;
                        double di = 0;
                        for (int d = 0; d < D; d++) di += (double)gr[d] * orow[d];
                        float *dSr = dS + (size_t)r * Nk;
                        const float *Pr = P + (size_t)r * Nk;
                        for (int j = 0; j < Nk; j++) dSr[j] = Pr[j] * (dSr[j] - (float)di);
                    }
                    // dQ [bq, D] += scale dS [bq, Nk] K [Nk, D]
                    if (dq)
                        gemm(0, 0, bq, D, Nk, scale, dS, Nk, kb, (int)s->k_st, 1.0f,
                             dq + (size_t)b * s->q_sb + (size_t)h * D + (size_t)i0 * s->q_st, (int)s->q_st);
                    // dK [Nk, D] += scale dS^T [Nk, bq] Q [bq, D]
                    if (dk)
                        gemm(1, 0, Nk, D, bq, scale, dS, Nk, qb, (int)s->q_st, 1.0f,
                             dk + (size_t)b * s->k_sb + (size_t)h * D, (int)s->k_st);
                }
            }
        free(P);
        free(dS);
    }
}
