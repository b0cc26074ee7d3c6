// test_cli_generate.c: `arc2face generate` as a child process (binary:
// $A2F_BIN or build/arc2face, run from the repository root) on the bundled
// tiny demo model (assets/demo).
//
//  - n images: exactly img_000.png .. img_{n-1}.png (+ grid.png with --grid),
//    each the requested size, and equal to the in-process pipeline's images
//    (generate(), same options) up to 1 level of 255: the binary and the test
//    may be compiled with different flags (FMA contraction), which can move a
//    value across a rounding boundary; measured: identical.
//  - interpolation: --interpolate E2 --strip K writes interp_00 .. interp_{K-1}
//    and strip.png; the t = 0 end equals the plain run of the first identity.
//  - --crop (an aligned 112x112 face + a tiny IResNet, tests/fixtures/embed/)
//    gives the same images as --embedding of that crop's vector computed
//    in-process (embed_sources), and --grid puts the face in the grid.
//  - errors: a missing --model folder, a missing / malformed / wrong-sized
//    embedding file -> exit 1 with one "arc2face: error:" line naming the
//    problem, and no output folder created; usage errors -> exit 2.
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../data/image.h"
#include "../infer/embed.h"
#include "../infer/pipeline.h"
#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "test.h"

#define DEMO "assets/demo"
#define MODEL_ARGS "--model " DEMO "/model --base " DEMO "/base --tokenizer assets/tokenizer"
#define TMP "build/tmp/a2f_gen_test"

static int exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void rm_rf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) test_fail(__FILE__, __LINE__, "rm -rf %s failed", dir);
}

static void expect_error(const char *args, int want_rc, const char *needle, const char *outdir) {
    char *err;
    int rc = test_run("OMP_NUM_THREADS=1", args, NULL, &err);
    int lines = 0;
    for (char *p = err; *p; p++) lines += *p == '\n';
    EXPECT(rc == want_rc && lines == 1 && strncmp(err, "arc2face: error: ", 17) == 0 && strstr(err, needle),
           "`%s`: exit %d (want %d), want one line with '%s': %s", args, rc, want_rc, needle, err);
    if (outdir) EXPECT(!exists(outdir), "`%s` created %s", args, outdir);
    free(err);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

// A .npy v1 file of n float32 values.
static void write_npy(const char *path, const float *v, int n) {
    char hdr[128];
    int l = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }", n);
    while ((10 + l + 1) % 64) hdr[l++] = ' ';
    hdr[l++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(l & 255), (unsigned char)(l >> 8)};
    FILE *f = fopen(path, "wb");
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)l, f);
    fwrite(v, 4, (size_t)n, f);
    fclose(f);
}

static int read_npy512(const char *path, float *v) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char pre[10];
    int ok = fread(pre, 1, 10, f) == 10;
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    ok = ok && fseek(f, (long)(10 + hl), SEEK_SET) == 0 && fread(v, 4, 512, f) == 512;
    fclose(f);
    return ok ? 0 : -1;
}

// Max |a - b| over two same-sized RGB images, or 256 when the sizes differ.
static int img_diff(const Image *a, const Image *b) {
    if (a->w != b->w || a->h != b->h || a->c != b->c) return 256;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * a->c; i++) {
        int d = abs((int)a->px[i] - (int)b->px[i]);
        if (d > m) m = d;
    }
    return m;
}

