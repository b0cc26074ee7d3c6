// models.c: the model registry (see models.h): one small adapter per network
// around its module API, and the generic forward/backward driver.
#include "models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../kernels/common.h"
#include "clip.h"
#include "iresnet.h"
#include "mlp_encoder.h"
#include "safetensors.h"
#include "torch_zip.h"
#include "unet.h"
#include "vae.h"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int need_dir(const char *weights, const char *what) {
    if (is_dir(weights)) return 0;
    a2f_set_error("%s: --weights must be %s", weights, what);
    return -1;
}

static char *shape_s(char *buf, size_t n, int nd, const int64_t *s) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < nd && k < n; d++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)s[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

// A check failure naming the input and its shape.
static int bad_shape(const char *input, const ModelArg *a, const char *want) {
    char s[96];
    a2f_set_error("input '%s' has shape %s, want %s", input, shape_s(s, sizeof s, a->ndim, a->shape), want);
    return -1;
}

// ================================================================== unet

typedef struct {
    UNet m;
    Weights W;
    UNetSaved *sv;
    int B, H, Wd, Nc;
} UNetState;

static int unet_load_a(void **st, const char *weights, const Backend *be, DType dt, int train) {
    if (need_dir(weights, "a diffusers UNet folder (config.json + diffusion_pytorch_model.safetensors)")) return -1;
    UNetState *s = xcalloc(1, sizeof *s);
    s->sv = xcalloc(1, sizeof *s->sv);
    *st = s;
    return unet_load_diffusers(&s->m, &s->W, weights, be, dt, train);
}

static int unet_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    UNetState *s = st;
    const UNetConfig *c = &s->m.cfg;
    int64_t B = a[0].shape[0];
    char want[96];
    snprintf(want, sizeof want, "[B, %d, H, W]", c->in_channels);
    if (a[0].shape[1] != c->in_channels) return bad_shape("sample", &a[0], want);
    if (a[1].ndim == 1 && a[1].shape[0] != B) return bad_shape("timestep", &a[1], "[B] or []");
    snprintf(want, sizeof want, "[B, N, %d] with B = %lld", c->cross_dim, (long long)B);
    if (a[2].shape[0] != B || a[2].shape[2] != c->cross_dim) return bad_shape("encoder_hidden_states", &a[2], want);
    s->B = (int)B;
    s->H = (int)a[0].shape[2];
    s->Wd = (int)a[0].shape[3];
    s->Nc = (int)a[2].shape[1];
    *nd = 4;
    out[0] = B, out[1] = c->out_channels, out[2] = s->H, out[3] = s->Wd;
    return 0;
}

static int unet_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    UNetState *s = st;
    const float *t = in[1];
    if (a[1].numel == 1 && s->B > 1) {  // a scalar timestep: the same for the whole batch
        float *tb = nn_push_f32(c, (size_t)s->B), *h = xmalloc(sizeof(float) * (size_t)s->B);
        if (!tb) return -1;
        for (int b = 0; b < s->B; b++) h[b] = a[1].f[0];
        int rc = c->be->upload(tb, h, sizeof(float) * (size_t)s->B);
        free(h);
        if (rc) return -1;
        t = tb;
    }
    return unet_f(c, &s->W, &s->m, out, in[0], t, in[2], s->B, s->H, s->Wd, s->Nc, c->train ? s->sv : NULL);
}

static int unet_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    UNetState *s = st;
    return unet_b(c, &s->W, &s->m, din[0], din[2], dout, s->sv);
}

static Weights *unet_weights_a(void *st) { return &((UNetState *)st)->W; }
static void unet_free_a(void *st) {
    UNetState *s = st;
    weights_free(&s->W);
    params_free(&s->W.t);
    free(s->sv);
    free(s);
}

// ================================================================== vae

typedef struct {
    Vae m;
    Weights W;
    VaeEncSaved *es;
    VaeDecSaved *ds;
    int B, H, Wd;
} VaeState;

