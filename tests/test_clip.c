// test_clip.c: the CLIP text encoder with Arc2Face's ID injection and the
// MLP ablation encoder against PyTorch / transformers
// (tools/ref/make_clip_fixtures.py writes tests/fixtures/clip/):
//  - tiny CLIPTextModels (3 configs, batch 2-3, 77 tokens, causal) loaded from
//    transformers folders: last_hidden_state, d(id_embedding) and every
//    parameter gradient, with and without the ID injection;
//  - one full-width CLIP layer (768, 12 heads, 3072, 77 tokens) whose weights
//    and inputs both sides generate (gen() below = gen() in the script);
//  - the MLP encoder (GELU / SiLU / ReLU, with and without the final norm);
//  - inference vs training forward, stack discipline, and bad input.
//
// Tolerances: errors are measured as max|got - want| / max|want| per tensor
// (entries near zero make elementwise relative error meaningless). fp32 with
// double-accumulated norms and sums of <= 3072 terms gives ~1e-6 on forward
// outputs; gradients go through up to 3 layers of backward (attention
// softmax, LayerNorm) where both sides round differently: 1e-4 of max|ref|.
// Set CLIP_VERBOSE=1 to print the measured errors.
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/clip.h"
#include "../nn/mlp_encoder.h"
#include "fixture.h"
#include "test.h"

#define DIR "tests/fixtures/clip/"

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; x && i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

// max|got - pre - want| / max(max|want|, floor) <= tol; reports the worst element.
static void expect_rel_floor(const char *what, const float *got, const float *want, size_t n, float pre, double tol,
                             double floor) {
    if (!got || !want) return;
    double mx = fmax(max_abs(want, n), floor), err = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - pre - want[i]);
        if (!(e <= err)) err = e, worst = i;  // NaN counts as worst
    }
    double rel = err / (mx > 0 ? mx : 1);
    if (getenv("CLIP_VERBOSE")) printf("    %-62s rel err %.2e (scale %.3g)\n", what, rel, mx);
    EXPECT(rel <= tol, "%s: max error %.3g of max|ref| %.3g = %.2e > %.1e (at [%zu]: got %.8g want %.8g)", what, err,
           mx, rel, tol, worst, got[worst] - pre, want[worst]);
}

static void expect_rel(const char *what, const float *got, const float *want, size_t n, float pre, double tol) {
    expect_rel_floor(what, got, want, n, pre, tol, 0);
}

// The k_proj bias adds q . b_k to every score of a query row, which softmax
// ignores: its gradient is exactly zero and both sides hold rounding noise
// (~1e-6). It is compared on the scale of the same layer's k_proj weight
// gradient (registered before the biases), elsewhere on its own scale.
static int ends_with(const char *name, const char *tail) {
    size_t n = strlen(name), k = strlen(tail);
    return n >= k && strcmp(name + n - k, tail) == 0;
}
static int is_k_bias(const char *name) { return ends_with(name, "k_proj.bias"); }
static int is_k_weight(const char *name) { return ends_with(name, "k_proj.weight"); }

static void tiny_paths(int s, char *cfg, char *model, size_t n) {
    snprintf(cfg, n, DIR "tiny_s%d/config.json", s);
    snprintf(model, n, DIR "tiny_s%d/model.safetensors", s);
}

static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

