// test_image.c: PNG/JPEG decoding, PNG writing, resize and grid (data/image.h).
//
// References (tools/ref/make_image_fixtures.py, tests/fixtures/image/):
//  - PNG: every colour type and bit depth, two of them Adam7-interlaced,
//    written by an independent Python encoder; expected pixels derived from
//    the source arrays (PIL's convert("RGB") rules, 16-bit -> high byte).
//    Tolerance: exact (lossless format, integer conversions).
//  - JPEG: files written by Pillow (4:2:0, 4:2:2, 4:4:4, progressive,
//    grayscale, Adobe CMYK); expected = Pillow's own decode. Tolerance: exact:
//    Pillow's libjpeg-turbo 3.x and the system's 2.1 run the same integer
//    ISLOW IDCT, fancy upsampling and YCbCr->RGB tables (all exact integer
//    algorithms, SIMD and C paths bit-identical by libjpeg-turbo's design).
//  - Bad input: every truncation of a PNG and a JPEG, corrupted bytes, wrong
//    magic, empty and missing files, absurd dimensions: -1 with one error line
//    naming the file, no crash.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../data/image.h"
#include "../kernels/common.h"
#include "fixture.h"
#include "test.h"

static const char *ipath(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "tests/fixtures/image/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    const char *here = __FILE__, *slash = strrchr(here, '/');
    snprintf(buf, n, "%.*sfixtures/image/%s", slash ? (int)(slash - here + 1) : 0, here, name);
    return buf;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = xmalloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static const char *FILES[] = {
    "gray1.png",   "gray2.png",   "gray4.png",       "gray8.png",      "gray16.png",      "rgb8.png",
    "rgb16.png",   "graya8.png",  "graya16.png",     "rgba8.png",      "rgba16.png",      "pal1.png",
    "pal2.png",    "pal4.png",    "pal8.png",        "rgb8_adam7.png", "gray2_adam7.png", "q90_420.jpg",
    "q95_444.jpg", "q75_422.jpg", "progressive.jpg", "gray.jpg",       "cmyk.jpg",
};

TEST(image_decode_fixtures) {
    Fixture *fx = fx_open("image/expected.safetensors");
    if (!fx) return;
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        char p[512];
        Image im;
        if (image_load(&im, ipath(p, sizeof p, FILES[i]))) {
            test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
            continue;
        }
        EXPECT(im.c == 3, "%s: 3 channels", FILES[i]);
        size_t n = (size_t)im.w * im.h * 3;
        const float *want = fx_f32(fx, n, "%s", FILES[i]);
        if (want) {
            int maxd = 0;
            size_t cnt = 0;
            for (size_t k = 0; k < n; k++) {
                int d = abs((int)im.px[k] - (int)want[k]);
                cnt += d != 0;
                maxd = d > maxd ? d : maxd;
            }
            EXPECT(maxd == 0, "%s (%d x %d): %zu values differ from the reference, max %d", FILES[i], im.w, im.h, cnt,
                   maxd);
        }
        image_free(&im);
    }
    fx_close(fx);
}

TEST(image_png_roundtrip) {
    uint64_t s = 99;
    for (int c = 1; c <= 4; c += (c == 1 ? 2 : 1)) {
        Image im;
        EXPECT(image_alloc(&im, 37, 21, c) == 0, "alloc");
        for (size_t i = 0; i < (size_t)37 * 21 * c; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            im.px[i] = (uint8_t)s;
        }
        char path[64];
        snprintf(path, sizeof path, "build/tmp/a2f_test_image_%d_%d.png", (int)getpid(), c);
        EXPECT(image_save_png(&im, path) == 0, "save: %s", a2f_last_error());
        char tmp[80];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        EXPECT(access(tmp, F_OK) != 0, "no temp file left behind");
        Image back;
        EXPECT(image_load(&back, path) == 0, "load: %s", a2f_last_error());
        int same = back.w == 37 && back.h == 21 && back.c == 3;
        for (int p = 0; same && p < 37 * 21; p++)
            for (int k = 0; k < 3; k++) same &= back.px[p * 3 + k] == im.px[p * c + (c == 1 ? 0 : k)];
        EXPECT(same, "c = %d: PNG round trip is exact (alpha dropped, gray replicated)", c);
        image_free(&back);
        image_free(&im);
        unlink(path);
    }
    // A failed save leaves nothing and names the file.
    Image im;
    image_alloc(&im, 4, 4, 3);
    EXPECT(image_save_png(&im, "/nonexistent-dir/x.png") != 0 && strstr(a2f_last_error(), "/nonexistent-dir/x.png"),
           "save into a missing directory fails naming the file");
    image_free(&im);
}

