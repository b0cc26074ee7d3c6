// vae_attention.c: single-head VAE mid-block attention (see vae_attention.h).
#include "vae_attention.h"

#include <stdio.h>

#include "../kernels/common.h"
#include "fused_linear.h"

void vae_attention_add(VaeAttention *m, ParamTable *t, const char *prefix, int C, int groups, float eps) {
    char p[PARAM_NAME_MAX];
    m->C = C;
#define SUB(name) (snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name), p)
    groupnorm_add(&m->norm, t, SUB("group_norm"), C, groups, eps);
    {  // q/k/v weights in a row, then their biases: one stacked GEMM (fused_linear.h)
        char pq[PARAM_NAME_MAX], pk[PARAM_NAME_MAX], pv[PARAM_NAME_MAX];
        snprintf(pq, sizeof pq, "%s", SUB("to_q"));
        snprintf(pk, sizeof pk, "%s", SUB("to_k"));
        snprintf(pv, sizeof pv, "%s", SUB("to_v"));
        linear_run_add((Linear *const[]){&m->q, &m->k, &m->v}, 3, t, (const char *const[]){pq, pk, pv}, C, C, 1);
    }
    linear_add(&m->out, t, SUB("to_out.0"), C, C, 1);
#undef SUB
}

static LinearRun qkv_run(const VaeAttention *m) { return (LinearRun){{&m->q, &m->k, &m->v}, 3}; }

// One head of width C over HW tokens: q, k, v rows st apart (3C: column
// slices of the fused projection; C: separate blocks), o contiguous [B, HW, C].
static AttnShape attn_shape(int B, int HW, int C, long st) {
    const long sb = HW * st, so = (long)HW * C;
    AttnShape s = {B, 1, HW, HW, C, 0, sb, st, sb, st, sb, st, so, C};
    return s;
}

// Output j (q, k, v) of a q|k|v buffer of M rows in layout `fused`.
#define VIEW(buf, run, fused, j, M) linear_run_ptr(c, (void *)(buf), &(run), (fused), (j), (M))

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
    const LinearRun r = qkv_run(m);
    s.fused = linear_run_fusable(W, &r);
    PUSH(s.qkv, 3 * n);  // [B*HW, 3C] (fused) or 3 x [B*HW, C]
    TRY(linear_run_f(c, W, &r, s.fused, s.qkv, s.n, M));
    PUSH(s.o, n);                     // [B, HW, C]
    PUSHF(s.lse, (size_t)B * HW);     // [B, 1, HW]
    AttnShape as = attn_shape(B, HW, C, linear_run_stride(&r, s.fused));
    OP(c, attention_fwd, s.o, s.lse, VIEW(s.qkv, r, s.fused, 0, M), VIEW(s.qkv, r, s.fused, 1, M),
       VIEW(s.qkv, r, s.fused, 2, M), &as);
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
    void *dout, *dqkv, *dn;
    GPUSH(dout, n);  // d(attention output) [B, HW, C]
    TRY(linear_b(c, W, &m->out, dout, dy, s->o, M));
    const LinearRun r = qkv_run(m);
    const int f = s->fused;
    GPUSH(dqkv, 3 * n);  // layout of s->qkv; zeroed: the attention backward adds
    AttnShape as = attn_shape(s->B, s->HW, C, linear_run_stride(&r, f));
    OP(c, attention_bwd, VIEW(dqkv, r, f, 0, M), VIEW(dqkv, r, f, 1, M), VIEW(dqkv, r, f, 2, M), dout,
       VIEW(s->qkv, r, f, 0, M), VIEW(s->qkv, r, f, 1, M), VIEW(s->qkv, r, f, 2, M), s->o, s->lse, &as);
    GPUSH(dn, n);  // d(group_norm output) [B, HW, C]
    TRY(linear_run_b(c, W, &r, f, dn, dqkv, s->n, M));  // dX and the stacked dW [3C, C], db [3C]
    TRY(groupnorm_b(c, W, &m->norm, dx, dn, s->x, s->mean, s->rstd, s->B, s->HW, 0));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