TEST(cli_generate_writes_n_pngs_matching_the_pipeline) {
    if (!TEST_HAVE_BIN()) return;
    rm_rf(TMP);
    char *err;
    int rc = test_run("OMP_NUM_THREADS=1",
                      "generate " MODEL_ARGS " --embedding " DEMO
                      "/id.npy --n 2 --steps 2 --size 64 --seed 7 --out " TMP "/out --grid --quiet",
                      NULL, &err);
    EXPECT(rc == 0 && !*err, "exit %d: %s", rc, err);
    free(err);
    EXPECT(count_files(TMP "/out") == 3, "want img_000, img_001, grid: %d files", count_files(TMP "/out"));
    // In-process reference.
    Models m;
    ModelPaths p = {DEMO "/model/arc2face", DEMO "/model/encoder", DEMO "/base/vae",
                    DEMO "/base/scheduler/scheduler_config.json", "assets/tokenizer"};
    float id[512];
    if (models_load(&m, &p, cpu_backend(), DT_F32, (size_t)64 << 20) != 0 || read_npy512(DEMO "/id.npy", id) != 0) {
        test_fail(__FILE__, __LINE__, "load: %s", a2f_last_error());
        return;
    }
    GenerateOptions o;
    generate_options_default(&o);
    o.n_images = 2;
    o.steps = 2;
    o.height = o.width = 64;
    o.seed = 7;
    o.progress = 0;
    Image want[2] = {0};
    EXPECT(generate(&m, &o, id, want, NULL) == 0, "%s", a2f_last_error());
    for (int k = 0; k < 2; k++) {
        char path[128];
        snprintf(path, sizeof path, TMP "/out/img_%03d.png", k);
        Image got = {0};
        EXPECT(image_load(&got, path) == 0, "%s", a2f_last_error());
        EXPECT(got.w == 64 && got.h == 64 && got.c == 3, "%s: %dx%dx%d", path, got.w, got.h, got.c);
        int d = img_diff(&got, &want[k]);
        EXPECT(d <= 1, "%s differs from the in-process pipeline by %d levels", path, d);
        image_free(&got);
        image_free(&want[k]);
    }
    Image g = {0};
    EXPECT(image_load(&g, TMP "/out/grid.png") == 0 && g.w > 128, "grid: %s", a2f_last_error());
    image_free(&g);

    // Interpolation to a second identity: t = 0 is the first identity's image (n = 1, same seed).
    float id2[512];
    for (int i = 0; i < 512; i++) id2[i] = id[(i + 100) % 512];
    write_npy(TMP "/id2.npy", id2, 512);
    rc = test_run("OMP_NUM_THREADS=1",
                  "generate " MODEL_ARGS " --embedding " DEMO "/id.npy --interpolate " TMP
                  "/id2.npy --strip 2 --steps 2 --size 64 --seed 7 --out " TMP "/interp --quiet",
                  NULL, &err);
    EXPECT(rc == 0 && !*err, "exit %d: %s", rc, err);
    free(err);
    EXPECT(count_files(TMP "/interp") == 3, "want interp_00, interp_01 + strip: %d files", count_files(TMP "/interp"));
    o.n_images = 1;
    Image w0 = {0}, g0 = {0};
    EXPECT(generate(&m, &o, id, &w0, NULL) == 0, "%s", a2f_last_error());
    EXPECT(image_load(&g0, TMP "/interp/interp_00.png") == 0, "%s", a2f_last_error());
    EXPECT(img_diff(&g0, &w0) <= 1, "interp_00 is not the first identity's image");
    image_free(&w0);
    image_free(&g0);

    // The same identity as a safetensors file ("embedding" [1, 512]) gives the same image.
    int64_t shape[2] = {1, 512};
    StWriter *sw = st_writer_begin(TMP "/id.safetensors");
    EXPECT(sw && st_writer_add(sw, "embedding", ST_F32, 2, shape, id) == 0 && st_writer_finish(sw) == 0, "%s",
           a2f_last_error());
    rc = test_run("OMP_NUM_THREADS=1",
                  "generate " MODEL_ARGS " --embedding " TMP
                  "/id.safetensors --n 1 --steps 2 --size 64 --seed 7 --out " TMP "/st --quiet",
                  NULL, &err);
    EXPECT(rc == 0 && !*err, "exit %d: %s", rc, err);
    free(err);
    Image a = {0}, b = {0};
    EXPECT(image_load(&a, TMP "/st/img_000.png") == 0 && image_load(&b, TMP "/out/img_000.png") == 0, "%s",
           a2f_last_error());
    EXPECT(img_diff(&a, &b) == 0, "safetensors and npy embeddings give different images");
    image_free(&a);
    image_free(&b);
    models_free(&m);
    rm_rf(TMP);
}

