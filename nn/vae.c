// vae.c: AutoencoderKL configuration, parameter table, key mapping, loading,
// posterior / sampling / scaling and the encode / decode API (see vae.h).
#include "vae.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"

// ------------------------------------------------------------------ config

VaeConfig vae_config_sd15(void) {
    VaeConfig c = {3, 3, 4, 4, {128, 256, 512, 512}, 2, 32, 1, 1, 1, 0.18215f, 0.0f};
    return c;
}

int vae_config_check(const VaeConfig *c) {
    if (c->nblocks < 1 || c->nblocks > VAE_MAX_BLOCKS) {
        a2f_set_error("vae config: %d blocks (1..%d supported)", c->nblocks, VAE_MAX_BLOCKS);
        return -1;
    }
    if (c->layers_per_block < 1 || c->layers_per_block + 1 > VAE_MAX_LAYERS) {
        a2f_set_error("vae config: layers_per_block %d (1..%d supported)", c->layers_per_block, VAE_MAX_LAYERS - 1);
        return -1;
    }
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1 || c->norm_num_groups < 1) {
        a2f_set_error("vae config: in/out/latent channels and norm_num_groups must be positive");
        return -1;
    }
    for (int i = 0; i < c->nblocks; i++)
        if (c->block_out[i] < 1 || c->block_out[i] % c->norm_num_groups != 0) {
            a2f_set_error("vae config: block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d",
                          i, c->block_out[i], c->norm_num_groups);
            return -1;
        }
    if (!(c->scaling_factor > 0.0f) || !isfinite(c->scaling_factor) || !isfinite(c->shift_factor)) {
        a2f_set_error("vae config: scaling_factor must be positive and finite");
        return -1;
    }
    return 0;
}

static int json_int(const cJSON *root, const char *key, int def, int *out, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return *out = def, 0;
    if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int)j->valuedouble) {
        a2f_set_error("%s: \"%s\" must be an integer", path, key);
        return -1;
    }
    *out = (int)j->valuedouble;
    return 0;
}

static int json_bool(const cJSON *root, const char *key, int def, int *out, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return *out = def, 0;
    if (!cJSON_IsBool(j)) {
        a2f_set_error("%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(j);
    return 0;
}

static int json_float(const cJSON *root, const char *key, float def, float *out, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return *out = def, 0;
    if (!cJSON_IsNumber(j)) {
        a2f_set_error("%s: \"%s\" must be a number", path, key);
        return -1;
    }
    *out = (float)j->valuedouble;
    return 0;
}

// A list of block types, each equal to `want`; n blocks.
static int json_types(const cJSON *root, const char *key, const char *want, int n, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (n == 1) return 0;  // diffusers default: one block
        a2f_set_error("%s: \"%s\" missing for %d blocks", path, key, n);
        return -1;
    }
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != n) {
        a2f_set_error("%s: \"%s\" must be a list of %d block types (one per block_out_channels entry)", path, key, n);
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want) != 0) {
            a2f_set_error("%s: %s entry %s is not supported (only %s)", path, key,
                          cJSON_IsString(e) ? e->valuestring : "(not a string)", want);
            return -1;
        }
    }
    return 0;
}

