// test_unet.c: ResnetBlock2D, Transformer2D and UNet2DConditionModel against
// diffusers (fixtures by tools/ref/make_unet_fixtures.py): outputs, input
// gradients and every parameter gradient; gradient checkpointing equality;
// config.json errors; full-size SD1.5 blocks from a shared generator.
//
// Tolerance: fp32 errors are measured relative to the largest reference
// magnitude of each tensor (max|got - want| / max|want|): an element-wise
// relative error is meaningless for gradient entries that cancel to ~0.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/resnet.h"
#include "../nn/safetensors.h"
#include "../nn/transformer2d.h"
#include "../nn/unet.h"
#include "fixture.h"
#include "test.h"

#define FXDIR "tests/fixtures/unet/"

static double worst_err;  // largest error seen by cmp() in the running test

// max|got - want| / max|want| <= tol.
static double cmp(const char *what, const float *got, const float *want, size_t n, double tol) {
    if (!got || !want) return 0;
    double m = 0, e = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = d, at = i;  // NaN counts as worst
    }
    double r = m > 0 ? e / m : e;
    if (!(r <= tol)) r = isnan(r) ? INFINITY : r;
    EXPECT(r <= tol, "%s: max error %.3g of max|ref| %.3g at %zu (got %g want %g), tol %g", what, r, m, at,
           got[at], want[at], tol);
    if (r > worst_err) worst_err = r;
    return r;
}

// A parameter gradient in PyTorch layout (conv [O, KH, KW, I] -> [O, I, KH, KW]).
static float *torch_layout(const ParamEntry *e, const float *g) {
    float *o = xmalloc(e->numel * sizeof(float));
    if (e->layout != PARAM_CONV) {
        memcpy(o, g, e->numel * sizeof(float));
        return o;
    }
    const int64_t O = e->shape[0], KH = e->shape[1], KW = e->shape[2], I = e->shape[3];
    for (int64_t a = 0; a < O; a++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t i = 0; i < I; i++)
                    o[((a * I + i) * KH + kh) * KW + kw] = g[((a * KH + kh) * KW + kw) * I + i];
    return o;
}

// Every parameter gradient against io.grad.<key>.
static void cmp_param_grads(Fixture *fx, const Weights *W, double tol) {
    for (int i = 0; i < W->t.count; i++) {
        const ParamEntry *e = &W->t.entries[i];
        float *want = fx_f32(fx, e->numel, "io.grad.%s", e->name);
        float *got = torch_layout(e, W->grad + e->offset);
        cmp(e->name, got, want, e->numel, tol);
        free(got);
    }
}

static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    snprintf(out, n, "%s", key);
    return 1;
}

static int load_block(Weights *W, const char *file) {
    const char *files[] = {file};
    if (weights_alloc(W, cpu_backend(), DT_F32, 1) != 0) return -1;
    memset(W->grad, 0, W->t.total * sizeof(float));
    return weights_load(W, files, 1, skip_io);
}

// ------------------------------------------------------------------ ResnetBlock2D