TEST(cli_generate_errors_write_nothing) {
    if (!TEST_HAVE_BIN()) return;
    rm_rf(TMP);
    mkdir(TMP, 0755);
    const char *out = TMP "/out";
    expect_error("generate --model " TMP "/nope --base " DEMO "/base --embedding " DEMO "/id.npy --out " TMP "/out",
                 1, TMP "/nope", out);
    expect_error("generate --model " TMP " --base " DEMO "/base --embedding " DEMO "/id.npy --out " TMP "/out", 1,
                 "arc2face: no such directory", out);
    expect_error("generate " MODEL_ARGS " --embedding " TMP "/missing.npy --out " TMP "/out", 1, "missing.npy", out);
    write_bytes(TMP "/garbage.npy", "hello, not numpy", 16);
    expect_error("generate " MODEL_ARGS " --embedding " TMP "/garbage.npy --out " TMP "/out", 1, "garbage.npy", out);
    float v[10] = {1, 2, 3};
    write_npy(TMP "/short.npy", v, 10);
    expect_error("generate " MODEL_ARGS " --embedding " TMP "/short.npy --out " TMP "/out", 1, "short.npy",
                 out);
    float z[512] = {0};
    write_npy(TMP "/zero.npy", z, 512);
    expect_error("generate " MODEL_ARGS " --embedding " TMP "/zero.npy --out " TMP "/out", 1, "zero.npy", out);
    write_bytes(TMP "/bad.safetensors", "\x08\0\0\0\0\0\0\0{}garbage", 18);
    expect_error("generate " MODEL_ARGS " --embedding " TMP "/bad.safetensors --out " TMP "/out", 1,
                 "bad.safetensors", out);
    // usage errors
    expect_error("generate " MODEL_ARGS " --out " TMP "/out", 2, "exactly one identity", out);
    expect_error("generate " MODEL_ARGS " --embedding " DEMO "/id.npy --sampler foo --out " TMP "/out", 2, "--sampler",
                 out);
    expect_error("generate " MODEL_ARGS " --embedding " DEMO "/id.npy --size 60 --out " TMP "/out", 1, "multiple of 8",
                 out);
    char *err;
    EXPECT(test_run("OMP_NUM_THREADS=1", "generate --help", NULL, &err) == 0, "--help failed");
    free(err);
    rm_rf(TMP);
}

#define EMB "tests/fixtures/embed"

TEST(cli_generate_from_crop_equals_its_embedding) {
    if (!TEST_HAVE_BIN()) return;
    rm_rf(TMP);
    mkdir(TMP, 0755);
    IdEmbedder e;
    float v[ID_DIM];
    const char *crop = EMB "/crop_a.png";
    if (embedder_open(&e, EMB "/tiny_arcface.safetensors", NULL, cpu_backend(), DT_F32) != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    EXPECT(embed_sources(&e, &crop, 1, EMBED_CROP, -1, v, NULL) == 0, "%s", a2f_last_error());
    embedder_close(&e);
    EXPECT(embed_write_vector(TMP "/crop.npy", v) == 0, "%s", a2f_last_error());
    char *err;
    int rc = test_run("OMP_NUM_THREADS=1",
                      "generate " MODEL_ARGS " --crop " EMB "/crop_a.png --arcface " EMB
                      "/tiny_arcface.safetensors --n 1 --steps 1 --size 64 --out " TMP "/a --grid --quiet",
                      NULL, &err);
    EXPECT(rc == 0 && !*err, "exit %d: %s", rc, err);
    free(err);
    rc = test_run("OMP_NUM_THREADS=1",
                  "generate " MODEL_ARGS " --embedding " TMP "/crop.npy --n 1 --steps 1 --size 64 --out " TMP
                  "/b --quiet",
                  NULL, &err);
    EXPECT(rc == 0 && !*err, "exit %d: %s", rc, err);
    free(err);
    Image a = {0}, b = {0}, g = {0};
    EXPECT(image_load(&a, TMP "/a/img_000.png") == 0 && image_load(&b, TMP "/b/img_000.png") == 0, "%s",
           a2f_last_error());
    EXPECT(img_diff(&a, &b) == 0, "--crop and --embedding of its vector differ");
    // grid: the face and one image, side by side
    EXPECT(image_load(&g, TMP "/a/grid.png") == 0 && g.w > 2 * g.h - 20, "grid %dx%d", g.w, g.h);
    image_free(&a);
    image_free(&b);
    image_free(&g);
    // photo / crop argument errors
    expect_error("generate " MODEL_ARGS " --photo " EMB "/crop_a.png --arcface " EMB
                 "/tiny_arcface.safetensors --out " TMP "/c",
                 2, "--detector", TMP "/c");
    expect_error("generate " MODEL_ARGS " --crop " EMB "/crop_a.png --out " TMP "/c", 2, "--arcface", TMP "/c");
    expect_error("generate " MODEL_ARGS " --crop " TMP "/nope.png --arcface " EMB "/tiny_arcface.safetensors --out " TMP
                 "/c",
                 1, "nope.png", TMP "/c");
    rm_rf(TMP);
}
