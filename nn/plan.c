// plan.c: memory plan (see plan.h).
//
// Activation model (bytes, e = compute dtype size, f32 statistics 4 bytes),
// read off what the modules keep in their Saved structs in a training forward:
//   ResnetBlock2D (B, h, w, cin -> cout), nn/resnet.h ResnetSaved:
//     h1 [BHW, cin] + c1, h2 [BHW, cout] + SiLU(temb) [B, temb]        (e each)
//     + GroupNorm stats 2 x 2 x [B, G]                                    (f32)
//   Transformer2D (C, N = h*w tokens, Nc context), nn/transformer2d.h T2DSaved:
//     gn, h0..h3, l1..l3, qkv1 [B N, 3C], o1, q2, o2  = 16 x [B N, C]
//     p [B N, 8C], g [B N, 4C]                        = 12 x [B N, C]
//     kv2 [B Nc, 2C]                                                      (e each)
//     LayerNorm stats 6 x [B N] + attention lse 2 x [B, heads, N]         (f32)
//     (attention keeps lse, not the N x N probabilities: flash-style kernels)
//   UNet (nn/unet.h UNetSaved / UNetBlockSaved): time embedding 4 x [B, temb],
//     conv_in output, every resnet and transformer output, up-block concats
//     [BHW, ch + cs], upsampler 2x and cropped copies, sampler outputs,
//     conv_norm_out output, and the output itself.
// Backward working set: the gradient stack holds the skip gradients (one per
// skip, alive from the up block that consumes the skip to the down block that
// made it) plus one block's gradient temporaries, bounded by that block's
// kept activations. So
//   train, no checkpointing:  kept(all) + skip grads + max block kept
//   train, checkpointing:     block outputs/skips + skip grads + 2 x max block kept
//                             (the recomputed block's tape + its gradient temporaries)
//   inference:                skips + max block kept
// CLIP: clip_act_bytes (the module's own bound) + one layer as the gradient
// working set. VAE encoder / decoder at inference: "two stage outputs plus one
// block" (nn/vae.h), i.e. 2 x the largest stage tensor + the largest resnet's
// intermediates; trained: the sum over resnets (an upper bound, rarely used).
#include "plan.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "clip.h"
#include "iresnet.h"
#include "mlp_encoder.h"
#include "unet.h"
#include "vae.h"

int plan_config_read(PlanConfig *p, const char *path) {
    memset(p, 0, sizeof *p);
    p->resolution = 512, p->batch = 1, p->text_tokens = 77, p->compute = DT_BF16, p->master_f32 = 1, p->zero1 = 1;
    p->gpu_gb = 80;
    char *s = read_small_text(path, "plan config");
    if (!s) {
        a2f_set_error("%s: cannot read", path);
        return -1;
    }
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        a2f_set_error("%s: not a JSON object", path);
        return -1;
    }
    int rc = -1;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models"), *it;
    if (!cJSON_IsArray(models) || cJSON_GetArraySize(models) < 1 || cJSON_GetArraySize(models) > PLAN_MAX_MODELS) {
        a2f_set_error("%s: \"models\" must be an array of 1..%d {model, config, train}", path, PLAN_MAX_MODELS);
        goto done;
    }
    cJSON_ArrayForEach(it, models) {
        PlanModel *m = &p->m[p->nmodels++];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "model"), *cfg = cJSON_GetObjectItemCaseSensitive(it, "config"),
                    *tr = cJSON_GetObjectItemCaseSensitive(it, "train");
        if (!cJSON_IsString(name) || !cJSON_IsString(cfg) || strlen(name->valuestring) >= sizeof m->model ||
            strlen(cfg->valuestring) >= sizeof m->config || (tr && !cJSON_IsBool(tr))) {
            a2f_set_error("%s: models[%d] needs \"model\" and \"config\" strings and an optional \"train\" bool", path,
                          p->nmodels - 1);
            goto done;
        }
        strcpy(m->model, name->valuestring);
        strcpy(m->config, cfg->valuestring);
        m->train = tr && cJSON_IsTrue(tr);
    }
    struct {
        const char *key;
        int *dst;
        int lo, hi;
    } ints[] = {{"resolution", &p->resolution, 8, 16384}, {"batch", &p->batch, 1, 4096},
                {"text_tokens", &p->text_tokens, 1, 4096}, {"zero1_world_size", &p->zero1, 1, 65536}};
    for (int k = 0; k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, ints[k].key);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble != (int)v->valuedouble || v->valueint < ints[k].lo ||
            v->valueint > ints[k].hi) {
            a2f_set_error("%s: \"%s\" must be an integer in [%d, %d]", path, ints[k].key, ints[k].lo, ints[k].hi);
            goto done;
        }
        *ints[k].dst = v->valueint;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "compute_dtype");
    if (v) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "bf16")) p->compute = DT_BF16;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "f32")) p->compute = DT_F32;
        else {
            a2f_set_error("%s: \"compute_dtype\" must be \"bf16\" or \"f32\"", path);
            goto done;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "master_weights");
    if (v) {
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "f32") && strcmp(v->valuestring, "none"))) {
            a2f_set_error("%s: \"master_weights\" must be \"f32\" or \"none\"", path);
            goto done;
        }
        p->master_f32 = !strcmp(v->valuestring, "f32");
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "gpu_memory_gb");
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble <= 0) {
            a2f_set_error("%s: \"gpu_memory_gb\" must be a positive number", path);
            goto done;
        }
        p->gpu_gb = v->valuedouble;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

