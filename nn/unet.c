// unet.c: UNet2DConditionModel build, forward and backward (see unet.h).
//
// Stack layout of a training forward (bottom to top): time embedding, conv_in
// output, then per block its outputs interleaved with what its modules keep.
// A checkpointed block runs its modules with train = 0 (only the block's
// outputs stay); its backward resets the stack to the block's entry and runs
// the block again with train = 1 (the outputs land at new addresses: nothing
// that still reads the old ones is left by then, since every later block's
// backward has already run). Gradients of the skip tensors live on the
// gradient stack for the whole backward; the up path passes one buffer per
// block down the stack.
#include "unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

// ------------------------------------------------------------------ build

static int check_ch(const UNetConfig *cfg, int C, int heads, const char *what, int i) {
    if (C % cfg->groups) {
        a2f_set_error("unet config: %s %d: %d channels not divisible by norm_num_groups %d", what, i, C, cfg->groups);
        return -1;
    }
    if (heads > 0 && C % heads) {
        a2f_set_error("unet config: %s %d: %d channels not divisible by %d heads (attention_head_dim)", what, i, C,
                      heads);
        return -1;
    }
    return 0;
}

int unet_build(UNet *m, ParamTable *t, const UNetConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const int n = cfg->nlevels, G = cfg->groups;
    const float eps = cfg->eps;
    if (n < 1 || n > UNET_MAX_LEVELS) {
        a2f_set_error("unet config: %d levels (1..%d supported)", n, UNET_MAX_LEVELS);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (cfg->layers[i] < 1 || cfg->layers[i] > UNET_MAX_LAYERS || cfg->heads[i] < 1 || cfg->channels[i] < 1) {
            a2f_set_error("unet config: level %d: bad layers %d / heads %d / channels %d", i, cfg->layers[i],
                          cfg->heads[i], cfg->channels[i]);
            return -1;
        }
    }
    const int C0 = cfg->channels[0];
    m->temb = 4 * C0;
    char p[PARAM_NAME_MAX], q[PARAM_NAME_MAX];
    conv2d_add(&m->conv_in, t, "conv_in", cfg->in_channels, C0, 3, 1, 1, 1);
    linear_add(&m->time1, t, "time_embedding.linear_1", C0, m->temb, 1);
    linear_add(&m->time2, t, "time_embedding.linear_2", m->temb, m->temb, 1);
    // skip channels in push order, to check the up blocks' concat widths
    int skipC[UNET_MAX_SKIPS], ns = 0;
    skipC[ns++] = C0;
    int cout = C0;
    for (int i = 0; i < n; i++) {
        UNetBlock *b = &m->down[i];
        b->cin = cout;
        b->cout = cout = cfg->channels[i];
        b->nres = cfg->layers[i];
        b->has_attn = cfg->down_attn[i];
        b->has_sampler = i < n - 1;
        TRY(check_ch(cfg, b->cin, 0, "down block", i));
        TRY(check_ch(cfg, cout, b->has_attn ? cfg->heads[i] : 0, "down block", i));
        for (int j = 0; j < b->nres; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            resnet_add(&b->res[j], t, p, j == 0 ? b->cin : cout, cout, m->temb, G, eps);
            if (b->has_attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                t2d_add(&b->attn[j], t, p, cout, cfg->heads[i], cfg->cross_dim, G);
            }
            skipC[ns++] = cout;
        }
        if (b->has_sampler) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            conv2d_add(&b->sampler, t, p, cout, cout, 3, 2, 1, 1);
            skipC[ns++] = cout;
        }
    }
    UNetBlock *mid = &m->mid;
    const int Cm = cfg->channels[n - 1];
    mid->cin = mid->cout = Cm;
    mid->nres = 2;
    mid->has_attn = 1;
    TRY(check_ch(cfg, Cm, cfg->heads[n - 1], "mid block", 0));
    resnet_add(&mid->res[0], t, "mid_block.resnets.0", Cm, Cm, m->temb, G, eps);
    t2d_add(&mid->attn[0], t, "mid_block.attentions.0", Cm, cfg->heads[n - 1], cfg->cross_dim, G);
    resnet_add(&mid->res[1], t, "mid_block.resnets.1", Cm, Cm, m->temb, G, eps);
    int prev = Cm;
    for (int i = 0; i < n; i++) {
        const int r = n - 1 - i;  // the down level this up block mirrors
        UNetBlock *b = &m->up[i];
        b->cin = prev;
        b->cout = cfg->channels[r];
        b->nres = cfg->layers[r] + 1;
        b->has_attn = cfg->up_attn[i];
        b->has_sampler = i < n - 1;
        const int in_ch = cfg->channels[r > 0 ? r - 1 : 0];
        TRY(check_ch(cfg, b->cout, b->has_attn ? cfg->heads[r] : 0, "up block", i));
        for (int j = 0; j < b->nres; j++) {
            const int rin = j == 0 ? prev : b->cout;
            const int rskip = j == b->nres - 1 ? in_ch : b->cout;  // diffusers' rule
            if (ns < 1 || skipC[--ns] != rskip) {
                a2f_set_error("unet config: up block %d resnet %d expects a %d-channel skip, the down path gives %d",
                              i, j, rskip, ns >= 0 ? skipC[ns] : -1);
                return -1;
            }
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            resnet_add(&b->res[j], t, p, rin + rskip, b->cout, m->temb, G, eps);
            if (b->has_attn) {
                snprintf(q, sizeof q, "up_blocks.%d.attentions.%d", i, j);
                t2d_add(&b->attn[j], t, q, b->cout, cfg->heads[r], cfg->cross_dim, G);
            }
        }
        if (b->has_sampler) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            conv2d_add(&b->sampler, t, p, b->cout, b->cout, 3, 1, 1, 1);
        }
        prev = b->cout;
    }
    if (ns != 0) {
        a2f_set_error("unet config: %d skip tensors left unused by the up blocks", ns);
        return -1;
    }
    groupnorm_add(&m->norm_out, t, "conv_norm_out", C0, G, eps);
    conv2d_add(&m->conv_out, t, "conv_out", C0, cfg->out_channels, 3, 1, 1, 1);
    return 0;
}