static int config_parse(VaeConfig *c, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root)) {
        a2f_set_error("%s: not a JSON object", path);
        return -1;
    }
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (j && (!cJSON_IsString(j) || strcmp(j->valuestring, "AutoencoderKL") != 0)) {
        a2f_set_error("%s: _class_name %s is not AutoencoderKL", path, cJSON_IsString(j) ? j->valuestring : "?");
        return -1;
    }
    j = cJSON_GetObjectItemCaseSensitive(root, "act_fn");
    if (j && !cJSON_IsNull(j) && (!cJSON_IsString(j) || strcmp(j->valuestring, "silu") != 0)) {
        a2f_set_error("%s: act_fn %s is not supported (only silu)", path, cJSON_IsString(j) ? j->valuestring : "?");
        return -1;
    }
    const char *unsupported[] = {"latents_mean", "latents_std"};
    for (int i = 0; i < 2; i++) {
        j = cJSON_GetObjectItemCaseSensitive(root, unsupported[i]);
        if (j && !cJSON_IsNull(j)) {
            a2f_set_error("%s: %s is not supported (per-channel latent statistics)", path, unsupported[i]);
            return -1;
        }
    }
    j = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (!j || cJSON_IsNull(j)) {
        c->nblocks = 1, c->block_out[0] = 64;  // diffusers default
    } else {
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 || cJSON_GetArraySize(j) > VAE_MAX_BLOCKS) {
            a2f_set_error("%s: block_out_channels must be a list of 1..%d integers", path, VAE_MAX_BLOCKS);
            return -1;
        }
        c->nblocks = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int)e->valuedouble) {
                a2f_set_error("%s: block_out_channels entries must be integers", path);
                return -1;
            }
            c->block_out[c->nblocks++] = (int)e->valuedouble;
        }
    }
    TRY(json_types(root, "down_block_types", "DownEncoderBlock2D", c->nblocks, path));
    TRY(json_types(root, "up_block_types", "UpDecoderBlock2D", c->nblocks, path));
    TRY(json_int(root, "in_channels", 3, &c->in_channels, path));
    TRY(json_int(root, "out_channels", 3, &c->out_channels, path));
    TRY(json_int(root, "latent_channels", 4, &c->latent_channels, path));
    TRY(json_int(root, "layers_per_block", 1, &c->layers_per_block, path));
    TRY(json_int(root, "norm_num_groups", 32, &c->norm_num_groups, path));
    TRY(json_bool(root, "use_quant_conv", 1, &c->use_quant_conv, path));
    TRY(json_bool(root, "use_post_quant_conv", 1, &c->use_post_quant_conv, path));
    TRY(json_bool(root, "mid_block_add_attention", 1, &c->mid_attention, path));
    TRY(json_float(root, "scaling_factor", 0.18215f, &c->scaling_factor, path));
    TRY(json_float(root, "shift_factor", 0.0f, &c->shift_factor, path));
    if (vae_config_check(c) != 0) {
        char msg[A2F_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", a2f_last_error());
        a2f_set_error("%s: %s", path, msg);
        return -1;
    }
    return 0;
}

int vae_config_load(VaeConfig *cfg, const char *path) {
    char *buf = read_small_text(path, "VAE config");
    if (!buf) return -1;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root) {
        a2f_set_error("%s: not valid JSON", path);
        return -1;
    }
    VaeConfig c = vae_config_sd15();
    int rc = config_parse(&c, root, path);
    cJSON_Delete(root);
    if (rc == 0) *cfg = c;
    return rc;
}

// ------------------------------------------------------------------ parameters

void vae_add(Vae *m, ParamTable *t, const VaeConfig *cfg, int parts) {
    CHECK(vae_config_check(cfg) == 0);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (parts & VAE_ENCODER) vae_encoder_add(&m->enc, t, cfg);
    if (parts & VAE_DECODER) vae_decoder_add(&m->dec, t, cfg);
}

int vae_keymap(const char *file_key, char *out, size_t n) {
    static const char *const old_new[][2] = {
        {".attentions.0.query.", ".attentions.0.to_q."},
        {".attentions.0.key.", ".attentions.0.to_k."},
        {".attentions.0.value.", ".attentions.0.to_v."},
        {".attentions.0.proj_attn.", ".attentions.0.to_out.0."},
    };
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(file_key, old_new[i][0]);
        if (p && strstr(file_key, "mid_block.attentions.0.") != NULL) {
            snprintf(out, n, "%.*s%s%s", (int)(p - file_key), file_key, old_new[i][1], p + strlen(old_new[i][0]));
            return 1;
        }
    }
    snprintf(out, n, "%s", file_key);
    return 1;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int vae_keymap_encoder(const char *file_key, char *out, size_t n) {
    if (!starts(file_key, "encoder.") && !starts(file_key, "quant_conv.")) return 0;
    return vae_keymap(file_key, out, n);
}

