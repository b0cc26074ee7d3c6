// test_torch_bin.c: torch.save zip checkpoints (nn/torch_zip.h, nn/torch_pickle.h).
//
// Fixtures: tests/fixtures/torch/, written by tools/ref/make_torch_fixtures.py
// with torch.save; each valid NAME.bin has NAME.ref.safetensors holding the
// tensors the reader must produce. Checks: names, dtypes, shapes and bytes
// equal the reference for f32/f16/bf16, a transformers-style pytorch_model.bin
// (other archive folder, nn.Parameter), a nested Lightning-style dict and a
// protocol-4 pickle; storage offsets and tied weights; weights_load through the
// .bin dispatch equals loading the reference safetensors; and every malformed
// or hostile input (os.system global, truncation, DEFLATE, non-contiguous,
// legacy format, big endian, missing / short storage, corrupt central
// directory, and hand-made pickles: stack underflow, unknown opcode, bad memo,
// no STOP, non-dict top, eval global, huge memo index) fails with one error
// line naming the file and the problem.
#include <string.h>

#include "../kernels/backend.h"
#include "../kernels/common.h"
#include "../nn/nn.h"
#include "../nn/torch_pickle.h"
#include "../nn/torch_zip.h"
#include "test.h"

#define FIX "tests/fixtures/torch/"