static void table_sum(const ParamTable *t, uint64_t *params, uint64_t *trainable) {
    *params = *trainable = 0;
    for (int i = 0; i < t->count; i++) {
        *params += t->entries[i].numel;
        if (t->entries[i].trainable) *trainable += t->entries[i].numel;
    }
}

int plan_count_params(const char *model, const char *config, uint64_t *params, uint64_t *trainable) {
    ParamTable t;
    params_init(&t);
    int rc = -1;
    if (!strcmp(model, "unet")) {
        UNetConfig c;
        UNet *m = xcalloc(1, sizeof *m);
        if (unet_config_load(&c, config) == 0) rc = unet_build(m, &t, &c);
        free(m);
    } else if (!strcmp(model, "clip")) {
        ClipConfig c;
        ClipText *m = xcalloc(1, sizeof *m);
        if (clip_config_read(&c, config) == 0) rc = clip_add(m, &t, &c);
        free(m);
    } else if (!strcmp(model, "vae") || !strcmp(model, "vae-enc") || !strcmp(model, "vae-dec")) {
        VaeConfig c;
        Vae *m = xcalloc(1, sizeof *m);
        if (vae_config_load(&c, config) == 0) {
            vae_add(m, &t, &c, !strcmp(model, "vae") ? VAE_BOTH : !strcmp(model, "vae-enc") ? VAE_ENCODER : VAE_DECODER);
            rc = 0;
        }
        free(m);
    } else if (!strcmp(model, "mlp")) {
        MlpConfig c;
        MlpEncoder *m = xcalloc(1, sizeof *m);
        if (mlp_config_read(&c, config) == 0) rc = mlp_add(m, &t, &c);
        free(m);
    } else if (!strcmp(model, "iresnet")) {
        IResNetConfig c;
        IResNet *m = xcalloc(1, sizeof *m);
        if (iresnet_config(&c, config) == 0 && iresnet_build(m, &t, &c) == 0) {
            rc = 0;
            iresnet_free(m);
        }
        free(m);
    } else {
        a2f_set_error("unknown model '%s' (unet, clip, vae, vae-enc, vae-dec, mlp, iresnet)", model);
    }
    if (rc == 0) table_sum(&t, params, trainable);
    params_free(&t);
    return rc;
}

// ---------------------------------------------------------------- activations

typedef struct {
    double e;                      // compute dtype bytes
    double B, Nc;
    double kept, boundary, max_block, skips;
} Acc;

static double resnet_kept(const Acc *a, double hw, double cin, double cout, double temb, double G) {
    return a->e * a->B * (hw * (cin + 2 * cout) + temb) + 4.0 * 4 * a->B * G;
}

static double t2d_kept(const Acc *a, double N, double C, double heads) {
    return a->e * a->B * (28 * N * C + 2 * a->Nc * C) + 4.0 * a->B * (6 * N + 2 * heads * N);
}

