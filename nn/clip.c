// clip.c: CLIP text encoder layers and model, config and loading (see clip.h).
#include "clip.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "clip_embed.h"
#include "fused_linear.h"

#define PUSH(p, call)                   \
    do {                                \
        if (!((p) = (call))) return -1; \
    } while (0)

// ------------------------------------------------------------------ config

void clip_config_default(ClipConfig *c) {
    c->hidden = 512;
    c->intermediate = 2048;
    c->layers = 12;
    c->heads = 8;
    c->max_pos = 77;
    c->vocab = 49408;
    c->eps = 1e-5f;
}

static int get_int(const cJSON *o, const char *key, int *v, int lo, int hi, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return 0;
    const double d = cJSON_IsNumber(it) ? it->valuedouble : lo - 1.0;
    if (!(d >= lo && d <= hi) || d != (double)(long long)d) {
        a2f_set_error("%s: \"%s\" must be an integer in [%d, %d]", name, key, lo, hi);
        return -1;
    }
    *v = (int)d;
    return 0;
}

int clip_config_parse(ClipConfig *c, const char *json, const char *name) {
    clip_config_default(c);
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        a2f_set_error("%s: not a JSON object", name);
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!cJSON_IsObject(o)) o = root;  // CLIPTextConfig at the top level (SD1.5 text_encoder)
    int rc = 0;
    rc |= get_int(o, "hidden_size", &c->hidden, 1, 1 << 16, name);
    rc |= get_int(o, "intermediate_size", &c->intermediate, 1, 1 << 18, name);
    rc |= get_int(o, "num_hidden_layers", &c->layers, 1, CLIP_MAX_LAYERS, name);
    rc |= get_int(o, "num_attention_heads", &c->heads, 1, 1 << 12, name);
    rc |= get_int(o, "max_position_embeddings", &c->max_pos, 1, 1 << 16, name);
    rc |= get_int(o, "vocab_size", &c->vocab, 1, 1 << 24, name);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps");
    if (!rc && eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            a2f_set_error("%s: \"layer_norm_eps\" must be a number in (0, 1)", name);
            rc = -1;
        } else {
            c->eps = (float)eps->valuedouble;
        }
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if (!rc && act && !(cJSON_IsString(act) && strcmp(act->valuestring, "quick_gelu") == 0)) {
        a2f_set_error("%s: hidden_act %s is not supported (the CLIP text encoder uses \"quick_gelu\")", name,
                      cJSON_IsString(act) ? act->valuestring : "(not a string)");
        rc = -1;
    }
    if (!rc && c->hidden % c->heads != 0) {
        a2f_set_error("%s: hidden_size %d is not a multiple of num_attention_heads %d", name, c->hidden, c->heads);
        rc = -1;
    }
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

int clip_config_read(ClipConfig *c, const char *path) {
    char *buf = read_small_text(path, "config.json");
    if (!buf) return -1;
    int rc = clip_config_parse(c, buf, path);
    free(buf);
    return rc;
}

// ------------------------------------------------------------------ one layer

void clip_layer_add(ClipLayer *m, ParamTable *t, const char *prefix, int D, int H, int F, float eps) {
    char p[PARAM_NAME_MAX];
#define SUB(name) (snprintf(p, sizeof p, "%s.%s", prefix, name), p)
    m->D = D, m->H = H, m->F = F;
    layernorm_add(&m->ln1, t, SUB("layer_norm1"), D, eps);
    {  // q/k/v weights in a row, then their biases: one stacked GEMM (fused_linear.h)
        char pq[PARAM_NAME_MAX], pk[PARAM_NAME_MAX], pv[PARAM_NAME_MAX];
        snprintf(pq, sizeof pq, "%s.self_attn.q_proj", prefix);
        snprintf(pk, sizeof pk, "%s.self_attn.k_proj", prefix);
        snprintf(pv, sizeof pv, "%s.self_attn.v_proj", prefix);
        linear_run_add((Linear *const[]){&m->q, &m->k, &m->v}, 3, t, (const char *const[]){pq, pk, pv}, D, D, 1);
    }
    linear_add(&m->o, t, SUB("self_attn.out_proj"), D, D, 1);
    layernorm_add(&m->ln2, t, SUB("layer_norm2"), D, eps);
    linear_add(&m->fc1, t, SUB("mlp.fc1"), D, F, 1);
    linear_add(&m->fc2, t, SUB("mlp.fc2"), F, D, 1);
#undef SUB
}