static int vae_load_part(void **st, const char *weights, const Backend *be, DType dt, int train, int part) {
    if (need_dir(weights, "a diffusers AutoencoderKL folder (config.json + diffusion_pytorch_model.safetensors)"))
        return -1;
    VaeState *s = xcalloc(1, sizeof *s);
    s->es = xcalloc(1, sizeof *s->es);
    s->ds = xcalloc(1, sizeof *s->ds);
    *st = s;
    return vae_load_diffusers_ex(&s->m, &s->W, weights, part, be, dt, train);
}
static int vae_enc_load_a(void **st, const char *w, const Backend *be, DType dt, int train) {
    return vae_load_part(st, w, be, dt, train, VAE_ENCODER);
}
static int vae_dec_load_a(void **st, const char *w, const Backend *be, DType dt, int train) {
    return vae_load_part(st, w, be, dt, train, VAE_DECODER);
}

static int vae_enc_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    VaeState *s = st;
    char want[64];
    snprintf(want, sizeof want, "[B, %d, H, W]", s->m.cfg.in_channels);
    if (a[0].shape[1] != s->m.cfg.in_channels || a[0].shape[2] < 1 || a[0].shape[3] < 1)
        return bad_shape("image", &a[0], want);
    s->B = (int)a[0].shape[0], s->H = (int)a[0].shape[2], s->Wd = (int)a[0].shape[3];
    int h, w;
    vae_latent_hw(&s->m.cfg, s->H, s->Wd, &h, &w);
    *nd = 4;
    out[0] = s->B, out[1] = 2 * s->m.cfg.latent_channels, out[2] = h, out[3] = w;
    return 0;
}

static int vae_dec_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    VaeState *s = st;
    char want[64];
    snprintf(want, sizeof want, "[B, %d, h, w]", s->m.cfg.latent_channels);
    if (a[0].shape[1] != s->m.cfg.latent_channels || a[0].shape[2] < 1 || a[0].shape[3] < 1)
        return bad_shape("latent", &a[0], want);
    s->B = (int)a[0].shape[0], s->H = (int)a[0].shape[2], s->Wd = (int)a[0].shape[3];
    int H, W;
    vae_image_hw(&s->m.cfg, s->H, s->Wd, &H, &W);
    *nd = 4;
    out[0] = s->B, out[1] = s->m.cfg.out_channels, out[2] = H, out[3] = W;
    return 0;
}

static int vae_enc_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    VaeState *s = st;
    return vae_encoder_f(c, &s->W, &s->m, out, in[0], s->B, s->H, s->Wd, c->train ? s->es : NULL);
}
static int vae_dec_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    VaeState *s = st;
    return vae_decoder_f(c, &s->W, &s->m, out, in[0], s->B, s->H, s->Wd, c->train ? s->ds : NULL);
}
static int vae_enc_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    VaeState *s = st;
    return vae_encoder_b(c, &s->W, &s->m, din[0], dout, s->es);
}
static int vae_dec_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    VaeState *s = st;
    return vae_decoder_b(c, &s->W, &s->m, din[0], dout, s->ds);
}
static Weights *vae_weights_a(void *st) { return &((VaeState *)st)->W; }
static void vae_free_a(void *st) {
    VaeState *s = st;
    weights_free(&s->W);
    params_free(&s->W.t);
    free(s->es);
    free(s->ds);
    free(s);
}

// ================================================================== clip, clip-id

typedef struct {
    ClipText m;
    Weights W;
    ClipSaved *sv;
    int B, L;
} ClipState;

