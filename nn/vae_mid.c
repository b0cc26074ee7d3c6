// vae_mid.c: the AutoencoderKL mid block (UNetMidBlock2D without temb):
// resnet, single-head attention (when mid_block_add_attention), resnet.
#include <stdio.h>

#include "../kernels/common.h"
#include "vae.h"

void vae_mid_add(VaeMid *m, ParamTable *t, const char *prefix, int C, int groups, int attn) {
    char p[PARAM_NAME_MAX];
    snprintf(p, sizeof p, "%s.resnets.0", prefix);
    resnet_add(&m->res0, t, p, C, C, 0, groups, 1e-6f);
    m->has_attn = attn;
    if (attn) {
        snprintf(p, sizeof p, "%s.attentions.0", prefix);
        vae_attention_add(&m->attn, t, p, C, groups, 1e-6f);
    }
    snprintf(p, sizeof p, "%s.resnets.1", prefix);
    resnet_add(&m->res1, t, p, C, C, 0, groups, 1e-6f);
}

int vae_mid_f(const Ctx *c, const Weights *W, const VaeMid *m, void *y, const void *x, int B, int H, int Wd,
              VaeMidSaved *sv) {
    VaeMidSaved s = {arena_mark(c->act)};
    const size_t n = (size_t)B * H * Wd * m->res0.cout;
    if (!(s.h0 = nn_push(c, n))) return -1;  // [B, H, W, C]
    TRY(resnet_f(c, W, &m->res0, s.h0, x, NULL, B, H, Wd, &s.res0));
    const void *r1_in = s.h0;
    if (m->has_attn) {
        if (!(s.h1 = nn_push(c, n))) return -1;  // [B, H, W, C]
        TRY(vae_attention_f(c, W, &m->attn, s.h1, s.h0, B, H * Wd, &s.attn));
        r1_in = s.h1;
    }
    TRY(resnet_f(c, W, &m->res1, y, r1_in, NULL, B, H, Wd, &s.res1));
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int vae_mid_b(const Ctx *c, const Weights *W, const VaeMid *m, void *dx, const void *dy, const VaeMidSaved *sv) {
    size_t gmark = arena_mark(c->grad);
    const size_t n = (size_t)sv->res0.B * sv->res0.H * sv->res0.W * m->res0.cout;
    void *dh1 = NULL, *dh0;
    if (m->has_attn && !(dh1 = nn_gpush(c, n))) return -1;  // [B, H, W, C]
    if (!(dh0 = nn_gpush(c, n))) return -1;                   // [B, H, W, C]
    TRY(resnet_b(c, W, &m->res1, m->has_attn ? dh1 : dh0, NULL, dy, &sv->res1));
    if (m->has_attn) TRY(vae_attention_b(c, W, &m->attn, dh0, dh1, &sv->attn));
    TRY(resnet_b(c, W, &m->res0, dx, NULL, dh0, &sv->res0));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, sv->mark);
    return 0;
}