static LinearRun qkv_run(const ClipLayer *m) { return (LinearRun){{&m->q, &m->k, &m->v}, 3}; }

// q, k, v [B, L, D] with rows st apart (3D: column slices of the fused
// projection; D: separate blocks), o [B, L, D] contiguous, seen as
// [B, L, H, hd]: causal self-attention views.
static AttnShape layer_attn(const ClipLayer *m, int B, int L, long st) {
    const long D = m->D, sb = L * st, so = (long)L * D;
    AttnShape s = {B, m->H, L, L, m->D / m->H, 1, sb, st, sb, st, sb, st, so, D};
    return s;
}

// Output j (q, k, v) of a q|k|v buffer of N rows in layout `fused`.
#define VIEW(buf, run, fused, j, N) linear_run_ptr(c, (void *)(buf), &(run), (fused), (j), (N))

int clip_layer_f(const Ctx *c, const Weights *W, const ClipLayer *m, void *y, const void *x, int B, int L,
                 ClipLayerSaved *sv) {
    const int N = B * L, D = m->D, F = m->F;
    const size_t ND = (size_t)N * D, NF = (size_t)N * F;
    memset(sv, 0, sizeof *sv);
    sv->mark = arena_mark(c->act);
    sv->x = x, sv->B = B, sv->L = L;
    // attention branch: mid = x + out_proj(attn(ln1(x)))
    PUSH(sv->ln1, nn_push(c, ND));
    PUSH(sv->m1, nn_push_f32(c, N));
    PUSH(sv->r1, nn_push_f32(c, N));
    TRY(layernorm_f(c, W, &m->ln1, sv->ln1, sv->m1, sv->r1, x, N));
    const LinearRun r = qkv_run(m);
    sv->fused = linear_run_fusable(W, &r);
    PUSH(sv->qkv, nn_push(c, 3 * ND));  // [N, 3D] (fused) or 3 x [N, D]
    TRY(linear_run_f(c, W, &r, sv->fused, sv->qkv, sv->ln1, N));
    PUSH(sv->att, nn_push(c, ND));
    PUSH(sv->lse, nn_push_f32(c, (size_t)B * m->H * L));
    AttnShape s = layer_attn(m, B, L, linear_run_stride(&r, sv->fused));
    OP(c, attention_fwd, sv->att, sv->lse, VIEW(sv->qkv, r, sv->fused, 0, N), VIEW(sv->qkv, r, sv->fused, 1, N),
       VIEW(sv->qkv, r, sv->fused, 2, N), &s);
    PUSH(sv->mid, nn_push(c, ND));
    TRY(linear_f(c, W, &m->o, sv->mid, sv->att, N));
    OP(c, add_fwd, sv->mid, sv->mid, x, ND);
    // MLP branch: y = mid + fc2(quick_gelu(fc1(ln2(mid))))
    PUSH(sv->ln2, nn_push(c, ND));
    PUSH(sv->m2, nn_push_f32(c, N));
    PUSH(sv->r2, nn_push_f32(c, N));
    TRY(layernorm_f(c, W, &m->ln2, sv->ln2, sv->m2, sv->r2, sv->mid, N));
    PUSH(sv->h, nn_push(c, NF));
    PUSH(sv->g, nn_push(c, NF));
    TRY(linear_f(c, W, &m->fc1, sv->h, sv->ln2, N));
    OP(c, quickgelu_fwd, sv->g, sv->h, NF);
    TRY(linear_f(c, W, &m->fc2, y, sv->g, N));
    OP(c, add_fwd, y, y, sv->mid, ND);
    if (!c->train) arena_reset(c->act, sv->mark);
    return 0;
}