static void resnet_case(const char *name, int cin, int cout, int temb, float eps, int B, int H, int Wd) {
    Fixture *fx = fx_open("unet/%s.safetensors", name);
    if (!fx) return;
    ResnetBlock m;
    Weights W = {0};
    params_init(&W.t);
    resnet_add(&m, &W.t, "", cin, cout, temb, 4, eps);
    char path[256];
    snprintf(path, sizeof path, FXDIR "%s.safetensors", name);
    EXPECT(load_block(&W, path) == 0, "load: %s", a2f_last_error());
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 20, 1 << 20) == 0, "ctx");
    c.train = 1;
    const size_t nin = (size_t)B * H * Wd * cin, nout = (size_t)B * H * Wd * cout;
    float *x = fx_f32(fx, nin, "io.x"), *yt = fx_f32(fx, nout, "io.y"), *dy = fx_f32(fx, nout, "io.dy");
    float *dxt = fx_f32(fx, nin, "io.dx");
    float *te = temb ? fx_f32(fx, (size_t)B * temb, "io.temb") : NULL;
    float *dtet = temb ? fx_f32(fx, (size_t)B * temb, "io.dtemb") : NULL;
    if (x && yt && dy && dxt && (!temb || (te && dtet))) {
        float *y = xmalloc(nout * 4), *dx = xcalloc(nin, 4), *dte = xcalloc((size_t)B * temb + 1, 4);
        ResnetSaved sv;
        size_t a0 = arena_mark(c.act), g0 = arena_mark(c.grad);
        EXPECT(resnet_f(&c, &W, &m, y, x, te, B, H, Wd, &sv) == 0, "fwd: %s", a2f_last_error());
        // fp32, sums of <= 9*16 products and GroupNorm over <= 60 values: ~1e-6
        cmp("y", y, yt, nout, 1e-5);
        EXPECT(resnet_b(&c, &W, &m, dx, temb ? dte : NULL, dy, &sv) == 0, "bwd: %s", a2f_last_error());
        EXPECT(arena_mark(c.act) == a0 && arena_mark(c.grad) == g0, "stacks not restored");
        cmp("dx", dx, dxt, nin, 1e-5);
        if (temb) cmp("dtemb", dte, dtet, (size_t)B * temb, 1e-5);
        cmp_param_grads(fx, &W, 1e-5);
        free(y), free(dx), free(dte);
    }
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

TEST(unet_resnet_block_matches_diffusers) {
    resnet_case("resnet_temb", 8, 8, 12, 1e-5f, 2, 5, 3);  // UNet style: temb, identity shortcut
    resnet_case("resnet_vae", 8, 16, 0, 1e-6f, 2, 3, 5);   // VAE style: no temb, conv_shortcut
}

// ------------------------------------------------------------------ Transformer2D

TEST(unet_transformer2d_matches_diffusers) {
    enum { C = 16, HEADS = 2, CD = 12, B = 2, H = 5, WD = 3, NC = 7 };
    Fixture *fx = fx_open("unet/t2d_tiny.safetensors");
    if (!fx) return;
    Transformer2D m;
    Weights W = {0};
    params_init(&W.t);
    t2d_add(&m, &W.t, "", C, HEADS, CD, 4);
    EXPECT(load_block(&W, FXDIR "t2d_tiny.safetensors") == 0, "load: %s", a2f_last_error());
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 22, 1 << 22) == 0, "ctx");
    c.train = 1;
    const size_t n = (size_t)B * H * WD * C, nc = (size_t)B * NC * CD;
    float *x = fx_f32(fx, n, "io.x"), *yt = fx_f32(fx, n, "io.y"), *dy = fx_f32(fx, n, "io.dy");
    float *dxt = fx_f32(fx, n, "io.dx"), *ctx = fx_f32(fx, nc, "io.ctx"), *dctxt = fx_f32(fx, nc, "io.dctx");
    if (x && yt && dy && dxt && ctx && dctxt) {
        float *y = xmalloc(n * 4), *dx = xcalloc(n, 4), *dctx = xcalloc(nc, 4);
        T2DSaved sv;
        EXPECT(t2d_f(&c, &W, &m, y, x, ctx, B, H, WD, NC, &sv) == 0, "fwd: %s", a2f_last_error());
        // fp32 chains of <= 64-term sums and softmax: ~1e-6 of max|ref|
        cmp("y", y, yt, n, 1e-5);
        EXPECT(t2d_b(&c, &W, &m, dx, dctx, dy, &sv) == 0, "bwd: %s", a2f_last_error());
        cmp("dx", dx, dxt, n, 1e-5);
        cmp("dctx", dctx, dctxt, nc, 1e-5);
        cmp_param_grads(fx, &W, 1e-5);
        free(y), free(dx), free(dctx);
    }
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

// ------------------------------------------------------------------ UNet

typedef struct {
    float *out, *dsample, *dehs, *grad;
} UNetRun;

