// test_iresnet.c: the face-recognition backbones (nn/iresnet.h) against
// PyTorch (tools/ref/make_iresnet_fixtures.py): insightface IResNet and
// TreB1eN IR-SE in tiny configurations (reduced widths, non-square input,
// batch 2-3, two seeds each). For each: eval-mode forward, backward (input
// and every parameter gradient), the inference path (ping-pong buffers)
// against the taped one; then training-mode BatchNorm forward, backward and
// the updated running statistics. Also the full-size tables (key count,
// parameter counts of the reference), loading an upstream-style state dict
// (int64 num_batches_tracked), key errors, config errors, bf16 stats binding.
//
// Tolerances: errors are measured as max|got - want| / max|want| per tensor
// (gradients have many near-zero entries, so a per-element relative test
// would measure noise). Bound 1e-4 (fp32; the networks are 5-6 blocks deep
// with sums over up to ~4.6k terms); see GRAD_FLOOR for training mode.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../nn/iresnet.h"
#include "../nn/safetensors.h"
#include "fixture.h"
#include "test.h"

typedef struct {
    const char *file;
    int style, se, B, H, W, layers[4], widths[4], stem, emb;
} Case;

static const Case CASES[] = {
    {"iresnet_s0", IRES_INSIGHTFACE, 0, 3, 32, 48, {1, 2, 1, 1}, {8, 16, 16, 32}, 8, 16},
    {"iresnet_s1", IRES_INSIGHTFACE, 0, 4, 48, 32, {2, 1, 1, 1}, {8, 8, 16, 16}, 8, 12},
    {"irse_s0", IRES_TREB1EN, 1, 3, 32, 48, {1, 2, 1, 1}, {16, 32, 32, 48}, 16, 16},
    {"irse_s1", IRES_TREB1EN, 1, 4, 48, 32, {2, 1, 1, 1}, {16, 16, 32, 32}, 16, 8},
};
#define TOL 1e-4
// In training mode some gradients are analytically zero: a bias followed
// (through linear ops only) by a training-mode BN, e.g. fc.bias before
// features, bn3.bias before the next block's bn1 and the head's bn2 -- the
// batch mean removes it. Both sides then produce rounding noise (~1e-7), so
// every gradient tensor is measured against max(max|ref|, GRAD_FLOOR * the
// largest parameter gradient of the network).
#define GRAD_FLOOR 1e-2

static IResNetConfig case_config(const Case *k) {
    IResNetConfig c = {k->style, k->se, {0}, {0}, k->stem, k->emb, k->H, k->W, 0.0f};
    memcpy(c.layers, k->layers, sizeof c.layers);
    memcpy(c.widths, k->widths, sizeof c.widths);
    return c;
}

static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    return iresnet_keymap(key, out, n);
}

// max|got - want| / max(max|want|, floor) <= tol; returns the measured value.
static double scaled_check_floor(const char *what, const float *got, const float *want, size_t n, double tol,
                                 double floor) {
    double mx = floor, err = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(want[i]));
        double e = fabs((double)got[i] - want[i]);
        err = isnan(e) ? INFINITY : fmax(err, e);
    }
    double rel = err / (mx > 0 ? mx : 1);
    if (!(rel <= tol)) test_fail(__FILE__, __LINE__, "%s: max error %.3g of max|ref| %.3g (%.3g > %.3g)", what, err, mx,
                                 rel, tol);
    return rel;
}

static double scaled_check(const char *what, const float *got, const float *want, size_t n, double tol) {
    return scaled_check_floor(what, got, want, n, tol, 0);
}