static void compare_with_ref(const char *name) {
    char bin[256], ref[256];
    snprintf(bin, sizeof bin, FIX "%s.bin", name);
    snprintf(ref, sizeof ref, FIX "%s.ref.safetensors", name);
    SafeTensors t, r;
    if (torch_open(&t, bin) != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    if (st_open(&r, ref) != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        st_close(&t);
        return;
    }
    EXPECT(st_count(&t) == st_count(&r), "%s: %d tensors, reference has %d", name, st_count(&t), st_count(&r));
    for (int i = 0; i < st_count(&r); i++) {
        const StTensor *want = st_tensor(&r, i);
        int j = st_find(&t, want->name);
        EXPECT(j >= 0, "%s: tensor '%s' missing", name, want->name);
        if (j < 0) continue;
        const StTensor *got = st_tensor(&t, j);
        int same = got->dtype == want->dtype && got->ndim == want->ndim && got->nbytes == want->nbytes;
        for (int d = 0; same && d < got->ndim; d++) same = got->shape[d] == want->shape[d];
        EXPECT(same, "%s: '%s' dtype/shape differ (%s vs %s)", name, want->name, st_dtype_name(got->dtype),
               st_dtype_name(want->dtype));
        if (same) EXPECT(memcmp(got->data, want->data, want->nbytes) == 0, "%s: '%s' bytes differ", name, want->name);
    }
    st_close(&t);
    st_close(&r);
}

TEST(torch_bin_matches_reference) {
    const char *names[] = {"f32", "f16", "bf16", "pytorch_model", "nested", "proto4"};
    for (int i = 0; i < 6; i++) compare_with_ref(names[i]);
}

TEST(torch_bin_offsets_tied_ints) {
    SafeTensors t;
    if (torch_open(&t, FIX "f32.bin") != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    // view_at_offset = arange(20)[5:11].view(2, 3): storage offset 5.
    float v[6];
    int64_t s23[2] = {2, 3};
    EXPECT(st_load_f32(&t, "view_at_offset", v, 2, s23) == 0, "%s", a2f_last_error());
    for (int k = 0; k < 6; k++) EXPECT(v[k] == 5 + k, "view_at_offset[%d] = %g", k, v[k]);
    int a = st_find(&t, "tied"), b = st_find(&t, "fc.weight");
    EXPECT(a >= 0 && b >= 0 && st_tensor(&t, a)->data == st_tensor(&t, b)->data, "tied weight shares fc.weight's data");
    int n = st_find(&t, "bn.num_batches_tracked");
    EXPECT(n >= 0 && st_tensor(&t, n)->dtype == ST_I64 && st_tensor(&t, n)->ndim == 0, "num_batches_tracked is an I64 scalar");
    if (n >= 0) {
        int64_t x;
        memcpy(&x, st_tensor(&t, n)->data, 8);
        EXPECT(x == 7, "num_batches_tracked = %lld", (long long)x);
    }
    st_close(&t);
    // Nested dict keys are joined with '.'; non-tensor values are skipped.
    EXPECT(torch_open(&t, FIX "nested.bin") == 0, "%s", a2f_last_error());
    EXPECT(st_find(&t, "state_dict.a") >= 0 && st_find(&t, "optimizer.step") >= 0 && st_count(&t) == 3, "nested names");
    st_close(&t);
}

static int skip_extras(const char *k, char *out, size_t n) {
    if (strstr(k, "num_batches_tracked") || !strcmp(k, "tied") || !strcmp(k, "view_at_offset") || !strcmp(k, "scalar"))
        return 0;
    snprintf(out, n, "%s", k);
    return 1;
}

static void tiny_table(ParamTable *t) {
    params_init(t);
    int64_t conv[4] = {4, 3, 3, 3}, c4[1] = {4}, fc[2] = {6, 5}, c6[1] = {6};
    params_add_ex(t, "conv.weight", 4, conv, PARAM_CONV, 1);
    params_add(t, "conv.bias", 1, c4);
    params_add(t, "bn.weight", 1, c4);
    params_add(t, "bn.bias", 1, c4);
    params_add_ex(t, "bn.running_mean", 1, c4, PARAM_PLAIN, 0);
    params_add_ex(t, "bn.running_var", 1, c4, PARAM_PLAIN, 0);
    params_add(t, "fc.weight", 2, fc);
    params_add(t, "fc.bias", 1, c6);
    params_add(t, "norm.weight", 1, c6);
    params_add(t, "norm.bias", 1, c6);
}

TEST(torch_bin_weights_load) {
    const char *dt[] = {"f32", "f16", "bf16"};
    for (int i = 0; i < 3; i++) {
        Weights a = {0}, b = {0};
        tiny_table(&a.t);
        tiny_table(&b.t);
        char fa[128], fb[128];
        snprintf(fa, sizeof fa, FIX "%s.bin", dt[i]);
        snprintf(fb, sizeof fb, FIX "%s.ref.safetensors", dt[i]);
        const char *la[1] = {fa}, *lb[1] = {fb};
        EXPECT(weights_alloc(&a, cpu_backend(), DT_F32, 0) == 0 && weights_alloc(&b, cpu_backend(), DT_F32, 0) == 0,
               "alloc");
        int ra = weights_load(&a, la, 1, skip_extras);
        EXPECT(ra == 0, "%s: %s", fa, a2f_last_error());
        int rb = weights_load(&b, lb, 1, skip_extras);
        EXPECT(rb == 0, "%s: %s", fb, a2f_last_error());
        if (ra == 0 && rb == 0) {
            size_t n = a.t.total;
            float *ha = xcalloc(n, sizeof(float)), *hb = xcalloc(n, sizeof(float));
            weights_download(&a, ha);
            weights_download(&b, hb);
            EXPECT(memcmp(ha, hb, n * sizeof(float)) == 0, "%s: .bin and .safetensors load differently", dt[i]);
            free(ha);
            free(hb);
        }
        // Without the key map the extra tensors are reported in one line.
        ra = weights_load(&a, la, 1, NULL);
        EXPECT(ra == -1 && strstr(a2f_last_error(), "unexpected") && !strchr(a2f_last_error(), '\n'), "%s",
               a2f_last_error());
        weights_free(&a);
        weights_free(&b);
        params_free(&a.t);
        params_free(&b.t);
    }
}

static void expect_refused(const char *file, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s", file);
    SafeTensors t;
    int rc = torch_open(&t, path);
    EXPECT(rc == -1, "%s accepted", file);
    if (rc == 0) {
        st_close(&t);
        return;
    }
    const char *e = a2f_last_error();
    EXPECT(strstr(e, path) && strstr(e, needle) && !strchr(e, '\n'), "%s: want '%s' in one line naming the file: %s",
           file, needle, e);
}

TEST(torch_bin_refusals) {
    remove("build/tmp/a2f_pwned");
    expect_refused("malicious.bin", "refusing global 'posix.system'");
    FILE *pw = fopen("build/tmp/a2f_pwned", "r");
    EXPECT(!pw, "the malicious pickle ran code");
    if (pw) fclose(pw);
    expect_refused("truncated.bin", "truncated");
    expect_refused("compressed.bin", "compressed");
    expect_refused("noncontig.bin", "non-contiguous");
    expect_refused("legacy.bin", "legacy");
    expect_refused("bigendian.bin", "byteorder");
    expect_refused("missing_storage.bin", "data/1");
    expect_refused("short_storage.bin", "bytes but the pickle says");
    expect_refused("does_not_exist.bin", "cannot open");
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = xmalloc(*n + 1);
    *n = fread(b, 1, *n, f);
    fclose(f);
    return b;
}

TEST(torch_bin_corrupt_zip) {
    size_t n;
    char *b = slurp(FIX "f32.bin", &n);
    EXPECT(b != NULL, "read f32.bin");
    if (!b) return;
    SafeTensors t;
    EXPECT(torch_open_memory(&t, "mem", b, n) == 0, "%s", a2f_last_error());
    st_close(&t);
    // Break the first central directory signature.
    char *cd = memmem(b, n, "PK\x01\x02", 4);
    EXPECT(cd != NULL, "central directory");
    if (cd) {
        cd[3] = 9;
        EXPECT(torch_open_memory(&t, "mem", b, n) == -1 && strstr(a2f_last_error(), "bad central directory"), "%s",
               a2f_last_error());
        cd[3] = 2;
    }
    // Flip a byte of data.pkl: CRC mismatch.
    char *pk = memmem(b, n, "collections", 11);
    if (pk) {
        pk[0] ^= 1;
        EXPECT(torch_open_memory(&t, "mem", b, n) == -1 && strstr(a2f_last_error(), "CRC"), "%s", a2f_last_error());
        pk[0] ^= 1;
    }
    // Every truncation fails cleanly (no crash), with one line.
    for (size_t cut = 0; cut < n; cut += 97) {
        if (torch_open_memory(&t, "mem", b, cut) == 0) {
            st_close(&t);
            test_fail(__FILE__, __LINE__, "truncation to %zu bytes accepted", cut);
        } else {
            EXPECT(!strchr(a2f_last_error(), '\n'), "one line");
        }
    }
    free(b);
}

static void expect_pickle_error(const char *bytes, size_t n, const char *needle) {
    TPklResult r;
    int rc = tpkl_parse((const uint8_t *)bytes, n, "t.pkl", &r);
    EXPECT(rc == -1, "pickle accepted (want '%s')", needle);
    if (rc == 0) {
        tpkl_free(&r);
        return;
    }
    EXPECT(strncmp(a2f_last_error(), "t.pkl: ", 7) == 0 && strstr(a2f_last_error(), needle), "want '%s': %s", needle,
           a2f_last_error());
}
#define PKL(s, needle) expect_pickle_error(s, sizeof(s) - 1, needle)

TEST(torch_pickle_errors) {
    PKL("\x80\x02s.", "stack underflow");
    PKL("\x80\x02}(K\x01u.", "odd number");
    PKL("\x80\x02\xff", "unknown or unsupported pickle opcode 0xff");
    PKL("\x80\x02h\x05.", "never stored");
    PKL("\x80\x02}r\xff\xff\xff\x7f.", "out of range");
    PKL("\x80\x02}", "no STOP");
    PKL("\x80\x02N.", "not a dict");
    PKL("\x80\x02X\x10\x00\x00\x00" "ab", "truncated");
    PKL("\x80\x02\x63" "builtins\neval\n.", "refusing global 'builtins.eval'");
    PKL("\x80\x02\x63" "torch\nFloatStorage\n)R.", "not allowed");
    PKL("\x80\x02\x63" "collections\nOrderedDict\nK\x01\x85R.", "1 arguments");
    PKL("\x80\x02]K\x01" "b.", "BUILD on a list");
    PKL("\x80\x02t.", "without MARK");
    // A dict that contains itself is walked once (no endless recursion).
    TPklResult r;
    const char self[] = "\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s.";
    EXPECT(tpkl_parse((const uint8_t *)self, sizeof self - 1, "self", &r) == 0 && r.count == 0, "%s",
           a2f_last_error());
    tpkl_free(&r);
}