// ------------------------------------------------------------------ blocks

// Shared arguments of the block functions.
typedef struct {
    const Weights *W;
    const UNet *m;
    UNetSaved *S;
    int B, Nc;
} Run;

static void push_skip(UNetSaved *S, int k, void *p, int C, int H, int Wd) {
    S->skip[k] = p;
    S->skipC[k] = C;
    S->skipH[k] = H;
    S->skipW[k] = Wd;
}

// Down block i on x [B, H, W, cin]; its skips start at index k0. mc runs the
// modules (train 0 when checkpointed), c allocates the block's outputs.
static int down_f(const Ctx *c, const Ctx *mc, const Run *R, int i, const void *x, int H, int Wd, int k0) {
    const UNetBlock *b = &R->m->down[i];
    UNetBlockSaved *s = &R->S->down[i];
    const int B = R->B;
    const size_t n = (size_t)B * H * Wd * b->cout;
    s->mark = arena_mark(c->act);
    s->x = x;
    s->H = H;
    s->W = Wd;
    const void *h = x;
    for (int j = 0; j < b->nres; j++) {
        PUSH(s->res[j], n);  // [B, H, W, cout]
        TRY(resnet_f(mc, R->W, &b->res[j], s->res[j], h, R->S->emb, B, H, Wd, &s->rs[j]));
        s->out[j] = s->res[j];
        if (b->has_attn) {
            PUSH(s->out[j], n);
            TRY(t2d_f(mc, R->W, &b->attn[j], s->out[j], s->res[j], R->S->ehs, B, H, Wd, R->Nc, &s->ts[j]));
        }
        s->skip[j] = k0 + j;
        push_skip(R->S, k0 + j, s->out[j], b->cout, H, Wd);
        h = s->out[j];
    }
    s->Ho = H, s->Wo = Wd;
    if (b->has_sampler) {
        Conv2dShape sh = conv2d_shape(&b->sampler, B, H, Wd);
        s->Ho = conv2d_out_h(&sh), s->Wo = conv2d_out_w(&sh);
        PUSH(s->samp, (size_t)B * s->Ho * s->Wo * b->cout);  // [B, Ho, Wo, cout]
        TRY(conv2d_f(mc, R->W, &b->sampler, s->samp, h, B, H, Wd));
        s->skip[b->nres] = k0 + b->nres;
        push_skip(R->S, k0 + b->nres, s->samp, b->cout, s->Ho, s->Wo);
    }
    return 0;
}

