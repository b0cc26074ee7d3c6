// iresnet_block.c: IBasicBlock / bottleneck_IR(_SE) forward and backward (see iresnet_block.h).
#include "iresnet_block.h"

#include <stdio.h>

#include "../kernels/common.h"

void irblock_add(IRBlock *m, ParamTable *t, const char *prefix, int style, int se, int cin, int cout, int stride,
                 int *nstats) {
    char p[PARAM_NAME_MAX];
#define SUB(name) (snprintf(p, sizeof p, "%s.%s", prefix, name), p)
    m->style = style;
    m->se = style == IRES_TREB1EN && se;
    m->cin = cin;
    m->cout = cout;
    m->stride = stride;
    m->red = cout / 16;
    CHECK(!m->se || m->red >= 1);
    int64_t ps[1] = {cout};
    if (style == IRES_INSIGHTFACE) {
        m->has_down = stride != 1 || cin != cout;
        batchnorm_add(&m->bn1, t, SUB("bn1"), cin, 1, nstats);
        conv2d_add(&m->conv1, t, SUB("conv1"), cin, cout, 3, 1, 1, 0);
        batchnorm_add(&m->bn2, t, SUB("bn2"), cout, 1, nstats);
        m->prelu = nn_param(t, prefix, "prelu.weight", 1, ps, PARAM_PLAIN);
        conv2d_add(&m->conv2, t, SUB("conv2"), cout, cout, 3, stride, 1, 0);
        batchnorm_add(&m->bn3, t, SUB("bn3"), cout, 1, nstats);
        if (m->has_down) {
            conv2d_add(&m->down, t, SUB("downsample.0"), cin, cout, 1, stride, 0, 0);
            batchnorm_add(&m->down_bn, t, SUB("downsample.1"), cout, 1, nstats);
        }
    } else {
        m->has_down = cin != cout;
        if (m->has_down) {
            conv2d_add(&m->down, t, SUB("shortcut_layer.0"), cin, cout, 1, stride, 0, 0);
            batchnorm_add(&m->down_bn, t, SUB("shortcut_layer.1"), cout, 1, nstats);
        }
        batchnorm_add(&m->bn1, t, SUB("res_layer.0"), cin, 1, nstats);
        conv2d_add(&m->conv1, t, SUB("res_layer.1"), cin, cout, 3, 1, 1, 0);
        m->prelu = nn_param(t, prefix, "res_layer.2.weight", 1, ps, PARAM_PLAIN);
        conv2d_add(&m->conv2, t, SUB("res_layer.3"), cout, cout, 3, stride, 1, 0);
        batchnorm_add(&m->bn3, t, SUB("res_layer.4"), cout, 1, nstats);
        if (m->se) {
            conv2d_add(&m->se1, t, SUB("res_layer.5.fc1"), cout, m->red, 1, 1, 0, 0);
            conv2d_add(&m->se2, t, SUB("res_layer.5.fc2"), m->red, cout, 1, 1, 0, 0);
        }
    }
#undef SUB
}

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

// MaxPool2d(1, s): a strided subsample (an average over 1x1 windows).
static Pool2dShape subsample_shape(int B, int H, int W, int C, int s) {
    Pool2dShape p = {B, H, W, C, 1, 1, s, s, 0, 0, 0, 1};
    return p;
}

