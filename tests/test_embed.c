// test_embed.c: the identity pipeline (infer/embed.h) and the .npy reader
// (infer/npy.h).
//
// References (tools/ref/make_embed_fixtures.py, tests/fixtures/embed/):
//  - a tiny insightface IResNet in PyTorch (random weights, eval mode) run
//    on two 112x112 RGB crops as ArcFaceONNX + Arc2Face feed it:
//    (v - 127.5) / 127.5, RGB, NCHW; then L2 normalisation; the mean of two
//    normalised vectors renormalised. Tolerance: max|got - want| <= 1e-4
//    max|want| for the raw output (fp32 through 5 residual blocks and a
//    392 -> 512 fc: sums of up to ~400 terms, as tests/test_iresnet.c), and
//    1e-5 absolute on unit vectors (the same error after normalisation,
//    with |component| <= 1).
//  - embedding files written by numpy (np.save float32 / float64 (1, 512),
//    format versions 2.0 and 3.0) and safetensors: exact (float64 -> float32
//    rounds the same way in numpy and C).
//  - malformed .npy headers built here: each must fail with one error line
//    naming the file.
//  - the detector path on a tiny random SCRFD (built here, no reference
//    needed): a network that scores nothing gives "no face found" naming the
//    photo; one that scores every anchor gives faces, and embed_photo must
//    equal embed_crop(align_norm_crop(the largest face)) exactly (the
//    composition; the parts are checked against references in
//    test_align.c and test_scrfd.c).
//  - the embed and eval-id verbs, run as child processes (build/arc2face):
//    outputs equal the library's, errors are one line naming the file.
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../infer/align.h"
#include "../infer/embed.h"
#include "../infer/npy.h"
#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "fixture.h"
#include "test.h"