static void block(Acc *a, double kept, double out_bytes, int boundary_out) {
    a->kept += kept + out_bytes;
    if (boundary_out) a->boundary += out_bytes;
    if (kept + out_bytes > a->max_block) a->max_block = kept + out_bytes;
}

// UNet at latent h x w: fills *train (no ckpt), *ckpt, *infer.
static void unet_act(const UNet *m, const Acc *a0, int h, int w, double *train, double *ckpt, double *infer) {
    Acc a = *a0;
    const UNetConfig *c = &m->cfg;
    double G = c->groups, temb = m->temb, e = a.e, B = a.B;
    double skipC[UNET_MAX_SKIPS];
    int skipH[UNET_MAX_SKIPS], skipW[UNET_MAX_SKIPS], ns = 0;
    a.kept += e * B * (c->channels[0] + 3 * temb);  // tproj, t1, t1a, emb
    int H = h, W = w;
#define PUSH_SKIP(C_)                                  \
    do {                                               \
        skipC[ns] = (C_), skipH[ns] = H, skipW[ns] = W; \
        a.skips += e * B * H * W * (C_);               \
        ns++;                                          \
    } while (0)
    block(&a, 0, e * B * H * W * c->channels[0], 1);  // conv_in
    PUSH_SKIP(c->channels[0]);
    for (int i = 0; i < c->nlevels; i++) {
        const UNetBlock *b = &m->down[i];
        double cin = b->cin, cout = b->cout, hw;
        for (int j = 0; j < b->nres; j++) {
            hw = (double)H * W;
            block(&a, resnet_kept(&a, hw, j ? cout : cin, cout, temb, G), e * B * hw * cout, 1);
            if (b->has_attn) block(&a, t2d_kept(&a, hw, cout, c->heads[i]), e * B * hw * cout, 1);
            PUSH_SKIP(cout);
        }
        if (b->has_sampler) {
            H = (H - 1) / 2 + 1, W = (W - 1) / 2 + 1;
            block(&a, 0, e * B * H * W * cout, 1);
            PUSH_SKIP(cout);
        }
    }
#undef PUSH_SKIP
    const UNetBlock *mid = &m->mid;
    double Cm = mid->cout, hwm = (double)H * W;
    block(&a, resnet_kept(&a, hwm, Cm, Cm, temb, G), e * B * hwm * Cm, 0);
    block(&a, t2d_kept(&a, hwm, Cm, c->heads[c->nlevels - 1]), e * B * hwm * Cm, 0);
    block(&a, resnet_kept(&a, hwm, Cm, Cm, temb, G), e * B * hwm * Cm, 1);
    double ch = Cm;
    for (int i = 0; i < c->nlevels; i++) {
        const UNetBlock *b = &m->up[i];
        double cout = b->cout;
        for (int j = 0; j < b->nres; j++) {
            double cs = ns ? skipC[--ns] : 0, hwb = (double)H * W;
            double cat = e * B * hwb * (ch + cs);
            int out_kept = j == b->nres - 1 && !b->has_sampler;  // the block's output
            block(&a, cat + resnet_kept(&a, hwb, ch + cs, cout, temb, G), e * B * hwb * cout, out_kept && !b->has_attn);
            if (b->has_attn) block(&a, t2d_kept(&a, hwb, cout, c->heads[c->nlevels - 1 - i]), e * B * hwb * cout, out_kept);
            ch = cout;
        }
        if (b->has_sampler) {
            int H2 = ns ? skipH[ns - 1] : 2 * H, W2 = ns ? skipW[ns - 1] : 2 * W;  // cropped to the next skip
            double up = e * B * 4.0 * H * W * ch, crop = e * B * (double)H2 * W2 * ch;
            block(&a, up + crop, crop, 1);  // 2x upsample, its crop, the conv output
            H = H2, W = W2;
        }
    }
    double hwo = (double)h * w;
    block(&a, 2 * e * B * hwo * c->channels[0], e * B * hwo * c->out_channels, 1);  // hlast, nout; out
    double skip_grads = a.skips;
    *train = a.kept + skip_grads + a.max_block;
    *ckpt = a.boundary + a.skips + skip_grads + 2 * a.max_block;
    *infer = a.skips + a.max_block;
}

