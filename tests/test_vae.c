// test_vae.c: the AutoencoderKL (nn/vae*.c) against diffusers in two tiny
// configurations (tools/ref/make_vae_fixtures.py): encoder moments, posterior,
// sampling with a given noise, decoder output, and the gradients of both
// networks w.r.t. their input and every parameter; the old attention key
// names with 1x1-conv-shaped weights; saving with the new names; the
// inference paths (stage ping-pong buffers, scaling factor); config errors.
//
// Tolerances. Compared element-wise as |got - want| <= 1e-4 * max|want| +
// 1e-4 * |want|: relative 1e-4 where values are O(max), and the absolute term
// covers entries near zero, whose relative error says nothing about fp32
// accuracy (a sum of O(1) terms cancelling to 1e-6 carries ~1e-7 rounding).
// The chains here are ~15 layers with sums over <= 9*16*48 terms in fp32;
// measured worst errors are ~1e-6 of max|want| (VAE_VERBOSE=1 prints them).
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/rng.h"
#include "../nn/safetensors.h"
#include "../nn/vae.h"
#include "fixture.h"
#include "test.h"

#define DIR "tests/fixtures/vae/"

typedef struct {
    const char *name;
    int H, W, h, w;  // encoder image; decoder latent
} Case;

static const Case CASES[] = {{"a", 16, 12, 3, 5}, {"b", 14, 10, 5, 3}};
enum { B = 2 };

static double maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

// Element-wise check scaled to the tensor (see the header); prints the
// measured max error / max|want| when VAE_VERBOSE is set.
static void check(const char *what, const float *got, const float *want, size_t n, double pre) {
    if (!want) return;
    double m = maxabs(want, n), worst = 0;
    float *g = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)(got[i] - pre);
        double e = fabs(g[i] - want[i]);
        worst = e > worst ? e : worst;
    }
    if (getenv("VAE_VERBOSE")) printf("      %-60s max err / max|want| = %.2e\n", what, m > 0 ? worst / m : worst);
    EXPECT_CLOSE(what, g, want, n, 1e-4 * m, 1e-4);
    free(g);
}

// Compares every parameter gradient whose key starts with one of the two
// prefixes with the fixture's PREFIX.<key>, in PyTorch layout (the gradients
// are written through weights_save like the weights).
static void check_param_grads(Fixture *fx, const Weights *W, const char *io, const char *p1, const char *p2) {
    Weights g = *W;
    g.w = W->grad;
    g.master = NULL;
    g.dt = DT_F32;
    char path[] = "build/tmp/a2f_vae_grads_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    EXPECT(weights_save(&g, path, DT_F32) == 0, "save grads: %s", a2f_last_error());
    SafeTensors st;
    EXPECT(st_open(&st, path) == 0, "reopen: %s", a2f_last_error());
    int count = 0;
    for (int i = 0; i < W->t.count; i++) {
        const ParamEntry *e = &W->t.entries[i];
        if (strncmp(e->name, p1, strlen(p1)) != 0 && strncmp(e->name, p2, strlen(p2)) != 0) continue;
        float *got = xmalloc(e->numel * 4);
        EXPECT(st_load_f32(&st, e->name, got, 0, NULL) == 0, "%s", e->name);
        char what[256];
        snprintf(what, sizeof what, "%s.%s", io, e->name);
        float *want = fx_f32(fx, e->numel, "%s.%s", io, e->name);
        size_t len = strlen(e->name);
        if (want && len > 9 && strcmp(e->name + len - 9, "to_k.bias") == 0) {
            // The key bias adds q.b_k to every score of a query row, which the
            // softmax cancels: its gradient is exactly zero, and both sides
            // hold only rounding noise (~1e-7 against O(1) gradients elsewhere).
            EXPECT(maxabs(got, e->numel) < 1e-5 && maxabs(want, e->numel) < 1e-5, "%s: not ~0", what);
        } else {
            check(what, got, want, e->numel, 0);
        }
        free(got);
        count++;
    }
    EXPECT(count > 20, "only %d gradients compared", count);
    st_close(&st);
    unlink(path);
}

static int load(Vae *m, Weights *W, const char *name, int train) {
    char dir[256];
    snprintf(dir, sizeof dir, DIR "%s", name);
    int rc = vae_load_diffusers_ex(m, W, dir, VAE_BOTH, cpu_backend(), DT_F32, train);
    EXPECT(rc == 0, "load %s: %s", dir, a2f_last_error());
    return rc;
}