// One forward + backward on the CPU backend compared with the fixture's
// tensors `y`/`grad.` (tag "") or `y_plain`/`grad_plain.` (tag "_plain").
static void run_tiny(int s, int inject) {
    Fixture *fx = fx_open("clip/tiny_s%d/io.safetensors", s);
    if (!fx) return;
    char cfg[256], model[256];
    tiny_paths(s, cfg, model, sizeof cfg);
    const char *files[] = {model};
    ClipText m;
    Weights W = {0};
    int rc = clip_load_ex(&m, &W, cfg, files, 1, 1);
    EXPECT(rc == 0, "load tiny_s%d: %s", s, a2f_last_error());
    int32_t *meta = fx_i32(fx, 4, "meta");
    if (rc != 0 || !meta) {
        fx_close(fx);
        return;
    }
    const int B = meta[0], L = meta[1], K = meta[2], D = m.cfg.hidden;
    const size_t N = (size_t)B * L;
    m.id_dim = K;  // tiny models take a K-wide ID vector, zero-padded to D
    EXPECT(meta[3] == m.id_token, "placeholder %d vs %d", meta[3], m.id_token);
    int32_t *ids = fx_i32(fx, N, "ids");
    float *id = fx_f32(fx, (size_t)B * K, "id"), *dy = fx_f32(fx, N * D, "dy");
    const char *tag = inject ? "" : "_plain";
    float *yt = fx_f32(fx, N * D, "y%s", tag), *did_t = inject ? fx_f32(fx, (size_t)B * K, "d_id") : NULL;
    if (!ids || !id || !dy || !yt) goto done;
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, clip_act_bytes(&m, B, L, DT_F32) + N * D * 4 + 4096,
                       (m.cfg.layers + 8) * N * (D + m.cfg.intermediate) * 4) == 0,
           "ctx");
    c.train = 1;
    float *y = nn_push(&c, N * D);
    ClipSaved sv;
    rc = clip_f(&c, &W, &m, y, ids, inject ? id : NULL, B, L, &sv);
    EXPECT(rc == 0, "forward: %s", a2f_last_error());
    char what[200];
    snprintf(what, sizeof what, "tiny_s%d%s y", s, tag);
    if (rc == 0) expect_rel(what, y, yt, N * D, 0, 2e-5);
    // gradients accumulate (+=) onto a non-zero start
    fill(W.grad, W.t.total, TEST_GRAD_PRE);
    float *did = test_grad_buffer((size_t)B * K);
    const size_t amark = sv.mark, gmark = arena_mark(c.grad);
    rc = rc ? rc : clip_b(&c, &W, &m, inject ? did : NULL, dy, &sv);
    EXPECT(rc == 0, "backward: %s", a2f_last_error());
    EXPECT(arena_mark(c.act) == amark && arena_mark(c.grad) == gmark, "stacks not restored");
    if (rc == 0) {
        if (inject) {
            snprintf(what, sizeof what, "tiny_s%d d_id", s);
            expect_rel(what, did, did_t, (size_t)B * K, TEST_GRAD_PRE, 1e-4);
        }
        double kscale = 0;  // max|ref| of this layer's k_proj weight gradient
        for (int i = 0; i < W.t.count; i++) {
            const ParamEntry *e = &W.t.entries[i];
            float *want = fx_f32(fx, e->numel, "grad%s.%s", tag, e->name);
            snprintf(what, sizeof what, "tiny_s%d%s grad %s", s, tag, e->name);
            expect_rel_floor(what, gptr(&W, i), want, e->numel, TEST_GRAD_PRE, 1e-4, is_k_bias(e->name) ? kscale : 0);
            if (want && is_k_weight(e->name)) kscale = max_abs(want, e->numel);
        }
    }
    free(did);
    nn_ctx_free(&c);
done:
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

TEST(clip_tiny_id_injection_matches_transformers) {
    for (int s = 0; s < 3; s++) run_tiny(s, 1);
}

TEST(clip_tiny_plain_matches_transformers) { run_tiny(0, 0); }

