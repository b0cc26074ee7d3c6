// unet_config.c: UNet2DConditionModel config.json parsing (see unet.h).
// Every key diffusers 0.42 writes is known; options outside the SD1.5 family
// (linear projection, class/addition embeddings, other time embeddings,
// several transformer layers, ...) are refused with an error naming the key.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "unet.h"

void unet_config_sd15(UNetConfig *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 4;
    c->sample_size = 64;
    c->cross_dim = 768;
    c->groups = 32;
    c->eps = 1e-5f;
    c->nlevels = 4;
    const int ch[4] = {320, 640, 1280, 1280};
    for (int i = 0; i < 4; i++) {
        c->channels[i] = ch[i];
        c->layers[i] = 2;
        c->heads[i] = 8;
        c->down_attn[i] = i < 3;
        c->up_attn[i] = i > 0;
    }
    c->flip_sin_to_cos = 1;
    c->freq_shift = 0;
}

// Keys that must hold their default (the only value this implementation runs).
enum { K_NULL, K_FALSE, K_NUM, K_STR, K_ANY };
typedef struct {
    const char *key;
    int kind;
    double num;
    const char *str;
} Fixed;
static const Fixed FIXED[] = {
    {"center_input_sample", K_FALSE},
    {"only_cross_attention", K_FALSE},
    {"downsample_padding", K_NUM, 1},
    {"mid_block_scale_factor", K_NUM, 1},
    {"dropout", K_NUM, 0},
    {"act_fn", K_STR, 0, "silu"},
    {"transformer_layers_per_block", K_NUM, 1},
    {"reverse_transformer_layers_per_block", K_NULL},
    {"encoder_hid_dim", K_NULL},
    {"encoder_hid_dim_type", K_NULL},
    {"num_attention_heads", K_NULL},  // diffusers itself refuses it (attention_head_dim is the head count)
    {"dual_cross_attention", K_FALSE},
    {"use_linear_projection", K_FALSE},
    {"class_embed_type", K_NULL},
    {"addition_embed_type", K_NULL},
    {"addition_time_embed_dim", K_NULL},
    {"num_class_embeds", K_NULL},
    {"upcast_attention", K_ANY},  // precision hint only: attention is fp32-accumulated anyway
    {"resnet_time_scale_shift", K_STR, 0, "default"},
    {"resnet_skip_time_act", K_FALSE},
    {"resnet_out_scale_factor", K_NUM, 1},
    {"time_embedding_type", K_STR, 0, "positional"},
    {"time_embedding_dim", K_NULL},
    {"time_embedding_act_fn", K_NULL},
    {"timestep_post_act", K_NULL},
    {"time_cond_proj_dim", K_NULL},
    {"conv_in_kernel", K_NUM, 3},
    {"conv_out_kernel", K_NUM, 3},
    {"projection_class_embeddings_input_dim", K_NULL},
    {"attention_type", K_STR, 0, "default"},
    {"class_embeddings_concat", K_FALSE},
    {"mid_block_only_cross_attention", K_NULL},  // or false (checked below)
    {"cross_attention_norm", K_NULL},
    {"addition_embed_type_num_heads", K_ANY},  // used only with addition embeddings
    {"mid_block_type", K_STR, 0, "UNetMidBlock2DCrossAttn"},
};
static const char *const USED[] = {"in_channels",       "out_channels",    "sample_size",    "cross_attention_dim",
                                   "norm_num_groups",   "norm_eps",        "block_out_channels", "layers_per_block",
                                   "attention_head_dim", "down_block_types", "up_block_types", "flip_sin_to_cos",
                                   "freq_shift"};

// A fixed key's value is acceptable (a list counts when every element is).
static int fixed_ok(const Fixed *f, const cJSON *v) {
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (!fixed_ok(f, e)) return 0;
        return 1;
    }
    switch (f->kind) {
    case K_NULL: return cJSON_IsNull(v) || (!strcmp(f->key, "mid_block_only_cross_attention") && cJSON_IsFalse(v));
    case K_FALSE: return cJSON_IsFalse(v);
    case K_NUM: return cJSON_IsNumber(v) && v->valuedouble == f->num;
    case K_STR: return cJSON_IsString(v) && !strcmp(v->valuestring, f->str);
    default: return 1;
    }
}

// An int, or a list of nlevels ints, into out[nlevels]; 0 / -1.
static int int_or_list(const cJSON *v, int n, int *out) {
    if (cJSON_IsNumber(v) && v->valuedouble == (int)v->valuedouble) {
        for (int i = 0; i < n; i++) out[i] = (int)v->valuedouble;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n) return -1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != (int)e->valuedouble) return -1;
        out[i] = (int)e->valuedouble;
    }
    return 0;
}

static int block_types(const cJSON *v, int n, const char *attn, const char *plain, int *out) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n) return -1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(e)) return -1;
        if (!strcmp(e->valuestring, attn)) out[i] = 1;
        else if (!strcmp(e->valuestring, plain)) out[i] = 0;
        else return -1;
    }
    return 0;
}

#define BAD(...)                                      \
    do {                                              \
        a2f_set_error(__VA_ARGS__);                   \
        cJSON_Delete(root);                           \
        return -1;                                    \
    } while (0)