// Compares every trainable parameter gradient (PyTorch layout, via
// weights_save of a twin whose w is the gradient) with io.<tag>.grad.<key>;
// entries without a reference gradient (buffers, frozen weights) must be 0.
static double check_grads(Fixture *fx, const Weights *W, const char *tag) {
    Weights g = *W;
    g.w = W->grad;
    g.master = NULL;
    g.grad = NULL;
    g.dt = DT_F32;
    char path[] = "build/tmp/a2f_iresnet_grads_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    double worst = 0, S = 0;  // S: largest reference parameter gradient
    for (int i = 0; i < W->t.count; i++) {
        const ParamEntry *e = &W->t.entries[i];
        char key[PARAM_NAME_MAX + 32];
        snprintf(key, sizeof key, "io.%s.grad.%s", tag, e->name);
        float *want = fx_has(fx, key) ? fx_f32(fx, e->numel, "%s", key) : NULL;
        for (size_t j = 0; want && j < e->numel; j++) S = fmax(S, fabs(want[j]));
    }
    EXPECT(weights_save(&g, path, DT_F32) == 0, "save grads: %s", a2f_last_error());
    SafeTensors st;
    if (st_open(&st, path) != 0) {
        test_fail(__FILE__, __LINE__, "reopen: %s", a2f_last_error());
        unlink(path);
        return 1;
    }
    for (int i = 0; i < W->t.count; i++) {
        const ParamEntry *e = &W->t.entries[i];
        float *got = xmalloc(e->numel * sizeof(float));
        EXPECT(st_load_f32(&st, e->name, got, 0, NULL) == 0, "%s", e->name);
        char key[PARAM_NAME_MAX + 32];
        snprintf(key, sizeof key, "io.%s.grad.%s", tag, e->name);
        if (fx_has(fx, key)) {
            float *want = fx_f32(fx, e->numel, "%s", key);
            char what[PARAM_NAME_MAX + 32];
            snprintf(what, sizeof what, "%s grad %s", tag, e->name);
            if (want) worst = fmax(worst, scaled_check_floor(what, got, want, e->numel, TOL, GRAD_FLOOR * S));
        } else {
            int zero = 1;
            for (size_t j = 0; j < e->numel; j++) zero &= got[j] == 0.0f;
            EXPECT(zero && !e->trainable, "%s: gradient without a PyTorch counterpart (trainable %d)", e->name,
                   e->trainable);
        }
        free(got);
    }
    st_close(&st);
    unlink(path);
    return worst;
}