// DIR/config.json + DIR/model.safetensors (else DIR/pytorch_model.bin).
static int clip_load_a(void **st, const char *weights, const Backend *be, DType dt, int train) {
    if (need_dir(weights, "a transformers text encoder folder (config.json + model.safetensors or pytorch_model.bin)"))
        return -1;
    ClipState *s = xcalloc(1, sizeof *s);
    s->sv = xcalloc(1, sizeof *s->sv);
    *st = s;
    char cfg[4096], file[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", weights);
    snprintf(file, sizeof file, "%s/model.safetensors", weights);
    if (!exists(file)) snprintf(file, sizeof file, "%s/pytorch_model.bin", weights);
    const char *files[1] = {file};
    s->W.be = be;
    s->W.dt = dt;
    return clip_load_ex(&s->m, &s->W, cfg, files, 1, train);
}

static int clip_check_common(ClipState *s, const ModelArg *a, int *nd, int64_t *out) {
    const ClipConfig *c = &s->m.cfg;
    char want[64];
    snprintf(want, sizeof want, "[B, L] with 1 <= L <= %d", c->max_pos);
    if (a[0].shape[1] < 1 || a[0].shape[1] > c->max_pos) return bad_shape("input_ids", &a[0], want);
    for (size_t i = 0; i < a[0].numel; i++)
        if (a[0].i[i] < 0 || a[0].i[i] >= c->vocab) {
            a2f_set_error("input 'input_ids' holds %d, outside the vocabulary [0, %d)", a[0].i[i], c->vocab);
            return -1;
        }
    s->B = (int)a[0].shape[0], s->L = (int)a[0].shape[1];
    *nd = 3;
    out[0] = s->B, out[1] = s->L, out[2] = c->hidden;
    return 0;
}
static int clip_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) { return clip_check_common(st, a, nd, out); }
static int clip_id_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    ClipState *s = st;
    char want[64];
    snprintf(want, sizeof want, "[B, %d] with B = %lld", s->m.id_dim, (long long)a[0].shape[0]);
    if (a[1].shape[0] != a[0].shape[0] || a[1].shape[1] != s->m.id_dim) return bad_shape("id_embedding", &a[1], want);
    return clip_check_common(s, a, nd, out);
}
static int clip_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    ClipState *s = st;
    return clip_f(c, &s->W, &s->m, out, a[0].i, NULL, s->B, s->L, s->sv);
}
static int clip_id_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    ClipState *s = st;
    return clip_f(c, &s->W, &s->m, out, a[0].i, in[1], s->B, s->L, s->sv);
}
static int clip_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    ClipState *s = st;
    return clip_b(c, &s->W, &s->m, din[1], dout, s->sv);
}
static Weights *clip_weights_a(void *st) { return &((ClipState *)st)->W; }
static void clip_free_a(void *st) {
    ClipState *s = st;
    weights_free(&s->W);
    params_free(&s->W.t);
    free(s->sv);
    free(s);
}

// ================================================================== mlp

typedef struct {
    MlpEncoder m;
    Weights W;
    MlpSaved sv;
    int B;
} MlpState;

static int mlp_load_a(void **st, const char *weights, const Backend *be, DType dt, int train) {
    if (need_dir(weights, "an MLP encoder folder (config.json + model.safetensors)")) return -1;
    MlpState *s = xcalloc(1, sizeof *s);
    *st = s;
    char cfg[4096], file[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", weights);
    snprintf(file, sizeof file, "%s/model.safetensors", weights);
    const char *files[1] = {file};
    s->W.be = be;
    s->W.dt = dt;
    return mlp_load(&s->m, &s->W, cfg, files, 1, train);
}
static int mlp_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    MlpState *s = st;
    char want[64];
    snprintf(want, sizeof want, "[B, %d]", s->m.cfg.in_dim);
    if (a[0].shape[1] != s->m.cfg.in_dim) return bad_shape("id_embedding", &a[0], want);
    s->B = (int)a[0].shape[0];
    *nd = 3;
    out[0] = s->B, out[1] = s->m.cfg.num_tokens, out[2] = s->m.cfg.token_dim;
    return 0;
}
static int mlp_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    MlpState *s = st;
    return mlp_f(c, &s->W, &s->m, out, in[0], s->B, &s->sv);
}
static int mlp_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    MlpState *s = st;
    return mlp_b(c, &s->W, &s->m, din[0], dout, &s->sv);
}
static Weights *mlp_weights_a(void *st) { return &((MlpState *)st)->W; }
static void mlp_free_a(void *st) {
    MlpState *s = st;
    weights_free(&s->W);
    params_free(&s->W.t);
    free(s);
}

// ================================================================== iresnet

typedef struct {
    IResNet m;
    Weights W;
    IResNetSaved sv;
    int built, B;
} IresState;