int unet_config_parse(UNetConfig *cfg, const char *json, const char *name) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) BAD("%s: not a JSON object", name);
    UNetConfig c;
    memset(&c, 0, sizeof c);
    // every key must be known; fixed ones must hold their default
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        if (k[0] == '_') continue;  // _class_name, _diffusers_version, _name_or_path
        int known = 0;
        for (size_t i = 0; i < sizeof USED / sizeof *USED; i++) known |= !strcmp(k, USED[i]);
        for (size_t i = 0; !known && i < sizeof FIXED / sizeof *FIXED; i++)
            if (!strcmp(k, FIXED[i].key)) {
                known = 1;
                if (!fixed_ok(&FIXED[i], it)) {
                    char *txt = cJSON_PrintUnformatted(it);
                    a2f_set_error("%s: unsupported %s = %s (only the SD1.5 UNet family is implemented)", name, k,
                                  txt ? txt : "?");
                    free(txt);
                    cJSON_Delete(root);
                    return -1;
                }
            }
        if (!known) BAD("%s: unknown key %s", name, k);
    }
    const cJSON *v;
#define GET(key) (v = cJSON_GetObjectItemCaseSensitive(root, key))
    if (!GET("block_out_channels") || !cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
        cJSON_GetArraySize(v) > UNET_MAX_LEVELS)
        BAD("%s: block_out_channels must be a list of 1..%d ints", name, UNET_MAX_LEVELS);
    c.nlevels = cJSON_GetArraySize(v);
    const int n = c.nlevels;
    if (int_or_list(v, n, c.channels)) BAD("%s: block_out_channels must be a list of ints", name);
    c.in_channels = c.out_channels = 4;
    if (GET("in_channels") && (!cJSON_IsNumber(v) || (c.in_channels = v->valueint) < 1))
        BAD("%s: bad in_channels", name);
    if (GET("out_channels") && (!cJSON_IsNumber(v) || (c.out_channels = v->valueint) < 1))
        BAD("%s: bad out_channels", name);
    if (GET("sample_size") && !cJSON_IsNull(v)) {
        const cJSON *s = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : v;
        if (!cJSON_IsNumber(s)) BAD("%s: bad sample_size", name);
        c.sample_size = s->valueint;
    }
    int lay[UNET_MAX_LEVELS] = {0};
    for (int i = 0; i < n; i++) lay[i] = 2;
    if (GET("layers_per_block") && int_or_list(v, n, lay)) BAD("%s: bad layers_per_block", name);
    for (int i = 0; i < n; i++) {
        if (lay[i] < 1 || lay[i] > UNET_MAX_LAYERS)
            BAD("%s: layers_per_block %d not in 1..%d", name, lay[i], UNET_MAX_LAYERS);
        c.layers[i] = lay[i];
    }
    int heads[UNET_MAX_LEVELS] = {0};
    for (int i = 0; i < n; i++) heads[i] = 8;
    // the naming quirk: attention_head_dim is the number of heads
    if (GET("attention_head_dim") && int_or_list(v, n, heads)) BAD("%s: bad attention_head_dim", name);
    memcpy(c.heads, heads, sizeof heads);
    int cd[UNET_MAX_LEVELS] = {0};
    for (int i = 0; i < n; i++) cd[i] = 1280;
    if (GET("cross_attention_dim") && int_or_list(v, n, cd)) BAD("%s: bad cross_attention_dim", name);
    for (int i = 1; i < n; i++)
        if (cd[i] != cd[0]) BAD("%s: unsupported cross_attention_dim: per-block values differ", name);
    c.cross_dim = cd[0];
    c.groups = 32;
    if (GET("norm_num_groups") && (!cJSON_IsNumber(v) || (c.groups = v->valueint) < 1))
        BAD("%s: unsupported norm_num_groups (must be a positive int)", name);
    c.eps = 1e-5f;
    if (GET("norm_eps")) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0)) BAD("%s: bad norm_eps", name);
        c.eps = (float)v->valuedouble;
    }
    for (int i = 0; i < n; i++) c.down_attn[i] = i < n - 1, c.up_attn[i] = i > 0;
    if (GET("down_block_types") && block_types(v, n, "CrossAttnDownBlock2D", "DownBlock2D", c.down_attn))
        BAD("%s: unsupported down_block_types (want %d of CrossAttnDownBlock2D / DownBlock2D)", name, n);
    if (GET("up_block_types") && block_types(v, n, "CrossAttnUpBlock2D", "UpBlock2D", c.up_attn))
        BAD("%s: unsupported up_block_types (want %d of CrossAttnUpBlock2D / UpBlock2D)", name, n);
    c.flip_sin_to_cos = 1;
    if (GET("flip_sin_to_cos")) {
        if (!cJSON_IsBool(v)) BAD("%s: bad flip_sin_to_cos", name);
        c.flip_sin_to_cos = cJSON_IsTrue(v);
    }
    if (GET("freq_shift")) {
        if (!cJSON_IsNumber(v)) BAD("%s: bad freq_shift", name);
        c.freq_shift = (float)v->valuedouble;
    }
#undef GET
    cJSON_Delete(root);
    *cfg = c;
    return 0;
}

int unet_config_load(UNetConfig *cfg, const char *path) {
    char *buf = read_small_text(path, "UNet config");
    if (!buf) return -1;
    int rc = unet_config_parse(cfg, buf, path);
    free(buf);
    return rc;
}