int clip_layer_b(const Ctx *c, const Weights *W, const ClipLayer *m, void *dx, const void *dy, ClipLayerSaved *sv) {
    const int B = sv->B, L = sv->L, N = B * L, D = m->D, F = m->F;
    const size_t ND = (size_t)N * D, NF = (size_t)N * F;
    const size_t gmark = arena_mark(c->grad);
    void *dmid, *dg, *dh, *dln2, *datt, *dqkv, *dln1;
    // MLP branch
    PUSH(dmid, nn_gpush(c, ND));  // [N, D]
    OP(c, add_bwd, dmid, NULL, dy, ND);
    PUSH(dg, nn_gpush(c, NF));  // [N, F]
    TRY(linear_b(c, W, &m->fc2, dg, dy, sv->g, N));
    PUSH(dh, nn_gpush(c, NF));  // [N, F]
    OP(c, quickgelu_bwd, dh, dg, sv->h, NF);
    PUSH(dln2, nn_gpush(c, ND));  // [N, D]
    TRY(linear_b(c, W, &m->fc1, dln2, dh, sv->ln2, N));
    TRY(layernorm_b(c, W, &m->ln2, dmid, dln2, sv->mid, sv->m2, sv->r2, N));
    // attention branch
    OP(c, add_bwd, dx, NULL, dmid, ND);
    PUSH(datt, nn_gpush(c, ND));
    TRY(linear_b(c, W, &m->o, datt, dmid, sv->att, N));
    const LinearRun r = qkv_run(m);
    const int f = sv->fused;
    PUSH(dqkv, nn_gpush(c, 3 * ND));  // layout of sv->qkv; zeroed: the attention backward adds
    AttnShape s = layer_attn(m, B, L, linear_run_stride(&r, f));
    OP(c, attention_bwd, VIEW(dqkv, r, f, 0, N), VIEW(dqkv, r, f, 1, N), VIEW(dqkv, r, f, 2, N), datt,
       VIEW(sv->qkv, r, f, 0, N), VIEW(sv->qkv, r, f, 1, N), VIEW(sv->qkv, r, f, 2, N), sv->att, sv->lse, &s);
    PUSH(dln1, nn_gpush(c, ND));
    TRY(linear_run_b(c, W, &r, f, dln1, dqkv, sv->ln1, N));  // dX and the stacked dW [3D, D], db [3D]
    TRY(layernorm_b(c, W, &m->ln1, dx, dln1, sv->x, sv->m1, sv->r1, N));
    arena_reset(c->act, sv->mark);
    arena_reset(c->grad, gmark);
    return 0;
}

// ------------------------------------------------------------------ model

int clip_add(ClipText *m, ParamTable *t, const ClipConfig *cfg) {
    if (cfg->layers < 1 || cfg->layers > CLIP_MAX_LAYERS || cfg->heads < 1 || cfg->hidden % cfg->heads != 0) {
        a2f_set_error("clip: unsupported config (%d layers, hidden %d, %d heads)", cfg->layers, cfg->hidden,
                      cfg->heads);
        return -1;
    }
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const int D = cfg->hidden;
    m->id_token = CLIP_ID_TOKEN;
    m->id_dim = A2F_MIN(CLIP_ID_DIM, D);  // tiny test models take a shorter ID vector
    m->id_normalize = 1;
    int64_t ts[2] = {cfg->vocab, D}, ps[2] = {cfg->max_pos, D};
    m->tok = params_add(t, "text_model.embeddings.token_embedding.weight", 2, ts);
    m->pos = params_add(t, "text_model.embeddings.position_embedding.weight", 2, ps);
    for (int i = 0; i < cfg->layers; i++) {
        char p[PARAM_NAME_MAX];
        snprintf(p, sizeof p, "text_model.encoder.layers.%d", i);
        clip_layer_add(&m->layer[i], t, p, D, cfg->heads, cfg->intermediate, cfg->eps);
    }
    layernorm_add(&m->final_ln, t, "text_model.final_layer_norm", D, cfg->eps);
    return 0;
}

