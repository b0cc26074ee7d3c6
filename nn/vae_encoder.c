// vae_encoder.c: AutoencoderKL encoder + quant_conv, forward and backward
// (see vae.h).
#include <stdio.h>

#include "vae.h"
#include "vae_stage.h"

void vae_encoder_add(VaeEncoder *e, ParamTable *t, const VaeConfig *cfg) {
    char p[PARAM_NAME_MAX];
    const int n = cfg->nblocks, G = cfg->norm_num_groups, *bo = cfg->block_out;
    conv2d_add(&e->conv_in, t, "encoder.conv_in", cfg->in_channels, bo[0], 3, 1, 1, 1);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < cfg->layers_per_block; j++) {
            int cin = j > 0 ? bo[i] : i > 0 ? bo[i - 1] : bo[0];
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            resnet_add(&e->res[i][j], t, p, cin, bo[i], 0, G, 1e-6f);
        }
        if (i < n - 1) {  // F.pad(x, (0, 1, 0, 1)) then 3x3 stride 2, padding 0
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            conv2d_add(&e->down[i], t, p, bo[i], bo[i], 3, 2, 0, 1);
            e->down[i].pb = e->down[i].pr = 1;
        }
    }
    vae_mid_add(&e->mid, t, "encoder.mid_block", bo[n - 1], G, cfg->mid_attention);
    groupnorm_add(&e->norm_out, t, "encoder.conv_norm_out", bo[n - 1], G, 1e-6f);
    conv2d_add(&e->conv_out, t, "encoder.conv_out", bo[n - 1], 2 * cfg->latent_channels, 3, 1, 1, 1);
    if (cfg->use_quant_conv)
        conv2d_add(&e->quant_conv, t, "quant_conv", 2 * cfg->latent_channels, 2 * cfg->latent_channels, 1, 1, 0, 1);
}

void vae_latent_hw(const VaeConfig *cfg, int H, int W, int *h, int *w) {
    for (int i = 0; i < cfg->nblocks - 1; i++) H = (H - 2) / 2 + 1, W = (W - 2) / 2 + 1;
    *h = H;
    *w = W;
}

// Largest stage output (elements) of the encoder on a B x H x W image.
static size_t enc_stage_cap(const VaeConfig *cfg, int B, int H, int W) {
    size_t cap = 0;
    const int *bo = cfg->block_out;
    for (int i = 0; i < cfg->nblocks; i++) {
        int c = A2F_MAX(bo[i], i > 0 ? bo[i - 1] : bo[0]);
        cap = A2F_MAX(cap, (size_t)B * H * W * c);
        if (i < cfg->nblocks - 1) H = (H - 2) / 2 + 1, W = (W - 2) / 2 + 1;
    }
    return A2F_MAX(cap, (size_t)B * H * W * 2 * cfg->latent_channels);
}