// Inference (train 0) gives the training forward's output bit for bit and
// leaves the activation stack where it was; clip_load_transformers reads the
// folder (prefix-less transformers-5 keys in s0, position_ids buffer in s1,
// and s0's weights as a torch.save pytorch_model.bin, Arc2Face's format).
TEST(clip_inference_forward_and_folder_loader) {
    for (int s = 0; s < 3; s++) {
        Fixture *fx = fx_open("clip/tiny_s%d/io.safetensors", s == 2 ? 0 : s);
        if (!fx) return;
        char dir[128];
        if (s == 2) snprintf(dir, sizeof dir, DIR "tiny_bin");
        else snprintf(dir, sizeof dir, DIR "tiny_s%d", s);
        ClipText m;
        Weights W = {0};
        int rc = clip_load_transformers(&m, &W, dir);
        EXPECT(rc == 0 && W.grad == NULL, "load %s: %s", dir, a2f_last_error());
        int32_t *meta = fx_i32(fx, 4, "meta");
        if (rc == 0 && meta) {
            const int B = meta[0], L = meta[1], K = meta[2], D = m.cfg.hidden;
            m.id_dim = K;
            int32_t *ids = fx_i32(fx, (size_t)B * L, "ids");
            float *id = fx_f32(fx, (size_t)B * K, "id"), *yt = fx_f32(fx, (size_t)B * L * D, "y");
            Ctx c;
            EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 22, 1 << 16) == 0, "ctx");
            float *y = nn_push(&c, (size_t)B * L * D);
            const size_t mark = arena_mark(c.act);
            if (ids && id && yt) {
                EXPECT(clip_f(&c, &W, &m, y, ids, id, B, L, NULL) == 0, "forward: %s", a2f_last_error());
                EXPECT(arena_mark(c.act) == mark, "inference forward kept %zu bytes", arena_mark(c.act) - mark);
                expect_rel(dir, y, yt, (size_t)B * L * D, 0, 2e-5);
            }
            nn_ctx_free(&c);
        }
        weights_free(&W);
        params_free(&W.t);
        fx_close(fx);
    }
}

// ------------------------------------------------------------------ full-width layer

// gen(): the script's deterministic generator. value = offset + scale * v,
// v = (2 u - 2^24) / 2^24, u = top 24 bits of splitmix64(fnv1a64(name) + (i + 1) * golden).
static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

static uint32_t gen_u24(uint64_t seed, size_t i) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 40);
}

static void gen(float *x, size_t n, const char *name, float scale, float offset) {
    const uint64_t seed = fnv1a64(name);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(2 * (int32_t)gen_u24(seed, i) - (1 << 24)) / 16777216.0f;
        x[i] = v * scale + offset;  // scale is a power of two: the product is exact
    }
}

static void layer_scale(const char *key, float *scale, float *offset) {
    size_t n = strlen(key);
    int weight = n >= 6 && strcmp(key + n - 6, "weight") == 0;
    *offset = 0;
    if (strstr(key, "layer_norm")) *scale = weight ? 0.125f : 0.0625f, *offset = weight ? 1.0f : 0.0f;
    else if (!weight) *scale = 0.03125f;
    else *scale = strstr(key, "fc2") ? 0.03125f : 0.0625f;
}

