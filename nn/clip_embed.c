// clip_embed.c: token + position embeddings with the Arc2Face ID injection
// (see clip.h), forward and backward.
#include "clip_embed.h"

#include "../kernels/common.h"

// Upstream divides by torch.norm with no epsilon; F.normalize's 1e-12 only
// differs for a zero vector (upstream NaN, here zeros).
#define ID_NORM_EPS 1e-12f

static void *row(const Ctx *c, const void *base, size_t i, int width) {
    return (char *)base + i * (size_t)width * nn_elt(c);
}

static int is_id(const ClipText *m, const ClipSaved *sv, int b, int p) {
    return sv->id && sv->ids[(size_t)b * sv->L + p] == m->id_token;
}

int clip_embed_f(const Ctx *c, const Weights *W, const ClipText *m, ClipSaved *sv) {
    const int B = sv->B, L = sv->L, D = m->cfg.hidden, V = m->cfg.vocab, K = m->id_dim, pad = D - K;
    void *x = sv->xs[0];  // [B*L, D]
    OP(c, embedding_fwd, x, sv->ids_dev, wptr(W, m->tok), B * L, V, D);
    sv->idn = NULL;
    if (sv->id) {
        const void *idn = sv->id;  // [B, K]
        if (m->id_normalize) {
            void *t = nn_push(c, (size_t)B * K);
            if (!t) return -1;
            OP(c, l2norm_fwd, t, sv->id, B, K, ID_NORM_EPS);
            idn = t;
        }
        sv->idn = idn;
        const void *zeros = idn;  // [pad] zeros (any valid pointer when pad == 0)
        if (pad > 0) {
            void *z = nn_push(c, (size_t)pad);
            if (!z) return -1;
            if (c->be->memset(z, 0, (size_t)pad * nn_elt(c)) != 0) return -1;
            zeros = z;
        }
        // x[b, p] = [idn[b] | 0]: one row concat written in place
        for (int b = 0; b < B; b++)
            for (int p = 0; p < L; p++)
                if (is_id(m, sv, b, p)) OP(c, concat_fwd, row(c, x, (size_t)b * L + p, D), row(c, idn, b, K), zeros, 1, K, pad);
    }
    // + position_embedding[0..L-1], the same [L, D] block for every batch row
    for (int b = 0; b < B; b++) {
        void *xb = row(c, x, (size_t)b * L, D);
        OP(c, add_fwd, xb, xb, wptr(W, m->pos), (size_t)L * D);
    }
    return 0;
}

int clip_embed_b(const Ctx *c, const Weights *W, const ClipText *m, void *d_id, const void *dx0,
                 const ClipSaved *sv) {
    const int B = sv->B, L = sv->L, D = m->cfg.hidden, V = m->cfg.vocab, K = m->id_dim, pad = D - K;
    float *dpos = gptr(W, m->pos), *dtok = gptr(W, m->tok);
    // position_embedding rows 0..L-1 [L*D] += sum over the batch of dx0 [B, L*D]
    if (dpos) OP(c, bias_grad, dpos, dx0, B, L * D);
    // token_embedding: every position except the overwritten id positions
    if (dtok) {
        if (!sv->id) {
            OP(c, embedding_bwd, dtok, dx0, sv->ids_dev, B * L, V, D);
        } else {
            for (int b = 0; b < B; b++) {
                int start = 0;  // first position of the current run of text tokens
                for (int p = 0; p <= L; p++) {
                    if (p < L && !is_id(m, sv, b, p)) continue;
                    const size_t i0 = (size_t)b * L + start;
                    if (p > start) OP(c, embedding_bwd, dtok, row(c, dx0, i0, D), sv->ids_dev + i0, p - start, V, D);
                    start = p + 1;
                }
            }
        }
    }
    if (!d_id || !sv->id) return 0;
    void *dn = d_id;  // [B, K] gradient of the injected vector
    if (m->id_normalize && !(dn = nn_gpush(c, (size_t)B * K))) return -1;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < L; p++)
            if (is_id(m, sv, b, p)) OP(c, concat_bwd, row(c, dn, b, K), NULL, row(c, dx0, (size_t)b * L + p, D), 1, K, pad);
    if (m->id_normalize) OP(c, l2norm_bwd, d_id, dn, sv->id, B, K, ID_NORM_EPS);
    return 0;
}
