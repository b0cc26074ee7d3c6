// vae_attention.c: single-head VAE mid-block attention (see vae_attention.h).
#include "vae_attention.h"

#include <stdio.h>

#include "../kernels/common.h"

void vae_attention_add(VaeAttention *m, ParamTable *t, const char *prefix, int C, int groups, float eps) {
    char p[PARAM_NAME_MAX];
    m->C = C;
#define SUB(name) (snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name), p)
    groupnorm_add(&m->norm, t, SUB("group_norm"), C, groups, eps);
    linear_add(&m->q, t, SUB("to_q"), C, C, 1);
    linear_add(&m->k, t, SUB("to_k"), C, C, 1);
    linear_add(&m->v, t, SUB("to_v"), C, C, 1);
    linear_add(&m->out, t, SUB("to_out.0"), C, C, 1);
#undef SUB
}

// One head of width C over HW tokens, contiguous [B, HW, C] views.
static AttnShape attn_shape(int B, int HW, int C) {
    long sb = (long)HW * C;
    AttnShape s = {B, 1, HW, HW, C, 0, sb, C, sb, C, sb, C, sb, C};
    return s;
}

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

int vae_attention_f(const Ctx *c, const Weights *W, const VaeAttention *m, void *y, const void *x, int B, int HW,
                    VaeAttnSaved *sv) {
    VaeAttnSaved s = {arena_mark(c->act), x, B, HW};
    const int C = m->C, M = B * HW;
    const size_t n = (size_t)M * C;
    PUSH(s.n, n);  // [B, HW, C]
    PUSHF(s.mean, (size_t)B * m->norm.G);
    PUSHF(s.rstd, (size_t)B * m->norm.G);
    TRY(groupnorm_f(c, W, &m->norm, s.n, s.mean, s.rstd, x, B, HW, 0));
    PUSH(s.q, n);  // [B, HW, C] each
    PUSH(s.k, n);
    PUSH(s.v, n);
    TRY(linear_f(c, W, &m->q, s.q, s.n, M));
    TRY(linear_f(c, W, &m->k, s.k, s.n, M));
    TRY(linear_f(c, W, &m->v, s.v, s.n, M));
    PUSH(s.o, n);                     // [B, HW, C]
    PUSHF(s.lse, (size_t)B * HW);     // [B, 1, HW]
    AttnShape as = attn_shape(B, HW, C);
    OP(c, attention_fwd, s.o, s.lse, s.q, s.k, s.v, &as);
    TRY(linear_f(c, W, &m->out, y, s.o, M));
    OP(c, add_fwd, y, y, x, n);  // residual (rescale_output_factor 1)
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int vae_attention_b(const Ctx *c, const Weights *W, const VaeAttention *m, void *dx, const void *dy,
                    const VaeAttnSaved *sv) {
    const VaeAttnSaved *s = sv;
    size_t gmark = arena_mark(c->grad);
    const int C = m->C, M = s->B * s->HW;
    const size_t n = (size_t)M * C;
    OP(c, add_bwd, dx, NULL, dy, n);  // residual
    void *dout, *dq, *dk, *dv, *dn;
    GPUSH(dout, n);  // d(attention output) [B, HW, C]
    TRY(linear_b(c, W, &m->out, dout, dy, s->o, M));
    GPUSH(dq, n);  // [B, HW, C] each
    GPUSH(dk, n);
    GPUSH(dv, n);
    AttnShape as = attn_shape(s->B, s->HW, C);
    OP(c, attention_bwd, dq, dk, dv, dout, s->q, s->k, s->v, s->o, s->lse, &as);
    GPUSH(dn, n);  // d(group_norm output) [B, HW, C]
    TRY(linear_b(c, W, &m->q, dn, dq, s->n, M));
    TRY(linear_b(c, W, &m->k, dn, dk, s->n, M));
    TRY(linear_b(c, W, &m->v, dn, dv, s->n, M));
    TRY(groupnorm_b(c, W, &m->norm, dx, dn, s->x, s->mean, s->rstd, s->B, s->HW, 0));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
