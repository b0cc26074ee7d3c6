// layers.c: Linear, Conv2d, GroupNorm, LayerNorm (see layers.h).
#include "layers.h"

#include <stdio.h>

#include "../kernels/common.h"

int nn_param(ParamTable *t, const char *prefix, const char *name, int ndim, const int64_t *shape, int layout) {
    char key[PARAM_NAME_MAX];
    int n = snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    CHECK(n > 0 && n < (int)sizeof key);
    return params_add_ex(t, key, ndim, shape, layout, 1);
}

// ------------------------------------------------------------------ Linear

void linear_add(Linear *m, ParamTable *t, const char *prefix, int in, int out, int bias) {
    int64_t ws[2] = {out, in}, bs[1] = {out};
    m->in = in;
    m->out = out;
    m->w = nn_param(t, prefix, "weight", 2, ws, PARAM_PLAIN);
    m->b = bias ? nn_param(t, prefix, "bias", 1, bs, PARAM_PLAIN) : -1;
}

int linear_f(const Ctx *c, const Weights *W, const Linear *m, void *y, const void *x, int M) {
    OP(c, linear_fwd, y, x, wptr(W, m->w), m->b >= 0 ? wptr(W, m->b) : NULL, M, m->in, m->out);
    return 0;
}

int linear_b(const Ctx *c, const Weights *W, const Linear *m, void *dx, const void *dy, const void *x, int M) {
    OP(c, linear_bwd, dx, gptr(W, m->w), m->b >= 0 ? gptr(W, m->b) : NULL, dy, x, wptr(W, m->w), M, m->in,
       m->out);
    return 0;
}

// ------------------------------------------------------------------ Conv2d

void conv2d_add(Conv2d *m, ParamTable *t, const char *prefix, int cin, int cout, int k, int stride, int pad,
                int bias) {
    int64_t ws[4] = {cout, k, k, cin}, bs[1] = {cout};
    m->cin = cin;
    m->cout = cout;
    m->k = k;
    m->stride = stride;
    m->pt = m->pb = m->pl = m->pr = pad;
    m->w = nn_param(t, prefix, "weight", 4, ws, PARAM_CONV);
    m->b = bias ? nn_param(t, prefix, "bias", 1, bs, PARAM_PLAIN) : -1;
}

Conv2dShape conv2d_shape(const Conv2d *m, int B, int H, int W) {
    Conv2dShape s = {B, H, W, m->cin, m->cout, m->k, m->k, m->stride, m->stride, m->pt, m->pb, m->pl, m->pr};
    return s;
}

int conv2d_f(const Ctx *c, const Weights *W, const Conv2d *m, void *y, const void *x, int B, int H, int Wd) {
    Conv2dShape s = conv2d_shape(m, B, H, Wd);
    OP(c, conv2d_fwd, y, x, wptr(W, m->w), m->b >= 0 ? wptr(W, m->b) : NULL, &s);
    return 0;
}

int conv2d_b(const Ctx *c, const Weights *W, const Conv2d *m, void *dx, const void *dy, const void *x, int B, int H,
             int Wd) {
    Conv2dShape s = conv2d_shape(m, B, H, Wd);
    OP(c, conv2d_bwd, dx, gptr(W, m->w), m->b >= 0 ? gptr(W, m->b) : NULL, dy, x, wptr(W, m->w), &s);
    return 0;
}

// ------------------------------------------------------------------ GroupNorm

void groupnorm_add(GroupNorm *m, ParamTable *t, const char *prefix, int C, int G, float eps) {
    int64_t s[1] = {C};
    CHECK(C % G == 0);
    m->C = C;
    m->G = G;
    m->eps = eps;
    m->w = nn_param(t, prefix, "weight", 1, s, PARAM_PLAIN);
    m->b = nn_param(t, prefix, "bias", 1, s, PARAM_PLAIN);
}

int groupnorm_f(const Ctx *c, const Weights *W, const GroupNorm *m, void *y, float *mean, float *rstd,
                const void *x, int B, int HW, int silu) {
    OP(c, groupnorm_fwd, y, mean, rstd, x, wptr(W, m->w), wptr(W, m->b), B, HW, m->C, m->G, m->eps, silu);
    return 0;
}

int groupnorm_b(const Ctx *c, const Weights *W, const GroupNorm *m, void *dx, const void *dy, const void *x,
                const float *mean, const float *rstd, int B, int HW, int silu) {
    OP(c, groupnorm_bwd, dx, gptr(W, m->w), gptr(W, m->b), dy, x, mean, rstd, wptr(W, m->w), wptr(W, m->b), B, HW,
       m->C, m->G, silu);
    return 0;
}

// ------------------------------------------------------------------ LayerNorm

void layernorm_add(LayerNorm *m, ParamTable *t, const char *prefix, int C, float eps) {
    int64_t s[1] = {C};
    m->C = C;
    m->eps = eps;
    m->w = nn_param(t, prefix, "weight", 1, s, PARAM_PLAIN);
    m->b = nn_param(t, prefix, "bias", 1, s, PARAM_PLAIN);
}

int layernorm_f(const Ctx *c, const Weights *W, const LayerNorm *m, void *y, float *mean, float *rstd,
                const void *x, int N) {
    OP(c, layernorm_fwd, y, mean, rstd, x, wptr(W, m->w), wptr(W, m->b), N, m->C, m->eps);
    return 0;
}

int layernorm_b(const Ctx *c, const Weights *W, const LayerNorm *m, void *dx, const void *dy, const void *x,
                const float *mean, const float *rstd, int N) {
    OP(c, layernorm_bwd, dx, gptr(W, m->w), gptr(W, m->b), dy, x, mean, rstd, wptr(W, m->w), N, m->C);
    return 0;
}
