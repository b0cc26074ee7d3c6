// mlp_encoder.c: the MLP ID encoder of the ablation (see mlp_encoder.h).
#include "mlp_encoder.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"

#define PUSH(p, call)                   \
    do {                                \
        if (!((p) = (call))) return -1; \
    } while (0)
#define ID_NORM_EPS 1e-12f

void mlp_config_default(MlpConfig *c) {
    memset(c, 0, sizeof *c);
    c->in_dim = 512;
    c->n_hidden = 3;
    c->hidden[0] = 1024, c->hidden[1] = 2048, c->hidden[2] = 2048;
    c->act = MLP_GELU;
    c->num_tokens = 77;
    c->token_dim = 768;
    c->final_norm = 1;
    c->normalize = 1;
    c->eps = 1e-5f;
}

static int json_int(const cJSON *o, const char *key, int *v, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 0;
    const double d = cJSON_IsNumber(it) ? it->valuedouble : 0;
    if (!(d >= 1 && d <= (1 << 24)) || d != (double)(long long)d) {
        a2f_set_error("%s: \"%s\" must be a positive integer", name, key);
        return -1;
    }
    *v = (int)d;
    return 0;
}

static int json_bool(const cJSON *o, const char *key, int *v, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return 0;
    if (!cJSON_IsBool(it)) {
        a2f_set_error("%s: \"%s\" must be true or false", name, key);
        return -1;
    }
    *v = cJSON_IsTrue(it);
    return 0;
}

static int parse(MlpConfig *c, const cJSON *o, const char *name) {
    if (json_int(o, "in_dim", &c->in_dim, name) || json_int(o, "num_tokens", &c->num_tokens, name) ||
        json_int(o, "token_dim", &c->token_dim, name) || json_bool(o, "final_layer_norm", &c->final_norm, name) ||
        json_bool(o, "normalize_input", &c->normalize, name))
        return -1;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hidden_dims");
    if (h) {
        int n = cJSON_IsArray(h) ? cJSON_GetArraySize(h) : -1;
        if (n < 0 || n > MLP_MAX_LAYERS - 1) {
            a2f_set_error("%s: \"hidden_dims\" must be an array of at most %d widths", name, MLP_MAX_LAYERS - 1);
            return -1;
        }
        c->n_hidden = n;
        for (int i = 0; i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(h, i);
            const double d = cJSON_IsNumber(it) ? it->valuedouble : 0;
            if (!(d >= 1 && d <= (1 << 20)) || d != (double)(long long)d) {
                a2f_set_error("%s: hidden_dims[%d] must be a positive integer", name, i);
                return -1;
            }
            c->hidden[i] = (int)d;
        }
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activation");
    if (act) {
        const char *s = cJSON_IsString(act) ? act->valuestring : "";
        if (strcmp(s, "gelu") == 0) c->act = MLP_GELU;
        else if (strcmp(s, "silu") == 0 || strcmp(s, "swish") == 0) c->act = MLP_SILU;
        else if (strcmp(s, "relu") == 0) c->act = MLP_RELU;
        else {
            a2f_set_error("%s: activation \"%s\" is not one of gelu, silu, relu", name, s);
            return -1;
        }
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            a2f_set_error("%s: \"layer_norm_eps\" must be a number in (0, 1)", name);
            return -1;
        }
        c->eps = (float)eps->valuedouble;
    }
    if ((double)c->num_tokens * c->token_dim > (1 << 28)) {
        a2f_set_error("%s: num_tokens * token_dim too large", name);
        return -1;
    }
    return 0;
}

int mlp_config_parse(MlpConfig *c, const char *json, const char *name) {
    mlp_config_default(c);
    cJSON *root = cJSON_Parse(json);
    int rc = -1;
    if (!cJSON_IsObject(root)) a2f_set_error("%s: not a JSON object", name);
    else rc = parse(c, root, name);
    cJSON_Delete(root);
    return rc;
}

int mlp_config_read(MlpConfig *c, const char *path) {
    char *buf = read_small_text(path, "config");
    if (!buf) return -1;
    int rc = mlp_config_parse(c, buf, path);
    free(buf);
    return rc;
}

// Width of layer i's output.
static int width(const MlpEncoder *m, int i) {
    return i < m->nl - 1 ? m->cfg.hidden[i] : m->cfg.num_tokens * m->cfg.token_dim;
}

