// test_scrfd.c: the SCRFD face detector (nn/scrfd.h), its pre/post-processing
// (infer/resize.h, infer/detect.h) against tools/ref/make_scrfd_fixtures.py:
// a PyTorch SCRFD-10G-KPS (mmdet structure, reduced widths, real depths,
// random weights with non-identity BatchNorm and Scale) exported to ONNX
// (BN folded) and converted by tools/onnx2safetensors.py; OpenCV's resize /
// letterbox / blobFromImage; a numpy reimplementation of insightface's decode
// + NMS; Arc2Face's largest-face pick.
//
//  - resize: bit-exact vs cv2.resize INTER_LINEAR (6 size pairs: down, up,
//    exact 2x down, identity, odd); letterbox: bit-exact canvas, same new size;
//  - network: 9 head outputs vs torch at det 160x160: max|err| <= 1e-5 *
//    max|ref| per output (fp32, ~40 convs of <= 216-term sums, folded BN and
//    Scale round once more than torch: measured <= 1e-6); the stack is back
//    at its mark and its high-water mark is within scrfd_act_bytes;
//  - decode on the fixture outputs vs the numpy decode: same faces in the
//    same order, fields within 1e-4 (both run the same float32 arithmetic:
//    measured 0), and the largest-face pick;
//  - end to end (face_detect_ex on the RGB image): the same faces, boxes and
//    keypoints within 2e-3 px (network error ~1e-6 relative times distances
//    of ~100 px), scores within 1e-5;
//  - no face (all scores < thresh): n = 0 and pick -1; max_faces truncation;
//    pick tie rule; bad inputs: missing file, a non-SCRFD file, a mis-shaped
//    tensor, det size not a multiple of 32 -> one error line each.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../infer/detect.h"
#include "../infer/resize.h"
#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "fixture.h"
#include "test.h"

#define DIR "tests/fixtures/scrfd/"
#define WEIGHTS DIR "scrfd_small.safetensors"
enum { DET = 160, IMG_H = 90, IMG_W = 131 };

// U8 tensor NAME of io.safetensors with numel elements (fresh, caller frees), or NULL + failure.
static uint8_t *load_u8(const char *name, size_t numel) {
    SafeTensors st;
    if (st_open(&st, DIR "io.safetensors") != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return NULL;
    }
    int i = st_find(&st, name);
    uint8_t *p = NULL;
    if (i < 0 || st_tensor(&st, i)->dtype != ST_U8 || st_tensor(&st, i)->numel != numel) {
        test_fail(__FILE__, __LINE__, "io.safetensors: %s missing or not U8 [%zu]", name, numel);
    } else {
        p = xmalloc(numel);
        memcpy(p, st_tensor(&st, i)->data, numel);
    }
    st_close(&st);
    return p;
}

static int load_model(Scrfd *m, Weights *W) {
    if (scrfd_load(m, W, WEIGHTS, cpu_backend(), DT_F32) != 0) {
        test_fail(__FILE__, __LINE__, "load: %s", a2f_last_error());
        return -1;
    }
    return 0;
}

static void free_model(Weights *W) {
    weights_free(W);
    params_free(&W->t);
}

// The 10 faces x 15 fields of the fixture vs got; returns the worst |diff| of boxes/kps.
static double compare_faces(const char *what, const Face *got, int n, const float *want, int nwant, double tol_xy,
                            double tol_score) {
    EXPECT(n == nwant, "%s: %d faces, want %d", what, n, nwant);
    double worst = 0, worst_s = 0;
    for (int i = 0; i < n && i < nwant; i++) {
        const float *w = want + (size_t)i * 15;
        const float g[15] = {got[i].x1, got[i].y1, got[i].x2, got[i].y2, got[i].score, got[i].kps[0], got[i].kps[1],
                             got[i].kps[2], got[i].kps[3], got[i].kps[4], got[i].kps[5], got[i].kps[6],
                             got[i].kps[7], got[i].kps[8], got[i].kps[9]};
        for (int k = 0; k < 15; k++) {
            double e = fabs((double)g[k] - w[k]);
            if (k == 4) worst_s = fmax(worst_s, e);
            else worst = fmax(worst, e);
        }
    }
    EXPECT(worst <= tol_xy, "%s: box/keypoint error %.3g > %.3g px", what, worst, tol_xy);
    EXPECT(worst_s <= tol_score, "%s: score error %.3g > %.3g", what, worst_s, tol_score);
    if (getenv("SCRFD_VERBOSE")) printf("    %s: %d faces, max box/kps err %.3g px, score err %.3g\n", what, n, worst,
                                        worst_s);
    return worst;
}