TEST(clip_full_width_layer_matches_transformers) {
    Fixture *fx = fx_open("clip/layer768.safetensors");
    if (!fx) return;
    enum { D = 768, H = 12, F = 3072, L = 77, B = 1 };
    const size_t N = (size_t)B * L;
    ClipLayer layer;
    Weights W = {0};
    params_init(&W.t);
    clip_layer_add(&layer, &W.t, "layer", D, H, F, 1e-5f);
    EXPECT(weights_alloc(&W, cpu_backend(), DT_F32, 1) == 0, "alloc");
    for (int i = 0; i < W.t.count; i++) {
        float s, o;
        layer_scale(W.t.entries[i].name, &s, &o);
        gen(wptr(&W, i), W.t.entries[i].numel, W.t.entries[i].name, s, o);
    }
    float *x = xmalloc(N * D * 4), *dy = xmalloc(N * D * 4), *dx = xcalloc(N * D, 4);
    gen(x, N * D, "x", 1, 0);
    gen(dy, N * D, "dy", 1, 0);
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64u << 20, 64u << 20) == 0, "ctx");
    c.train = 1;
    float *y = nn_push(&c, N * D);
    ClipLayerSaved sv;
    EXPECT(clip_layer_f(&c, &W, &layer, y, x, B, L, &sv) == 0, "forward: %s", a2f_last_error());
    EXPECT(clip_layer_b(&c, &W, &layer, dx, dy, &sv) == 0, "backward: %s", a2f_last_error());
    expect_rel("layer768 y", y, fx_f32(fx, N * D, "y"), N * D, 0, 2e-5);
    expect_rel("layer768 dx", dx, fx_f32(fx, N * D, "dx"), N * D, 0, 1e-4);
    double kscale = 0;  // max|ref| of the sampled k_proj weight gradient
    for (int i = 0; i < W.t.count; i++) {
        const ParamEntry *e = &W.t.entries[i];
        int32_t *idx = fx_i32(fx, 64, "gidx.%s", e->name);
        float *val = fx_f32(fx, 64, "gval.%s", e->name), *sum = fx_f32(fx, 1, "gsum.%s", e->name);
        float *abs_ = fx_f32(fx, 1, "gabs.%s", e->name);
        if (!idx || !val || !sum || !abs_) continue;
        const float *g = gptr(&W, i);
        float got[64];
        double s = 0;
        for (int k = 0; k < 64; k++) got[k] = g[idx[k]];
        for (size_t k = 0; k < e->numel; k++) s += g[k];
        char what[200];
        snprintf(what, sizeof what, "layer768 grad %s (64 samples)", e->name);
        const int kb = is_k_bias(e->name);
        expect_rel_floor(what, got, val, 64, 0, 1e-4, kb ? kscale : 0);
        if (is_k_weight(e->name)) kscale = max_abs(val, 64);
        // the sum of all elements, to 1e-5 of the sum of |g| (cancellation-safe scale); the zero k bias
        // gradient's sum is noise
        if (!kb)
            EXPECT(fabs(s - sum[0]) <= 1e-5 * abs_[0], "%s: sum %.9g want %.9g (sum|g| %.3g)", e->name, s, sum[0],
                   abs_[0]);
    }
    free(x), free(dy), free(dx);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

// ------------------------------------------------------------------ errors