// Every proper prefix of a valid file must fail cleanly (JPEG: except when only
// the final EOI marker is missing, which Pillow accepts too).
static void check_truncations(const char *name, size_t allowed_tail) {
    char p[512];
    size_t n;
    uint8_t *buf = read_all(ipath(p, sizeof p, name), &n);
    if (!buf) {
        test_fail(__FILE__, __LINE__, "cannot read %s", p);
        return;
    }
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        Image im;
        int rc = image_load_memory(&im, buf, len, "cut.file");
        if (rc == 0) {
            image_free(&im);
            if (len + allowed_tail < n) bad++;
        } else if (!strstr(a2f_last_error(), "cut.file")) {
            test_fail(__FILE__, __LINE__, "%s cut at %zu: error does not name the file: %s", name, len,
                      a2f_last_error());
            break;
        }
    }
    EXPECT(bad == 0, "%s: %d truncated versions decoded without error", name, bad);
    Image im;
    EXPECT(image_load_memory(&im, buf, n, name) == 0, "%s: whole file decodes", name);
    image_free(&im);
    free(buf);
}

TEST(image_truncated) {
    check_truncations("rgb8.png", 0);
    check_truncations("rgb8_adam7.png", 0);
    check_truncations("q90_420.jpg", 2);
    check_truncations("progressive.jpg", 2);
    Image im;
    image_load_memory(&im, "", 0, "x");  // warm up the error text
    printf("    e.g. truncated JPEG: ");
    char p[512];
    size_t n;
    uint8_t *buf = read_all(ipath(p, sizeof p, "q90_420.jpg"), &n);
    if (buf) {
        EXPECT(image_load_memory(&im, buf, n / 2, "half.jpg") != 0, "half JPEG fails");
        printf("%s\n", a2f_last_error());
        free(buf);
    }
}

TEST(image_corrupt) {
    char p[512];
    size_t n;
    uint8_t *buf = read_all(ipath(p, sizeof p, "rgb8.png"), &n);
    if (!buf) return;
    // Any flipped byte after the signature hits a CRC, a length, or a zlib check.
    int bad = 0;
    for (size_t i = 8; i < n; i++) {
        uint8_t *c = xmalloc(n);
        memcpy(c, buf, n);
        c[i] ^= 0x5a;
        Image im;
        if (image_load_memory(&im, c, n, "flip.png") == 0) {
            bad++;
            image_free(&im);
        }
        free(c);
    }
    EXPECT(bad == 0, "rgb8.png: %d single-byte corruptions accepted", bad);
    free(buf);
    // JPEG: corrupted entropy data may decode to garbage (tolerated, as Pillow),
    // but must never crash; corrupted headers fail.
    buf = read_all(ipath(p, sizeof p, "q90_420.jpg"), &n);
    if (!buf) return;
    for (size_t i = 2; i < n; i += 3) {
        uint8_t *c = xmalloc(n);
        memcpy(c, buf, n);
        c[i] ^= 0xff;
        Image im;
        if (image_load_memory(&im, c, n, "flip.jpg") == 0) image_free(&im);
        free(c);
    }
    free(buf);
}