// One forward + backward of m on the fixture's inputs; results copied out.
static int unet_run(const UNet *m, Weights *W, const float *x, const float *t, const float *ehs, const float *dy,
                    int B, int H, int Wd, int Nc, UNetRun *r) {
    Ctx c;
    if (nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) != 0) return -1;
    c.train = 1;
    const int cin = m->cfg.in_channels, cout = m->cfg.out_channels, cd = m->cfg.cross_dim;
    const size_t nx = (size_t)B * H * Wd * cin, ny = (size_t)B * H * Wd * cout, ne = (size_t)B * Nc * cd;
    memset(W->grad, 0, W->t.total * sizeof(float));
    r->out = xmalloc(ny * 4);
    r->dsample = xcalloc(nx, 4);
    r->dehs = xcalloc(ne, 4);
    UNetSaved *sv = xcalloc(1, sizeof *sv);
    size_t a0 = arena_mark(c.act), g0 = arena_mark(c.grad);
    int rc = unet_f(&c, W, m, r->out, x, t, ehs, B, H, Wd, Nc, sv);
    if (rc == 0) rc = unet_b(&c, W, m, r->dsample, r->dehs, dy, sv);
    EXPECT(rc != 0 || (arena_mark(c.act) == a0 && arena_mark(c.grad) == g0), "stacks not restored");
    r->grad = xmalloc(W->t.total * sizeof(float));
    memcpy(r->grad, W->grad, W->t.total * sizeof(float));
    free(sv);
    nn_ctx_free(&c);
    return rc;
}

static void unet_run_free(UNetRun *r) { free(r->out), free(r->dsample), free(r->dehs), free(r->grad); }

static void unet_case(const char *name, int check_ckpt) {
    char dir[256];
    snprintf(dir, sizeof dir, FXDIR "%s", name);
    Fixture *fx = fx_open("unet/%s/io.safetensors", name);
    if (!fx) return;
    int32_t *shape = fx_i32(fx, 4, "io.shape");
    UNet *m = xcalloc(1, sizeof *m);
    Weights W;
    int rc = unet_load_diffusers(m, &W, dir, cpu_backend(), DT_F32, 1);
    EXPECT(rc == 0, "%s: %s", name, a2f_last_error());
    if (rc != 0 || !shape) {
        free(m);
        fx_close(fx);
        return;
    }
    const int B = shape[0], H = shape[1], Wd = shape[2], Nc = shape[3];
    const size_t nx = (size_t)B * H * Wd * m->cfg.in_channels, ny = (size_t)B * H * Wd * m->cfg.out_channels,
                 ne = (size_t)B * Nc * m->cfg.cross_dim;
    float *x = fx_f32(fx, nx, "io.sample"), *t = fx_f32(fx, B, "io.timestep"), *ehs = fx_f32(fx, ne, "io.ehs");
    float *yt = fx_f32(fx, ny, "io.out"), *dy = fx_f32(fx, ny, "io.dy"), *dxt = fx_f32(fx, nx, "io.dsample");
    float *dehst = fx_f32(fx, ne, "io.dehs");
    if (x && t && ehs && yt && dy && dxt && dehst) {
        UNetRun r;
        worst_err = 0;
        EXPECT(unet_run(m, &W, x, t, ehs, dy, B, H, Wd, Nc, &r) == 0, "%s: %s", name, a2f_last_error());
        // fp32 through ~20 layers of convs/attention: ~1e-6 of max|ref| measured; 1e-4 allowed
        cmp("out", r.out, yt, ny, 1e-4);
        cmp("dsample", r.dsample, dxt, nx, 1e-4);
        cmp("dehs", r.dehs, dehst, ne, 1e-4);
        cmp_param_grads(fx, &W, 1e-4);
        printf("  %s: %d params, worst error %.2e of max|ref|\n", name, W.t.count, worst_err);
        if (check_ckpt) {
            // checkpointed blocks recompute the same ops in the same order: bitwise equal on the CPU
            for (int pattern = 1; pattern <= 2; pattern++) {
                for (int i = 0; i < m->cfg.nlevels; i++) {
                    m->ckpt_down[i] = pattern == 1 || i % 2 == 0;
                    m->ckpt_up[i] = pattern == 1 || i % 2 == 1;
                }
                m->ckpt_mid = pattern == 1;
                UNetRun q;
                EXPECT(unet_run(m, &W, x, t, ehs, dy, B, H, Wd, Nc, &q) == 0, "ckpt: %s", a2f_last_error());
                EXPECT(!memcmp(q.out, r.out, ny * 4) && !memcmp(q.dsample, r.dsample, nx * 4) &&
                           !memcmp(q.dehs, r.dehs, ne * 4) && !memcmp(q.grad, r.grad, W.t.total * 4),
                       "%s: checkpointing pattern %d changed the results", name, pattern);
                unet_run_free(&q);
            }
            memset(m->ckpt_down, 0, sizeof m->ckpt_down);
            memset(m->ckpt_up, 0, sizeof m->ckpt_up);
            m->ckpt_mid = 0;
        }
        // inference forward (train 0) gives the same output and leaves the stack as it was
        Ctx c;
        EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 16 << 20, 1 << 10) == 0, "ctx");
        float *y = xmalloc(ny * 4);
        EXPECT(unet_f(&c, &W, m, y, x, t, ehs, B, H, Wd, Nc, NULL) == 0 && arena_mark(c.act) == 0,
               "inference: %s", a2f_last_error());
        EXPECT(!memcmp(y, r.out, ny * 4), "inference forward differs from training forward");
        free(y);
        nn_ctx_free(&c);
        unet_run_free(&r);
    }
    weights_free(&W);
    params_free(&W.t);
    free(m);
    fx_close(fx);
}

