// test_cli_forward.c: `arc2face forward` and `arc2face convert`, run as child
// processes (binary: $A2F_BIN or build/arc2face, from the repository root).
//
// forward: a tiny MLP encoder (config.json + random weights saved by
// weights_save) is run through the CLI and in-process (mlp_f / mlp_b): "out",
// "grad.id_embedding" and every "grad.<key>" must match (same code, same
// order of operations; 1e-6 abs + 1e-5 rel because the binary and the test may
// be compiled with different flags, e.g. FMA contraction: measured <= 1.2e-6 rel).
// Error handling: unknown model,
// missing weights folder, missing / unexpected input names, wrong shapes,
// wrong batch, bad --grad file -> exit 1 (usage errors 2) with one
// "arc2face: error:" line.
// convert: a torch .bin -> safetensors equals the reference fixture; the
// malicious pickle is refused in one line and writes nothing; --dtype bf16.
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../nn/mlp_encoder.h"
#include "../nn/safetensors.h"
#include "test.h"

static void expect_error(const char *args, int want_rc, const char *needle) {
    char *err;
    int rc = test_run(NULL, args, NULL, &err);
    int lines = 0;
    for (char *p = err; *p; p++) lines += *p == '\n';
    EXPECT(rc == want_rc && lines == 1 && strncmp(err, "arc2face: error: ", 17) == 0 && strstr(err, needle),
           "`%s`: exit %d (want %d), want one line with '%s': %s", args, rc, want_rc, needle, err);
    free(err);
}

#define DIR "build/tmp/a2f_fwd_test"
static const char *k_cfg = "{\"in_dim\": 8, \"hidden_dims\": [16, 12], \"activation\": \"gelu\", \"num_tokens\": 3, "
                           "\"token_dim\": 4, \"final_layer_norm\": true, \"normalize_input\": true}";

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int write_tensor(const char *path, const char *name, int nd, const int64_t *shape, const float *x) {
    StWriter *w = st_writer_begin(path);
    if (!w || st_writer_add(w, name, ST_F32, nd, shape, x)) return -1;
    return st_writer_finish(w);
}

// Builds DIR/mlp/{config.json, model.safetensors} and returns the model (W allocated, loaded, train mode).
static int make_mlp(MlpEncoder *m, Weights *W) {
    mkdir(DIR, 0755);
    mkdir(DIR "/mlp", 0755);
    write_file(DIR "/mlp/config.json", k_cfg);
    MlpConfig c;
    memset(W, 0, sizeof *W);
    params_init(&W->t);
    if (mlp_config_parse(&c, k_cfg, "cfg") || mlp_add(m, &W->t, &c) || weights_alloc(W, cpu_backend(), DT_F32, 1) ||
        weights_init_random(W, 7, 0.3f) || weights_save(W, DIR "/mlp/model.safetensors", DT_F32))
        return -1;
    return 0;
}