// dskip: the skip gradients; the block input's gradient is dskip[k0 - 1].
static int down_b(const Ctx *c, const Run *R, int i, void **dskip, void *dehs, void *demb) {
    const UNetBlock *b = &R->m->down[i];
    const UNetBlockSaved *s = &R->S->down[i];
    const int B = R->B, H = s->H, Wd = s->W, k0 = s->skip[0];
    const size_t g0 = arena_mark(c->grad), n = (size_t)B * H * Wd * b->cout;
    if (b->has_sampler) TRY(conv2d_b(c, R->W, &b->sampler, dskip[k0 + b->nres - 1], dskip[k0 + b->nres],
                                     s->out[b->nres - 1], B, H, Wd));
    for (int j = b->nres - 1; j >= 0; j--) {
        void *dy = dskip[k0 + j];
        if (b->has_attn) {
            void *dr;
            GPUSH(dr, n);
            TRY(t2d_b(c, R->W, &b->attn[j], dr, dehs, dy, &s->ts[j]));
            dy = dr;
        }
        TRY(resnet_b(c, R->W, &b->res[j], dskip[k0 + j - 1], demb, dy, &s->rs[j]));
        arena_reset(c->grad, g0);
    }
    arena_reset(c->act, s->mark);
    return 0;
}

static int mid_f(const Ctx *c, const Ctx *mc, const Run *R, const void *x, int H, int Wd) {
    const UNetBlock *b = &R->m->mid;
    UNetBlockSaved *s = &R->S->mid;
    const int B = R->B;
    const size_t n = (size_t)B * H * Wd * b->cout;
    s->mark = arena_mark(c->act);
    s->x = x;
    s->H = s->Ho = H;
    s->W = s->Wo = Wd;
    PUSH(s->res[0], n);
    TRY(resnet_f(mc, R->W, &b->res[0], s->res[0], x, R->S->emb, B, H, Wd, &s->rs[0]));
    PUSH(s->out[0], n);
    TRY(t2d_f(mc, R->W, &b->attn[0], s->out[0], s->res[0], R->S->ehs, B, H, Wd, R->Nc, &s->ts[0]));
    PUSH(s->res[1], n);
    TRY(resnet_f(mc, R->W, &b->res[1], s->res[1], s->out[0], R->S->emb, B, H, Wd, &s->rs[1]));
    s->out[1] = s->res[1];
    return 0;
}

static int mid_b(const Ctx *c, const Run *R, void *dx, const void *dy, void *dehs, void *demb) {
    const UNetBlock *b = &R->m->mid;
    const UNetBlockSaved *s = &R->S->mid;
    const size_t g0 = arena_mark(c->grad), n = (size_t)R->B * s->H * s->W * b->cout;
    void *da, *dr;
    GPUSH(da, n);
    TRY(resnet_b(c, R->W, &b->res[1], da, demb, dy, &s->rs[1]));
    GPUSH(dr, n);
    TRY(t2d_b(c, R->W, &b->attn[0], dr, dehs, da, &s->ts[0]));
    TRY(resnet_b(c, R->W, &b->res[0], dx, demb, dr, &s->rs[0]));
    arena_reset(c->grad, g0);
    arena_reset(c->act, s->mark);
    return 0;
}

// Copies rows: dst [B, Ho, Wo, C] = src [B, 2H, 2W, C] cropped (fwd), or
// src += dst scattered back (bwd); a gemm with K = 1 does the strided copy.
static int crop(const Ctx *c, const void *one, void *big, void *small, int B, int H2, int W2, int Ho, int Wo, int C,
                int bwd) {
    const size_t e = nn_elt(c);
    const int L = Wo * C;
    for (int b = 0; b < B; b++) {
        char *bg = (char *)big + (size_t)b * H2 * W2 * C * e;
        char *sm = (char *)small + (size_t)b * Ho * Wo * C * e;
        if (!bwd)
            OP(c, gemm_batched, 0, 0, 1, L, 1, 1.0f, one, 1, 0, bg, L, (long)W2 * C, 0.0f, sm, L, (long)L, Ho);
        else
            OP(c, gemm_batched, 0, 0, 1, L, 1, 1.0f, one, 1, 0, sm, L, (long)L, 1.0f, bg, L, (long)W2 * C, Ho);
    }
    return 0;
}