TEST(scrfd_resize_matches_cv2) {
    static const int cases[][4] = {{37, 53, 101, 77}, {90, 131, 109, 160}, {64, 48, 32, 24},
                                   {21, 17, 21, 17},  {50, 70, 13, 9},     {7, 5, 40, 61}};  // sh, sw, dh, dw
    for (int k = 0; k < 6; k++) {
        const int sh = cases[k][0], sw = cases[k][1], dh = cases[k][2], dw = cases[k][3];
        char name[32];
        snprintf(name, sizeof name, "rs%d.src", k);
        uint8_t *src = load_u8(name, (size_t)sh * sw * 3);
        snprintf(name, sizeof name, "rs%d.dst", k);
        uint8_t *want = load_u8(name, (size_t)dh * dw * 3);
        if (src && want) {
            uint8_t *got = xmalloc((size_t)dh * dw * 3);
            EXPECT(resize_bilinear_u8(got, dw, dh, src, sw, sh, 3) == 0, "%s", a2f_last_error());
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)dh * dw * 3; i++) bad += got[i] != want[i];
            EXPECT(bad == 0, "resize %dx%d -> %dx%d: %zu of %d bytes differ from cv2.resize", sw, sh, dw, dh, bad,
                   dh * dw * 3);
            free(got);
        }
        free(src), free(want);
    }
    uint8_t px = 0;
    EXPECT(resize_bilinear_u8(&px, 0, 1, &px, 1, 1, 3) == -1, "zero size accepted");
}

TEST(scrfd_letterbox_matches_insightface) {
    Fixture *fx = fx_open("scrfd/io.safetensors");
    if (!fx) return;
    static const char *img_names[2] = {"img", "img2"}, *det_names[2] = {"det_img", "det_img2"},
                      *new_names[2] = {"det_new", "det_new2"};
    const int hw[2][2] = {{IMG_H, IMG_W}, {IMG_W, IMG_H}};
    for (int k = 0; k < 2; k++) {
        const int H = hw[k][0], W = hw[k][1];
        uint8_t *img = load_u8(img_names[k], (size_t)H * W * 3), *want = load_u8(det_names[k], DET * DET * 3);
        int32_t *nw = fx_i32(fx, 2, "%s", new_names[k]);
        if (img && want && nw) {
            uint8_t *got = xmalloc(DET * DET * 3);
            double ds = 0;
            EXPECT(letterbox_u8(got, DET, DET, img, H, W, &ds) == 0, "%s", a2f_last_error());
            EXPECT(memcmp(got, want, DET * DET * 3) == 0, "%s: letterbox differs from insightface/cv2", img_names[k]);
            EXPECT(ds == (double)nw[1] / H, "%s: det_scale %.9g, want %d/%d", img_names[k], ds, nw[1], H);
            free(got);
        }
        free(img), free(want);
    }
    uint8_t px[3] = {0};
    double ds;
    uint8_t *canvas = xmalloc(DET * DET * 3);
    EXPECT(letterbox_u8(canvas, DET, DET, px, 1, 1000, &ds) == -1, "a 1000x1 image gives a 0-row letterbox");
    free(canvas);
    fx_close(fx);
}

