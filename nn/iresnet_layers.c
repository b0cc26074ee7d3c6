// iresnet_layers.c: BatchNorm leaf (see iresnet_layers.h).
#include "iresnet_layers.h"

#include <stdio.h>

#include "../kernels/common.h"

void batchnorm_add(BatchNorm *m, ParamTable *t, const char *prefix, int C, int weight_trainable, int *nstats) {
    int64_t s[1] = {C};
    char key[PARAM_NAME_MAX];
#define KEY(name) (snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", name), key)
    m->C = C;
    m->eps = 1e-5f;
    m->momentum = 0.1f;
    m->w = params_add_ex(t, KEY("weight"), 1, s, PARAM_PLAIN, weight_trainable);
    m->b = params_add_ex(t, KEY("bias"), 1, s, PARAM_PLAIN, 1);
    m->rm = params_add_ex(t, KEY("running_mean"), 1, s, PARAM_PLAIN, 0);
    m->rv = params_add_ex(t, KEY("running_var"), 1, s, PARAM_PLAIN, 0);
#undef KEY
    m->soff = *nstats;
    *nstats += 2 * C;
}

// fp32 running mean / var of m (see the order in iresnet_layers.h), or -1.
static int bn_stats(const Weights *W, const BatchNorm *m, const BnMode *mode, float **mean, float **var) {
    const ParamEntry *e = W->t.entries;
    if (W->master) {
        *mean = W->master + e[m->rm].offset;
        *var = W->master + e[m->rv].offset;
    } else if (W->dt == DT_F32) {
        *mean = (float *)W->w + e[m->rm].offset;
        *var = (float *)W->w + e[m->rv].offset;
    } else if (mode->stats32) {
        *mean = mode->stats32 + m->soff;
        *var = mode->stats32 + m->soff + m->C;
    } else {
        a2f_set_error("BatchNorm %s: %s weights without an fp32 master hold no fp32 running statistics "
                      "(load with iresnet_load or call iresnet_bind_stats)",
                      e[m->rm].name, dtype_name(W->dt));
        return -1;
    }
    return 0;
}

int batchnorm_f(const Ctx *c, const Weights *W, const BatchNorm *m, const BnMode *mode, void *y, float *mean,
                float *rstd, const void *x, int N) {
    float *rm, *rv;
    TRY(bn_stats(W, m, mode, &rm, &rv));
    const void *g = m->w >= 0 ? wptr(W, m->w) : NULL, *b = m->b >= 0 ? wptr(W, m->b) : NULL;
    if (mode->train) {
        if (N < 2) {
            a2f_set_error("BatchNorm %s: training mode needs more than one value per channel (got %d)",
                          W->t.entries[m->rm].name, N);
            return -1;
        }
        OP(c, batchnorm_fwd_train, y, mean, rstd, rm, rv, x, g, b, N, m->C, m->eps, m->momentum);
    } else {
        OP(c, batchnorm_fwd_infer, y, x, g, b, rm, rv, N, m->C, m->eps);
    }
    return 0;
}

int batchnorm_b(const Ctx *c, const Weights *W, const BatchNorm *m, const BnMode *mode, void *dx, const void *dy,
                const void *x, const float *mean, const float *rstd, int N) {
    const void *g = m->w >= 0 ? wptr(W, m->w) : NULL;
    float *dg = m->w >= 0 ? gptr(W, m->w) : NULL, *db = m->b >= 0 ? gptr(W, m->b) : NULL;
    if (mode->train) {
        OP(c, batchnorm_bwd_train, dx, dg, db, dy, x, mean, rstd, g, N, m->C);
    } else {
        float *rm, *rv;
        TRY(bn_stats(W, m, mode, &rm, &rv));
        OP(c, batchnorm_bwd_infer, dx, dg, db, dy, x, g, rm, rv, N, m->C, m->eps);
    }
    return 0;
}