// Up block i on x [B, H, W, cin], consuming the skips from index ktop - 1
// downwards; output at the next skip's size (last block: no sampler).
static int up_f(const Ctx *c, const Ctx *mc, const Run *R, int i, const void *x, int H, int Wd, int ktop) {
    const UNetBlock *b = &R->m->up[i];
    UNetBlockSaved *s = &R->S->up[i];
    UNetSaved *S = R->S;
    const int B = R->B;
    const size_t P = (size_t)B * H * Wd, n = P * b->cout;
    s->mark = arena_mark(c->act);
    s->x = x;
    s->H = H;
    s->W = Wd;
    const void *h = x;
    int ch = b->cin;
    for (int j = 0; j < b->nres; j++) {
        const int k = ktop - 1 - j, cs = S->skipC[k];
        if (S->skipH[k] != H || S->skipW[k] != Wd) {
            a2f_set_error("unet: up block %d: skip %d is %dx%d, hidden %dx%d", i, k, S->skipH[k], S->skipW[k], H, Wd);
            return -1;
        }
        s->skip[j] = k;
        PUSH(s->cat[j], P * (ch + cs));  // [B, H, W, ch + cs]: hidden first, skip second
        OP(c, concat_fwd, s->cat[j], h, S->skip[k], P, ch, cs);
        PUSH(s->res[j], n);
        TRY(resnet_f(mc, R->W, &b->res[j], s->res[j], s->cat[j], S->emb, B, H, Wd, &s->rs[j]));
        s->out[j] = s->res[j];
        if (b->has_attn) {
            PUSH(s->out[j], n);
            TRY(t2d_f(mc, R->W, &b->attn[j], s->out[j], s->res[j], S->ehs, B, H, Wd, R->Nc, &s->ts[j]));
        }
        h = s->out[j];
        ch = b->cout;
    }
    s->Ho = H, s->Wo = Wd;
    if (b->has_sampler) {
        const int k = ktop - 1 - b->nres;  // the skip the next block starts with gives the size
        s->Ho = S->skipH[k], s->Wo = S->skipW[k];
        if ((s->Ho != 2 * H && s->Ho != 2 * H - 1) || (s->Wo != 2 * Wd && s->Wo != 2 * Wd - 1)) {
            a2f_set_error("unet: up block %d: cannot upsample %dx%d to %dx%d", i, H, Wd, s->Ho, s->Wo);
            return -1;
        }
        const size_t no = (size_t)B * s->Ho * s->Wo * b->cout;
        PUSH(s->up2, 4 * n);  // [B, 2H, 2W, cout]
        OP(c, upsample2x_fwd, s->up2, h, B, H, Wd, b->cout);
        s->upc = s->up2;
        if (s->Ho != 2 * H || s->Wo != 2 * Wd) {  // diffusers' upsample_size: nearest to the skip's size
            if (!(s->one = nn_push_ones(c, 1))) return -1;
            PUSH(s->upc, no);  // [B, Ho, Wo, cout]
            TRY(crop(c, s->one, s->up2, s->upc, B, 2 * H, 2 * Wd, s->Ho, s->Wo, b->cout, 0));
        }
        PUSH(s->samp, no);  // [B, Ho, Wo, cout]
        TRY(conv2d_f(mc, R->W, &b->sampler, s->samp, s->upc, B, s->Ho, s->Wo));
    }
    return 0;
}

// dx [B, H, W, cin] += from dy (the block output's gradient).
static int up_b(const Ctx *c, const Run *R, int i, void *dx, const void *dy, void **dskip, void *dehs, void *demb) {
    const UNetBlock *b = &R->m->up[i];
    const UNetBlockSaved *s = &R->S->up[i];
    const int B = R->B, H = s->H, Wd = s->W;
    const size_t g0 = arena_mark(c->grad), P = (size_t)B * H * Wd, n = P * b->cout;
    const void *d = dy;
    if (b->has_sampler) {
        void *dupc, *dup2, *dh;
        const size_t no = (size_t)B * s->Ho * s->Wo * b->cout;
        GPUSH(dupc, no);
        TRY(conv2d_b(c, R->W, &b->sampler, dupc, dy, s->upc, B, s->Ho, s->Wo));
        dup2 = dupc;
        if (s->upc != s->up2) {
            GPUSH(dup2, 4 * n);
            TRY(crop(c, s->one, dup2, dupc, B, 2 * H, 2 * Wd, s->Ho, s->Wo, b->cout, 1));
        }
        GPUSH(dh, n);
        OP(c, upsample2x_bwd, dh, dup2, B, H, Wd, b->cout);
        d = dh;
    }
    for (int j = b->nres - 1; j >= 0; j--) {
        const int k = s->skip[j], cs = R->S->skipC[k], ch = j == 0 ? b->cin : b->cout;
        const void *dres = d;
        if (b->has_attn) {
            void *dr;
            GPUSH(dr, n);
            TRY(t2d_b(c, R->W, &b->attn[j], dr, dehs, d, &s->ts[j]));
            dres = dr;
        }
        void *dcat, *dprev = dx;
        GPUSH(dcat, P * (ch + cs));
        TRY(resnet_b(c, R->W, &b->res[j], dcat, demb, dres, &s->rs[j]));
        if (j > 0) GPUSH(dprev, n);
        OP(c, concat_bwd, dprev, dskip[k], dcat, P, ch, cs);
        d = dprev;
    }
    arena_reset(c->grad, g0);
    arena_reset(c->act, s->mark);
    return 0;
}