// The configuration from the checkpoint's keys and shapes (insightface names:
// layers from the block indices, widths from the convs, embedding and input
// size from fc.weight; TreB1eN names: ir/irse 50/100 by block count and SE).
static int iresnet_infer(IResNetConfig *cfg, const SafeTensors *st, const char *path) {
    int ci = st_find(st, "conv1.weight"), fi = st_find(st, "fc.weight");
    if (ci >= 0 && fi >= 0) {
        TRY(iresnet_config(cfg, "r100"));
        for (int s = 0; s < 4; s++) {
            cfg->layers[s] = 0;
            for (;;) {
                char k[64];
                snprintf(k, sizeof k, "layer%d.%d.conv2.weight", s + 1, cfg->layers[s]);
                int j = st_find(st, k);
                if (j < 0) break;
                if (cfg->layers[s] == 0) cfg->widths[s] = (int)st_tensor(st, j)->shape[0];
                cfg->layers[s]++;
            }
            if (!cfg->layers[s]) {
                a2f_set_error("%s: no layer%d.0.conv2.weight: not an insightface IResNet checkpoint", path, s + 1);
                return -1;
            }
        }
        const StTensor *conv = st_tensor(st, ci), *fc = st_tensor(st, fi);
        cfg->stem = (int)conv->shape[0];
        cfg->emb = (int)fc->shape[0];
        int64_t hw = fc->ndim == 2 ? fc->shape[1] / cfg->widths[3] : 0, f = (int64_t)llround(sqrt((double)hw));
        if (f < 1 || f * f != hw) {
            a2f_set_error("%s: fc.weight does not fit a square feature map of %d channels", path, cfg->widths[3]);
            return -1;
        }
        cfg->in_h = cfg->in_w = (int)(16 * f);  // four stride-2 stages: 16 f -> f
        return 0;
    }
    if (st_find(st, "input_layer.0.weight") >= 0) {
        int n = 0, se = 0;
        for (int i = 0; i < st_count(st); i++) {
            int b;
            if (sscanf(st_tensor(st, i)->name, "body.%d.", &b) == 1 && b + 1 > n) n = b + 1;
            if (strstr(st_tensor(st, i)->name, ".fc1.")) se = 1;
        }
        const char *name = n == 24 ? (se ? "irse50" : "ir50") : n == 49 ? (se ? "irse100" : "ir100") : NULL;
        if (!name) {
            a2f_set_error("%s: TreB1eN backbone with %d units (want 24 or 49)", path, n);
            return -1;
        }
        return iresnet_config(cfg, name);
    }
    a2f_set_error("%s: neither insightface (conv1, layerN, fc) nor TreB1eN (input_layer, body) IResNet keys", path);
    return -1;
}

static int iresnet_load_a(void **st, const char *weights, const Backend *be, DType dt, int train) {
    IresState *s = xcalloc(1, sizeof *s);
    *st = s;
    SafeTensors f;
    TRY(torch_is_checkpoint_path(weights) ? torch_open(&f, weights) : st_open(&f, weights));
    IResNetConfig cfg;
    int rc = iresnet_infer(&cfg, &f, weights);
    st_close(&f);
    TRY(rc);
    TRY(iresnet_build(&s->m, &s->W.t, &cfg));
    s->built = 1;
    TRY(weights_alloc(&s->W, be, dt, train));
    s->m.bn_train = 0;  // eval-mode BatchNorm (running statistics), as model.eval()
    return iresnet_load(&s->m, &s->W, weights);
}
static int iresnet_check_a(void *st, const ModelArg *a, int *nd, int64_t *out) {
    IresState *s = st;
    const IResNetConfig *c = &s->m.cfg;
    char want[64];
    snprintf(want, sizeof want, "[B, 3, %d, %d]", c->in_h, c->in_w);
    if (a[0].shape[1] != 3 || a[0].shape[2] != c->in_h || a[0].shape[3] != c->in_w) return bad_shape("image", &a[0], want);
    s->B = (int)a[0].shape[0];
    *nd = 2;
    out[0] = s->B, out[1] = c->emb;
    return 0;
}
static int iresnet_forward_a(void *st, const Ctx *c, void *out, void *const *in, const ModelArg *a) {
    IresState *s = st;
    return iresnet_f(c, &s->W, &s->m, out, in[0], s->B, &s->sv);
}
static int iresnet_backward_a(void *st, const Ctx *c, void *const *din, const void *dout) {
    IresState *s = st;
    return iresnet_b(c, &s->W, &s->m, din[0], dout, &s->sv);
}
static Weights *iresnet_weights_a(void *st) { return &((IresState *)st)->W; }
static void iresnet_free_a(void *st) {
    IresState *s = st;
    if (s->built) iresnet_free(&s->m);
    weights_free(&s->W);
    params_free(&s->W.t);
    free(s);
}

// ================================================================== registry