TEST(scrfd_forward_matches_torch) {
    Scrfd m;
    Weights W;
    if (load_model(&m, &W) != 0) return;
    const ScrfdConfig *c = &m.cfg;
    EXPECT(c->stem[2] == 8 && c->blocks[0] == 3 && c->blocks[1] == 4 && c->blocks[2] == 2 && c->blocks[3] == 3 &&
               c->planes[3] == 24 && c->neck == 8 && c->feat == 8 && c->tower == 3 && c->anchors == 2,
           "config read from the file");
    Fixture *fx = fx_open("scrfd/io.safetensors");
    uint8_t *det = load_u8("det_img", DET * DET * 3);
    if (fx && det) {
        float *x = xmalloc(sizeof(float) * DET * DET * 3);
        for (int i = 0; i < DET * DET * 3; i++) x[i] = ((float)det[i] - 127.5f) / 128.0f;
        const size_t bytes = scrfd_act_bytes(&m, 1, DET, DET, DT_F32);
        Ctx ctx;
        CHECK(nn_ctx_init(&ctx, cpu_backend(), DT_F32, bytes + (1 << 20), 256) == 0);
        static const int per[3] = {1, 4, 10};
        void *out[9];
        size_t rows[9];
        for (int k = 0; k < 9; k++) {
            rows[k] = scrfd_rows(&m, k % 3, DET, DET) * per[k / 3];
            out[k] = nn_push(&ctx, rows[k]);
        }
        const size_t mark = arena_mark(ctx.act);
        ctx.act->peak = mark;
        EXPECT(scrfd_f(&ctx, &W, &m, out, x, 1, DET, DET) == 0, "forward: %s", a2f_last_error());
        EXPECT(arena_mark(ctx.act) == mark, "the activation stack is back at its mark");
        EXPECT(ctx.act->peak - mark <= bytes, "peak %zu bytes > scrfd_act_bytes %zu", ctx.act->peak - mark, bytes);
        for (int k = 0; k < 9; k++) {
            const float *want = fx_f32(fx, rows[k], "out.%d", k);
            if (!want) continue;
            double mx = 0, err = 0;
            for (size_t i = 0; i < rows[k]; i++)
                mx = fmax(mx, fabs(want[i])), err = fmax(err, fabs((double)((float *)out[k])[i] - want[i]));
            if (getenv("SCRFD_VERBOSE")) printf("    out.%d [%zu]: max err %.3g of max|ref| %.3g\n", k, rows[k], err, mx);
            EXPECT(err <= 1e-5 * mx, "out.%d: max error %.3g of max|ref| %.3g", k, err, mx);
        }
        // not a multiple of 32
        EXPECT(scrfd_f(&ctx, &W, &m, out, x, 1, 144, 160) == -1 && strstr(a2f_last_error(), "multiples of 32"),
               "144x160 refused: %s", a2f_last_error());
        nn_ctx_free(&ctx);
        free(x);
    }
    free(det);
    fx_close(fx);
    free_model(&W);
}

TEST(scrfd_decode_matches_insightface) {
    Fixture *fx = fx_open("scrfd/io.safetensors");
    if (!fx) return;
    const int rows[3] = {(DET / 8) * (DET / 8) * 2, (DET / 16) * (DET / 16) * 2, (DET / 32) * (DET / 32) * 2};
    static const int per[3] = {1, 4, 10};
    const float *heads[9];
    int ok = 1;
    for (int k = 0; k < 9; k++) ok = (heads[k] = fx_f32(fx, (size_t)rows[k % 3] * per[k / 3], "out.%d", k)) && ok;
    const float *want = fx_f32(fx, 10 * 15, "faces");
    const int32_t *largest = fx_i32(fx, 1, "largest"), *nw = fx_i32(fx, 2, "det_new");
    if (!ok || !want || !largest || !nw) {
        fx_close(fx);
        return;
    }
    const double det_scale = (double)nw[1] / IMG_H;
    Face f[32];
    int n = -1;
    EXPECT(scrfd_decode(heads, DET, DET, 2, det_scale, 0.5f, 0.4f, f, 32, &n) == 0, "%s", a2f_last_error());
    compare_faces("decode", f, n, want, 10, 1e-4, 1e-7);
    EXPECT(face_pick_largest(f, n) == largest[0], "largest face %d, want %d", face_pick_largest(f, n), largest[0]);
    // max_faces truncation keeps the highest scores
    Face g[3];
    EXPECT(scrfd_decode(heads, DET, DET, 2, det_scale, 0.5f, 0.4f, g, 3, &n) == 0 && n == 3, "truncated to 3: %d", n);
    EXPECT(memcmp(g, f, sizeof g) == 0, "truncation keeps the first 3 faces");
    // no face: threshold above every score
    EXPECT(scrfd_decode(heads, DET, DET, 2, det_scale, 0.999f, 0.4f, f, 32, &n) == 0 && n == 0, "no face: n = %d", n);
    EXPECT(face_pick_largest(f, 0) == -1, "pick on no faces");
    // NMS off (threshold 1: IoU never exceeds it) keeps every candidate
    const int32_t *ncand = fx_i32(fx, 1, "ncand");
    if (ncand) {
        EXPECT(scrfd_decode(heads, DET, DET, 2, det_scale, 0.5f, 1.0f, f, 32, &n) == 0 && n == ncand[0],
               "nms 1.0 keeps %d of %d candidates", n, ncand[0]);
    }
    fx_close(fx);
}