static int check_inputs(const ClipText *m, const int32_t *ids, int B, int L) {
    if (B < 1 || L < 1 || L > m->cfg.max_pos) {
        a2f_set_error("clip: input_ids [%d, %d]: need batch >= 1 and 1 <= length <= %d", B, L, m->cfg.max_pos);
        return -1;
    }
    if (m->id_dim < 1 || m->id_dim > m->cfg.hidden) {
        a2f_set_error("clip: id_dim %d must be in [1, hidden_size %d]", m->id_dim, m->cfg.hidden);
        return -1;
    }
    for (size_t i = 0; i < (size_t)B * L; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab) {
            a2f_set_error("clip: input_ids[%zu, %zu] = %d is outside the vocabulary [0, %d)", i / L, i % L, ids[i],
                          m->cfg.vocab);
            return -1;
        }
    return 0;
}

static int clip_f_run(const Ctx *c, const Weights *W, const ClipText *m, void *y, ClipSaved *sv) {
    const int B = sv->B, L = sv->L, N = B * L, D = m->cfg.hidden, nl = m->cfg.layers;
    const size_t ND = (size_t)N * D;
    PUSH(sv->ids_dev, (int32_t *)nn_push_f32(c, (size_t)N));  // int32 [B, L] in a float-sized slot
    // the upload is synchronous and not ordered with the stream: let earlier users of this memory finish
    if (c->be->sync() != 0 || c->be->upload(sv->ids_dev, sv->ids, (size_t)N * sizeof(int32_t)) != 0) return -1;
    PUSH(sv->xs[0], nn_push(c, ND));
    TRY(clip_embed_f(c, W, m, sv));
    if (c->train) {
        for (int i = 0; i < nl; i++) {
            PUSH(sv->xs[i + 1], nn_push(c, ND));
            TRY(clip_layer_f(c, W, &m->layer[i], sv->xs[i + 1], sv->xs[i], B, L, &sv->layer[i]));
        }
    } else {  // two buffers in turn: layer i reads one and writes the other
        void *buf[2] = {sv->xs[0], NULL};
        PUSH(buf[1], nn_push(c, ND));
        for (int i = 0; i < nl; i++)
            TRY(clip_layer_f(c, W, &m->layer[i], buf[(i + 1) & 1], buf[i & 1], B, L, &sv->layer[i]));
        sv->xs[nl] = buf[nl & 1];
    }
    PUSH(sv->fm, nn_push_f32(c, N));
    PUSH(sv->fr, nn_push_f32(c, N));
    TRY(layernorm_f(c, W, &m->final_ln, y, sv->fm, sv->fr, sv->xs[nl], N));
    return 0;
}

int clip_f(const Ctx *c, const Weights *W, const ClipText *m, void *y, const int32_t *ids, const void *id, int B,
           int L, ClipSaved *sv) {
    ClipSaved local;
    if (!sv) {
        CHECK(!c->train);  // training needs the caller's Saved
        sv = &local;
    }
    memset(sv, 0, sizeof *sv);
    TRY(check_inputs(m, ids, B, L));
    sv->mark = arena_mark(c->act);
    sv->B = B, sv->L = L, sv->ids = ids, sv->id = id, sv->train = c->train;
    int rc = clip_f_run(c, W, m, y, sv);
    if (rc != 0 || !c->train) arena_reset(c->act, sv->mark);
    return rc;
}