static const ModelDef k_models[] = {
    {"unet", "diffusers UNet2DConditionModel: noise prediction", "diffusers unet/ folder", 3,
     {{"sample", MI_FLOAT, 4, -1, MODEL_NCHW, 1, "[B, in_channels, H, W] noisy latents"},
      {"timestep", MI_F32, 1, 0, MODEL_PLAIN, 0, "[B] or [] diffusion timesteps (any int or float dtype)"},
      {"encoder_hidden_states", MI_FLOAT, 3, -1, MODEL_PLAIN, 1, "[B, N, cross_attention_dim] conditioning"}},
     "[B, out_channels, H, W] (diffusers .sample)", MODEL_NCHW, unet_load_a, unet_check_a, unet_forward_a,
     unet_backward_a, unet_weights_a, unet_free_a},
    {"vae-enc", "AutoencoderKL encoder + quant_conv: posterior moments", "diffusers vae/ folder", 1,
     {{"image", MI_FLOAT, 4, -1, MODEL_NCHW, 1, "[B, 3, H, W] in [-1, 1]"}},
     "[B, 2*latent_channels, h, w] moments = latent_dist.parameters (mean, logvar)", MODEL_NCHW, vae_enc_load_a,
     vae_enc_check_a, vae_enc_forward_a, vae_enc_backward_a, vae_weights_a, vae_free_a},
    {"vae-dec", "AutoencoderKL post_quant_conv + decoder", "diffusers vae/ folder", 1,
     {{"latent", MI_FLOAT, 4, -1, MODEL_NCHW, 1, "[B, latent_channels, h, w] raw latent z (not scaled)"}},
     "[B, 3, 8h, 8w] image (vae.decode(z).sample)", MODEL_NCHW, vae_dec_load_a, vae_dec_check_a, vae_dec_forward_a,
     vae_dec_backward_a, vae_weights_a, vae_free_a},
    {"clip", "CLIPTextModel: last_hidden_state", "transformers text_encoder/ folder", 1,
     {{"input_ids", MI_INT, 2, -1, MODEL_PLAIN, 0, "[B, L] token ids"}},
     "[B, L, hidden] last_hidden_state", MODEL_PLAIN, clip_load_a, clip_check_a, clip_forward_a, clip_backward_a,
     clip_weights_a, clip_free_a},
    {"clip-id", "Arc2Face ID-conditioned CLIP encoder (id vector injected at token 'id')",
     "Arc2Face encoder/ folder (transformers layout)", 2,
     {{"input_ids", MI_INT, 2, -1, MODEL_PLAIN, 0, "[B, L] token ids containing the 'id' token 1014"},
      {"id_embedding", MI_FLOAT, 2, -1, MODEL_PLAIN, 1, "[B, 512] ArcFace vectors (L2-normalised inside)"}},
     "[B, L, hidden] last_hidden_state", MODEL_PLAIN, clip_load_a, clip_id_check_a, clip_id_forward_a,
     clip_backward_a, clip_weights_a, clip_free_a},
    {"mlp", "MLP ID encoder of the ablation", "folder with config.json + model.safetensors", 1,
     {{"id_embedding", MI_FLOAT, 2, -1, MODEL_PLAIN, 1, "[B, in_dim] ArcFace vectors"}},
     "[B, num_tokens, token_dim] conditioning", MODEL_PLAIN, mlp_load_a, mlp_check_a, mlp_forward_a, mlp_backward_a,
     mlp_weights_a, mlp_free_a},
    {"iresnet", "ArcFace IResNet (eval-mode BatchNorm): face embedding",
     "insightface state dict (.safetensors, or .bin/.pth; from ONNX via arc2face convert)", 1,
     {{"image", MI_FLOAT, 4, -1, MODEL_NCHW, 1, "[B, 3, 112, 112] RGB, (x - 127.5) / 127.5"}},
     "[B, 512] unnormalised embedding", MODEL_PLAIN, iresnet_load_a, iresnet_check_a, iresnet_forward_a,
     iresnet_backward_a, iresnet_weights_a, iresnet_free_a},
};
#define NMODELS ((int)(sizeof k_models / sizeof k_models[0]))