TEST(scrfd_pick_largest_ties) {
    Face f[3] = {{0, 0, 10, 10, 0.9f}, {5, 5, 15, 15, 0.8f}, {0, 0, 4, 20, 0.7f}};  // areas 100, 100, 80
    EXPECT(face_pick_largest(f, 3) == 1, "equal areas: the last wins (sorted(...)[-1])");
    f[2].x2 = 5, f[2].y2 = 25;  // area 125
    EXPECT(face_pick_largest(f, 3) == 2, "largest area");
}

TEST(scrfd_detect_end_to_end) {
    Scrfd m;
    Weights W;
    if (load_model(&m, &W) != 0) return;
    Fixture *fx = fx_open("scrfd/io.safetensors");
    uint8_t *img = load_u8("img", IMG_H * IMG_W * 3);
    const float *want = fx ? fx_f32(fx, 10 * 15, "faces") : NULL;
    if (img && want) {
        Ctx ctx;
        CHECK(nn_ctx_init(&ctx, cpu_backend(), DT_F32, face_detect_act_bytes(&m, DET, DET, DT_F32), 256) == 0);
        Face f[32];
        int n = -1;
        EXPECT(face_detect_ex(&ctx, &W, &m, img, IMG_H, IMG_W, DET, DET, 0.5f, 0.4f, f, 32, &n) == 0, "%s",
               a2f_last_error());
        compare_faces("face_detect", f, n, want, 10, 2e-3, 1e-5);
        EXPECT(arena_mark(ctx.act) == 0, "stack released");
        n = -1;
        EXPECT(face_detect_ex(&ctx, &W, &m, img, IMG_H, IMG_W, DET, DET, 0.9999f, 0.4f, f, 32, &n) == 0 && n == 0,
               "no face above 0.9999: n = %d", n);
        EXPECT(face_detect_ex(&ctx, &W, &m, img, IMG_H, IMG_W, 150, DET, 0.5f, 0.4f, f, 32, &n) == -1 &&
                   strstr(a2f_last_error(), "multiples of 32"),
               "det 150 refused: %s", a2f_last_error());
        nn_ctx_free(&ctx);
    }
    free(img);
    fx_close(fx);
    free_model(&W);
}

// Writes a copy of the small weights with tensor `bad` replaced by a [2, 2, 1, 1] tensor.
static int write_misshaped(const char *path, const char *bad) {
    SafeTensors st;
    if (st_open(&st, WEIGHTS) != 0) return -1;
    StWriter *w = st_writer_begin(path);
    static float zeros[4];
    const int64_t shape[4] = {2, 2, 1, 1};
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        if (strcmp(t->name, bad) == 0) st_writer_add(w, t->name, ST_F32, 4, shape, zeros);
        else st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    int rc = st_writer_finish(w);
    st_close(&st);
    return rc;
}

TEST(scrfd_bad_weights) {
    Scrfd m;
    Weights W;
    EXPECT(scrfd_load(&m, &W, DIR "missing.safetensors", cpu_backend(), DT_F32) == -1 &&
               strstr(a2f_last_error(), "missing.safetensors") && !strchr(a2f_last_error(), '\n'),
           "missing file: %s", a2f_last_error());
    EXPECT(scrfd_load(&m, &W, DIR "io.safetensors", cpu_backend(), DT_F32) == -1 &&
               strstr(a2f_last_error(), "not an SCRFD weights file") && !strchr(a2f_last_error(), '\n'),
           "non-SCRFD file: %s", a2f_last_error());
    char path[64];
    snprintf(path, sizeof path, "/tmp/scrfd_bad_%d.safetensors", (int)getpid());
    const char *cases[2] = {"head.stride16.reg.weight", "backbone.layer2.0.downsample.weight"};
    for (int k = 0; k < 2; k++) {
        if (write_misshaped(path, cases[k]) != 0) {
            test_fail(__FILE__, __LINE__, "writing %s: %s", path, a2f_last_error());
            continue;
        }
        EXPECT(scrfd_load(&m, &W, path, cpu_backend(), DT_F32) == -1 && strstr(a2f_last_error(), cases[k]) &&
                   !strchr(a2f_last_error(), '\n'),
               "mis-shaped %s: %s", cases[k], a2f_last_error());
        EXPECT(W.w == NULL && W.t.count == 0, "nothing left allocated");
    }
    remove(path);
}
