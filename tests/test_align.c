// test_align.c: ArcFace 5-point alignment (infer/align.h) against insightface's
// estimate_norm / norm_crop run with scikit-image 0.26 and OpenCV 4.12
// (tools/ref/make_align_fixtures.py; fixtures in tests/fixtures/align/).
//
// Tolerances (err = max |M - M_ref| / (1 + |M_ref|) over the six entries):
//  - transform vs skimage on float64 points: err <= 1e-9. Both are double
//    least squares over 5 points (closed form here, SVD there); rounding
//    differs by ~1e-13, while any formula error (sign, scale, mean) is O(1).
//  - transform vs skimage on float32 points, as insightface calls it: skimage
//    then does its means, A = d'^T s' / n, the SVD and the variances in
//    float32 (eps 6e-8), amplified by demeaning coordinates up to ~6000 around
//    a spread of ~40 (x100) -> err <= 2e-5 (measured ~2e-6). We compute in
//    double: the exact answer, not upstream's rounding of it.
//  - warp with a given M: bit-exact (max difference 0). The C code does
//    OpenCV 4.x's fixed-point arithmetic step by step (align.h), so any
//    difference is a bug. Uniform noise is the worst case: one 1/32-pixel
//    position step there changes values by up to ~8 levels.
//  - whole norm_crop (our double M): M differs from upstream's float32-made
//    one by ~1e-6, which moves a sampling position across a 1/32-pixel cell
//    boundary for a few pixels: those change by 1 level on smooth content and
//    up to (edge contrast)/32 on hard edges (measured: <= 0.02% of the values,
//    max 6 at a disc edge). Bound: <= 0.2% of the values differ, mean
//    absolute difference <= 0.01 level.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../data/image.h"
#include "../infer/align.h"
#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "test.h"

// tests/fixtures/align/<name>, from the repository root or next to this file.
static const char *apath(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "tests/fixtures/align/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    const char *here = __FILE__, *slash = strrchr(here, '/');
    snprintf(buf, n, "%.*sfixtures/align/%s", slash ? (int)(slash - here + 1) : 0, here, name);
    return buf;
}

static int open_st(SafeTensors *st) {
    char p[512];
    if (st_open(st, apath(p, sizeof p, "align.safetensors"))) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return -1;
    }
    return 0;
}

// Copies tensor NAME (dtype dt, numel elements) into dst; test failure otherwise.
static int get(const SafeTensors *st, const char *name, StDType dt, size_t numel, void *dst) {
    int i = st_find(st, name);
    if (i < 0 || st_tensor(st, i)->dtype != dt || st_tensor(st, i)->numel != numel) {
        test_fail(__FILE__, __LINE__, "align.safetensors: %s missing or not %s[%zu]", name, st_dtype_name(dt), numel);
        return -1;
    }
    memcpy(dst, st_tensor(st, i)->data, st_tensor(st, i)->nbytes);
    return 0;
}

static int load_png(Image *im, const char *name) {
    char p[512];
    if (image_load(im, apath(p, sizeof p, name))) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return -1;
    }
    return 0;
}

static double max_m_err(const double *got, const double *want) {
    double e = 0;
    for (int i = 0; i < 6; i++) e = fmax(e, fabs(got[i] - want[i]) / (1 + fabs(want[i])));
    return e;
}

static int max_px_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *count) {
    int m = 0;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d) (*count)++;
        if (d > m) m = d;
    }
    return m;
}