int models_count(void) { return NMODELS; }
const ModelDef *models_get(int i) { return i >= 0 && i < NMODELS ? &k_models[i] : NULL; }
const ModelDef *models_find(const char *name) {
    for (int i = 0; i < NMODELS; i++)
        if (!strcmp(k_models[i].name, name)) return &k_models[i];
    return NULL;
}

// ================================================================== driver

// NCHW (file) <-> NHWC (ours) for one [B, C, H, W] tensor; to_file picks the direction.
static void nchw_relayout(float *dst, const float *src, const int64_t *s, int to_file) {
    int64_t B = s[0], C = s[1], HW = s[2] * s[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) {
                size_t f = (size_t)((b * C + c) * HW + p), o = (size_t)((b * HW + p) * C + c);
                if (to_file) dst[f] = src[o];
                else dst[o] = src[f];
            }
}

// Reads input NAME (kind, rank) from the inputs file into a.
static int read_arg(const SafeTensors *st, const ModelInput *in, ModelArg *a) {
    int j = st_find(st, in->name);
    const StTensor *t = st_tensor(st, j);
    char s[96];
    if (t->ndim != in->ndim && t->ndim != in->ndim_alt) {
        a2f_set_error("%s: input '%s' has shape %s, want %s", st->name, in->name, shape_s(s, sizeof s, t->ndim, t->shape),
                      in->doc);
        return -1;
    }
    if (t->numel == 0) {
        a2f_set_error("%s: input '%s' is empty", st->name, in->name);
        return -1;
    }
    a->ndim = t->ndim;
    memcpy(a->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    a->numel = (size_t)t->numel;
    if (in->kind == MI_INT || (in->kind == MI_F32 && (t->dtype == ST_I64 || t->dtype == ST_I32))) {
        if (t->dtype != ST_I64 && t->dtype != ST_I32) {
            a2f_set_error("%s: input '%s' is %s, want I64 or I32 ids", st->name, in->name, st_dtype_name(t->dtype));
            return -1;
        }
        a->i = xmalloc(sizeof(int32_t) * a->numel);
        for (size_t k = 0; k < a->numel; k++) {
            int64_t v = 0;
            if (t->dtype == ST_I64) memcpy(&v, (const char *)t->data + 8 * k, 8);
            else {
                int32_t v32;
                memcpy(&v32, (const char *)t->data + 4 * k, 4);
                v = v32;
            }
            if (v < INT32_MIN || v > INT32_MAX) {
                a2f_set_error("%s: input '%s' holds %lld, out of int32 range", st->name, in->name, (long long)v);
                return -1;
            }
            a->i[k] = (int32_t)v;
        }
        if (in->kind == MI_F32) {  // integer timesteps -> float
            a->f = xmalloc(sizeof(float) * a->numel);
            for (size_t k = 0; k < a->numel; k++) a->f[k] = (float)a->i[k];
            free(a->i);
            a->i = NULL;
        }
        return 0;
    }
    float *tmp = xmalloc(sizeof(float) * a->numel);
    if (st_load_f32(st, in->name, tmp, 0, NULL)) {
        free(tmp);
        return -1;
    }
    if (in->layout == MODEL_NCHW) {
        a->f = xmalloc(sizeof(float) * a->numel);
        nchw_relayout(a->f, tmp, a->shape, 0);
        free(tmp);
    } else {
        a->f = tmp;
    }
    return 0;
}

// Host fp32 [n] -> backend buffer of dtype dt.
static int upload_as(const Backend *be, void *dst, const float *src, size_t n, DType dt) {
    if (dt == DT_F32) return be->upload(dst, src, n * sizeof(float));
    void *tmp = xmalloc(n * dtype_size(dt) + 1);
    convert_dtype(tmp, dt, src, DT_F32, n);
    int rc = be->upload(dst, tmp, n * dtype_size(dt));
    free(tmp);
    return rc;
}
static int download_as(const Backend *be, float *dst, const void *src, size_t n, DType dt) {
    if (dt == DT_F32) return be->download(dst, src, n * sizeof(float));
    void *tmp = xmalloc(n * dtype_size(dt) + 1);
    int rc = be->download(tmp, src, n * dtype_size(dt));
    if (rc == 0) convert_dtype(dst, DT_F32, tmp, dt, n);
    free(tmp);
    return rc;
}

static size_t numel_of(int nd, const int64_t *s) {
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)s[d];
    return n;
}