static void run_case(const Case *k) {
    Fixture *fx = fx_open("iresnet/%s.safetensors", k->file);
    if (!fx) return;
    IResNet m;
    Weights W = {0};
    IResNetConfig cfg = case_config(k);
    EXPECT(iresnet_build(&m, &W.t, &cfg) == 0, "build: %s", a2f_last_error());
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/iresnet/%s.safetensors", k->file);
    const char *files[] = {path};
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
    EXPECT(weights_alloc(&W, cpu_backend(), DT_F32, 1) == 0, "alloc");
    int rc = weights_load(&W, files, 1, skip_io);
    EXPECT(rc == 0, "load: %s", a2f_last_error());
    const int B = k->B, E = k->emb;
    const size_t nx = (size_t)B * k->H * k->W * 3;
    float *x = fx_f32(fx, nx, "io.x"), *dy = fx_f32(fx, (size_t)B * E, "io.dy");
    if (rc != 0 || !x || !dy) goto out;
    double ey = 0, edx = 0, eg = 0, ery = 0, erdx = 0, erg = 0, ers = 0;
    for (int train = 0; train < 2; train++) {
        const char *tag = train ? "train" : "eval";
        m.bn_train = train;
        memset(W.grad, 0, W.t.total * sizeof(float));
        float *y = xcalloc((size_t)B * E, sizeof(float)), *y2 = xcalloc((size_t)B * E, sizeof(float));
        float *dx = xcalloc(nx, sizeof(float));
        float *want_y = fx_f32(fx, (size_t)B * E, "io.%s.y", tag), *want_dx = fx_f32(fx, nx, "io.%s.dx", tag);
        if (!train) {  // inference path first: nothing kept, stack restored
            size_t mark = arena_mark(c.act);
            c.train = 0;
            EXPECT(iresnet_f(&c, &W, &m, y2, x, B, NULL) == 0, "inference forward: %s", a2f_last_error());
            EXPECT(arena_mark(c.act) == mark, "inference forward left %zu bytes", arena_mark(c.act) - mark);
        }
        IResNetSaved *sv = xcalloc(1, sizeof *sv);
        c.train = 1;
        size_t amark = arena_mark(c.act), gmark = arena_mark(c.grad);
        EXPECT(iresnet_f(&c, &W, &m, y, x, B, sv) == 0, "%s forward: %s", tag, a2f_last_error());
        EXPECT(iresnet_b(&c, &W, &m, dx, dy, sv) == 0, "%s backward: %s", tag, a2f_last_error());
        EXPECT(arena_mark(c.act) == amark && arena_mark(c.grad) == gmark, "stacks not restored");
        char what[64];
        snprintf(what, sizeof what, "%s y", tag);
        double a = want_y ? scaled_check(what, y, want_y, (size_t)B * E, TOL) : 1;
        snprintf(what, sizeof what, "%s dx", tag);
        double b = want_dx ? scaled_check(what, dx, want_dx, nx, TOL) : 1;
        double g = check_grads(fx, &W, tag);
        if (!train) {
            EXPECT(memcmp(y, y2, (size_t)B * E * sizeof(float)) == 0, "inference and taped forwards differ");
            ey = a, edx = b, eg = g;
        } else {
            ery = a, erdx = b, erg = g;
            for (int i = 0; i < W.t.count; i++) {  // running stats after one training forward
                const ParamEntry *e = &W.t.entries[i];
                if (e->trainable) continue;
                if (!strstr(e->name, "running_")) continue;
                float *want = fx_f32(fx, e->numel, "io.train.run.%s", e->name);
                if (want) ers = fmax(ers, scaled_check(e->name, (float *)wptr(&W, i), want, e->numel, TOL));
            }
        }
        free(y), free(y2), free(dx), free(sv);
    }
    printf("  %s: eval y %.1e dx %.1e grads %.1e | train y %.1e dx %.1e grads %.1e running %.1e\n", k->file, ey,
           edx, eg, ery, erdx, erg, ers);
out:
    weights_free(&W);
    params_free(&W.t);
    iresnet_free(&m);
    nn_ctx_free(&c);
    fx_close(fx);
}

TEST(iresnet_insightface_matches_torch) {
    run_case(&CASES[0]);
    run_case(&CASES[1]);
}

TEST(iresnet_irse_matches_torch) {
    run_case(&CASES[2]);
    run_case(&CASES[3]);
}