TEST(cli_forward_mlp_matches_module) {
    if (!TEST_HAVE_BIN()) return;
    MlpEncoder m;
    Weights W;
    if (make_mlp(&m, &W)) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    const int B = 2, T = 3, D = 4, I = 8;
    float x[16], dy[24];
    uint64_t s = 11;
    test_fill_normal(x, 16, 1.0f, &s);
    test_fill_normal(dy, 24, 1.0f, &s);
    int64_t xs[2] = {B, I}, ys[3] = {B, T, D};
    EXPECT(write_tensor(DIR "/in.safetensors", "id_embedding", 2, xs, x) == 0, "%s", a2f_last_error());
    EXPECT(write_tensor(DIR "/dout.safetensors", "out", 3, ys, dy) == 0, "%s", a2f_last_error());
    char *err;
    int rc = test_run(NULL,
                      "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/in.safetensors --out " DIR
                      "/out.safetensors --grad " DIR "/dout.safetensors",
                      NULL, &err);
    EXPECT(rc == 0, "forward failed: %s", err);
    free(err);
    // In-process reference with the same module code.
    Ctx c;
    EXPECT(nn_ctx_init(&c, cpu_backend(), DT_F32, 1 << 20, 1 << 20) == 0, "ctx");
    c.train = 1;
    float *xd = nn_push(&c, 16), *y = nn_push(&c, 24), *dyd = nn_gpush(&c, 24), *dx = nn_gpush(&c, 16);
    memcpy(xd, x, sizeof x);
    memcpy(dyd, dy, sizeof dy);
    MlpSaved sv;
    EXPECT(mlp_f(&c, &W, &m, y, xd, B, &sv) == 0 && mlp_b(&c, &W, &m, dx, dyd, &sv) == 0, "%s", a2f_last_error());
    SafeTensors o;
    if (st_open(&o, DIR "/out.safetensors") != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
    } else {
        float got[24], gx[16];
        EXPECT(st_load_f32(&o, "out", got, 3, ys) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("out", got, y, 24, 1e-6, 1e-5);
        EXPECT(st_load_f32(&o, "grad.id_embedding", gx, 2, xs) == 0, "%s", a2f_last_error());
        EXPECT_CLOSE("grad.id_embedding", gx, dx, 16, 1e-6, 1e-5);
        int nparam = 0;
        for (int i = 0; i < W.t.count; i++) {
            const ParamEntry *e = &W.t.entries[i];
            char key[PARAM_NAME_MAX + 8];
            snprintf(key, sizeof key, "grad.%s", e->name);
            float *g = xmalloc(e->numel * sizeof(float));
            int64_t fs[TENSOR_MAX_DIMS];
            params_file_shape(e, fs);
            if (st_load_f32(&o, key, g, e->ndim, fs) == 0) {
                nparam++;
                EXPECT_CLOSE(key, g, gptr(&W, i), e->numel, 1e-6, 1e-5);
            } else {
                test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
            }
            free(g);
        }
        EXPECT(st_count(&o) == 2 + nparam, "out has %d tensors", st_count(&o));
        st_close(&o);
    }
    nn_ctx_free(&c);
    weights_free(&W);
    params_free(&W.t);
}

TEST(cli_forward_errors) {
    if (!TEST_HAVE_BIN()) return;
    MlpEncoder m;
    Weights W;
    if (make_mlp(&m, &W)) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    weights_free(&W);
    params_free(&W.t);
    float x[24] = {0};
    int64_t good[2] = {2, 8}, wide[2] = {2, 9}, three[3] = {2, 3, 4}, one[2] = {1, 8};
    write_tensor(DIR "/x.safetensors", "id_embedding", 2, good, x);
    write_tensor(DIR "/wrongname.safetensors", "idvec", 2, good, x);
    write_tensor(DIR "/wide.safetensors", "id_embedding", 2, wide, x);
    write_tensor(DIR "/rank3.safetensors", "id_embedding", 3, three, x);
    write_tensor(DIR "/dout_bad.safetensors", "out", 2, one, x);
    const char *o = " --out " DIR "/o.safetensors";
    char a[1024];
    expect_error("forward --model gan --weights x --inputs y --out z", 2, "unknown model 'gan'");
    expect_error("forward --model mlp --inputs y --out z", 2, "required");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/nope --inputs " DIR "/x.safetensors%s", o);
    expect_error(a, 1, DIR "/nope");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/missing.safetensors%s", o);
    expect_error(a, 1, "missing.safetensors");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/wrongname.safetensors%s", o);
    expect_error(a, 1, "missing input 'id_embedding'");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/wide.safetensors%s", o);
    expect_error(a, 1, "[2, 9], want [B, 8]");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/rank3.safetensors%s", o);
    expect_error(a, 1, "has shape [2, 3, 4]");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/x.safetensors%s --grad " DIR
             "/dout_bad.safetensors", o);
    expect_error(a, 1, "dout_bad.safetensors");
    snprintf(a, sizeof a, "forward --model unet --weights " DIR "/mlp --inputs " DIR "/x.safetensors%s", o);
    expect_error(a, 1, "missing input 'sample'");
    snprintf(a, sizeof a, "forward --model mlp --weights " DIR "/mlp --inputs " DIR "/x.safetensors%s --dtype f64", o);
    expect_error(a, 2, "--dtype");
    char *err;
    int rc = test_run(NULL, "forward --help", NULL, &err);
    free(err);
    EXPECT(rc == 0, "forward --help");
}

TEST(cli_convert_bin) {
    if (!TEST_HAVE_BIN()) return;
    mkdir(DIR, 0755);
    char *err;
    int rc = test_run(NULL, "convert tests/fixtures/torch/pytorch_model.bin " DIR "/conv.safetensors", NULL, &err);
    EXPECT(rc == 0, "convert: %s", err);
    free(err);
    SafeTensors a, b;
    if (st_open(&a, DIR "/conv.safetensors") == 0) {
        if (st_open(&b, "tests/fixtures/torch/pytorch_model.ref.safetensors") == 0) {
            EXPECT(st_count(&a) == st_count(&b), "count");
            for (int i = 0; i < st_count(&b); i++) {
                const StTensor *w = st_tensor(&b, i);
                int j = st_find(&a, w->name);
                EXPECT(j >= 0 && st_tensor(&a, j)->nbytes == w->nbytes &&
                           memcmp(st_tensor(&a, j)->data, w->data, w->nbytes) == 0,
                       "%s differs", w->name);
            }
            st_close(&b);
        }
        st_close(&a);
    } else {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
    }
    rc = test_run(NULL, "convert tests/fixtures/torch/f32.bin " DIR "/conv16.safetensors --dtype bf16", NULL, &err);
    EXPECT(rc == 0, "convert --dtype bf16: %s", err);
    free(err);
    if (st_open(&a, DIR "/conv16.safetensors") == 0) {
        int k = st_find(&a, "fc.weight"), n = st_find(&a, "bn.num_batches_tracked");
        EXPECT(k >= 0 && st_tensor(&a, k)->dtype == ST_BF16 && n >= 0 && st_tensor(&a, n)->dtype == ST_I64,
               "floats to BF16, ints kept");
        st_close(&a);
    }
    unlink(DIR "/evil.safetensors");
    expect_error("convert tests/fixtures/torch/malicious.bin " DIR "/evil.safetensors", 1, "posix.system");
    EXPECT(access(DIR "/evil.safetensors", F_OK) != 0, "nothing written for a refused file");
    expect_error("convert tests/fixtures/torch/f32.bin " DIR "/x.bin", 2, ".safetensors");
    expect_error("convert a.txt " DIR "/x.safetensors", 2, "unknown input type");
}