// ------------------------------------------------------------------ model

static int model_f(const Ctx *c, const Weights *W, const UNet *m, void *out, UNetSaved *S) {
    const UNetConfig *cfg = &m->cfg;
    const int n = cfg->nlevels, C0 = cfg->channels[0], T = m->temb, B = S->B, H = S->H, Wd = S->W;
    Run R = {W, m, S, B, S->Nc};
    // time embedding
    PUSH(S->tproj, (size_t)B * C0);  // [B, C0]
    OP(c, timestep_embedding_fwd, S->tproj, S->timestep, B, C0, cfg->flip_sin_to_cos, cfg->freq_shift, 10000.0f);
    PUSH(S->t1, (size_t)B * T);  // [B, T]
    PUSH(S->t1a, (size_t)B * T);
    PUSH(S->emb, (size_t)B * T);
    TRY(linear_f(c, W, &m->time1, S->t1, S->tproj, B));
    OP(c, silu_fwd, S->t1a, S->t1, (size_t)B * T);
    TRY(linear_f(c, W, &m->time2, S->emb, S->t1a, B));
    // conv_in
    PUSH(S->hin, (size_t)B * H * Wd * C0);  // [B, H, W, C0]
    TRY(conv2d_f(c, W, &m->conv_in, S->hin, S->sample, B, H, Wd));
    push_skip(S, 0, S->hin, C0, H, Wd);
    int k = 1, h = H, w = Wd;
    const void *x = S->hin;
    for (int i = 0; i < n; i++) {
        Ctx mc = *c;
        if (m->ckpt_down[i]) mc.train = 0;
        TRY(down_f(c, &mc, &R, i, x, h, w, k));
        k += m->down[i].nres + m->down[i].has_sampler;
        x = S->skip[k - 1];
        h = S->down[i].Ho, w = S->down[i].Wo;
    }
    S->nskip = k;
    Ctx mc = *c;
    if (m->ckpt_mid) mc.train = 0;
    TRY(mid_f(c, &mc, &R, x, h, w));
    x = S->mid.out[1];
    for (int i = 0; i < n; i++) {
        mc = *c;
        if (m->ckpt_up[i]) mc.train = 0;
        TRY(up_f(c, &mc, &R, i, x, h, w, k));
        k -= m->up[i].nres;
        x = m->up[i].has_sampler ? S->up[i].samp : S->up[i].out[m->up[i].nres - 1];
        h = S->up[i].Ho, w = S->up[i].Wo;
    }
    S->hlast = (void *)x;
    PUSH(S->nout, (size_t)B * H * Wd * C0);  // [B, H, W, C0]
    PUSHF(S->nm, (size_t)B * cfg->groups);
    PUSHF(S->nr, (size_t)B * cfg->groups);
    TRY(groupnorm_f(c, W, &m->norm_out, S->nout, S->nm, S->nr, x, B, H * Wd, 1));
    TRY(conv2d_f(c, W, &m->conv_out, out, S->nout, B, H, Wd));
    return 0;
}

int unet_f(const Ctx *c, const Weights *W, const UNet *m, void *out, const void *sample, const float *timestep,
           const void *ehs, int B, int H, int Wd, int Nc, UNetSaved *sv) {
    CHECK(!c->train || sv);
    if (B < 1 || H < 1 || Wd < 1 || Nc < 1) {
        a2f_set_error("unet: bad input size B %d, %dx%d, %d context tokens", B, H, Wd, Nc);
        return -1;
    }
    UNetSaved *S = c->train ? sv : xcalloc(1, sizeof *S);  // inference: a scratch record
    S->mark = arena_mark(c->act);
    S->B = B, S->H = H, S->W = Wd, S->Nc = Nc;
    S->sample = sample, S->ehs = ehs, S->timestep = timestep;
    int rc = model_f(c, W, m, out, S);
    if (rc != 0 || !c->train) arena_reset(c->act, S->mark);
    if (S != sv) free(S);
    return rc;
}

