// test_nn_core.c: weight loading and saving (names, PyTorch layouts, key
// errors) and the leaf modules, against a PyTorch chain
// conv3x3 -> GroupNorm -> SiLU -> Linear (tools/ref/make_nn_core_fixture.py).
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../nn/layers.h"
#include "../nn/safetensors.h"
#include "fixture.h"
#include "test.h"

#define CORE "tests/fixtures/nn/core.safetensors"
enum { B = 2, H = 5, W = 4, CIN = 3, C = 8, G = 4, OUT = 6 };

typedef struct {
    Conv2d conv;
    GroupNorm norm;
    Linear proj;
    Weights w;
} Tiny;

static void tiny_build(Tiny *m) {
    memset(m, 0, sizeof *m);
    params_init(&m->w.t);
    conv2d_add(&m->conv, &m->w.t, "conv", CIN, C, 3, 1, 1, 1);
    groupnorm_add(&m->norm, &m->w.t, "norm", C, G, 1e-5f);
    linear_add(&m->proj, &m->w.t, "proj", C, OUT, 1);
}

// The fixture also holds inputs and outputs under "io.": not weights.
static int skip_io(const char *key, char *out, size_t n) {
    if (strncmp(key, "io.", 3) == 0) return 0;
    snprintf(out, n, "%s", key);
    return 1;
}

static int run_fwd(const Ctx *c, Tiny *m, float *y, float *h, float *a, float *mean, float *rstd, const float *x) {
    TRY(conv2d_f(c, &m->w, &m->conv, h, x, B, H, W));
    TRY(groupnorm_f(c, &m->w, &m->norm, a, mean, rstd, h, B, H * W, 1));
    TRY(linear_f(c, &m->w, &m->proj, y, a, B * H * W));
    return 0;
}

TEST(nn_load_forward_backward_matches_torch) {
    Fixture *fx = fx_open("nn/core.safetensors");
    if (!fx) return;
    Tiny m;
    tiny_build(&m);
    const char *files[] = {CORE};
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 20, 1 << 20) == 0, "ctx");
    EXPECT(weights_alloc(&m.w, cpu_backend(), DT_F32, 1) == 0, "alloc");
    int rc = weights_load(&m.w, files, 1, skip_io);
    EXPECT(rc == 0, "load: %s", a2f_last_error());
    const int P = B * H * W;
    float *x = fx_f32(fx, P * CIN, "io.x"), *yt = fx_f32(fx, P * OUT, "io.y"), *dy = fx_f32(fx, P * OUT, "io.dy");
    float *dxt = fx_f32(fx, P * CIN, "io.dx");
    if (rc != 0 || !x || !yt || !dy || !dxt) return;
    float *h = xmalloc(P * C * 4), *a = xmalloc(P * C * 4), *y = xmalloc(P * OUT * 4);
    float mean[B * G], rstd[B * G];
    EXPECT(run_fwd(&c, &m, y, h, a, mean, rstd, x) == 0, "forward: %s", a2f_last_error());
    // fp32 forward with K = 27 and 8-term sums: a few ulps of O(1) values.
    EXPECT_CLOSE("y", y, yt, P * OUT, 1e-5, 1e-4);
    float *da = xcalloc(P * C, 4), *dh = xcalloc(P * C, 4), *dx = xcalloc(P * CIN, 4);
    EXPECT(linear_b(&c, &m.w, &m.proj, da, dy, a, P) == 0, "proj bwd");
    EXPECT(groupnorm_b(&c, &m.w, &m.norm, dh, da, h, mean, rstd, B, H * W, 1) == 0, "norm bwd");
    EXPECT(conv2d_b(&c, &m.w, &m.conv, dx, dh, x, B, H, W) == 0, "conv bwd");
    EXPECT_CLOSE("dx", dx, dxt, P * CIN, 1e-5, 1e-4);
    // Parameter gradients, compared in PyTorch layout: save them as a model
    // file through the same writer as the weights (grad -> w of a twin).
    Weights g = m.w;
    g.w = m.w.grad;
    g.master = NULL;
    g.dt = DT_F32;
    char path[] = "build/tmp/a2f_grads_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    EXPECT(weights_save(&g, path, DT_F32) == 0, "save grads: %s", a2f_last_error());
    SafeTensors st;
    EXPECT(st_open(&st, path) == 0, "reopen: %s", a2f_last_error());
    for (int i = 0; i < m.w.t.count; i++) {
        const ParamEntry *e = &m.w.t.entries[i];
        float *got = xmalloc(e->numel * 4);
        EXPECT(st_load_f32(&st, e->name, got, 0, NULL) == 0, "%s", e->name);
        float *want = fx_f32(fx, e->numel, "io.grad.%s", e->name);
        // parameter gradients sum over up to B*H*W = 40 positions: 1e-4 relative
        if (want) EXPECT_CLOSE(e->name, got, want, e->numel, 1e-5, 1e-4);
        free(got);
    }
    st_close(&st);
    unlink(path);
    free(h), free(a), free(y), free(da), free(dh), free(dx);
    weights_free(&m.w);
    params_free(&m.w.t);
    nn_ctx_free(&c);
    fx_close(fx);
}