TEST(vae_encoder_matches_diffusers) {
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const Case *k = &CASES[ci];
        Fixture *fx = fx_open("vae/%s_io.safetensors", k->name);
        if (!fx) return;
        Vae m;
        Weights W;
        Ctx c;
        EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
        if (load(&m, &W, k->name, 1) != 0) return;
        int h, w;
        vae_latent_hw(&m.cfg, k->H, k->W, &h, &w);
        const size_t nx = (size_t)B * k->H * k->W * 3, P = (size_t)B * h * w;
        float *x = fx_f32(fx, nx, "io.x"), *dm = fx_f32(fx, P * 8, "io.enc.dy");
        if (!x || !dm) return;
        float *mom = xmalloc(P * 8 * 4);
        // training forward keeps the tape; the backward returns the stacks
        c.train = 1;
        size_t amark = arena_mark(c.act), gmark = arena_mark(c.grad);
        VaeEncSaved sv;
        EXPECT(vae_encoder_f(&c, &W, &m, mom, x, B, k->H, k->W, &sv) == 0, "forward: %s", a2f_last_error());
        check("moments", mom, fx_f32(fx, P * 8, "io.moments"), P * 8, 0);
        float *dx = test_grad_buffer(nx);
        EXPECT(vae_encoder_b(&c, &W, &m, dx, dm, &sv) == 0, "backward: %s", a2f_last_error());
        EXPECT(arena_mark(c.act) == amark && arena_mark(c.grad) == gmark, "stacks not restored");
        check("enc dx", dx, fx_f32(fx, nx, "io.enc.grad.x"), nx, TEST_GRAD_PRE);
        check_param_grads(fx, &W, "io.enc.grad", "encoder.", "quant_conv.");
        // inference forward: the same moments from the ping-pong buffers
        c.train = 0;
        float *mom2 = xmalloc(P * 8 * 4);
        EXPECT(vae_encoder_f(&c, &W, &m, mom2, x, B, k->H, k->W, NULL) == 0, "inference: %s", a2f_last_error());
        EXPECT(memcmp(mom, mom2, P * 8 * 4) == 0, "inference forward differs from training forward");
        EXPECT(arena_mark(c.act) == amark, "inference left activations on the stack");
        // posterior, sampling with the fixture's eps, and the scaled API
        float *mean = xmalloc(P * 16), *lv = xmalloc(P * 16), *z = xmalloc(P * 16);
        EXPECT(vae_posterior(&c, 4, P, mom, mean, lv) == 0, "posterior");
        check("mean", mean, fx_f32(fx, P * 4, "io.mean"), P * 4, 0);
        check("logvar", lv, fx_f32(fx, P * 4, "io.logvar"), P * 4, 0);
        float *eps = fx_f32(fx, P * 4, "io.eps"), *sample = fx_f32(fx, P * 4, "io.sample");
        EXPECT(vae_sample(&c, 4, P, mom, eps, 0, 0, 0, 0.0f, 1.0f, z) == 0, "sample");
        check("sample", z, sample, P * 4, 0);
        EXPECT(vae_encode(&c, &W, &m, z, x, B, k->H, k->W, VAE_SAMPLE, eps, 0, 0, 1) == 0, "encode: %s",
               a2f_last_error());
        for (size_t i = 0; sample && i < P * 4; i++) sample[i] *= 0.18215f;
        check("encode(sample) * 0.18215", z, sample, P * 4, 0);
        EXPECT(vae_encode(&c, &W, &m, z, x, B, k->H, k->W, VAE_MODE, NULL, 0, 0, 0) == 0, "encode mode");
        EXPECT(memcmp(z, mean, P * 16) == 0, "encode(mode) is not the posterior mean");
        free(mom), free(mom2), free(dx), free(mean), free(lv), free(z);
        weights_free(&W);
        params_free(&W.t);
        nn_ctx_free(&c);
        fx_close(fx);
    }
}