// Full-size tables: names and counts as the reference (architectures.md 4.2,
// 4.6): r100 has 925 state-dict tensors of which 154 are num_batches_tracked,
// 65,156,160 learnable values (frozen features.weight included) and
// 65,225,792 with running statistics; r50 43.59 M learnable; IR-SE-50 43.80 M.
TEST(iresnet_full_size_tables) {
    struct {
        const char *name;
        int count;
        long learn_lo, learn_hi;
        long total;
    } want[] = {
        {"r100", 925 - 154, 65156160, 65156160, 65225792},
        {"r50", -1, 43585000, 43595000, -1},
        {"irse50", -1, 43795000, 43805000, -1},
    };
    for (int i = 0; i < 3; i++) {
        IResNetConfig cfg;
        IResNet m;
        ParamTable t;
        EXPECT(iresnet_config(&cfg, want[i].name) == 0 && iresnet_build(&m, &t, &cfg) == 0, "%s", a2f_last_error());
        long learn = 0, total = 0;
        for (int j = 0; j < t.count; j++) {
            const ParamEntry *e = &t.entries[j];
            total += (long)e->numel;
            if (!strstr(e->name, "running_")) learn += (long)e->numel;
        }
        EXPECT(want[i].count < 0 || t.count == want[i].count, "%s: %d tensors", want[i].name, t.count);
        EXPECT(learn >= want[i].learn_lo && learn <= want[i].learn_hi, "%s: %ld learnable", want[i].name, learn);
        EXPECT(want[i].total < 0 || total == want[i].total, "%s: %ld in all", want[i].name, total);
        EXPECT(m.fh == 7 && m.fw == 7, "%s: head %dx%d", want[i].name, m.fh, m.fw);
        if (i == 0) {
            int fc = params_find(&t, "fc.weight"), ds = params_find(&t, "layer3.0.downsample.0.weight");
            int fw = params_find(&t, "features.weight"), p = params_find(&t, "layer4.2.prelu.weight");
            EXPECT(fc >= 0 && t.entries[fc].shape[0] == 512 && t.entries[fc].shape[1] == 25088, "fc.weight");
            EXPECT(ds >= 0 && t.entries[ds].shape[0] == 256 && t.entries[ds].shape[3] == 128, "downsample");
            EXPECT(fw >= 0 && !t.entries[fw].trainable, "features.weight must be frozen");
            EXPECT(p >= 0 && params_find(&t, "layer3.29.bn3.running_var") >= 0, "layer names");
        }
        if (i == 2)
            EXPECT(params_find(&t, "body.23.res_layer.5.fc2.weight") >= 0 &&
                       params_find(&t, "body.0.shortcut_layer.0.weight") < 0 &&
                       params_find(&t, "body.3.shortcut_layer.1.running_mean") >= 0 &&
                       params_find(&t, "output_layer.4.weight") >= 0 && params_find(&t, "body.24.res_layer.0.bias") < 0,
                   "irse50 names");
        params_free(&t);
    }
}