// Our [O, KH, KW, I] conv gradient -> PyTorch [O, I, KH, KW].
static void conv_to_file(float *dst, const float *src, const ParamEntry *e) {
    int64_t O = e->shape[0], KH = e->shape[1], KW = e->shape[2], I = e->shape[3];
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t y = 0; y < KH; y++)
                for (int64_t x = 0; x < KW; x++)
                    dst[((o * I + i) * KH + y) * KW + x] = src[((o * KH + y) * KW + x) * I + i];
}

int models_run(const ModelRunOpts *o) {
    const ModelDef *d = models_find(o->model);
    if (!d) {
        a2f_set_error("unknown model '%s'", o->model);
        return -1;
    }
    const Backend *be = o->be ? o->be : cpu_backend();
    int train = o->grad != NULL, rc = -1, n = d->ninputs;
    ModelArg args[MODEL_MAX_INPUTS];
    memset(args, 0, sizeof args);
    void *state = NULL, *in_dev[MODEL_MAX_INPUTS] = {0}, *din[MODEL_MAX_INPUTS] = {0};
    float **hgrad = NULL;
    Ctx c = {0};
    SafeTensors st = {0}, gs = {0};
    int st_open_ok = 0, gs_open_ok = 0;
    StWriter *w = NULL;
    float *hout = NULL, *fout = NULL, *hparam = NULL, *fparam = NULL;
    int out_nd = 0;
    int64_t out_shape[MODEL_MAX_DIMS];
    char list[256] = "";
    for (int k = 0; k < n; k++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", d->in[k].name);

    // ---- inputs: exactly the model's names
    if (st_open(&st, o->inputs)) goto done;
    st_open_ok = 1;
    for (int k = 0; k < n; k++)
        if (st_find(&st, d->in[k].name) < 0) {
            a2f_set_error("%s: missing input '%s' (model %s takes %s)", o->inputs, d->in[k].name, d->name, list);
            goto done;
        }
    for (int j = 0; j < st_count(&st); j++) {
        int known = 0;
        for (int k = 0; k < n; k++) known |= !strcmp(st_tensor(&st, j)->name, d->in[k].name);
        if (!known) {
            a2f_set_error("%s: unexpected input '%s' (model %s takes %s)", o->inputs, st_tensor(&st, j)->name, d->name,
                          list);
            goto done;
        }
    }
    for (int k = 0; k < n; k++)
        if (read_arg(&st, &d->in[k], &args[k])) goto done;
    if (n > 1)  // every input shares the batch size
        for (int k = 1; k < n; k++)
            if (args[k].ndim > 0 && d->in[k].ndim == args[k].ndim && args[k].shape[0] != args[0].shape[0]) {
                a2f_set_error("%s: input '%s' has batch %lld but '%s' has %lld", o->inputs, d->in[k].name,
                              (long long)args[k].shape[0], d->in[0].name, (long long)args[0].shape[0]);
                goto done;
            }

    // ---- model
    if (d->load(&state, o->weights, be, o->dt, train)) goto done;
    if (d->check(state, args, &out_nd, out_shape)) {
        char msg[A2F_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", a2f_last_error());
        a2f_set_error("%s: %s (model %s)", o->inputs, msg, d->name);
        goto done;
    }
    size_t nout = numel_of(out_nd, out_shape);
    if (nn_ctx_init(&c, be, o->dt, o->act_bytes, train ? o->act_bytes : 4096)) goto done;
    c.train = train;
    for (int k = 0; k < n; k++) {
        if (d->in[k].kind == MI_INT) continue;
        int f32 = d->in[k].kind == MI_F32;
        if (!(in_dev[k] = f32 ? (void *)nn_push_f32(&c, args[k].numel) : nn_push(&c, args[k].numel))) goto done;
        if (upload_as(be, in_dev[k], args[k].f, args[k].numel, f32 ? DT_F32 : o->dt)) goto done;
    }
    void *out = nn_push(&c, nout);
    if (!out || d->forward(state, &c, out, in_dev, args)) goto done;

    // ---- backward with the upstream gradient "out"
    Weights *W = d->weights(state);
    if (train) {
        if (st_open(&gs, o->grad)) goto done;
        gs_open_ok = 1;
        int j = st_find(&gs, "out");
        if (j < 0 || st_count(&gs) != 1) {
            a2f_set_error("%s: want exactly one tensor named 'out' (the upstream gradient)", o->grad);
            goto done;
        }
        float *g = xmalloc(sizeof(float) * nout), *gl = xmalloc(sizeof(float) * nout);
        int r = st_load_f32(&gs, "out", g, out_nd, out_shape);
        if (r == 0 && d->out_layout == MODEL_NCHW) nchw_relayout(gl, g, out_shape, 0);
        else memcpy(gl, g, sizeof(float) * nout);
        void *dout = r == 0 ? nn_gpush(&c, nout) : NULL;
        if (dout) r = upload_as(be, dout, gl, nout, o->dt);
        free(g);
        free(gl);
        if (!dout || r) goto done;
        for (int k = 0; k < n; k++)
            if (d->in[k].differentiable && !(din[k] = nn_gpush(&c, args[k].numel))) goto done;
        if (d->backward(state, &c, din, dout)) goto done;
    }

    // ---- results
    if (!(w = st_writer_begin(o->out))) goto done;
    hout = xmalloc(sizeof(float) * nout);
    fout = xmalloc(sizeof(float) * nout);
    if (download_as(be, hout, out, nout, o->dt)) goto done;
    if (d->out_layout == MODEL_NCHW) nchw_relayout(fout, hout, out_shape, 1);
    else memcpy(fout, hout, sizeof(float) * nout);
    if (st_writer_add(w, "out", ST_F32, out_nd, out_shape, fout)) goto done;
    if (train) {
        hgrad = xcalloc(MODEL_MAX_INPUTS, sizeof(float *));
        char names[MODEL_MAX_INPUTS][96];
        for (int k = 0; k < n; k++) {
            if (!din[k]) continue;
            float *h = xmalloc(sizeof(float) * args[k].numel);
            hgrad[k] = xmalloc(sizeof(float) * args[k].numel);
            if (download_as(be, h, din[k], args[k].numel, o->dt)) {
                free(h);
                goto done;
            }
            if (d->in[k].layout == MODEL_NCHW) nchw_relayout(hgrad[k], h, args[k].shape, 1);
            else memcpy(hgrad[k], h, sizeof(float) * args[k].numel);
            free(h);
            snprintf(names[k], sizeof names[k], "grad.%s", d->in[k].name);
            if (st_writer_add(w, names[k], ST_F32, args[k].ndim, args[k].shape, hgrad[k])) goto done;
        }
        const ParamTable *T = &W->t;
        hparam = xcalloc(T->total + 1, sizeof(float));
        fparam = xcalloc(T->total + 1, sizeof(float));
        if (be->download(hparam, W->grad, T->total * sizeof(float))) goto done;
        for (int i = 0; i < T->count; i++) {
            const ParamEntry *e = &T->entries[i];
            if (!e->trainable) continue;
            if (e->layout == PARAM_CONV) conv_to_file(fparam + e->offset, hparam + e->offset, e);
            else memcpy(fparam + e->offset, hparam + e->offset, e->numel * sizeof(float));
            char key[PARAM_NAME_MAX + 8];
            snprintf(key, sizeof key, "grad.%s", e->name);
            int64_t fs[TENSOR_MAX_DIMS];
            params_file_shape(e, fs);
            if (st_writer_add(w, key, ST_F32, e->ndim, fs, fparam + e->offset)) goto done;
        }
        // the writer copies names; keep the data until finish
        if (st_writer_metadata(w, "model", d->name) || st_writer_finish(w)) {
            w = NULL;
            goto done;
        }
    } else if (st_writer_metadata(w, "model", d->name) || st_writer_finish(w)) {
        w = NULL;
        goto done;
    }
    w = NULL;
    rc = 0;
done:
    if (w) st_writer_abort(w);
    if (hgrad) {
        for (int k = 0; k < MODEL_MAX_INPUTS; k++) free(hgrad[k]);
        free(hgrad);
    }
    free(hout);
    free(fout);
    free(hparam);
    free(fparam);
    if (c.act) nn_ctx_free(&c);
    if (state) d->free(state);
    for (int k = 0; k < n; k++) {
        free(args[k].f);
        free(args[k].i);
    }
    if (st_open_ok) st_close(&st);
    if (gs_open_ok) st_close(&gs);
    return rc;
}