TEST(unet_tiny_a_matches_diffusers) {
    unet_case("tiny_a_s0", 1);  // 8x6 latent
    unet_case("tiny_a_s1", 0);  // 5x7: odd sizes, upsample_size crop
}

TEST(unet_tiny_b_matches_diffusers) {
    unet_case("tiny_b_s0", 1);  // 3 levels, 2 layers, 7x5
    unet_case("tiny_b_s1", 0);  // batch 3, 8x6 (6 -> 3 -> 2: crop on one axis)
}

// ------------------------------------------------------------------ config

// SD1.5's unet/config.json (diffusers 0.6.0-era file, keys as released).
static const char *SD15_JSON =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.6.0\", \"act_fn\": \"silu\","
    "\"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false,"
    "\"cross_attention_dim\": 768, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    "\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    "\"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
    "\"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

TEST(unet_sd15_config_and_parameter_count) {
    UNetConfig a, b;
    unet_config_sd15(&a);
    EXPECT(unet_config_parse(&b, SD15_JSON, "sd15") == 0, "%s", a2f_last_error());
    EXPECT(!memcmp(&a, &b, sizeof a), "parsed SD1.5 config differs from unet_config_sd15");
    UNet *m = xcalloc(1, sizeof *m);
    ParamTable t;
    params_init(&t);
    EXPECT(unet_build(m, &t, &b) == 0, "%s", a2f_last_error());
    size_t total = 0;
    for (int i = 0; i < t.count; i++) total += t.entries[i].numel;
    // architectures.md 1.7: 686 tensors, 859,520,964 parameters
    EXPECT(t.count == 686 && total == 859520964u, "%d tensors, %zu parameters", t.count, total);
    const char *keys[] = {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
                          "down_blocks.1.resnets.0.conv_shortcut.weight", "up_blocks.2.upsamplers.0.conv.bias",
                          "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"};
    for (int i = 0; i < 4; i++) EXPECT(params_find(&t, keys[i]) >= 0, "missing %s", keys[i]);
    int k = params_find(&t, keys[0]);
    EXPECT(k >= 0 && t.entries[k].shape[0] == 320 && t.entries[k].shape[1] == 768, "to_k shape");
    EXPECT(m->mid.attn[0].heads == 8 && m->down[1].attn[0].heads == 8, "attention_head_dim is the head count");
    params_free(&t);
    free(m);
}