TEST(clip_rejects_bad_input) {
    char cfg[256], model[256];
    tiny_paths(0, cfg, model, sizeof cfg);
    const char *files[] = {model};
    ClipText m;
    Weights W = {0};
    EXPECT(clip_load(&m, &W, cfg, files, 1) == 0, "%s", a2f_last_error());
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 22, 1 << 16) == 0, "ctx");
    int32_t ids[2 * 78];
    for (int i = 0; i < 2 * 78; i++) ids[i] = 5;
    float *y = nn_push(&c, 2 * 78 * 32);
    ids[80] = 1100;
    EXPECT(clip_f(&c, &W, &m, y, ids, NULL, 2, 77, NULL) != 0 && strstr(a2f_last_error(), "input_ids[1, 3] = 1100"),
           "out-of-vocabulary id: %s", a2f_last_error());
    ids[80] = -1;
    EXPECT(clip_f(&c, &W, &m, y, ids, NULL, 2, 77, NULL) != 0, "negative id accepted");
    ids[80] = 5;
    EXPECT(clip_f(&c, &W, &m, y, ids, NULL, 2, 78, NULL) != 0 && strstr(a2f_last_error(), "77"), "78 tokens: %s",
           a2f_last_error());
    EXPECT(clip_f(&c, &W, &m, y, ids, NULL, 2, 77, NULL) == 0, "valid ids: %s", a2f_last_error());
    ClipSaved sv;
    EXPECT(clip_f(&c, &W, &m, y, ids, NULL, 2, 77, &sv) == 0 && clip_b(&c, &W, &m, NULL, y, &sv) != 0 &&
               strstr(a2f_last_error(), "train"),
           "backward after an inference forward: %s", a2f_last_error());
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);

    ClipConfig cc;
    EXPECT(clip_config_parse(&cc, "{\"hidden_act\": \"gelu\"}", "x.json") != 0 &&
               strstr(a2f_last_error(), "x.json: hidden_act gelu is not supported"),
           "gelu: %s", a2f_last_error());
    EXPECT(clip_config_parse(&cc, "{\"hidden_size\": 768, \"num_attention_heads\": 7}", "x.json") != 0 &&
               strstr(a2f_last_error(), "multiple"),
           "heads: %s", a2f_last_error());
    EXPECT(clip_config_parse(&cc, "{\"num_hidden_layers\": 2.5}", "x.json") != 0, "fractional layers");
    EXPECT(clip_config_parse(&cc, "[1]", "x.json") != 0 && strstr(a2f_last_error(), "not a JSON object"), "array");
    // SD1.5 text_encoder values, and a CLIPConfig with text_config
    EXPECT(clip_config_parse(&cc,
                             "{\"text_config\": {\"hidden_size\": 768, \"intermediate_size\": 3072, "
                             "\"num_attention_heads\": 12, \"hidden_act\": \"quick_gelu\"}}",
                             "c.json") == 0 &&
               cc.hidden == 768 && cc.intermediate == 3072 && cc.heads == 12 && cc.layers == 12 &&
               cc.vocab == 49408 && cc.max_pos == 77,
           "text_config: %s", a2f_last_error());
    // weights of another config: mis-shaped keys named in one line
    char cfg2[256], model2[256];
    tiny_paths(2, cfg2, model2, sizeof cfg2);
    EXPECT(clip_load(&m, &W, cfg2, files, 1) != 0 && strstr(a2f_last_error(), "mis-shaped") &&
               !strchr(a2f_last_error(), '\n'),
           "wrong weights: %s", a2f_last_error());
    const char *bin[] = {"encoder/pytorch_model.bin"};
    EXPECT(clip_load(&m, &W, cfg, bin, 1) != 0 && strstr(a2f_last_error(), "pytorch_model.bin"), ".bin: %s",
           a2f_last_error());
    EXPECT(clip_load_transformers(&m, &W, DIR "nope") != 0 && strstr(a2f_last_error(), "nope"), "no folder");
    char key[PARAM_NAME_MAX];
    EXPECT(clip_key_map("text_model.embeddings.position_ids", key, sizeof key) == 0, "position_ids not ignored");
    EXPECT(clip_key_map("encoder.layers.0.mlp.fc1.bias", key, sizeof key) == 1 &&
               strcmp(key, "text_model.encoder.layers.0.mlp.fc1.bias") == 0,
           "prefix: %s", key);
}

// ------------------------------------------------------------------ MLP encoder

static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    snprintf(out, n, "%s", key);
    return 1;
}