int clip_b(const Ctx *c, const Weights *W, const ClipText *m, void *d_id, const void *dy, ClipSaved *sv) {
    const int N = sv->B * sv->L, D = m->cfg.hidden, nl = m->cfg.layers;
    const size_t ND = (size_t)N * D, gmark = arena_mark(c->grad);
    if (!sv->train) {
        a2f_set_error("clip: backward needs a forward run with ctx->train = 1");
        return -1;
    }
    void *g, *gp;  // two [N, D] gradients in turn: layer i reads g = d(its output), adds into gp = d(its input)
    PUSH(g, nn_gpush(c, ND));
    PUSH(gp, nn_gpush(c, ND));
    TRY(layernorm_b(c, W, &m->final_ln, g, dy, sv->xs[nl], sv->fm, sv->fr, N));
    for (int i = nl - 1; i >= 0; i--) {
        TRY(clip_layer_b(c, W, &m->layer[i], gp, g, &sv->layer[i]));
        void *t = g;
        g = gp, gp = t;
        if (i > 0 && c->be->memset(gp, 0, ND * nn_elt(c)) != 0) return -1;  // same stream as the ops
    }
    TRY(clip_embed_b(c, W, m, d_id, g, sv));
    arena_reset(c->act, sv->mark);
    arena_reset(c->grad, gmark);
    return 0;
}

size_t clip_act_bytes(const ClipText *m, int B, int L, DType dt) {
    const size_t N = (size_t)B * L, D = m->cfg.hidden, F = m->cfg.intermediate, e = dtype_size(dt);
    const size_t A = ARENA_ALIGN;
    size_t layer = (8 * N * D + 2 * N * F) * e + (4 * N + (size_t)B * m->cfg.heads * L) * 4 + 14 * A;
    size_t embed = N * 4 + N * D * e + ((size_t)B * m->id_dim + D) * e + 4 * A;
    return embed + (size_t)m->cfg.layers * layer + 2 * N * 4 + 2 * A;
}

// ------------------------------------------------------------------ loading

int clip_key_map(const char *key, char *out, size_t n) {
    size_t len = strlen(key);
    if (len >= 12 && strcmp(key + len - 12, "position_ids") == 0) return 0;  // a buffer, not a weight
    int bare = strncmp(key, "embeddings.", 11) == 0 || strncmp(key, "encoder.", 8) == 0 ||
               strncmp(key, "final_layer_norm.", 17) == 0;  // transformers >= 5 drops "text_model."
    snprintf(out, n, "%s%s", bare ? "text_model." : "", key);
    return 1;
}

int clip_load_ex(ClipText *m, Weights *W, const char *config_json, const char *const *weight_files, int n,
                 int train) {
    const Backend *be = W->be ? W->be : cpu_backend();
    const DType dt = W->be ? W->dt : DT_F32;
    ClipConfig cfg;
    TRY(clip_config_read(&cfg, config_json));
    memset(W, 0, sizeof *W);
    params_init(&W->t);
    if (clip_add(m, &W->t, &cfg) != 0) goto fail;
    if (weights_alloc(W, be, dt, train) != 0) goto fail;
    if (weights_load(W, weight_files, n, clip_key_map) != 0) goto fail;
    return 0;
fail:
    weights_free(W);
    params_free(&W->t);
    return -1;
}

int clip_load(ClipText *m, Weights *W, const char *config_json, const char *const *weight_files, int n) {
    return clip_load_ex(m, W, config_json, weight_files, n, 0);
}

int clip_load_transformers(ClipText *m, Weights *W, const char *dir) {
    char cfg[4096], st[4096], bin[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
    FILE *f = fopen(st, "rb");
    const char *file = f ? st : bin;
    if (f) fclose(f);
    else if (!(f = fopen(bin, "rb"))) {
        a2f_set_error("%s: neither model.safetensors nor pytorch_model.bin found", dir);
        return -1;
    } else {
        fclose(f);
    }
    return clip_load(m, W, cfg, &file, 1);
}