int vae_keymap_decoder(const char *file_key, char *out, size_t n) {
    if (!starts(file_key, "decoder.") && !starts(file_key, "post_quant_conv.")) return 0;
    return vae_keymap(file_key, out, n);
}

int vae_load_diffusers_ex(Vae *m, Weights *W, const char *dir, int parts, const Backend *be, DType dt, int train) {
    char cfg_path[4096], wpath[4096];
    VaeConfig cfg;
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    TRY(vae_config_load(&cfg, cfg_path));
    snprintf(wpath, sizeof wpath, "%s/diffusion_pytorch_model.safetensors", dir);
    if (access(wpath, R_OK) != 0) {
        snprintf(wpath, sizeof wpath, "%s/diffusion_pytorch_model.fp16.safetensors", dir);
        if (access(wpath, R_OK) != 0) {
            a2f_set_error("%s: no diffusion_pytorch_model.safetensors or diffusion_pytorch_model.fp16.safetensors",
                          dir);
            return -1;
        }
    }
    memset(W, 0, sizeof *W);
    params_init(&W->t);
    vae_add(m, &W->t, &cfg, parts);
    if (weights_alloc(W, be ? be : cpu_backend(), dt, train) != 0) {
        params_free(&W->t);
        return -1;
    }
    const char *files[] = {wpath};
    KeyMap map = parts == VAE_BOTH ? vae_keymap : parts == VAE_ENCODER ? vae_keymap_encoder : vae_keymap_decoder;
    if (weights_load(W, files, 1, map) != 0) {
        weights_free(W);
        params_free(&W->t);
        return -1;
    }
    return 0;
}

int vae_load_diffusers(Vae *m, Weights *W, const char *dir) {
    return vae_load_diffusers_ex(m, W, dir, VAE_BOTH, cpu_backend(), DT_F32, 0);
}

// ------------------------------------------------------------------ posterior (host)

// n values of the context dtype in backend memory -> fresh host floats.
static float *download_f32(const Ctx *c, const void *src, size_t n) {
    size_t bytes = n * nn_elt(c);
    void *raw = xmalloc(bytes);
    int st = c->be->sync();
    if (st == 0) st = c->be->download(raw, src, bytes);
    if (st != 0) {
        free(raw);
        nn_op_failed("download", c->be, st);
        return NULL;
    }
    if (c->dt == DT_F32) return raw;
    float *f = xmalloc(n * sizeof(float));
    convert_dtype(f, DT_F32, raw, c->dt, n);
    free(raw);
    return f;
}

// n host floats -> backend memory of the context dtype.
static int upload_f32(const Ctx *c, void *dst, const float *src, size_t n) {
    const void *raw = src;
    void *tmp = NULL;
    if (c->dt != DT_F32) {
        tmp = xmalloc(n * nn_elt(c));
        convert_dtype(tmp, c->dt, src, DT_F32, n);
        raw = tmp;
    }
    int st = c->be->upload(dst, raw, n * nn_elt(c));
    free(tmp);
    if (st != 0) return nn_op_failed("upload", c->be, st);
    return 0;
}

static float clamp_logvar(float v) { return v < -30.0f ? -30.0f : v > 20.0f ? 20.0f : v; }

int vae_posterior(const Ctx *c, int L, size_t P, const void *moments, void *mean, void *logvar) {
    float *m = download_f32(c, moments, P * 2 * L);
    if (!m) return -1;
    float *mu = xmalloc(P * L * sizeof(float)), *lv = xmalloc(P * L * sizeof(float));
    for (size_t p = 0; p < P; p++)
        for (int k = 0; k < L; k++) {
            mu[p * L + k] = m[p * 2 * L + k];
            lv[p * L + k] = clamp_logvar(m[p * 2 * L + L + k]);
        }
    int rc = 0;
    if (mean) rc = upload_f32(c, mean, mu, P * L);
    if (rc == 0 && logvar) rc = upload_f32(c, logvar, lv, P * L);
    free(m), free(mu), free(lv);
    return rc;
}