static const char *epath(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "tests/fixtures/embed/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    const char *here = __FILE__, *slash = strrchr(here, '/');
    snprintf(buf, n, "%.*sfixtures/embed/%s", slash ? (int)(slash - here + 1) : 0, here, name);
    return buf;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

// ------------------------------------------------------------------ .npy

TEST(embed_npy_files) {
    Fixture *fx = fx_open("embed/expected.safetensors");
    if (!fx) return;
    const float *vec = fx_f32(fx, ID_DIM, "vec");
    const char *files[] = {"emb_f4.npy", "emb_f8_1x512.npy", "emb_v2.npy", "emb_v3.npy", "emb_id.safetensors"};
    for (int k = 0; vec && k < 5; k++) {
        char p[512];
        float v[ID_DIM];
        epath(p, sizeof p, files[k]);
        EXPECT(embed_is_vector_file(p), "%s is recognised as a vector file", files[k]);
        if (embed_read_vector(p, v)) {
            test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
            continue;
        }
        EXPECT(max_abs_diff(v, vec, ID_DIM) == 0, "%s: differs from numpy's values by %.3g", files[k],
               max_abs_diff(v, vec, ID_DIM));
    }
    char p[512];
    EXPECT(!embed_is_vector_file(epath(p, sizeof p, "crop_a.png")), "a PNG is not a vector file");
    EXPECT(!embed_is_vector_file("/nonexistent.npy"), "a missing file is not a vector file");
    // Round trips through our writers (.npy and safetensors).
    float w[ID_DIM], r[ID_DIM];
    for (int i = 0; i < ID_DIM; i++) w[i] = (float)i / 7.0f - 30.0f;
    const char *outs[2] = {"build/tmp/a2f_test_embed.npy", "build/tmp/a2f_test_embed.safetensors"};
    for (int k = 0; k < 2; k++) {
        EXPECT(embed_write_vector(outs[k], w) == 0, "write %s: %s", outs[k], a2f_last_error());
        EXPECT(embed_read_vector(outs[k], r) == 0 && memcmp(r, w, sizeof w) == 0, "%s round trip", outs[k]);
        unlink(outs[k]);
    }
    // Our .npy header is numpy's dict text, padded to 64 bytes (numpy 2 pads
    // further, for in-place growth; readers accept either).
    int64_t shape[2] = {1, 3};
    float three[3] = {1, 2, 3};
    EXPECT(npy_write_f32("build/tmp/a2f_test_embed2.npy", three, 2, shape) == 0, "write 1x3");
    FILE *f = fopen("build/tmp/a2f_test_embed2.npy", "rb");
    char buf[300] = {0};
    size_t got = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    size_t hl = (size_t)(uint8_t)buf[8] | (size_t)(uint8_t)buf[9] << 8;
    EXPECT(got == 10 + hl + 12 && (10 + hl) % 64 == 0 && buf[10 + hl - 1] == '\n' &&
               !memcmp(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }", 59),
           "numpy-format header");
    unlink("build/tmp/a2f_test_embed2.npy");
    fx_close(fx);
}

// A v1.0 .npy image with HEADER (padded to 64 with spaces + '\n') and nbytes of data.
static size_t make_npy(uint8_t *out, const char *header, int major, size_t nbytes) {
    size_t pre = major == 1 ? 10 : 12, hl = strlen(header);
    size_t total = pre + hl + 1;
    size_t pad = (64 - total % 64) % 64;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major, out[7] = 0;
    size_t h = hl + pad + 1;
    out[8] = (uint8_t)h, out[9] = (uint8_t)(h >> 8);
    if (major != 1) out[10] = 0, out[11] = 0;
    memcpy(out + pre, header, hl);
    memset(out + pre + hl, ' ', pad);
    out[pre + hl + pad] = '\n';
    memset(out + pre + h, 0, nbytes);
    return pre + h + nbytes;
}

TEST(embed_npy_malformed) {
    static uint8_t buf[8192];
    float *d;
    NpyInfo info;
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }";
    size_t n = make_npy(buf, good, 1, 2048);
    EXPECT(npy_read_memory(buf, n, "good.npy", &d, &info) == 0 && info.ndim == 1 && info.shape[0] == 512, "valid: %s",
           a2f_last_error());
    free(d);
    n = make_npy(buf, "{\"shape\": (1, 512), \"fortran_order\": False, \"descr\": \"<f8\"}", 1, 4096);
    EXPECT(npy_read_memory(buf, n, "order.npy", &d, &info) == 0 && info.itemsize == 8 && info.ndim == 2,
           "keys in any order, double quotes: %s", a2f_last_error());
    free(d);
    struct {
        const char *header, *why;
        int major;
        long nbytes;  // -1: the size the header implies
    } bad[] = {
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (512,), }", "'>f4'", 1, 2048},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (512,), }", "'<i4'", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (512,), }", "Fortran", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (512), }", "trailing comma", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [512], }", "not a tuple", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-512,), }", "non-negative", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (512,), 'x': 1}", "unexpected key", 1, 2048},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (512,)}", "duplicate", 1, 2048},
        {"{'descr': '<f4', 'shape': (512,)}", "needs the keys", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': Nope, 'shape': (512,)}", "True or False", 1, 2048},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }", "truncated", 1, 2044},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }", "trailing bytes", 1, 2052},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }", "version 4.0", 4, 2048},
        {"'descr': '<f4', 'fortran_order': False, 'shape': (512,), }", "'{'", 1, 2048},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (512,), }", "expected", 1, 2048},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        n = make_npy(buf, bad[k].header, bad[k].major, (size_t)bad[k].nbytes);
        int rc = npy_read_memory(buf, n, "bad.npy", &d, &info);
        EXPECT(rc != 0 && strstr(a2f_last_error(), "bad.npy") && strstr(a2f_last_error(), bad[k].why),
               "case %zu (%s): rc %d, error '%s'", k, bad[k].why, rc, a2f_last_error());
        if (rc == 0) free(d);
    }
    // Header without the final newline; header length past the end; wrong magic.
    n = make_npy(buf, good, 1, 2048);
    buf[n - 2048 - 1] = ' ';
    EXPECT(npy_read_memory(buf, n, "nl.npy", &d, &info) != 0 && strstr(a2f_last_error(), "newline"), "no newline: %s",
           a2f_last_error());
    n = make_npy(buf, good, 1, 0);
    buf[9] = 0x20;
    EXPECT(npy_read_memory(buf, n, "long.npy", &d, &info) != 0 && strstr(a2f_last_error(), "truncated in its header"),
           "header past end: %s", a2f_last_error());
    EXPECT(npy_read_memory("\x93NUMPX\1\0\0\0", 10, "magic.npy", &d, &info) != 0 && strstr(a2f_last_error(), "magic"),
           "magic");
    // Every truncation of a valid file fails.
    n = make_npy(buf, good, 1, 2048);
    int accepted = 0;
    for (size_t len = 0; len < n; len++)
        if (npy_read_memory(buf, len, "cut.npy", &d, &info) == 0) accepted++, free(d);
    EXPECT(accepted == 0, "%d truncations accepted", accepted);
    // A valid .npy of the wrong shape is not an embedding.
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 256), }", 1, 2048);
    FILE *f = fopen("build/tmp/a2f_test_embed_shape.npy", "wb");
    if (f) fwrite(buf, 1, n, f), fclose(f);
    float v[ID_DIM];
    EXPECT(embed_read_vector("build/tmp/a2f_test_embed_shape.npy", v) != 0 && strstr(a2f_last_error(), "(512,)"),
           "shape (2, 256) rejected: %s", a2f_last_error());
    unlink("build/tmp/a2f_test_embed_shape.npy");
}