TEST(vae_decoder_matches_diffusers) {
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const Case *k = &CASES[ci];
        Fixture *fx = fx_open("vae/%s_io.safetensors", k->name);
        if (!fx) return;
        Vae m;
        Weights W;
        Ctx c;
        EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
        if (load(&m, &W, k->name, 1) != 0) return;
        int H, Wd;
        vae_image_hw(&m.cfg, k->h, k->w, &H, &Wd);
        const size_t nz = (size_t)B * k->h * k->w * 4, ni = (size_t)B * H * Wd * 3;
        float *z = fx_f32(fx, nz, "io.z"), *dy = fx_f32(fx, ni, "io.dec.dy");
        if (!z || !dy) return;
        float *img = xmalloc(ni * 4), *img2 = xmalloc(ni * 4);
        c.train = 1;
        size_t amark = arena_mark(c.act), gmark = arena_mark(c.grad);
        VaeDecSaved sv;
        EXPECT(vae_decoder_f(&c, &W, &m, img, z, B, k->h, k->w, &sv) == 0, "forward: %s", a2f_last_error());
        check("decoded", img, fx_f32(fx, ni, "io.dec"), ni, 0);
        float *dz = test_grad_buffer(nz);
        EXPECT(vae_decoder_b(&c, &W, &m, dz, dy, &sv) == 0, "backward: %s", a2f_last_error());
        EXPECT(arena_mark(c.act) == amark && arena_mark(c.grad) == gmark, "stacks not restored");
        check("dec dz", dz, fx_f32(fx, nz, "io.dec.grad.z"), nz, TEST_GRAD_PRE);
        check_param_grads(fx, &W, "io.dec.grad", "decoder.", "post_quant_conv.");
        c.train = 0;
        EXPECT(vae_decoder_f(&c, &W, &m, img2, z, B, k->h, k->w, NULL) == 0, "inference: %s", a2f_last_error());
        EXPECT(memcmp(img, img2, ni * 4) == 0, "inference forward differs from training forward");
        // decode(scaled) takes z * 0.18215
        float *zs = xmalloc(nz * 4);
        for (size_t i = 0; i < nz; i++) zs[i] = z[i] * 0.18215f;
        EXPECT(vae_decode(&c, &W, &m, img2, zs, B, k->h, k->w, 1) == 0, "decode: %s", a2f_last_error());
        check("decode(z * 0.18215)", img2, img, ni, 0);
        EXPECT(arena_mark(c.act) == amark, "inference left activations on the stack");
        free(img), free(img2), free(dz), free(zs);
        weights_free(&W);
        params_free(&W.t);
        nn_ctx_free(&c);
        fx_close(fx);
    }
}

// The old attention names with [C, C, 1, 1] weights load to the same values;
// saving writes the new names and [C, C] shapes.
TEST(vae_old_attention_keys) {
    Vae m, m2;
    Weights W, W2;
    if (load(&m, &W, "a", 0) != 0) return;
    memset(&W2, 0, sizeof W2);
    params_init(&W2.t);
    vae_add(&m2, &W2.t, &m.cfg, VAE_BOTH);
    EXPECT(weights_alloc(&W2, cpu_backend(), DT_F32, 0) == 0, "alloc");
    const char *old[] = {DIR "a_old.safetensors"};
    EXPECT(weights_load(&W2, old, 1, NULL) != 0 && strstr(a2f_last_error(), "16 unexpected"),
           "old names without the key map: %s", a2f_last_error());
    EXPECT(weights_load(&W2, old, 1, vae_keymap) == 0, "old names: %s", a2f_last_error());
    EXPECT(W.t.total == W2.t.total && memcmp(W.w, W2.w, W.t.total * 4) == 0, "old-name file loads other values");
    char path[] = "build/tmp/a2f_vae_save_XXXXXX";
    close(mkstemp(path));
    EXPECT(weights_save(&W2, path, DT_F32) == 0, "save: %s", a2f_last_error());
    SafeTensors st;
    if (st_open(&st, path) == 0) {
        int i = st_find(&st, "encoder.mid_block.attentions.0.to_q.weight");
        EXPECT(i >= 0 && st_tensor(&st, i)->ndim == 2, "saved to_q.weight missing or not [C, C]");
        EXPECT(st_find(&st, "encoder.mid_block.attentions.0.query.weight") < 0, "saved an old name");
        EXPECT(st_count(&st) == W.t.count, "saved %d of %d tensors", st_count(&st), W.t.count);
        st_close(&st);
    } else {
        EXPECT(0, "reopen: %s", a2f_last_error());
    }
    unlink(path);
    // a decoder-only model from the full file
    Vae md;
    Weights Wd;
    EXPECT(vae_load_diffusers_ex(&md, &Wd, DIR "a", VAE_DECODER, NULL, DT_F32, 0) == 0, "decoder only: %s",
           a2f_last_error());
    EXPECT(params_find(&Wd.t, "encoder.conv_in.weight") < 0 && params_find(&Wd.t, "post_quant_conv.weight") >= 0,
           "decoder-only table");
    weights_free(&Wd);
    params_free(&Wd.t);
    weights_free(&W);
    weights_free(&W2);
    params_free(&W.t);
    params_free(&W2.t);
}