// A copy of a fixture's state dict as upstream writes it (int64
// num_batches_tracked included, io.* dropped) loads through iresnet_load.
static int write_state_dict(const char *src, const char *dst) {
    SafeTensors st;
    if (st_open(&st, src) != 0) return -1;
    StWriter *w = st_writer_begin(dst);
    int rc = w ? 0 : -1;
    for (int i = 0; i < st_count(&st) && rc == 0; i++) {
        const StTensor *t = st_tensor(&st, i);
        if (strncmp(t->name, "io.", 3) == 0) continue;
        rc = st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    if (w) rc = rc == 0 ? st_writer_finish(w) : (st_writer_abort(w), -1);
    st_close(&st);
    return rc;
}

TEST(iresnet_load_upstream_state_dict) {
    const Case *k = &CASES[2];
    IResNetConfig cfg = case_config(k);
    IResNet m, m2;
    Weights W = {0}, W2 = {0}, Wb = {0};
    char path[] = "build/tmp/a2f_iresnet_sd_XXXXXX";
    close(mkstemp(path));
    EXPECT(write_state_dict("tests/fixtures/iresnet/irse_s0.safetensors", path) == 0, "%s", a2f_last_error());
    SafeTensors st;
    int has_nbt = 0;
    if (st_open(&st, path) == 0) {
        has_nbt = st_find(&st, "body.0.res_layer.0.num_batches_tracked") >= 0;
        st_close(&st);
    }
    EXPECT(has_nbt, "state dict lacks num_batches_tracked");
    EXPECT(iresnet_build(&m, &W.t, &cfg) == 0 && weights_alloc(&W, cpu_backend(), DT_F32, 0) == 0, "build");
    EXPECT(iresnet_load(&m, &W, path) == 0, "iresnet_load: %s", a2f_last_error());
    EXPECT(m.stats32 == NULL, "f32 weights need no stats copy");
    // the same values as the fixture read with weights_load
    const char *files[] = {"tests/fixtures/iresnet/irse_s0.safetensors"};
    EXPECT(iresnet_build(&m2, &W2.t, &cfg) == 0 && weights_alloc(&W2, cpu_backend(), DT_F32, 0) == 0, "build");
    EXPECT(weights_load(&W2, files, 1, skip_io) == 0, "%s", a2f_last_error());
    EXPECT(memcmp(W.w, W2.w, W.t.total * sizeof(float)) == 0, "iresnet_load and weights_load differ");
    // bf16 inference weights: running stats bound as exact fp32 copies
    IResNet mb;
    EXPECT(iresnet_build(&mb, &Wb.t, &cfg) == 0 && weights_alloc(&Wb, cpu_backend(), DT_BF16, 0) == 0, "build");
    EXPECT(iresnet_load(&mb, &Wb, path) == 0, "bf16 load: %s", a2f_last_error());
    EXPECT(mb.stats32 != NULL, "bf16 weights: no stats copy");
    if (mb.stats32) {
        const BatchNorm *bn = &mb.blocks[3].down_bn;
        const float *rv = (const float *)W2.w + W2.t.entries[bn->rv].offset;
        EXPECT(memcmp(mb.stats32 + bn->soff + bn->C, rv, bn->C * sizeof(float)) == 0, "stats copy differs");
    }
    // a wrong configuration: one error line naming mis-shaped keys
    IResNetConfig bad = cfg;
    bad.widths[3] = 40;
    IResNet mbad;
    Weights Wbad = {0};
    EXPECT(iresnet_build(&mbad, &Wbad.t, &bad) == 0 && weights_alloc(&Wbad, cpu_backend(), DT_F32, 0) == 0, "build");
    EXPECT(iresnet_load(&mbad, &Wbad, path) != 0, "accepted a mismatched file");
    const char *e = a2f_last_error();
    EXPECT(strstr(e, "mis-shaped") && strstr(e, "body.4") && !strchr(e, '\n'), "error: %s", e);
    EXPECT(iresnet_load(&mbad, &Wbad, "build/tmp/a2f_no_such_iresnet.safetensors") != 0 &&
               strstr(a2f_last_error(), "a2f_no_such_iresnet"),
           "missing file: %s", a2f_last_error());
    unlink(path);
    Weights *all[] = {&W, &W2, &Wb, &Wbad};
    for (int i = 0; i < 4; i++) weights_free(all[i]), params_free(&all[i]->t);
    iresnet_free(&m), iresnet_free(&m2), iresnet_free(&mb), iresnet_free(&mbad);
}

TEST(iresnet_bad_config_and_batch) {
    IResNetConfig cfg;
    IResNet m;
    ParamTable t;
    EXPECT(iresnet_config(&cfg, "r99") != 0 && strstr(a2f_last_error(), "r99"), "unknown name");
    EXPECT(iresnet_config(&cfg, "irse50") == 0, "irse50");
    cfg.widths[0] = 8;  // SE needs C/16 >= 1
    EXPECT(iresnet_build(&m, &t, &cfg) != 0 && strstr(a2f_last_error(), "bad config"), "SE width 8 accepted");
    params_free(&t);
    cfg.widths[0] = 64;
    cfg.layers[2] = 0;
    EXPECT(iresnet_build(&m, &t, &cfg) != 0, "empty stage accepted");
    params_free(&t);
    // training-mode BN with batch 1: an error, not a crash
    const Case *k = &CASES[0];
    IResNetConfig c1 = case_config(k);
    Weights W = {0};
    Ctx c;
    EXPECT(iresnet_build(&m, &W.t, &c1) == 0 && weights_alloc(&W, cpu_backend(), DT_F32, 0) == 0, "build");
    EXPECT(weights_init_random(&W, 1, 0.1f) == 0, "init");
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 16 << 20, 1 << 20) == 0, "ctx");
    float *x = xcalloc((size_t)k->H * k->W * 3, sizeof(float)), y[64];
    m.bn_train = 1;
    size_t mark = arena_mark(c.act);
    EXPECT(iresnet_f(&c, &W, &m, y, x, 1, NULL) != 0 && strstr(a2f_last_error(), "features"), "batch 1: %s",
           a2f_last_error());
    arena_reset(c.act, mark);
    m.bn_train = 0;
    EXPECT(iresnet_f(&c, &W, &m, y, x, 1, NULL) == 0, "eval batch 1: %s", a2f_last_error());
    free(x);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
}