int irblock_f(const Ctx *c, const Weights *W, const IRBlock *m, const BnMode *bn, void *y, const void *x, int B,
              int H, int Wd, IRBlockSaved *sv) {
    IRBlockSaved s = {arena_mark(c->act), x, B, H, Wd, irblock_out(m, H), irblock_out(m, Wd)};
    const int P = B * H * Wd, Po = B * s.Ho * s.Wo;
    const size_t nin = (size_t)P * m->cin, nmid = (size_t)P * m->cout, nout = (size_t)Po * m->cout;
    if (bn->train)
        for (int i = 0; i < 4; i++) {
            int C = i == 0 ? m->cin : m->cout;
            PUSHF(s.st[i][0], C);  // mean [C]
            PUSHF(s.st[i][1], C);  // rstd [C]
        }
    PUSH(s.a1, nin);  // [B, H, W, cin]
    TRY(batchnorm_f(c, W, &m->bn1, bn, s.a1, s.st[0][0], s.st[0][1], x, P));
    PUSH(s.c1, nmid);  // [B, H, W, cout]
    TRY(conv2d_f(c, W, &m->conv1, s.c1, s.a1, B, H, Wd));
    s.a2 = s.c1;
    if (m->style == IRES_INSIGHTFACE) {
        PUSH(s.a2, nmid);  // [B, H, W, cout]
        TRY(batchnorm_f(c, W, &m->bn2, bn, s.a2, s.st[1][0], s.st[1][1], s.c1, P));
    }
    PUSH(s.p, nmid);  // [B, H, W, cout]
    OP(c, prelu_fwd, s.p, s.a2, wptr(W, m->prelu), (size_t)P, m->cout);
    PUSH(s.c2, nout);  // [B, Ho, Wo, cout]
    TRY(conv2d_f(c, W, &m->conv2, s.c2, s.p, B, H, Wd));
    if (m->se) {
        const int HWo = s.Ho * s.Wo;
        PUSH(s.r, nout);  // [B, Ho, Wo, cout]
        TRY(batchnorm_f(c, W, &m->bn3, bn, s.r, s.st[2][0], s.st[2][1], s.c2, Po));
        PUSH(s.g, (size_t)B * m->cout);     // [B, cout]
        PUSH(s.s1, (size_t)B * m->red);     // [B, red]
        PUSH(s.s1r, (size_t)B * m->red);    // [B, red]
        PUSH(s.s2, (size_t)B * m->cout);    // [B, cout]
        PUSH(s.sg, (size_t)B * m->cout);    // [B, cout]
        OP(c, global_avgpool_fwd, s.g, s.r, B, HWo, m->cout);
        OP(c, linear_fwd, s.s1, s.g, wptr(W, m->se1.w), NULL, B, m->cout, m->red);
        OP(c, relu_fwd, s.s1r, s.s1, (size_t)B * m->red);
        OP(c, linear_fwd, s.s2, s.s1r, wptr(W, m->se2.w), NULL, B, m->red, m->cout);
        OP(c, sigmoid_fwd, s.sg, s.s2, (size_t)B * m->cout);
        OP(c, channel_scale_fwd, y, s.r, s.sg, B, HWo, m->cout);
    } else {
        TRY(batchnorm_f(c, W, &m->bn3, bn, y, s.st[2][0], s.st[2][1], s.c2, Po));
    }
    if (m->has_down) {
        PUSH(s.d, nout);  // [B, Ho, Wo, cout]
        TRY(conv2d_f(c, W, &m->down, s.d, x, B, H, Wd));
        size_t top = arena_mark(c->act);
        void *dn;
        PUSH(dn, nout);  // [B, Ho, Wo, cout]
        TRY(batchnorm_f(c, W, &m->down_bn, bn, dn, s.st[3][0], s.st[3][1], s.d, Po));
        OP(c, add_fwd, y, y, dn, nout);
        arena_reset(c->act, top);
    } else if (m->stride == 1) {
        OP(c, add_fwd, y, y, x, nout);
    } else {
        size_t top = arena_mark(c->act);
        void *sub;
        PUSH(sub, nout);  // [B, Ho, Wo, cout]
        Pool2dShape ps = subsample_shape(B, H, Wd, m->cout, m->stride);
        OP(c, avgpool2d_fwd, sub, x, &ps);
        OP(c, add_fwd, y, y, sub, nout);
        arena_reset(c->act, top);
    }
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int irblock_b(const Ctx *c, const Weights *W, const IRBlock *m, const BnMode *bn, void *dx, const void *dy,
              const IRBlockSaved *sv) {
    const IRBlockSaved *s = sv;
    size_t gmark = arena_mark(c->grad);
    const int B = s->B, H = s->H, Wd = s->W, P = B * H * Wd, Po = B * s->Ho * s->Wo, HWo = s->Ho * s->Wo;
    const size_t nin = (size_t)P * m->cin, nmid = (size_t)P * m->cout, nout = (size_t)Po * m->cout;
    // shortcut
    if (m->has_down) {
        void *dd;
        GPUSH(dd, nout);  // [B, Ho, Wo, cout]
        TRY(batchnorm_b(c, W, &m->down_bn, bn, dd, dy, s->d, s->st[3][0], s->st[3][1], Po));
        TRY(conv2d_b(c, W, &m->down, dx, dd, s->x, B, H, Wd));
    } else if (dx && m->stride == 1) {
        OP(c, add_bwd, dx, NULL, dy, nout);
    } else if (dx) {
        Pool2dShape ps = subsample_shape(B, H, Wd, m->cout, m->stride);
        OP(c, avgpool2d_bwd, dx, dy, &ps);
    }
    // residual branch
    const void *dr = dy;
    if (m->se) {
        void *dres, *dsg, *ds2, *ds1r, *ds1, *dg;
        GPUSH(dres, nout);                  // [B, Ho, Wo, cout]
        GPUSH(dsg, (size_t)B * m->cout);    // [B, cout]
        GPUSH(ds2, (size_t)B * m->cout);    // [B, cout]
        GPUSH(ds1r, (size_t)B * m->red);    // [B, red]
        GPUSH(ds1, (size_t)B * m->red);     // [B, red]
        GPUSH(dg, (size_t)B * m->cout);     // [B, cout]
        OP(c, channel_scale_bwd, dres, dsg, dy, s->r, s->sg, B, HWo, m->cout);
        OP(c, sigmoid_bwd, ds2, dsg, s->s2, (size_t)B * m->cout);
        OP(c, linear_bwd, ds1r, gptr(W, m->se2.w), NULL, ds2, s->s1r, wptr(W, m->se2.w), B, m->red, m->cout);
        OP(c, relu_bwd, ds1, ds1r, s->s1, (size_t)B * m->red);
        OP(c, linear_bwd, dg, gptr(W, m->se1.w), NULL, ds1, s->g, wptr(W, m->se1.w), B, m->cout, m->red);
        OP(c, global_avgpool_bwd, dres, dg, B, HWo, m->cout);
        dr = dres;
    }
    void *dc2, *dp, *da2, *dc1, *da1;
    GPUSH(dc2, nout);  // [B, Ho, Wo, cout]
    TRY(batchnorm_b(c, W, &m->bn3, bn, dc2, dr, s->c2, s->st[2][0], s->st[2][1], Po));
    GPUSH(dp, nmid);  // [B, H, W, cout]
    TRY(conv2d_b(c, W, &m->conv2, dp, dc2, s->p, B, H, Wd));
    GPUSH(da2, nmid);  // [B, H, W, cout]
    OP(c, prelu_bwd, da2, gptr(W, m->prelu), dp, s->a2, wptr(W, m->prelu), (size_t)P, m->cout);
    dc1 = da2;
    if (m->style == IRES_INSIGHTFACE) {
        GPUSH(dc1, nmid);  // [B, H, W, cout]
        TRY(batchnorm_b(c, W, &m->bn2, bn, dc1, da2, s->c1, s->st[1][0], s->st[1][1], P));
    }
    GPUSH(da1, nin);  // [B, H, W, cin]
    TRY(conv2d_b(c, W, &m->conv1, da1, dc1, s->a1, B, H, Wd));
    TRY(batchnorm_b(c, W, &m->bn1, bn, dx, da1, s->x, s->st[0][0], s->st[0][1], P));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