// ------------------------------------------------------------------ vectors

TEST(embed_vector_maths) {
    Fixture *fx = fx_open("embed/expected.safetensors");
    if (!fx) return;
    const float *na = fx_f32(fx, ID_DIM, "norm_a"), *nb = fx_f32(fx, ID_DIM, "norm_b"),
                *raw_a = fx_f32(fx, ID_DIM, "raw_a"), *raw_b = fx_f32(fx, ID_DIM, "raw_b"),
                *mean = fx_f32(fx, ID_DIM, "mean_ab");
    if (!na || !nb || !raw_a || !raw_b || !mean) {
        fx_close(fx);
        return;
    }
    float v[ID_DIM], two[2 * ID_DIM], out[ID_DIM];
    memcpy(v, raw_a, sizeof v);
    EXPECT(embed_normalize(v, ID_DIM, "a") == 0 && max_abs_diff(v, na, ID_DIM) <= 1e-7,
           "normalise matches torch (float32 rounding: 1e-7)");
    // Averaging normalises each first: scaling one input changes nothing.
    memcpy(two, raw_a, sizeof v);
    for (int i = 0; i < ID_DIM; i++) two[ID_DIM + i] = raw_b[i] * 37.0f;
    EXPECT(embed_average(two, 2, out) == 0 && max_abs_diff(out, mean, ID_DIM) <= 1e-6,
           "mean of normalised vectors, renormalised: err %.3g", max_abs_diff(out, mean, ID_DIM));
    EXPECT(fabs(embed_cosine(out, out, ID_DIM) - 1) < 1e-6, "cos(v, v) = 1");
    EXPECT(fabs(embed_cosine(na, nb, ID_DIM) - embed_cosine(raw_a, raw_b, ID_DIM)) < 1e-6, "cosine is scale-free");
    memset(v, 0, sizeof v);
    EXPECT(embed_normalize(v, ID_DIM, "zero.npy") != 0 && strstr(a2f_last_error(), "zero.npy") &&
               strstr(a2f_last_error(), "all zero"),
           "zero vector rejected");
    v[3] = NAN;
    EXPECT(embed_normalize(v, ID_DIM, "nan") != 0 && strstr(a2f_last_error(), "not finite"), "NaN rejected");
    // Opposite vectors average to zero: an error, not a NaN vector.
    for (int i = 0; i < ID_DIM; i++) two[i] = na[i], two[ID_DIM + i] = -na[i];
    EXPECT(embed_average(two, 2, out) != 0, "opposite identities have no mean direction");
    fx_close(fx);
}