static double vae_act(const VaeConfig *c, const Acc *a, int Himg, int Wimg, int enc, int train) {
    double e = a->e, B = a->B, sum = 0, big = 0, res = 0;
    int H = Himg, W = Wimg, n = c->nblocks;
    if (!enc) vae_latent_hw(c, Himg, Wimg, &H, &W);
    for (int i = 0; i < n; i++) {
        int lv = enc ? i : n - 1 - i;
        double C = c->block_out[lv], hw = (double)H * W, t = e * B * hw * C;
        double r = e * B * hw * 3 * C;  // one resnet's intermediates
        if (t > big) big = t;
        if (r > res) res = r;
        sum += (c->layers_per_block + !enc) * (r + t);
        if (i < n - 1) {
            if (enc) H = (H - 2) / 2 + 1, W = (W - 2) / 2 + 1;
            else H *= 2, W *= 2;
        }
    }
    return train ? 2 * sum : 2 * big + res;
}

int plan_compute(const PlanConfig *p, PlanRow *rows) {
    double e = (double)dtype_size(p->compute), Z = p->zero1;
    for (int k = 0; k < p->nmodels; k++) {
        const PlanModel *pm = &p->m[k];
        PlanRow *r = &rows[k];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", pm->model);
        r->train = pm->train;
        TRY(plan_count_params(pm->model, pm->config, &r->params, &r->trainable));
        double P = (double)r->params, T = (double)r->trainable;
        int master_separate = pm->train && p->master_f32 && p->compute != DT_F32;
        r->weights = P * e;
        if (pm->train) {
            r->grads = 4 * T;
            r->master = master_separate ? 4 * T / Z : 0;
            r->adam = 8 * T / Z;
        }
        Acc a = {0};
        a.e = e, a.B = p->batch, a.Nc = p->text_tokens;
        if (!strcmp(pm->model, "unet")) {
            UNetConfig c;
            UNet *m = xcalloc(1, sizeof *m);
            ParamTable t;
            params_init(&t);
            int rc = unet_config_load(&c, pm->config) == 0 ? unet_build(m, &t, &c) : -1;
            double tr = 0, ck = 0, inf = 0;
            if (rc == 0) unet_act(m, &a, p->resolution / 8, p->resolution / 8, &tr, &ck, &inf);
            params_free(&t);
            free(m);
            TRY(rc);
            r->act = pm->train ? tr : inf;
            r->act_ckpt = pm->train ? ck : inf;
        } else if (!strcmp(pm->model, "clip")) {
            ClipConfig c;
            ClipText *m = xcalloc(1, sizeof *m);
            ParamTable t;
            params_init(&t);
            int rc = clip_config_read(&c, pm->config) == 0 ? clip_add(m, &t, &c) : -1;
            if (rc == 0) {
                double kept = (double)clip_act_bytes(m, p->batch, p->text_tokens, p->compute);
                double layer = kept / (c.layers ? c.layers : 1);
                r->act = r->act_ckpt = pm->train ? kept + layer : 2 * layer;
            }
            params_free(&t);
            free(m);
            TRY(rc);
        } else if (!strncmp(pm->model, "vae", 3)) {
            VaeConfig c;
            TRY(vae_config_load(&c, pm->config));
            double enc = vae_act(&c, &a, p->resolution, p->resolution, 1, pm->train);
            double dec = vae_act(&c, &a, p->resolution, p->resolution, 0, pm->train);
            r->act = r->act_ckpt = !strcmp(pm->model, "vae-enc") ? enc : !strcmp(pm->model, "vae-dec") ? dec
                                                                       : (enc > dec ? enc : dec);
        } else {
            // mlp / iresnet: small next to the diffusion models; bounded by a few copies of the
            // largest activation (iresnet: [B, 112, 112, 64] stem maps; mlp: [B, 77 x 768]).
            double big = !strcmp(pm->model, "iresnet") ? a.B * 112 * 112 * 64 * e : a.B * 77 * 768 * e;
            r->act = r->act_ckpt = (pm->train ? 40 : 4) * big;
        }
    }
    return 0;
}
