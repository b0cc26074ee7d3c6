// vae_decoder.c: AutoencoderKL post_quant_conv + decoder, forward and
// backward (see vae.h).
#include <stdio.h>

#include "vae.h"
#include "vae_stage.h"

// Output channels of decoder block i (block_out_channels reversed).
static int rev(const VaeConfig *cfg, int i) { return cfg->block_out[cfg->nblocks - 1 - i]; }

void vae_decoder_add(VaeDecoder *d, ParamTable *t, const VaeConfig *cfg) {
    char p[PARAM_NAME_MAX];
    const int n = cfg->nblocks, G = cfg->norm_num_groups, L = cfg->latent_channels;
    if (cfg->use_post_quant_conv) conv2d_add(&d->post_quant_conv, t, "post_quant_conv", L, L, 1, 1, 0, 1);
    conv2d_add(&d->conv_in, t, "decoder.conv_in", L, rev(cfg, 0), 3, 1, 1, 1);
    vae_mid_add(&d->mid, t, "decoder.mid_block", rev(cfg, 0), G, cfg->mid_attention);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < cfg->layers_per_block + 1; j++) {
            int cin = j > 0 ? rev(cfg, i) : rev(cfg, i > 0 ? i - 1 : 0);
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            resnet_add(&d->res[i][j], t, p, cin, rev(cfg, i), 0, G, 1e-6f);
        }
        if (i < n - 1) {  // nearest 2x, then 3x3 conv pad 1
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            conv2d_add(&d->up[i], t, p, rev(cfg, i), rev(cfg, i), 3, 1, 1, 1);
        }
    }
    groupnorm_add(&d->norm_out, t, "decoder.conv_norm_out", rev(cfg, n - 1), G, 1e-6f);
    conv2d_add(&d->conv_out, t, "decoder.conv_out", rev(cfg, n - 1), cfg->out_channels, 3, 1, 1, 1);
}

void vae_image_hw(const VaeConfig *cfg, int h, int w, int *H, int *W) {
    *H = h << (cfg->nblocks - 1);
    *W = w << (cfg->nblocks - 1);
}

// Largest stage output (elements) of the decoder on a B x h x w latent.
static size_t dec_stage_cap(const VaeConfig *cfg, int B, int h, int w) {
    size_t cap = (size_t)B * h * w * A2F_MAX(cfg->latent_channels, rev(cfg, 0));
    for (int i = 0; i < cfg->nblocks; i++) {
        int c = A2F_MAX(rev(cfg, i), rev(cfg, i > 0 ? i - 1 : 0));
        cap = A2F_MAX(cap, (size_t)B * h * w * c);
        if (i < cfg->nblocks - 1) h *= 2, w *= 2;
    }
    return cap;
}