TEST(iresnet_preprocess_arcface) {
    const uint8_t img[6] = {0, 255, 128, 10, 20, 30};
    float out[6];
    iresnet_preprocess(out, img, 2, 0);
    EXPECT(out[0] == -1.0f && out[1] == 1.0f && fabsf(out[2] - 0.5f / 127.5f) < 1e-7f, "rgb");
    iresnet_preprocess(out, img, 2, 1);
    EXPECT(fabsf(out[0] - (128 - 127.5f) / 127.5f) < 1e-7f && out[2] == -1.0f &&
               fabsf(out[3] - (30 - 127.5f) / 127.5f) < 1e-7f,
           "bgr swap");
}

// Dropout before fc (insightface's `dropout` argument; training mode only):
// seeded (the same seed and offset give the same mask, forward and backward),
// a new offset gives a new mask, and eval mode ignores it.
TEST(iresnet_dropout_seeded) {
    const Case *k = &CASES[1];
    IResNetConfig cfg = case_config(k);
    cfg.dropout = 0.4f;
    IResNet m;
    Weights W = {0};
    Ctx c;
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/iresnet/%s.safetensors", k->file);
    const char *files[] = {path};
    Fixture *fx = fx_open("iresnet/%s.safetensors", k->file);
    const size_t nx = (size_t)k->B * k->H * k->W * 3, ny = (size_t)k->B * k->emb;
    float *x = fx ? fx_f32(fx, nx, "io.x") : NULL, *dy = fx ? fx_f32(fx, ny, "io.dy") : NULL;
    float *want = fx ? fx_f32(fx, ny, "io.eval.y") : NULL;
    if (!x || !dy || !want) {
        fx_close(fx);
        return;
    }
    EXPECT(iresnet_build(&m, &W.t, &cfg) == 0 && weights_alloc(&W, cpu_backend(), DT_F32, 1) == 0, "build");
    EXPECT(weights_load(&W, files, 1, skip_io) == 0, "%s", a2f_last_error());
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 64 << 20, 64 << 20) == 0, "ctx");
    float *y[3], *dx[2];
    IResNetSaved *sv = xcalloc(1, sizeof *sv);
    float *w0 = xmalloc(W.t.total * 4);
    memcpy(w0, W.w, W.t.total * 4);
    c.train = 1;
    m.bn_train = 1;
    m.drop_seed = 7;
    for (int r = 0; r < 2; r++) {  // the same step twice (running stats restored in between)
        memcpy(W.w, w0, W.t.total * 4);
        y[r] = xcalloc(ny, 4), dx[r] = xcalloc(nx, 4);
        EXPECT(iresnet_f(&c, &W, &m, y[r], x, k->B, sv) == 0 && iresnet_b(&c, &W, &m, dx[r], dy, sv) == 0, "%s",
               a2f_last_error());
        EXPECT(sv->dropped, "dropout not applied");
    }
    EXPECT(memcmp(y[0], y[1], ny * 4) == 0 && memcmp(dx[0], dx[1], nx * 4) == 0, "same seed, different result");
    memcpy(W.w, w0, W.t.total * 4);
    m.drop_offset = 1;
    y[2] = xcalloc(ny, 4);
    EXPECT(iresnet_f(&c, &W, &m, y[2], x, k->B, sv) == 0, "%s", a2f_last_error());
    EXPECT(memcmp(y[0], y[2], ny * 4) != 0, "a new offset gave the same mask");
    memcpy(W.w, w0, W.t.total * 4);
    c.train = 0;
    m.bn_train = 0;
    EXPECT(iresnet_f(&c, &W, &m, y[2], x, k->B, NULL) == 0, "eval");
    scaled_check("eval y with dropout configured", y[2], want, ny, TOL);
    for (int r = 0; r < 2; r++) free(y[r]), free(dx[r]);
    free(y[2]), free(sv), free(w0);
    fx_close(fx);
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
}