TEST(image_bad_files) {
    Image im;
    EXPECT(image_load(&im, "/nonexistent/face.png") != 0 && strstr(a2f_last_error(), "/nonexistent/face.png"),
           "missing file named");
    EXPECT(image_load(&im, "/tmp") != 0 && strstr(a2f_last_error(), "not a regular file"), "directory rejected");
    EXPECT(image_load_memory(&im, "GIF89a....", 10, "anim.gif") != 0 && strstr(a2f_last_error(), "anim.gif") &&
               strstr(a2f_last_error(), "not a PNG or JPEG"),
           "unknown magic: %s", a2f_last_error());
    EXPECT(image_load_memory(&im, "", 0, "empty.png") != 0 && strstr(a2f_last_error(), "empty"), "empty file");

    // A PNG header declaring 60000 x 60000 RGB (valid CRC): rejected before
    // allocating (3.6 G pixels > the limit).
    uint8_t png[8 + 25 + 12 + 12];
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(png, sig, 8);
    uint8_t *c = png + 8;
    c[0] = 0, c[1] = 0, c[2] = 0, c[3] = 13;
    memcpy(c + 4, "IHDR", 4);
    uint32_t wh = 60000;
    for (int k = 0; k < 2; k++)
        c[8 + 4 * k] = 0, c[9 + 4 * k] = 0, c[10 + 4 * k] = (uint8_t)(wh >> 8), c[11 + 4 * k] = (uint8_t)wh;
    c[16] = 8, c[17] = 2, c[18] = 0, c[19] = 0, c[20] = 0;
    uint32_t crc = (uint32_t)crc32(0, c + 4, 17);
    c[21] = (uint8_t)(crc >> 24), c[22] = (uint8_t)(crc >> 16), c[23] = (uint8_t)(crc >> 8), c[24] = (uint8_t)crc;
    memcpy(png + 33, "\0\0\0\0IDAT\x35\xaf\x06\x1e", 12);  // empty IDAT
    memcpy(png + 45, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    EXPECT(image_load_memory(&im, png, sizeof png, "huge.png") != 0 && strstr(a2f_last_error(), "huge.png") &&
               strstr(a2f_last_error(), "60000 x 60000"),
           "huge PNG: %s", a2f_last_error());
    // 2000 x 2000 fits the limits but cannot come from 45 bytes of deflate data.
    wh = 2000;
    for (int k = 0; k < 2; k++) c[10 + 4 * k] = (uint8_t)(wh >> 8), c[11 + 4 * k] = (uint8_t)wh;
    crc = (uint32_t)crc32(0, c + 4, 17);
    c[21] = (uint8_t)(crc >> 24), c[22] = (uint8_t)(crc >> 16), c[23] = (uint8_t)(crc >> 8), c[24] = (uint8_t)crc;
    EXPECT(image_load_memory(&im, png, sizeof png, "small.png") != 0 && strstr(a2f_last_error(), "holds only"),
           "PNG too small for its size: %s", a2f_last_error());

    // A JPEG whose SOF0 declares 65500 x 65500: rejected after the header.
    char p[512];
    size_t n;
    uint8_t *buf = read_all(ipath(p, sizeof p, "q90_420.jpg"), &n);
    if (buf) {
        for (size_t i = 2; i + 9 < n; i++)
            if (buf[i] == 0xff && buf[i + 1] == 0xc0) {  // SOF0: len(2) P(1) Y(2) X(2)
                buf[i + 5] = 0xff, buf[i + 6] = 0xdc, buf[i + 7] = 0xff, buf[i + 8] = 0xdc;
                break;
            }
        EXPECT(image_load_memory(&im, buf, n, "huge.jpg") != 0 && strstr(a2f_last_error(), "65500 x 65500"),
               "huge JPEG: %s", a2f_last_error());
        free(buf);
    }
    // A lower pixel limit applies to both formats.
    size_t old = image_set_max_pixels(100);
    EXPECT(image_load(&im, ipath(p, sizeof p, "rgb8_adam7.png")) != 0, "23 x 19 > 100 pixels rejected");
    image_set_max_pixels(old);
}

TEST(image_resize_grid) {
    Image a, r;
    image_alloc(&a, 8, 6, 3);
    for (int i = 0; i < 8 * 6 * 3; i++) a.px[i] = (uint8_t)(i * 5);
    EXPECT(image_resize(&r, &a, 8, 6) == 0 && memcmp(r.px, a.px, 8 * 6 * 3) == 0, "same-size resize copies");
    image_free(&r);
    // Constant image stays constant under any resize (weights sum to 1).
    memset(a.px, 77, 8 * 6 * 3);
    int ok = image_resize(&r, &a, 3, 17) == 0;
    for (int i = 0; ok && i < 3 * 17 * 3; i++) ok = r.px[i] == 77;
    EXPECT(ok, "bilinear keeps a constant");
    image_free(&r);
    Image big;
    image_alloc(&big, 100, 50, 3);
    memset(big.px, 200, 100 * 50 * 3);
    ok = image_resize(&r, &big, 7, 3) == 0;
    for (int i = 0; ok && i < 7 * 3 * 3; i++) ok = r.px[i] == 200;
    EXPECT(ok, "area shrink keeps a constant");
    image_free(&r);

    const Image *imgs[3] = {&a, &big, &a};
    Image g;
    EXPECT(image_grid(&g, imgs, 3, 2, 20, 2, 255) == 0, "grid: %s", a2f_last_error());
    EXPECT(g.w == 2 * 20 + 3 * 2 && g.h == 2 * 20 + 3 * 2, "grid size %d x %d", g.w, g.h);
    // big (100 x 50) fits 20 x 10 in cell 1: centred vertically at rows 5..14.
    int x0 = 2 + 20 + 2, y0 = 2;
    EXPECT(g.px[((y0 + 10) * g.w + x0 + 10) * 3] == 200, "cell 1 holds the resized image");
    EXPECT(g.px[((y0 + 2) * g.w + x0 + 10) * 3] == 255, "cell 1 letterboxed with the background");
    EXPECT(g.px[0] == 255, "padding is the background");
    image_free(&g);
    image_free(&a);
    image_free(&big);
}
