// resnet.c: ResnetBlock2D forward and backward (see resnet.h).
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>

#include "../kernels/common.h"

void resnet_add(ResnetBlock *m, ParamTable *t, const char *prefix, int cin, int cout, int temb_channels, int groups,
                float eps) {
    char p[PARAM_NAME_MAX];
    m->cin = cin;
    m->cout = cout;
    m->temb = temb_channels;
    m->has_shortcut = cin != cout;
#define SUB(name) (snprintf(p, sizeof p, "%s%s%s", prefix, prefix[0] ? "." : "", name), p)
    groupnorm_add(&m->norm1, t, SUB("norm1"), cin, groups, eps);
    conv2d_add(&m->conv1, t, SUB("conv1"), cin, cout, 3, 1, 1, 1);
    if (temb_channels > 0) linear_add(&m->temb_proj, t, SUB("time_emb_proj"), temb_channels, cout, 1);
    groupnorm_add(&m->norm2, t, SUB("norm2"), cout, groups, eps);
    conv2d_add(&m->conv2, t, SUB("conv2"), cout, cout, 3, 1, 1, 1);
    if (m->has_shortcut) conv2d_add(&m->shortcut, t, SUB("conv_shortcut"), cin, cout, 1, 1, 0, 1);
#undef SUB
}

void *nn_push_ones(const Ctx *c, size_t n) {
    void *d = nn_push(c, n);
    if (!d) return NULL;
    float *one = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) one[i] = 1.0f;
    void *h = one;
    if (c->dt != DT_F32) {
        h = xmalloc(n * dtype_size(c->dt));
        convert_dtype(h, c->dt, one, DT_F32, n);
    }
    int st = c->be->upload(d, h, n * dtype_size(c->dt));
    if (h != one) free(h);
    free(one);
    if (st != 0) {
        a2f_set_error("ones upload (%s backend): %s", c->be->name, c->be->status_str(st));
        return NULL;
    }
    return d;
}

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

int resnet_f(const Ctx *c, const Weights *W, const ResnetBlock *m, void *y, const void *x, const void *temb, int B,
             int H, int Wd, ResnetSaved *sv) {
    ResnetSaved s = {arena_mark(c->act), x, temb, B, H, Wd};
    const int HW = H * Wd, G = m->norm1.G;
    const size_t nin = (size_t)B * HW * m->cin, nout = (size_t)B * HW * m->cout;
    PUSH(s.h1, nin);  // [B, H, W, cin]
    PUSHF(s.m1, (size_t)B * G);
    PUSHF(s.r1, (size_t)B * G);
    TRY(groupnorm_f(c, W, &m->norm1, s.h1, s.m1, s.r1, x, B, HW, 1));
    PUSH(s.c1, nout);  // [B, H, W, cout]
    TRY(conv2d_f(c, W, &m->conv1, s.c1, s.h1, B, H, Wd));
    if (m->temb > 0) {
        void *tp;
        PUSH(s.ta, (size_t)B * m->temb);  // [B, temb]
        OP(c, silu_fwd, s.ta, temb, (size_t)B * m->temb);
        if (!(s.ones = nn_push_ones(c, HW))) return -1;  // [HW]
        size_t top = arena_mark(c->act);
        PUSH(tp, (size_t)B * m->cout);  // [B, cout]
        TRY(linear_f(c, W, &m->temb_proj, tp, s.ta, B));
        // c1[b] [HW, cout] += ones [HW, 1] @ tp[b] [1, cout]
        OP(c, gemm_batched, 0, 0, HW, m->cout, 1, 1.0f, s.ones, 1, 0, tp, m->cout, m->cout, 1.0f, s.c1, m->cout,
           (long)HW * m->cout, B);
        arena_reset(c->act, top);
    }
    PUSH(s.h2, nout);  // [B, H, W, cout]
    PUSHF(s.m2, (size_t)B * G);
    PUSHF(s.r2, (size_t)B * G);
    TRY(groupnorm_f(c, W, &m->norm2, s.h2, s.m2, s.r2, s.c1, B, HW, 1));
    TRY(conv2d_f(c, W, &m->conv2, y, s.h2, B, H, Wd));
    if (m->has_shortcut) {
        size_t top = arena_mark(c->act);
        void *sc;
        PUSH(sc, nout);  // [B, H, W, cout]
        TRY(conv2d_f(c, W, &m->shortcut, sc, x, B, H, Wd));
        OP(c, add_fwd, y, sc, y, nout);
        arena_reset(c->act, top);
    } else {
        OP(c, add_fwd, y, x, y, nout);
    }
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int resnet_b(const Ctx *c, const Weights *W, const ResnetBlock *m, void *dx, void *dtemb, const void *dy,
             const ResnetSaved *sv) {
    const ResnetSaved *s = sv;
    size_t gmark = arena_mark(c->grad);
    const int B = s->B, H = s->H, Wd = s->W, HW = H * Wd;
    const size_t nin = (size_t)B * HW * m->cin, nout = (size_t)B * HW * m->cout;
    if (m->has_shortcut)
        TRY(conv2d_b(c, W, &m->shortcut, dx, dy, s->x, B, H, Wd));
    else if (dx)
        OP(c, add_bwd, dx, NULL, dy, nout);
    void *dh2, *dc1, *dh1;
    GPUSH(dh2, nout);  // [B, H, W, cout]
    TRY(conv2d_b(c, W, &m->conv2, dh2, dy, s->h2, B, H, Wd));
    GPUSH(dc1, nout);  // [B, H, W, cout]
    TRY(groupnorm_b(c, W, &m->norm2, dc1, dh2, s->c1, s->m2, s->r2, B, HW, 1));
    if (m->temb > 0) {
        void *dtp, *dta;
        GPUSH(dtp, (size_t)B * m->cout);  // [B, cout] = sum over HW of dc1
        OP(c, gemm_batched, 1, 0, 1, m->cout, HW, 1.0f, s->ones, 1, 0, dc1, m->cout, (long)HW * m->cout, 0.0f, dtp,
           m->cout, m->cout, B);
        GPUSH(dta, (size_t)B * m->temb);  // [B, temb]
        TRY(linear_b(c, W, &m->temb_proj, dta, dtp, s->ta, B));
        if (dtemb) OP(c, silu_bwd, dtemb, dta, s->temb, (size_t)B * m->temb);
    }
    GPUSH(dh1, nin);  // [B, H, W, cin]
    TRY(conv2d_b(c, W, &m->conv1, dh1, dc1, s->h1, B, H, Wd));
    TRY(groupnorm_b(c, W, &m->norm1, dx, dh1, s->x, s->m1, s->r1, B, HW, 1));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