// Sampling without a given eps draws the backend's Philox normal stream.
TEST(vae_sample_philox) {
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 20, 1 << 20) == 0, "ctx");
    enum { P = 6, L = 4 };
    float mom[P * 2 * L], eps[P * L], z[P * L], want[P * L];
    uint64_t s = 7;
    test_fill_normal(mom, P * 2 * L, 1.0f, &s);
    mom[L] = 100.0f;  // logvar clamped to 20
    philox_fill_normal(eps, P * L, 42, 3, 0.0f, 1.0f);
    EXPECT(vae_sample(&c, L, P, mom, NULL, 42, 3, 0, 0.5f, 0.18215f, z) == 0, "sample");
    for (int p = 0; p < P; p++)
        for (int k = 0; k < L; k++) {
            float lv = mom[p * 2 * L + L + k];
            lv = lv > 20.0f ? 20.0f : lv < -30.0f ? -30.0f : lv;
            want[p * L + k] = (mom[p * 2 * L + k] + expf(0.5f * lv) * eps[p * L + k] - 0.5f) * 0.18215f;
        }
    EXPECT_CLOSE("philox sample", z, want, P * L, 0, 1e-6);
    nn_ctx_free(&c);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

// Unsupported or broken configs and folders: one clear error line each.
TEST(vae_config_errors) {
    char dir[] = "build/tmp/a2f_vae_cfg_XXXXXX";
    CHECK(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"act_fn\": \"gelu\"}", "act_fn gelu"},
        {"{\"block_out_channels\": [8, 16], \"down_block_types\": [\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\"],"
         " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
         "AttnDownEncoderBlock2D"},
        {"{\"block_out_channels\": [8, 16], \"down_block_types\": [\"DownEncoderBlock2D\"]}", "down_block_types"},
        {"{\"latents_mean\": [0, 0, 0, 0]}", "latents_mean"},
        {"{\"block_out_channels\": [8, 12], \"norm_num_groups\": 8, \"down_block_types\": [\"DownEncoderBlock2D\","
         "\"DownEncoderBlock2D\"], \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
         "norm_num_groups"},
        {"{\"layers_per_block\": 1.5}", "layers_per_block"},
        {"{\"_class_name\": \"UNet2DConditionModel\"}", "AutoencoderKL"},
        {"[1, 2", "not valid JSON"},
    };
    VaeConfig cfg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].json);
        int rc = vae_config_load(&cfg, path);
        const char *e = a2f_last_error();
        EXPECT(rc != 0 && strstr(e, bad[i].msg) && strstr(e, "config.json") && !strchr(e, '\n'),
               "config %zu: rc %d, error: %s", i, rc, e);
    }
    // a valid config without weights: the folder is named
    write_file(path, "{\"block_out_channels\": [8], \"norm_num_groups\": 4}");
    EXPECT(vae_config_load(&cfg, path) == 0 && cfg.nblocks == 1 && cfg.scaling_factor == 0.18215f &&
               cfg.layers_per_block == 1,
           "defaults: %s", a2f_last_error());
    Vae m;
    Weights W;
    EXPECT(vae_load_diffusers(&m, &W, dir) != 0 && strstr(a2f_last_error(), "diffusion_pytorch_model"),
           "no weights: %s", a2f_last_error());
    // weights of another config: the key/shape error of weights_load
    write_file(path, "{\"block_out_channels\": [8, 8], \"norm_num_groups\": 4, \"layers_per_block\": 1,"
                     "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
                     "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}");
    char wp[512];
    snprintf(wp, sizeof wp, "%s/diffusion_pytorch_model.safetensors", dir);
    EXPECT(symlink(realpath(DIR "a/diffusion_pytorch_model.safetensors", NULL), wp) == 0, "symlink");
    EXPECT(vae_load_diffusers(&m, &W, dir) != 0 && strstr(a2f_last_error(), "mis-shaped"), "wrong config: %s",
           a2f_last_error());
    EXPECT(vae_load_diffusers(&m, &W, "build/tmp/a2f_no_such_vae") != 0 && strstr(a2f_last_error(), "a2f_no_such_vae"),
           "missing folder: %s", a2f_last_error());
    unlink(wp);
    unlink(path);
    rmdir(dir);
    // the SD1.5 config is what architectures.md says
    VaeConfig sd = vae_config_sd15();
    EXPECT(vae_config_check(&sd) == 0 && sd.block_out[3] == 512 && sd.layers_per_block == 2, "sd15");
    ParamTable t;
    params_init(&t);
    vae_add(&m, &t, &sd, VAE_BOTH);
    EXPECT(t.count == 248, "SD1.5 VAE has %d tensors, want 248", t.count);
    size_t total = 0;
    for (int i = 0; i < t.count; i++) total += t.entries[i].numel;
    EXPECT(total == 83653863, "SD1.5 VAE has %zu parameters, want 83653863", total);
    params_free(&t);
}