static void run_mlp(const char *tag, int B) {
    Fixture *fx = fx_open("clip/mlp_%s.safetensors", tag);
    if (!fx) return;
    char cfg[256], wts[256];
    snprintf(cfg, sizeof cfg, DIR "mlp_%s.json", tag);
    snprintf(wts, sizeof wts, DIR "mlp_%s.safetensors", tag);
    const char *files[] = {wts};
    MlpEncoder m;
    MlpConfig mc;
    Weights W = {0};
    params_init(&W.t);
    int rc = mlp_config_read(&mc, cfg);
    rc = rc ? rc : mlp_add(&m, &W.t, &mc);
    rc = rc ? rc : weights_alloc(&W, cpu_backend(), DT_F32, 1);
    rc = rc ? rc : weights_load(&W, files, 1, skip_io);  // the fixture holds io.* next to the weights
    EXPECT(rc == 0, "mlp %s: %s", tag, a2f_last_error());
    const size_t K = mc.in_dim, TD = (size_t)mc.num_tokens * mc.token_dim;
    float *x = fx_f32(fx, B * K, "io.x"), *yt = fx_f32(fx, B * TD, "io.y"), *dy = fx_f32(fx, B * TD, "io.dy");
    float *dxt = fx_f32(fx, B * K, "io.dx");
    if (rc == 0 && x && yt && dy && dxt) {
        Ctx c;
        EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 20, 1 << 20) == 0, "ctx");
        c.train = 1;
        float *y = nn_push(&c, B * TD);
        MlpSaved sv;
        char what[240];
        EXPECT(mlp_f(&c, &W, &m, y, x, B, &sv) == 0, "forward: %s", a2f_last_error());
        snprintf(what, sizeof what, "mlp_%s y", tag);
        expect_rel(what, y, yt, B * TD, 0, 2e-5);
        fill(W.grad, W.t.total, TEST_GRAD_PRE);
        float *dx = test_grad_buffer(B * K);
        EXPECT(mlp_b(&c, &W, &m, dx, dy, &sv) == 0, "backward: %s", a2f_last_error());
        EXPECT(arena_mark(c.act) == sv.mark, "act stack not restored");
        snprintf(what, sizeof what, "mlp_%s dx", tag);
        expect_rel(what, dx, dxt, B * K, TEST_GRAD_PRE, 1e-4);
        for (int i = 0; i < W.t.count; i++) {
            const ParamEntry *e = &W.t.entries[i];
            snprintf(what, sizeof what, "mlp_%s grad %s", tag, e->name);
            expect_rel(what, gptr(&W, i), fx_f32(fx, e->numel, "io.grad.%s", e->name), e->numel, TEST_GRAD_PRE,
                       1e-4);
        }
        // inference forward: same output, nothing kept
        c.train = 0;
        float *y2 = nn_push(&c, B * TD);
        const size_t mark = arena_mark(c.act);
        EXPECT(mlp_f(&c, &W, &m, y2, x, B, NULL) == 0 && arena_mark(c.act) == mark, "inference");
        EXPECT(memcmp(y, y2, B * TD * 4) == 0, "inference output differs from training output");
        free(dx);
        nn_ctx_free(&c);
    }
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

TEST(mlp_encoder_matches_torch_sequential) {
    run_mlp("m0", 3);  // GELU, final LayerNorm, normalised input
    run_mlp("m1", 2);  // SiLU, raw input, no norm
    run_mlp("m2", 2);  // ReLU, 3 layers, norm eps 1e-6
}

TEST(mlp_config) {
    MlpConfig c;
    mlp_config_default(&c);
    EXPECT(c.in_dim == 512 && c.n_hidden == 3 && c.num_tokens == 77 && c.token_dim == 768, "defaults");
    EXPECT(mlp_config_parse(&c, "{\"activation\": \"tanh\"}", "m.json") != 0 &&
               strstr(a2f_last_error(), "m.json: activation \"tanh\""),
           "tanh: %s", a2f_last_error());
    EXPECT(mlp_config_parse(&c, "{\"hidden_dims\": [8, 0]}", "m.json") != 0 && strstr(a2f_last_error(), "[1]"),
           "zero width: %s", a2f_last_error());
    EXPECT(mlp_config_parse(&c, "{\"final_layer_norm\": 1}", "m.json") != 0, "non-bool");
    EXPECT(mlp_config_parse(&c, "{\"hidden_dims\": [], \"activation\": \"relu\"}", "m.json") == 0 &&
               c.n_hidden == 0 && c.act == MLP_RELU,
           "single layer: %s", a2f_last_error());
    // the paper-scale default: ~128M parameters, like the CLIP encoder it replaces
    MlpEncoder m;
    ParamTable t;
    params_init(&t);
    mlp_config_default(&c);
    EXPECT(mlp_add(&m, &t, &c) == 0 && m.nl == 4, "4 layers");
    size_t n = 0;
    for (int i = 0; i < t.count; i++) n += t.entries[i].numel;
    EXPECT(n > 120000000 && n < 135000000, "%zu parameters", n);
    params_free(&t);
}