// ------------------------------------------------------------------ pipeline

TEST(embed_crop_vs_torch) {
    Fixture *fx = fx_open("embed/expected.safetensors");
    if (!fx) return;
    char wp[512], pa[512], pb[512];
    IdEmbedder e;
    if (embedder_open(&e, epath(wp, sizeof wp, "tiny_arcface.safetensors"), NULL, cpu_backend(), DT_F32)) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        fx_close(fx);
        return;
    }
    epath(pa, sizeof pa, "crop_a.png");
    epath(pb, sizeof pb, "crop_b.png");
    const char *tags[2] = {"a", "b"}, *paths[2] = {pa, pb};
    for (int k = 0; k < 2; k++) {
        Image img;
        float raw[ID_DIM];
        const float *want = fx_f32(fx, ID_DIM, "raw_%s", tags[k]), *wantn = fx_f32(fx, ID_DIM, "norm_%s", tags[k]);
        if (!want || !wantn || image_load(&img, paths[k])) continue;
        EXPECT(embed_crop(&e, img.px, raw) == 0, "embed_crop: %s", a2f_last_error());
        double mx = 0;
        for (int i = 0; i < ID_DIM; i++) mx = fmax(mx, fabs(want[i]));
        double err = max_abs_diff(raw, want, ID_DIM);
        EXPECT(err <= 1e-4 * mx, "crop %s: raw embedding error %.3g of max %.3g", tags[k], err, mx);
        EXPECT(embed_normalize(raw, ID_DIM, "x") == 0 && max_abs_diff(raw, wantn, ID_DIM) <= 1e-5,
               "crop %s: normalised error %.3g", tags[k], max_abs_diff(raw, wantn, ID_DIM));
        printf("    crop %s: raw max error %.2g (max |ref| %.2g), normalised %.2g\n", tags[k], err, mx,
               max_abs_diff(raw, wantn, ID_DIM));
        image_free(&img);
    }
    // Two crops of one "person": averaged and renormalised.
    const float *mean = fx_f32(fx, ID_DIM, "mean_ab"), *nb = fx_f32(fx, ID_DIM, "norm_b");
    float out[ID_DIM];
    EXPECT(embed_sources(&e, paths, 2, EMBED_CROP, -1, out, NULL) == 0, "sources: %s", a2f_last_error());
    if (mean) EXPECT(max_abs_diff(out, mean, ID_DIM) <= 1e-5, "two crops: error %.3g", max_abs_diff(out, mean, ID_DIM));
    // A crop plus an embedding file (of crop b) gives the same.
    if (nb) {
        EXPECT(embed_write_vector("build/tmp/a2f_test_embed_b.npy", nb) == 0, "write");
        const char *mixed[2] = {pa, "build/tmp/a2f_test_embed_b.npy"};
        EXPECT(embed_sources(&e, mixed, 2, EMBED_CROP, -1, out, NULL) == 0, "mixed: %s", a2f_last_error());
        if (mean)
            EXPECT(max_abs_diff(out, mean, ID_DIM) <= 1e-5, "crop + .npy: error %.3g", max_abs_diff(out, mean, ID_DIM));
        // Files alone need no recognizer.
        const char *files[1] = {"build/tmp/a2f_test_embed_b.npy"};
        EXPECT(embed_sources(NULL, files, 1, EMBED_PHOTO, -1, out, NULL) == 0 && max_abs_diff(out, nb, ID_DIM) <= 1e-7,
               "file only");
        unlink("build/tmp/a2f_test_embed_b.npy");
    }
    // Errors name the file: a photo without a detector; a crop of the wrong size.
    char photo[512];
    snprintf(photo, sizeof photo, "%s", pa);
    const char *one[1] = {pa};
    EXPECT(embed_sources(&e, one, 1, EMBED_PHOTO, -1, out, NULL) != 0 && strstr(a2f_last_error(), pa) &&
               strstr(a2f_last_error(), "--detector"),
           "photo without detector: %s", a2f_last_error());
    char big[512];
    const char *wrong[1] = {epath(big, sizeof big, "../align/photo.png")};
    EXPECT(embed_sources(&e, wrong, 1, EMBED_CROP, -1, out, NULL) != 0 && strstr(a2f_last_error(), "must be 112x112"),
           "wrong-size crop: %s", a2f_last_error());
    embedder_close(&e);
    EXPECT(embedder_open(&e, "/nonexistent/arcface.safetensors", NULL, cpu_backend(), DT_F32) != 0 &&
               strstr(a2f_last_error(), "/nonexistent/arcface.safetensors"),
           "missing recognizer named: %s", a2f_last_error());
    EXPECT(embedder_open(&e, epath(wp, sizeof wp, "emb_id.safetensors"), NULL, cpu_backend(), DT_F32) != 0 &&
               strstr(a2f_last_error(), "emb_id.safetensors"),
           "not a recognizer: %s", a2f_last_error());
    fx_close(fx);
}