int vae_decoder_f(const Ctx *c, const Weights *W, const Vae *m, void *img, const void *z, int B, int h, int w,
                  VaeDecSaved *sv) {
    const VaeConfig *cfg = &m->cfg;
    const VaeDecoder *d = &m->dec;
    const int n = cfg->nblocks, G = cfg->norm_num_groups;
    if (h < 1 || w < 1 || B < 1) {
        a2f_set_error("vae decoder: latent %dx%d (batch %d) is empty", h, w, B);
        return -1;
    }
    VaeDecSaved s = {arena_mark(c->act), z, B, h, w};
    VaeStages st;
    TRY(vae_stages_init(&st, c, dec_stage_cap(cfg, B, h, w), 0));
    int H = h, Wd = w;
    void *x = (void *)z, *o;
    if (cfg->use_post_quant_conv) {
        VAE_NEXT(s.pq, &st, (size_t)B * H * Wd * cfg->latent_channels);  // [B, h, w, L]
        TRY(conv2d_f(c, W, &d->post_quant_conv, s.pq, z, B, H, Wd));
        x = s.pq;
    }
    VAE_NEXT(s.h_in, &st, (size_t)B * H * Wd * rev(cfg, 0));  // [B, h, w, C]
    TRY(conv2d_f(c, W, &d->conv_in, s.h_in, x, B, H, Wd));
    VAE_NEXT(x, &st, (size_t)B * H * Wd * rev(cfg, 0));  // [B, h, w, C]
    TRY(vae_mid_f(c, W, &d->mid, x, s.h_in, B, H, Wd, &s.mid));
    for (int i = 0; i < n; i++) {
        const int C = rev(cfg, i);
        for (int j = 0; j < cfg->layers_per_block + 1; j++) {
            VAE_NEXT(o, &st, (size_t)B * H * Wd * C);  // [B, H, W, C_i]
            TRY(resnet_f(c, W, &d->res[i][j], o, x, NULL, B, H, Wd, &s.res[i][j]));
            x = o;
        }
        if (i < n - 1) {
            size_t top = arena_mark(c->act);
            void *u;
            if (!(u = nn_push(c, (size_t)B * 4 * H * Wd * C))) return -1;  // [B, 2H, 2W, C_i]
            OP(c, upsample2x_fwd, u, x, B, H, Wd, C);
            s.up_x[i] = x, s.up_in[i] = u, s.up_h[i] = H, s.up_w[i] = Wd;
            H *= 2, Wd *= 2;
            VAE_NEXT(o, &st, (size_t)B * H * Wd * C);  // [B, 2H, 2W, C_i] (training: above u)
            TRY(conv2d_f(c, W, &d->up[i], o, u, B, H, Wd));
            if (!c->train) arena_reset(c->act, top);  // inference: o is a ping-pong buffer below u
            x = o;
        }
    }
    const size_t P = (size_t)B * H * Wd;
    const int C = rev(cfg, n - 1);
    s.last = x;
    VAE_NEXT(s.g, &st, P * C);  // SiLU(norm_out) [B, H, W, C]
    if (!(s.gm = nn_push_f32(c, (size_t)B * G)) || !(s.gr = nn_push_f32(c, (size_t)B * G))) return -1;
    TRY(groupnorm_f(c, W, &d->norm_out, s.g, s.gm, s.gr, s.last, B, H * Wd, 1));
    TRY(conv2d_f(c, W, &d->conv_out, img, s.g, B, H, Wd));
    s.H = H, s.W = Wd;
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int vae_decoder_b(const Ctx *c, const Weights *W, const Vae *m, void *dz, const void *dimg, const VaeDecSaved *sv) {
    const VaeConfig *cfg = &m->cfg;
    const VaeDecoder *dec = &m->dec;
    const VaeDecSaved *s = sv;
    const int n = cfg->nblocks, B = s->B;
    size_t gmark = arena_mark(c->grad);
    VaeStages st;
    TRY(vae_stages_init(&st, c, dec_stage_cap(cfg, B, s->h, s->w), 1));
    int H = s->H, Wd = s->W;
    const void *d = dimg;
    void *dn;
    VAE_NEXT(dn, &st, (size_t)B * H * Wd * rev(cfg, n - 1));
    TRY(conv2d_b(c, W, &dec->conv_out, dn, d, s->g, B, H, Wd));
    d = dn;
    VAE_NEXT(dn, &st, (size_t)B * H * Wd * rev(cfg, n - 1));
    TRY(groupnorm_b(c, W, &dec->norm_out, dn, d, s->last, s->gm, s->gr, B, H * Wd, 1));
    d = dn;
    for (int i = n - 1; i >= 0; i--) {
        const int C = rev(cfg, i);
        if (i < n - 1) {
            size_t top = arena_mark(c->grad);
            void *du;
            if (!(du = nn_gpush(c, (size_t)B * H * Wd * C))) return -1;  // [B, 2H, 2W, C_i]
            TRY(conv2d_b(c, W, &dec->up[i], du, d, s->up_in[i], B, H, Wd));
            H = s->up_h[i], Wd = s->up_w[i];
            VAE_NEXT(dn, &st, (size_t)B * H * Wd * C);
            OP(c, upsample2x_bwd, dn, du, B, H, Wd, C);
            arena_reset(c->grad, top);
            d = dn;
        }
        for (int j = cfg->layers_per_block; j >= 0; j--) {
            VAE_NEXT(dn, &st, (size_t)B * H * Wd * dec->res[i][j].cin);
            TRY(resnet_b(c, W, &dec->res[i][j], dn, NULL, d, &s->res[i][j]));
            d = dn;
        }
    }
    VAE_NEXT(dn, &st, (size_t)B * H * Wd * rev(cfg, 0));
    TRY(vae_mid_b(c, W, &dec->mid, dn, d, &s->mid));
    d = dn;
    if (cfg->use_post_quant_conv) {
        VAE_NEXT(dn, &st, (size_t)B * H * Wd * cfg->latent_channels);
        TRY(conv2d_b(c, W, &dec->conv_in, dn, d, s->pq, B, H, Wd));
        TRY(conv2d_b(c, W, &dec->post_quant_conv, dz, dn, s->z, B, H, Wd));
    } else {
        TRY(conv2d_b(c, W, &dec->conv_in, dz, d, s->z, B, H, Wd));
    }
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