// A config differing from SD1.5 by one key/value must fail naming what is wrong.
static void bad_config(const char *key_json, const char *expect) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s, %s}", (int)strlen(SD15_JSON) - 1, SD15_JSON, key_json);
    UNetConfig c;
    int rc = unet_config_parse(&c, buf, "cfg.json");
    if (rc == 0) {  // some errors show only when building
        UNet *m = xcalloc(1, sizeof *m);
        ParamTable t;
        params_init(&t);
        rc = unet_build(m, &t, &c);
        params_free(&t);
        free(m);
    }
    const char *e = a2f_last_error();
    EXPECT(rc != 0 && strstr(e, expect) && !strchr(e, '\n'), "%s: rc %d, error '%s'", key_json, rc, e);
}

TEST(unet_config_errors_name_the_key) {
    bad_config("\"use_linear_projection\": true", "use_linear_projection");
    bad_config("\"transformer_layers_per_block\": 2", "transformer_layers_per_block");
    bad_config("\"class_embed_type\": \"timestep\"", "class_embed_type");
    bad_config("\"num_attention_heads\": 8", "num_attention_heads");
    bad_config("\"resnet_time_scale_shift\": \"scale_shift\"", "resnet_time_scale_shift");
    bad_config("\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type");
    bad_config("\"some_new_option\": 1", "unknown key some_new_option");
    bad_config("\"time_embedding_type\": \"fourier\"", "time_embedding_type");
    // duplicate keys: cJSON keeps the first; override through a full text instead
    UNetConfig c;
    const char *cases[][2] = {
        {"{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"SimpleDown\"]}",
         "down_block_types"},
        {"{\"block_out_channels\": [32, 64], \"layers_per_block\": 9}", "layers_per_block"},
        {"{\"block_out_channels\": [32, 64], \"cross_attention_dim\": [16, 32]}", "cross_attention_dim"},
        {"{\"block_out_channels\": \"wide\"}", "block_out_channels"},
        {"{\"block_out_channels\": [32, 64", "not a JSON object"},
    };
    for (int i = 0; i < 5; i++) {
        int rc = unet_config_parse(&c, cases[i][0], "cfg.json");
        EXPECT(rc != 0 && strstr(a2f_last_error(), cases[i][1]), "%s: '%s'", cases[i][0], a2f_last_error());
    }
    // consistent keys, inconsistent numbers: caught by unet_build
    const char *build[][2] = {
        {"{\"block_out_channels\": [32, 48], \"norm_num_groups\": 32, \"down_block_types\": [\"CrossAttnDownBlock2D\", "
         "\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}",
         "norm_num_groups"},
        {"{\"block_out_channels\": [32, 64], \"norm_num_groups\": 8, \"attention_head_dim\": 5, \"down_block_types\": "
         "[\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}",
         "heads"},
    };
    for (int i = 0; i < 2; i++) {
        UNet *m = xcalloc(1, sizeof *m);
        ParamTable t;
        params_init(&t);
        int rc = unet_config_parse(&c, build[i][0], "cfg.json");
        EXPECT(rc == 0, "%s", a2f_last_error());
        rc = rc == 0 ? unet_build(m, &t, &c) : -1;
        EXPECT(rc != 0 && strstr(a2f_last_error(), build[i][1]), "build %d: '%s'", i, a2f_last_error());
        params_free(&t);
        free(m);
    }
    UNet *m = xcalloc(1, sizeof *m);
    Weights W;
    EXPECT(unet_load_diffusers(m, &W, "tests/fixtures/unet/nope", cpu_backend(), DT_F32, 0) != 0 &&
               strstr(a2f_last_error(), "nope/config.json"),
           "missing folder: %s", a2f_last_error());
    free(m);
}

// ------------------------------------------------------------------ full-size blocks

// gen() of tools/ref/make_unet_fixtures.py: uniform [-1, 1) * scale + offset
// from splitmix64(fnv1a(key) + (i + 1) * golden), computed in double.
static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static void gen(float *out, const char *key, size_t n, double scale, double offset) {
    const uint64_t base = fnv1a(key);
    for (size_t i = 0; i < n; i++) {
        uint64_t z = base + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        double u = (double)(z >> 40) / (double)(1 << 24);
        out[i] = (float)((2.0 * u - 1.0) * scale + offset);
    }
}