// A tiny random SCRFD saved to PATH with every classification bias set to
// cls_bias (sigmoid(-30) ~ 1e-13: nothing scores; +30: everything does).
static int write_tiny_scrfd(const char *path, float cls_bias) {
    ScrfdConfig cfg = {{4, 4, 8}, {1, 1, 1, 1}, {8, 8, 8, 8}, 8, 8, 1, 2};
    Scrfd m;
    Weights W = {0};
    if (scrfd_build(&m, &W.t, &cfg) || weights_alloc(&W, cpu_backend(), DT_F32, 0) ||
        weights_init_random(&W, 11, 0.05f))
        return -1;
    // Boxes of +-1 stride around each anchor and face-shaped keypoints (eyes,
    // nose, mouth corners, in stride units), so that every candidate aligns.
    static const float kps[10] = {-0.5f, -0.3f, 0.5f, -0.3f, 0.0f, 0.1f, -0.4f, 0.5f, 0.4f, 0.5f};
    for (int l = 0; l < 3; l++) {
        char name[64];
        snprintf(name, sizeof name, "head.stride%d.cls.bias", SCRFD_STRIDES[l]);
        int ic = params_find(&W.t, name);
        snprintf(name, sizeof name, "head.stride%d.reg.bias", SCRFD_STRIDES[l]);
        int ir = params_find(&W.t, name);
        snprintf(name, sizeof name, "head.stride%d.kps.bias", SCRFD_STRIDES[l]);
        int ik = params_find(&W.t, name);
        if (ic < 0 || ir < 0 || ik < 0) return -1;
        float *bc = wptr(&W, ic), *br = wptr(&W, ir), *bk = wptr(&W, ik);
        for (int a = 0; a < cfg.anchors; a++) {
            bc[a] = cls_bias;
            for (int j = 0; j < 4; j++) br[4 * a + j] = 1.0f;
            for (int j = 0; j < 10; j++) bk[10 * a + j] = kps[j];
        }
    }
    int rc = weights_save(&W, path, DT_F32);
    weights_free(&W);
    params_free(&W.t);
    return rc;
}