int unet_b(const Ctx *c, const Weights *W, const UNet *m, void *dsample, void *dehs, const void *dout, UNetSaved *sv) {
    UNetSaved *S = sv;
    const UNetConfig *cfg = &m->cfg;
    const int n = cfg->nlevels, B = S->B, H = S->H, Wd = S->W, C0 = cfg->channels[0], T = m->temb;
    const size_t g0 = arena_mark(c->grad);
    Run R = {W, m, S, B, S->Nc};
    Ctx tc = *c;
    tc.train = 1;  // recomputation of checkpointed blocks
    void *demb, *dskip[UNET_MAX_SKIPS], *dn, *dh;
    GPUSH(demb, (size_t)B * T);  // [B, T]
    for (int k = 0; k < S->nskip; k++) GPUSH(dskip[k], (size_t)B * S->skipH[k] * S->skipW[k] * S->skipC[k]);
    GPUSH(dn, (size_t)B * H * Wd * C0);
    TRY(conv2d_b(c, W, &m->conv_out, dn, dout, S->nout, B, H, Wd));
    GPUSH(dh, (size_t)B * H * Wd * C0);
    TRY(groupnorm_b(c, W, &m->norm_out, dh, dn, S->hlast, S->nm, S->nr, B, H * Wd, 1));
    // up blocks, last first; each leaves its input's gradient on the stack
    for (int i = n - 1; i >= 0; i--) {
        UNetBlockSaved *s = &S->up[i];
        if (m->ckpt_up[i]) {
            arena_reset(c->act, s->mark);
            TRY(up_f(c, &tc, &R, i, s->x, s->H, s->W, s->skip[0] + 1));
        }
        void *dx;
        GPUSH(dx, (size_t)B * s->H * s->W * m->up[i].cin);
        TRY(up_b(c, &R, i, dx, dh, dskip, dehs, demb));
        dh = dx;
    }
    if (m->ckpt_mid) {
        arena_reset(c->act, S->mid.mark);
        TRY(mid_f(c, &tc, &R, S->mid.x, S->mid.H, S->mid.W));
    }
    TRY(mid_b(c, &R, dskip[S->nskip - 1], dh, dehs, demb));
    for (int i = n - 1; i >= 0; i--) {
        UNetBlockSaved *s = &S->down[i];
        if (m->ckpt_down[i]) {
            arena_reset(c->act, s->mark);
            TRY(down_f(c, &tc, &R, i, s->x, s->H, s->W, s->skip[0]));
        }
        TRY(down_b(c, &R, i, dskip, dehs, demb));
    }
    TRY(conv2d_b(c, W, &m->conv_in, dsample, dskip[0], S->sample, B, H, Wd));
    void *dt1a, *dt1;
    GPUSH(dt1a, (size_t)B * T);
    TRY(linear_b(c, W, &m->time2, dt1a, demb, S->t1a, B));
    GPUSH(dt1, (size_t)B * T);
    OP(c, silu_bwd, dt1, dt1a, S->t1, (size_t)B * T);
    TRY(linear_b(c, W, &m->time1, NULL, dt1, S->tproj, B));
    arena_reset(c->grad, g0);
    arena_reset(c->act, S->mark);
    return 0;
}

// ------------------------------------------------------------------ loading

int unet_load_diffusers(UNet *m, Weights *W, const char *dir, const Backend *be, DType dt, int train) {
    char path[1024], wpath[1024];
    UNetConfig cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TRY(unet_config_load(&cfg, path));
    memset(W, 0, sizeof *W);
    params_init(&W->t);
    if (unet_build(m, &W->t, &cfg) != 0) {
        char e[A2F_ERR_MAX];
        snprintf(e, sizeof e, "%s", a2f_last_error());
        a2f_set_error("%s: %s", path, e);
        params_free(&W->t);
        return -1;
    }
    snprintf(wpath, sizeof wpath, "%s/diffusion_pytorch_model.safetensors", dir);
    FILE *f = fopen(wpath, "rb");
    if (!f) {
        snprintf(wpath, sizeof wpath, "%s/diffusion_pytorch_model.fp16.safetensors", dir);
        f = fopen(wpath, "rb");
    }
    if (!f) {
        a2f_set_error("%s: no diffusion_pytorch_model[.fp16].safetensors", dir);
        params_free(&W->t);
        return -1;
    }
    fclose(f);
    const char *files[] = {wpath};
    if (weights_alloc(W, be, dt, train) != 0 || weights_load(W, files, 1, NULL) != 0) {
        weights_free(W);
        params_free(&W->t);
        return -1;
    }
    return 0;
}