// Every parameter from gen() in PyTorch layout, stored in ours.
static void gen_params(Weights *W) {
    float *host = xcalloc(W->t.total, sizeof(float));
    for (int i = 0; i < W->t.count; i++) {
        const ParamEntry *e = &W->t.entries[i];
        int64_t fs[TENSOR_MAX_DIMS];
        params_file_shape(e, fs);
        float *v = xmalloc(e->numel * sizeof(float));
        const size_t len = strlen(e->name);
        if (e->ndim >= 2)
            gen(v, e->name, e->numel, 1.0 / sqrt((double)(e->numel / (size_t)fs[0])), 0.0);
        else if (len >= 6 && !strcmp(e->name + len - 6, "weight"))
            gen(v, e->name, e->numel, 0.2, 1.0);
        else
            gen(v, e->name, e->numel, 0.1, 0.0);
        float *dst = host + e->offset;
        if (e->layout == PARAM_CONV) {  // [O, I, KH, KW] -> [O, KH, KW, I]
            const int64_t O = fs[0], I = fs[1], KH = fs[2], KW = fs[3];
            for (int64_t a = 0; a < O; a++)
                for (int64_t ci = 0; ci < I; ci++)
                    for (int64_t kh = 0; kh < KH; kh++)
                        for (int64_t kw = 0; kw < KW; kw++)
                            dst[((a * KH + kh) * KW + kw) * I + ci] = v[((a * I + ci) * KH + kh) * KW + kw];
        } else {
            memcpy(dst, v, e->numel * sizeof(float));
        }
        free(v);
    }
    EXPECT(weights_upload(W, host) == 0, "upload");
    free(host);
}

// got [n] against the fixture's sampled elements io.<name> at io.idx.<name>,
// relative to io.absmax.<name> (the full tensor's max |value|).
static void cmp_sampled(Fixture *fx, const char *what, const float *got, size_t n, const char *vname,
                        const char *iname, const char *mname, double tol) {
    const size_t k = n < 512 ? n : 512;
    float *want = fx_f32(fx, k, "%s", vname), *mx = fx_f32(fx, 1, "%s", mname);
    int32_t *idx = fx_i32(fx, k, "%s", iname);
    if (!want || !mx || !idx) return;
    double e = 0;
    size_t at = 0;
    for (size_t j = 0; j < k; j++) {
        double d = fabs((double)got[idx[j]] - want[j]);
        if (!(d <= e)) e = d, at = j;
    }
    double r = e / mx[0];
    EXPECT(r <= tol, "%s: max error %.3g of max|ref| %.3g (element %d: got %g want %g)", what, r, mx[0], idx[at],
           got[idx[at]], want[at]);
    if (r > worst_err) worst_err = r;
}

static void cmp_sampled_grads(Fixture *fx, const Weights *W, double tol) {
    char v[PARAM_NAME_MAX + 16], i[PARAM_NAME_MAX + 16], m[PARAM_NAME_MAX + 16];
    for (int p = 0; p < W->t.count; p++) {
        const ParamEntry *e = &W->t.entries[p];
        float *g = torch_layout(e, W->grad + e->offset);
        snprintf(v, sizeof v, "io.grad.%s", e->name);
        snprintf(i, sizeof i, "io.gidx.%s", e->name);
        snprintf(m, sizeof m, "io.gabsmax.%s", e->name);
        cmp_sampled(fx, e->name, g, e->numel, v, i, m, tol);
        free(g);
    }
}