TEST(embed_photo_detector_path) {
    char wp[512], pp[512];
    epath(wp, sizeof wp, "tiny_arcface.safetensors");
    epath(pp, sizeof pp, "../align/photo.png");
    const char *none = "build/tmp/a2f_test_scrfd_none.safetensors", *all = "build/tmp/a2f_test_scrfd_all.safetensors";
    if (write_tiny_scrfd(none, -30.0f) || write_tiny_scrfd(all, 30.0f)) {
        test_fail(__FILE__, __LINE__, "tiny SCRFD: %s", a2f_last_error());
        return;
    }
    Image img;
    if (image_load(&img, pp)) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    IdEmbedder e;
    float v[ID_DIM];
    if (embedder_open(&e, wp, none, cpu_backend(), DT_F32) == 0) {
        const char *one[1] = {pp};
        EXPECT(embed_sources(&e, one, 1, EMBED_PHOTO, -1, v, NULL) != 0 && strstr(a2f_last_error(), pp) &&
                   strstr(a2f_last_error(), "no face found"),
               "no face: %s", a2f_last_error());
        embedder_close(&e);
    } else {
        test_fail(__FILE__, __LINE__, "open: %s", a2f_last_error());
    }
    if (embedder_open(&e, wp, all, cpu_backend(), DT_F32) == 0) {
        Face faces[EMBED_MAX_FACES], chosen;
        int n = 0, nf = 0;
        EXPECT(embed_detect(&e, &img, pp, faces, EMBED_MAX_FACES, &n) == 0 && n > 0, "faces found: %d (%s)", n,
               a2f_last_error());
        uint8_t crop[112 * 112 * 3], crop2[112 * 112 * 3];
        float want[ID_DIM];
        if (n > 0) {
            int k = face_pick_largest(faces, n);
            EXPECT(embed_photo(&e, &img, pp, -1, v, crop, &chosen, &nf) == 0 && nf == n, "embed_photo: %s",
                   a2f_last_error());
            EXPECT(memcmp(&chosen, &faces[k], sizeof chosen) == 0, "the largest face is chosen");
            EXPECT(align_norm_crop(img.px, img.h, img.w, faces[k].kps, 112, crop2, NULL) == 0 &&
                       memcmp(crop, crop2, sizeof crop) == 0,
                   "crop = norm_crop(largest face)");
            EXPECT(embed_crop(&e, crop2, want) == 0 && memcmp(v, want, sizeof want) == 0,
                   "embedding = recognizer(crop)");
            // --face K: the K-th in score order; out of range is an error.
            EXPECT(embed_face(&e, &img, pp, faces, n, 0, v, crop) == 0, "--face 0: %s", a2f_last_error());
            EXPECT(align_norm_crop(img.px, img.h, img.w, faces[0].kps, 112, crop2, NULL) == 0 &&
                       memcmp(crop, crop2, sizeof crop) == 0,
                   "--face 0 is the most confident");
            EXPECT(embed_face(&e, &img, pp, faces, n, n, v, NULL) < 0 && strstr(a2f_last_error(), "requested"),
                   "--face %d out of range: %s", n, a2f_last_error());
            EXPECT(embed_face(&e, &img, pp, faces, 0, -1, v, NULL) < 0 && strstr(a2f_last_error(), "no face found"),
                   "no faces");
            printf("    tiny SCRFD scoring everything: %d faces after NMS, largest #%d\n", n, k);
        }
        embedder_close(&e);
    } else {
        test_fail(__FILE__, __LINE__, "open: %s", a2f_last_error());
    }
    image_free(&img);
    unlink(none);
    unlink(all);
}

// ------------------------------------------------------------------ CLI

static int one_error_line(const char *err, const char *needle) {
    int lines = 0;
    for (const char *s = err; *s; s++) lines += *s == '\n';
    return lines == 1 && !strncmp(err, "arc2face: error: ", 17) && strstr(err, needle);
}