int vae_sample(const Ctx *c, int L, size_t P, const void *moments, const float *eps, uint64_t seed, uint64_t offset,
               int mode_only, float shift, float scale, void *z) {
    const size_t n = P * L;
    float *noise = NULL;
    if (!mode_only && !eps) {  // the backend's Philox normal stream, as float
        size_t mark = arena_mark(c->act);
        float *d = nn_push_f32(c, n);
        if (!d) return -1;
        int st = c->be->philox_fill_normal(d, n, seed, offset, c->stream);
        noise = xmalloc(n * sizeof(float));
        if (st == 0) st = c->be->sync();
        if (st == 0) st = c->be->download(noise, d, n * sizeof(float));
        arena_reset(c->act, mark);
        if (st != 0) {
            free(noise);
            return nn_op_failed("philox_fill_normal", c->be, st);
        }
        eps = noise;
    }
    float *m = download_f32(c, moments, P * 2 * L);
    if (!m) {
        free(noise);
        return -1;
    }
    float *out = xmalloc(n * sizeof(float));
    for (size_t p = 0; p < P; p++)
        for (int k = 0; k < L; k++) {
            float v = m[p * 2 * L + k];
            if (!mode_only) v += expf(0.5f * clamp_logvar(m[p * 2 * L + L + k])) * eps[p * L + k];
            out[p * L + k] = (v - shift) * scale;
        }
    int rc = upload_f32(c, z, out, n);
    free(m), free(out), free(noise);
    return rc;
}

int vae_affine(const Ctx *c, void *y, const void *x, size_t n, float scale, float shift) {
    float *h = download_f32(c, x, n);
    if (!h) return -1;
    for (size_t i = 0; i < n; i++) h[i] = h[i] * scale + shift;
    int rc = upload_f32(c, y, h, n);
    free(h);
    return rc;
}

// ------------------------------------------------------------------ caller API

static int need_inference(const Ctx *c, const char *what) {
    if (c->train) {
        a2f_set_error("%s: inference only (ctx->train is set; use the network forward and backward)", what);
        return -1;
    }
    return 0;
}

int vae_encode(const Ctx *c, const Weights *W, const Vae *m, void *latents, const void *x, int B, int H, int Wd,
               int mode, const float *eps, uint64_t seed, uint64_t offset, int scaled) {
    TRY(need_inference(c, "vae_encode"));
    int h, w;
    vae_latent_hw(&m->cfg, H, Wd, &h, &w);
    const int L = m->cfg.latent_channels;
    const size_t P = (size_t)B * h * w;
    size_t mark = arena_mark(c->act);
    void *mom = nn_push(c, P * 2 * L);  // [B, h, w, 2L]
    int rc = mom ? vae_encoder_f(c, W, m, mom, x, B, H, Wd, NULL) : -1;
    if (rc == 0)
        rc = vae_sample(c, L, P, mom, eps, seed, offset, mode == VAE_MODE, scaled ? m->cfg.shift_factor : 0.0f,
                        scaled ? m->cfg.scaling_factor : 1.0f, latents);
    arena_reset(c->act, mark);
    return rc;
}

int vae_decode(const Ctx *c, const Weights *W, const Vae *m, void *img, const void *latents, int B, int h, int w,
               int scaled) {
    TRY(need_inference(c, "vae_decode"));
    if (!scaled) return vae_decoder_f(c, W, m, img, latents, B, h, w, NULL);
    const size_t n = (size_t)B * h * w * m->cfg.latent_channels;
    size_t mark = arena_mark(c->act);
    void *z = nn_push(c, n);  // [B, h, w, L]
    int rc = z ? vae_affine(c, z, latents, n, 1.0f / m->cfg.scaling_factor, m->cfg.shift_factor) : -1;
    if (rc == 0) rc = vae_decoder_f(c, W, m, img, z, B, h, w, NULL);
    arena_reset(c->act, mark);
    return rc;
}