TEST(unet_full_size_resnet_block) {
    enum { B = 1, CIN = 320, COUT = 640, T = 1280, H = 16, WD = 12 };
    Fixture *fx = fx_open("unet/full_resnet.safetensors");
    if (!fx) return;
    ResnetBlock m;
    Weights W = {0};
    params_init(&W.t);
    resnet_add(&m, &W.t, "", CIN, COUT, T, 32, 1e-5f);
    EXPECT(weights_alloc(&W, cpu_backend(), DT_F32, 1) == 0, "alloc");
    memset(W.grad, 0, W.t.total * 4);
    gen_params(&W);
    const size_t nin = (size_t)B * H * WD * CIN, nout = (size_t)B * H * WD * COUT;
    float *x = xmalloc(nin * 4), *te = xmalloc(B * T * 4), *dy = xmalloc(nout * 4), *y = xmalloc(nout * 4);
    float *dx = xcalloc(nin, 4), *dte = xcalloc(B * T, 4);
    gen(x, "input.x", nin, 1, 0);
    gen(te, "input.temb", B * T, 1, 0);
    gen(dy, "input.dy", nout, 1, 0);
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
    c.train = 1;
    ResnetSaved sv;
    worst_err = 0;
    EXPECT(resnet_f(&c, &W, &m, y, x, te, B, H, WD, &sv) == 0, "fwd: %s", a2f_last_error());
    EXPECT(resnet_b(&c, &W, &m, dx, dte, dy, &sv) == 0, "bwd: %s", a2f_last_error());
    // fp32 sums of 2880..5760 products: measured ~1e-6 of max|ref|
    cmp_sampled(fx, "y", y, nout, "io.y", "io.idx.y", "io.absmax.y", 1e-4);
    cmp_sampled(fx, "dx", dx, nin, "io.dx", "io.idx.dx", "io.absmax.dx", 1e-4);
    cmp_sampled(fx, "dtemb", dte, B * T, "io.dtemb", "io.idx.dtemb", "io.absmax.dtemb", 1e-4);
    cmp_sampled_grads(fx, &W, 1e-4);
    printf("  resnet 320->640 @16x12: worst error %.2e of max|ref|\n", worst_err);
    free(x), free(te), free(dy), free(y), free(dx), free(dte);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}

TEST(unet_full_size_transformer2d) {
    enum { B = 1, C = 640, HEADS = 8, CD = 768, NC = 77, H = 16, WD = 12 };
    Fixture *fx = fx_open("unet/full_t2d.safetensors");
    if (!fx) return;
    Transformer2D m;
    Weights W = {0};
    params_init(&W.t);
    t2d_add(&m, &W.t, "", C, HEADS, CD, 32);
    EXPECT(weights_alloc(&W, cpu_backend(), DT_F32, 1) == 0, "alloc");
    memset(W.grad, 0, W.t.total * 4);
    gen_params(&W);
    const size_t n = (size_t)B * H * WD * C, nc = (size_t)B * NC * CD;
    float *x = xmalloc(n * 4), *ctx = xmalloc(nc * 4), *dy = xmalloc(n * 4), *y = xmalloc(n * 4);
    float *dx = xcalloc(n, 4), *dctx = xcalloc(nc, 4);
    gen(x, "input.x", n, 1, 0);
    gen(ctx, "input.ctx", nc, 1, 0);
    gen(dy, "input.dy", n, 1, 0);
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
    c.train = 1;
    T2DSaved sv;
    worst_err = 0;
    EXPECT(t2d_f(&c, &W, &m, y, x, ctx, B, H, WD, NC, &sv) == 0, "fwd: %s", a2f_last_error());
    EXPECT(t2d_b(&c, &W, &m, dx, dctx, dy, &sv) == 0, "bwd: %s", a2f_last_error());
    // fp32 sums of 640..2560 products and 192-key softmax: measured ~1e-6 of max|ref|
    cmp_sampled(fx, "y", y, n, "io.y", "io.idx.y", "io.absmax.y", 1e-4);
    cmp_sampled(fx, "dx", dx, n, "io.dx", "io.idx.dx", "io.absmax.dx", 1e-4);
    cmp_sampled(fx, "dctx", dctx, nc, "io.dctx", "io.idx.dctx", "io.absmax.dctx", 1e-4);
    cmp_sampled_grads(fx, &W, 1e-4);
    printf("  transformer 640 (8x80) @16x12, 77x768 context: worst error %.2e of max|ref|\n", worst_err);
    free(x), free(ctx), free(dy), free(y), free(dx), free(dctx);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
    fx_close(fx);
}