TEST(embed_cli) {
    if (!TEST_HAVE_BIN()) return;
    Fixture *fx = fx_open("embed/expected.safetensors");
    if (!fx) return;
    const float *mean = fx_f32(fx, ID_DIM, "mean_ab"), *na = fx_f32(fx, ID_DIM, "norm_a");
    char w[512], a[512], b[512], photo[512], args[2048];
    epath(w, sizeof w, "tiny_arcface.safetensors");
    epath(a, sizeof a, "crop_a.png");
    epath(b, sizeof b, "crop_b.png");
    epath(photo, sizeof photo, "../align/photo.png");
    char *out, *err;
    float v[ID_DIM];

    // Two crops -> .npy file = the mean of the normalised vectors.
    snprintf(args, sizeof args, "embed --crop %s %s --arcface %s --out build/tmp/a2f_cli_emb.npy --quiet", a, b, w);
    int rc = test_run(NULL, args, &out, &err);
    EXPECT(rc == 0 && strstr(out, "wrote"), "embed --out: rc %d, %s%s", rc, out, err);
    EXPECT(embed_read_vector("build/tmp/a2f_cli_emb.npy", v) == 0 && mean && max_abs_diff(v, mean, ID_DIM) <= 1e-5,
           "embed --out vector = torch mean");
    unlink("build/tmp/a2f_cli_emb.npy");
    free(out), free(err);

    // One crop printed: 512 numbers on one line, = torch's normalised vector.
    snprintf(args, sizeof args, "embed --crop %s --arcface %s", a, w);
    rc = test_run(NULL, args, &out, &err);
    int k = 0;
    char *p = out, *end;
    for (; k < ID_DIM; k++) {
        v[k] = strtof(p, &end);
        if (end == p) break;
        p = end;
    }
    EXPECT(rc == 0 && k == ID_DIM && na && max_abs_diff(v, na, ID_DIM) <= 1e-5 && strstr(err, "aligned 112x112 crop"),
           "embed prints the vector: rc %d, %d numbers, stderr %s", rc, k, err);
    free(out), free(err);

    // Usage and input errors: one line naming the problem / file.
    snprintf(args, sizeof args, "embed %s --arcface %s", a, w);
    rc = test_run(NULL, args, &out, &err);
    EXPECT(rc == 2 && strstr(err, "--detector"), "photo without --detector: rc %d %s", rc, err);
    free(out), free(err);
    snprintf(args, sizeof args, "embed --crop /nonexistent/face.png --arcface %s", w);
    rc = test_run(NULL, args, &out, &err);
    EXPECT(rc == 1 && out[0] == 0 && one_error_line(err, "/nonexistent/face.png"), "missing photo: rc %d %s", rc, err);
    free(out), free(err);

    // Detector path through the CLI: no face -> one error line naming the photo;
    // eval-id against an embedding file with a detector that finds faces.
    const char *none = "build/tmp/a2f_cli_scrfd_none.safetensors", *all = "build/tmp/a2f_cli_scrfd_all.safetensors";
    if (write_tiny_scrfd(none, -30.0f) || write_tiny_scrfd(all, 30.0f)) {
        test_fail(__FILE__, __LINE__, "tiny SCRFD: %s", a2f_last_error());
        fx_close(fx);
        return;
    }
    snprintf(args, sizeof args, "embed %s --arcface %s --detector %s", photo, w, none);
    rc = test_run(NULL, args, &out, &err);
    EXPECT(rc == 1 && out[0] == 0 && one_error_line(err, "no face found") && strstr(err, photo), "no face: rc %d %s",
           rc, err);
    free(out), free(err);
    if (na) embed_write_vector("build/tmp/a2f_cli_id.safetensors", na);
    snprintf(args, sizeof args, "eval-id --identity build/tmp/a2f_cli_id.safetensors %s --arcface %s --detector %s", photo,
             w, all);
    rc = test_run(NULL, args, &out, &err);
    double c = 2, m = 3;
    char path[512];
    int ok = sscanf(out, "%lf %511s\nmean %lf over 1 of 1 images", &c, path, &m) == 3;
    EXPECT(rc == 0 && ok && fabs(c - m) < 1e-4 && c >= -1 && c <= 1 && !strcmp(path, photo),
           "eval-id: rc %d, stdout '%s', stderr '%s'", rc, out, err);
    free(out), free(err);
    unlink("build/tmp/a2f_cli_id.safetensors");
    unlink(none);
    unlink(all);
    fx_close(fx);
}