// Saving writes PyTorch layouts and names: the conv weight in the saved file
// must equal the PyTorch tensor byte for byte; loading it back round-trips.
TEST(nn_save_roundtrip_pytorch_layout) {
    Tiny m, m2;
    tiny_build(&m);
    tiny_build(&m2);
    const char *files[] = {CORE};
    EXPECT(weights_alloc(&m.w, cpu_backend(), DT_F32, 0) == 0 && weights_load(&m.w, files, 1, skip_io) == 0, "%s",
           a2f_last_error());
    char path[] = "build/tmp/a2f_save_XXXXXX";
    close(mkstemp(path));
    EXPECT(weights_save(&m.w, path, DT_F32) == 0, "save: %s", a2f_last_error());
    SafeTensors a, b;
    EXPECT(st_open(&a, path) == 0 && st_open(&b, CORE) == 0, "open");
    int ia = st_find(&a, "conv.weight"), ib = st_find(&b, "conv.weight");
    EXPECT(ia >= 0 && ib >= 0 && st_tensor(&a, ia)->nbytes == st_tensor(&b, ib)->nbytes &&
               memcmp(st_tensor(&a, ia)->data, st_tensor(&b, ib)->data, st_tensor(&a, ia)->nbytes) == 0,
           "saved conv.weight differs from PyTorch's");
    EXPECT(st_count(&a) == 6, "saved %d tensors", st_count(&a));
    st_close(&a);
    st_close(&b);
    const char *f2[] = {path};
    EXPECT(weights_alloc(&m2.w, cpu_backend(), DT_F32, 0) == 0 && weights_load(&m2.w, f2, 1, NULL) == 0, "%s",
           a2f_last_error());
    for (int i = 0; i < m.w.t.count; i++)  // per entry: the alignment gaps between tensors hold nothing
        EXPECT(memcmp(wptr(&m.w, i), wptr(&m2.w, i), m.w.t.entries[i].numel * 4) == 0, "round trip changed %s",
               m.w.t.entries[i].name);
    // bf16 file: values within bf16 rounding (2^-8 relative)
    EXPECT(weights_save(&m.w, path, DT_BF16) == 0, "save bf16");
    EXPECT(weights_load(&m2.w, f2, 1, NULL) == 0, "load bf16: %s", a2f_last_error());
    for (int i = 0; i < m.w.t.count; i++)
        EXPECT_CLOSE(m.w.t.entries[i].name, (float *)wptr(&m2.w, i), (float *)wptr(&m.w, i), m.w.t.entries[i].numel,
                     0, 1.0 / 256);
    unlink(path);
    weights_free(&m.w);
    weights_free(&m2.w);
    params_free(&m.w.t);
    params_free(&m2.w.t);
}

// Missing, unexpected and mis-shaped keys: one error line naming them; the
// weights are left unchanged.
TEST(nn_load_reports_key_problems) {
    Tiny m;
    tiny_build(&m);
    EXPECT(weights_alloc(&m.w, cpu_backend(), DT_F32, 0) == 0, "alloc");
    memset(m.w.w, 0, m.w.t.total * 4);
    const char *files[] = {CORE};
    // without the io.* filter: 16 unexpected keys
    EXPECT(weights_load(&m.w, files, 1, NULL) != 0, "accepted unexpected keys");
    const char *e = a2f_last_error();
    EXPECT(strstr(e, CORE) && strstr(e, "unexpected") && strstr(e, "io.") && !strchr(e, '\n'), "error: %s", e);
    // a model expecting a key the file lacks, and one with a wrong shape
    Tiny m2;
    tiny_build(&m2);
    int64_t s[1] = {5};
    params_add(&m2.w.t, "extra.bias", 1, s);
    m2.w.t.entries[m2.proj.w].shape[1] = 9;  // proj.weight [6, 9] instead of [6, 8]
    m2.w.t.entries[m2.proj.w].numel = 54;
    EXPECT(weights_alloc(&m2.w, cpu_backend(), DT_F32, 0) == 0, "alloc");
    EXPECT(weights_load(&m2.w, files, 1, skip_io) != 0, "accepted a bad file");
    e = a2f_last_error();
    EXPECT(strstr(e, "1 missing (extra.bias)") && strstr(e, "mis-shaped (proj.weight [6, 8], want [6, 9])"),
           "error: %s", e);
    float zero[C * 9 * CIN] = {0};
    EXPECT(memcmp(m.w.w, zero, sizeof zero) == 0, "failed load changed the weights");
    const char *nofile[] = {"tests/fixtures/nn/nope.safetensors"};
    EXPECT(weights_load(&m.w, nofile, 1, NULL) != 0 && strstr(a2f_last_error(), "nope.safetensors"), "missing file");
    weights_free(&m.w);
    weights_free(&m2.w);
    params_free(&m.w.t);
    params_free(&m2.w.t);
}

TEST(nn_stack_discipline) {
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 4096, 4096) == 0, "ctx");
    float *a = nn_push(&c, 100);
    size_t mark = arena_mark(c.act);
    EXPECT(a && nn_push(&c, 100), "push");
    EXPECT(nn_push(&c, 1 << 20) == NULL && strstr(a2f_last_error(), "activation"), "overflow: %s",
           a2f_last_error());
    arena_reset(c.act, mark);
    float *g = nn_gpush_f32(&c, 50);
    int zero = 1;
    for (int i = 0; i < 50; i++) zero &= g[i] == 0.0f;
    EXPECT(zero, "gradient buffers must start at zero");
    nn_ctx_free(&c);
}