TEST(align_template) {
    float t[5][2];
    EXPECT(align_template(112, t) == 0, "112");
    for (int i = 0; i < 5; i++)
        EXPECT(t[i][0] == ALIGN_ARCFACE_DST[i][0] && t[i][1] == ALIGN_ARCFACE_DST[i][1], "112 is the template");
    EXPECT(align_template(128, t) == 0, "128");
    EXPECT(fabsf(t[0][0] - 46.2946f) < 1e-4f && fabsf(t[4][1] - 92.2041f) < 1e-4f, "128: x + 8, y unchanged");
    EXPECT(align_template(224, t) == 0 && fabsf(t[2][0] - 2 * 56.0252f) < 1e-4f, "224 = 2 x 112");
    EXPECT(align_template(256, t) == 0 && fabsf(t[0][0] - 2 * 46.2946f) < 1e-4f, "256 = 2 x (128 rule)");
    EXPECT(align_template(100, t) != 0 && strstr(a2f_last_error(), "100"), "100 rejected");
}

TEST(align_estimate_vs_skimage) {
    SafeTensors st;
    if (open_st(&st)) return;
    int E = 12;
    float src[12][5][2], dst[12][5][2];
    double want[12][6], want64[12][6];
    if (get(&st, "est.src", ST_F32, E * 10, src) || get(&st, "est.dst", ST_F32, E * 10, dst) ||
        get(&st, "est.M", ST_F64, E * 6, want) || get(&st, "est.M64", ST_F64, E * 6, want64)) {
        st_close(&st);
        return;
    }
    double worst = 0, worst64 = 0;
    for (int e = 0; e < E; e++) {
        double M[6];
        EXPECT(align_estimate((const float(*)[2])src[e], (const float(*)[2])dst[e], 5, M) == 0, "case %d: %s", e,
               a2f_last_error());
        double err = max_m_err(M, want[e]), err64 = max_m_err(M, want64[e]);
        EXPECT(err64 <= 1e-9, "case %d: M differs from skimage (float64) by %.3g", e, err64);
        EXPECT(err <= 2e-5, "case %d: M differs from skimage (float32 points) by %.3g", e, err);
        worst = fmax(worst, err), worst64 = fmax(worst64, err64);
    }
    printf("    estimate: %d cases, err vs skimage float64 %.2g, float32 points %.2g\n", E, worst64, worst);
    st_close(&st);

    // Coincident points: no transform (skimage would return NaN).
    float same[5][2] = {{3, 4}, {3, 4}, {3, 4}, {3, 4}, {3, 4}};
    double M[6];
    EXPECT(align_estimate((const float(*)[2])same, ALIGN_ARCFACE_DST, 5, M) != 0, "coincident points rejected");
    float bad[5][2] = {{NAN, 4}, {3, 4}, {5, 4}, {3, 9}, {3, 1}};
    EXPECT(align_estimate((const float(*)[2])bad, ALIGN_ARCFACE_DST, 5, M) != 0, "NaN keypoint rejected");
    // Exact recovery of a known similarity.
    float p[5][2];
    double a = 1.7 * cos(0.3), b = 1.7 * sin(0.3);
    for (int i = 0; i < 5; i++) {
        p[i][0] = (float)(a * ALIGN_ARCFACE_DST[i][0] - b * ALIGN_ARCFACE_DST[i][1] + 12);
        p[i][1] = (float)(b * ALIGN_ARCFACE_DST[i][0] + a * ALIGN_ARCFACE_DST[i][1] - 7);
    }
    EXPECT(align_estimate(ALIGN_ARCFACE_DST, (const float(*)[2])p, 5, M) == 0, "recover");
    double want_m[6] = {a, -b, 12, b, a, -7};
    EXPECT(max_m_err(M, want_m) < 1e-5, "known similarity recovered (float32 points: 1e-5), err %.3g",
           max_m_err(M, want_m));
}