int vae_encoder_f(const Ctx *c, const Weights *W, const Vae *m, void *moments, const void *x, int B, int H, int Wd,
                  VaeEncSaved *sv) {
    const VaeConfig *cfg = &m->cfg;
    const VaeEncoder *e = &m->enc;
    const int n = cfg->nblocks, G = cfg->norm_num_groups, L2 = 2 * cfg->latent_channels;
    if (H < 2 || Wd < 2 || B < 1) {
        a2f_set_error("vae encoder: image %dx%d (batch %d) too small", H, Wd, B);
        return -1;
    }
    VaeEncSaved s = {arena_mark(c->act), x, B, H, Wd};
    VaeStages st;
    TRY(vae_stages_init(&st, c, enc_stage_cap(cfg, B, H, Wd), 0));
    void *h, *o;
    VAE_NEXT(h, &st, (size_t)B * H * Wd * cfg->block_out[0]);  // [B, H, W, bo0]
    TRY(conv2d_f(c, W, &e->conv_in, h, x, B, H, Wd));
    s.h_in = h;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < cfg->layers_per_block; j++) {
            VAE_NEXT(o, &st, (size_t)B * H * Wd * cfg->block_out[i]);  // [B, H, W, bo_i]
            TRY(resnet_f(c, W, &e->res[i][j], o, h, NULL, B, H, Wd, &s.res[i][j]));
            h = o;
        }
        if (i < n - 1) {
            Conv2dShape cs = conv2d_shape(&e->down[i], B, H, Wd);
            int Ho = conv2d_out_h(&cs), Wo = conv2d_out_w(&cs);
            VAE_NEXT(o, &st, (size_t)B * Ho * Wo * cfg->block_out[i]);  // [B, H/2, W/2, bo_i]
            TRY(conv2d_f(c, W, &e->down[i], o, h, B, H, Wd));
            s.down_in[i] = h, s.down_h[i] = H, s.down_w[i] = Wd;
            h = o, H = Ho, Wd = Wo;
        }
    }
    const int C = cfg->block_out[n - 1];
    const size_t P = (size_t)B * H * Wd;
    VAE_NEXT(o, &st, P * C);  // [B, h, w, C]
    TRY(vae_mid_f(c, W, &e->mid, o, h, B, H, Wd, &s.mid));
    s.mid_out = o;
    VAE_NEXT(s.g, &st, P * C);  // SiLU(norm_out) [B, h, w, C]
    if (!(s.gm = nn_push_f32(c, (size_t)B * G)) || !(s.gr = nn_push_f32(c, (size_t)B * G))) return -1;
    TRY(groupnorm_f(c, W, &e->norm_out, s.g, s.gm, s.gr, s.mid_out, B, H * Wd, 1));
    if (cfg->use_quant_conv) {
        VAE_NEXT(s.co, &st, P * L2);  // [B, h, w, 2L]
        TRY(conv2d_f(c, W, &e->conv_out, s.co, s.g, B, H, Wd));
        TRY(conv2d_f(c, W, &e->quant_conv, moments, s.co, B, H, Wd));
    } else {
        TRY(conv2d_f(c, W, &e->conv_out, moments, s.g, B, H, Wd));
    }
    s.h = H, s.w = Wd;
    if (c->train) {
        CHECK(sv);
        *sv = s;
    } else {
        arena_reset(c->act, s.mark);
    }
    return 0;
}

int vae_encoder_b(const Ctx *c, const Weights *W, const Vae *m, void *dx, const void *dmoments,
                  const VaeEncSaved *sv) {
    const VaeConfig *cfg = &m->cfg;
    const VaeEncoder *e = &m->enc;
    const VaeEncSaved *s = sv;
    const int n = cfg->nblocks, B = s->B, C = cfg->block_out[n - 1];
    size_t gmark = arena_mark(c->grad);
    VaeStages st;
    TRY(vae_stages_init(&st, c, enc_stage_cap(cfg, B, s->H, s->W), 1));
    int H = s->h, Wd = s->w;
    const size_t P = (size_t)B * H * Wd;
    const void *d = dmoments;
    void *dn;
    if (cfg->use_quant_conv) {
        VAE_NEXT(dn, &st, P * 2 * cfg->latent_channels);
        TRY(conv2d_b(c, W, &e->quant_conv, dn, d, s->co, B, H, Wd));
        d = dn;
    }
    VAE_NEXT(dn, &st, P * C);
    TRY(conv2d_b(c, W, &e->conv_out, dn, d, s->g, B, H, Wd));
    d = dn;
    VAE_NEXT(dn, &st, P * C);
    TRY(groupnorm_b(c, W, &e->norm_out, dn, d, s->mid_out, s->gm, s->gr, B, H * Wd, 1));
    d = dn;
    VAE_NEXT(dn, &st, P * C);
    TRY(vae_mid_b(c, W, &e->mid, dn, d, &s->mid));
    d = dn;
    for (int i = n - 1; i >= 0; i--) {
        if (i < n - 1) {
            H = s->down_h[i], Wd = s->down_w[i];
            VAE_NEXT(dn, &st, (size_t)B * H * Wd * cfg->block_out[i]);
            TRY(conv2d_b(c, W, &e->down[i], dn, d, s->down_in[i], B, H, Wd));
            d = dn;
        }
        for (int j = cfg->layers_per_block - 1; j >= 0; j--) {
            VAE_NEXT(dn, &st, (size_t)B * H * Wd * e->res[i][j].cin);
            TRY(resnet_b(c, W, &e->res[i][j], dn, NULL, d, &s->res[i][j]));
            d = dn;
        }
    }
    TRY(conv2d_b(c, W, &e->conv_in, dx, d, s->x, B, H, Wd));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}