int mlp_add(MlpEncoder *m, ParamTable *t, const MlpConfig *cfg) {
    if (cfg->n_hidden < 0 || cfg->n_hidden > MLP_MAX_LAYERS - 1 || cfg->in_dim < 1 || cfg->num_tokens < 1 ||
        cfg->token_dim < 1) {
        a2f_set_error("mlp: invalid config");
        return -1;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->nl = cfg->n_hidden + 1;
    for (int i = 0, in = cfg->in_dim; i < m->nl; in = width(m, i), i++) {
        char p[64];
        snprintf(p, sizeof p, "mlp.layers.%d", i);
        linear_add(&m->layer[i], t, p, in, width(m, i), 1);
    }
    if (cfg->final_norm) layernorm_add(&m->norm, t, "mlp.norm", cfg->token_dim, cfg->eps);
    return 0;
}

static int act_f(const Ctx *c, int act, void *y, const void *x, size_t n) {
    if (act == MLP_GELU) OP(c, gelu_fwd, y, x, n);
    else if (act == MLP_SILU) OP(c, silu_fwd, y, x, n);
    else OP(c, relu_fwd, y, x, n);
    return 0;
}

static int act_b(const Ctx *c, int act, void *dx, const void *dy, const void *x, size_t n) {
    if (act == MLP_GELU) OP(c, gelu_bwd, dx, dy, x, n);
    else if (act == MLP_SILU) OP(c, silu_bwd, dx, dy, x, n);
    else OP(c, relu_bwd, dx, dy, x, n);
    return 0;
}

static int mlp_f_run(const Ctx *c, const Weights *W, const MlpEncoder *m, void *y, MlpSaved *sv) {
    const int B = sv->B, T = m->cfg.num_tokens, D = m->cfg.token_dim;
    sv->xin = sv->x;
    if (m->cfg.normalize) {
        void *xn;
        PUSH(xn, nn_push(c, (size_t)B * m->cfg.in_dim));
        OP(c, l2norm_fwd, xn, sv->x, B, m->cfg.in_dim, ID_NORM_EPS);
        sv->xin = xn;
    }
    const void *in = sv->xin;
    for (int i = 0; i < m->nl - 1; i++) {
        const size_t n = (size_t)B * width(m, i);
        PUSH(sv->h[i], nn_push(c, n));
        PUSH(sv->a[i], nn_push(c, n));
        TRY(linear_f(c, W, &m->layer[i], sv->h[i], in, B));
        TRY(act_f(c, m->cfg.act, sv->a[i], sv->h[i], n));
        in = sv->a[i];
    }
    void *out = y;  // [B, T*D]
    if (m->cfg.final_norm) {
        PUSH(out, nn_push(c, (size_t)B * T * D));
        sv->z = out;
    }
    TRY(linear_f(c, W, &m->layer[m->nl - 1], out, in, B));
    if (m->cfg.final_norm) {
        PUSH(sv->m, nn_push_f32(c, (size_t)B * T));
        PUSH(sv->r, nn_push_f32(c, (size_t)B * T));
        TRY(layernorm_f(c, W, &m->norm, y, sv->m, sv->r, sv->z, B * T));
    }
    return 0;
}

int mlp_f(const Ctx *c, const Weights *W, const MlpEncoder *m, void *y, const void *x, int B, MlpSaved *sv) {
    MlpSaved local;
    if (!sv) {
        CHECK(!c->train);
        sv = &local;
    }
    memset(sv, 0, sizeof *sv);
    if (B < 1) {
        a2f_set_error("mlp: batch %d < 1", B);
        return -1;
    }
    sv->mark = arena_mark(c->act);
    sv->B = B, sv->x = x;
    int rc = mlp_f_run(c, W, m, y, sv);
    if (rc != 0 || !c->train) arena_reset(c->act, sv->mark);
    return rc;
}

int mlp_b(const Ctx *c, const Weights *W, const MlpEncoder *m, void *dx, const void *dy, MlpSaved *sv) {
    const int B = sv->B, T = m->cfg.num_tokens, D = m->cfg.token_dim, K = m->cfg.in_dim;
    const size_t gmark = arena_mark(c->grad);
    const void *g = dy;  // gradient of the current layer's output
    if (m->cfg.final_norm) {
        void *dz;
        PUSH(dz, nn_gpush(c, (size_t)B * T * D));
        TRY(layernorm_b(c, W, &m->norm, dz, dy, sv->z, sv->m, sv->r, B * T));
        g = dz;
    }
    void *dxin = dx;  // [B, K] gradient of layer 0's input
    if (dx && m->cfg.normalize) PUSH(dxin, nn_gpush(c, (size_t)B * K));
    for (int i = m->nl - 1; i >= 0; i--) {
        if (i == 0) {
            TRY(linear_b(c, W, &m->layer[0], dxin, g, sv->xin, B));
            break;
        }
        const size_t n = (size_t)B * width(m, i - 1);
        void *da, *dh;
        PUSH(da, nn_gpush(c, n));
        PUSH(dh, nn_gpush(c, n));
        TRY(linear_b(c, W, &m->layer[i], da, g, sv->a[i - 1], B));
        TRY(act_b(c, m->cfg.act, dh, da, sv->h[i - 1], n));
        g = dh;
    }
    if (dx && m->cfg.normalize) OP(c, l2norm_bwd, dx, dxin, sv->x, B, K, ID_NORM_EPS);
    arena_reset(c->act, sv->mark);
    arena_reset(c->grad, gmark);
    return 0;
}

int mlp_load(MlpEncoder *m, Weights *W, const char *config_json, const char *const *weight_files, int n, int train) {
    const Backend *be = W->be ? W->be : cpu_backend();
    const DType dt = W->be ? W->dt : DT_F32;
    MlpConfig cfg;
    TRY(mlp_config_read(&cfg, config_json));
    memset(W, 0, sizeof *W);
    params_init(&W->t);
    if (mlp_add(m, &W->t, &cfg) != 0 || weights_alloc(W, be, dt, train) != 0 ||
        weights_load(W, weight_files, n, NULL) != 0) {
        weights_free(W);
        params_free(&W->t);
        return -1;
    }
    return 0;
}