TEST(align_warp_vs_cv2_noise) {
    SafeTensors st;
    if (open_st(&st)) return;
    double Ms[6][6];
    int32_t hw[6][2];
    Image noise;
    if (get(&st, "warp.M", ST_F64, 36, Ms) || get(&st, "warp.hw", ST_I32, 12, hw) || load_png(&noise, "noise.png")) {
        st_close(&st);
        return;
    }
    for (int k = 0; k < 6; k++) {
        char name[64];
        snprintf(name, sizeof name, "warp_noise_%d.png", k);
        Image want;
        if (load_png(&want, name)) break;
        EXPECT(want.h == hw[k][0] && want.w == hw[k][1], "%s size", name);
        uint8_t *got = xmalloc((size_t)want.w * want.h * 3);
        align_warp_affine(noise.px, noise.h, noise.w, 3, Ms[k], got, want.h, want.w);
        size_t cnt;
        int d = max_px_diff(got, want.px, (size_t)want.w * want.h * 3, &cnt);
        EXPECT(d == 0, "%s: max difference %d (%zu values) from cv2.warpAffine", name, d, cnt);
        free(got);
        image_free(&want);
    }
    image_free(&noise);
    st_close(&st);
}

TEST(align_norm_crop_vs_insightface) {
    SafeTensors st;
    if (open_st(&st)) return;
    enum { K = 7 };
    float kps[K][10];
    int32_t size[K];
    double Ms[K][6];
    Image photo;
    double worst_frac = 0;
    int worst_max = 0;
    if (get(&st, "crop.kps", ST_F32, K * 10, kps) || get(&st, "crop.size", ST_I32, K, size) ||
        get(&st, "crop.M", ST_F64, K * 6, Ms) || load_png(&photo, "photo.png")) {
        st_close(&st);
        return;
    }
    for (int k = 0; k < K; k++) {
        char name[64];
        snprintf(name, sizeof name, "crop_%d.png", k);
        Image want;
        if (load_png(&want, name)) break;
        EXPECT(want.w == size[k] && want.h == size[k], "%s size", name);
        uint8_t *got = xmalloc((size_t)size[k] * size[k] * 3);
        size_t n = (size_t)size[k] * size[k] * 3, cnt;
        // The warp with upstream's own M: exact.
        align_warp_affine(photo.px, photo.h, photo.w, 3, Ms[k], got, size[k], size[k]);
        int d = max_px_diff(got, want.px, n, &cnt);
        EXPECT(d == 0, "%s: warp with estimate_norm's M: max difference %d (%zu values)", name, d, cnt);
        // The whole norm_crop.
        double M[6];
        EXPECT(align_norm_crop(photo.px, photo.h, photo.w, kps[k], size[k], got, M) == 0, "%s: %s", name,
               a2f_last_error());
        EXPECT(max_m_err(M, Ms[k]) <= 2e-5, "%s: M differs from estimate_norm by %.3g", name, max_m_err(M, Ms[k]));
        d = max_px_diff(got, want.px, n, &cnt);
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += abs((int)got[i] - (int)want.px[i]);
        EXPECT(cnt <= n / 500 && sum / n <= 0.01, "%s: %zu of %zu values differ (mean %.4f, max %d)", name, cnt, n,
               sum / n, d);
        worst_frac = fmax(worst_frac, (double)cnt / n), worst_max = d > worst_max ? d : worst_max;
        free(got);
        image_free(&want);
    }
    printf("    norm_crop: differing values <= %.3f%%, max difference %d\n", 100 * worst_frac, worst_max);
    image_free(&photo);
    st_close(&st);
}

// Properties that need no reference: identity map copies, fully outside is black.
TEST(align_warp_properties) {
    uint8_t src[5 * 7 * 3], dst[5 * 7 * 3];
    for (int i = 0; i < 5 * 7 * 3; i++) src[i] = (uint8_t)(i * 37 + 11);
    double I[6] = {1, 0, 0, 0, 1, 0};
    align_warp_affine(src, 5, 7, 3, I, dst, 5, 7);
    EXPECT(memcmp(src, dst, sizeof src) == 0, "identity warp copies the image");
    double far[6] = {1, 0, 1000, 0, 1, 1000};
    align_warp_affine(src, 5, 7, 3, far, dst, 5, 7);
    int zero = 1;
    for (size_t i = 0; i < sizeof dst; i++) zero &= dst[i] == 0;
    EXPECT(zero, "a map entirely outside the image gives the border value 0");
}
