// image.c: PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory into
// RGB8, atomic PNG writing, resizing and grids. See image.h for the
// conventions (they follow np.array(PIL.Image.open(p)) as upstream uses it).
//
// Both libraries report fatal errors through a callback that must not return;
// ours longjmp back to the decode function, which frees what it allocated and
// sets one error line. Locals changed between setjmp and longjmp are volatile.
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>  // before jpeglib.h, which uses FILE
#include <jerror.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"

#define IMAGE_MAX_FILE (1ull << 31)  // 2 GiB: more than any photo

static size_t g_max_pixels = IMAGE_DEFAULT_MAX_PIXELS;

size_t image_set_max_pixels(size_t max_pixels) {
    size_t old = g_max_pixels;
    g_max_pixels = max_pixels ? max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    return old;
}

// Dimensions from a header, checked before any allocation.
static int check_dims(const char *name, const char *fmt, unsigned long w, unsigned long h) {
    if (w == 0 || h == 0) {
        a2f_set_error("%s: %s declares an empty image (%lu x %lu)", name, fmt, w, h);
        return -1;
    }
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (unsigned long long)w * h > g_max_pixels) {
        a2f_set_error("%s: %s declares %lu x %lu pixels (limit %d per side, %zu in all)", name, fmt, w, h,
                      IMAGE_MAX_SIDE, g_max_pixels);
        return -1;
    }
    return 0;
}

int image_alloc(Image *im, int w, int h, int c) {
    memset(im, 0, sizeof *im);
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (c != 1 && c != 3 && c != 4)) {
        a2f_set_error("image_alloc: bad size %d x %d x %d", w, h, c);
        return -1;
    }
    im->px = calloc((size_t)w * h * c, 1);
    if (!im->px) {
        a2f_set_error("image_alloc: out of memory for %d x %d x %d", w, h, c);
        return -1;
    }
    im->w = w, im->h = h, im->c = c;
    return 0;
}

void image_free(Image *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

// ================================================================== PNG

typedef struct {
    jmp_buf jb;
    char msg[200];
} JumpErr;

typedef struct {
    const uint8_t *p;
    size_t n, pos;
} MemSrc;

static void png_on_error(png_structp png, png_const_charp msg) {
    JumpErr *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    longjmp(e->jb, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    MemSrc *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "file is truncated");
    memcpy(out, s->p + s->pos, len);
    s->pos += len;
}

static int decode_png(Image *im, const uint8_t *data, size_t n, const char *name) {
    JumpErr err;
    err.msg[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        a2f_set_error("%s: cannot create a PNG decoder (out of memory)", name);
        return -1;
    }
    // The size first, from IHDR (always the first chunk), before libpng allocates anything.
    if (n >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        const uint8_t *d = data + 16;
        unsigned long w = (unsigned long)d[0] << 24 | (unsigned long)d[1] << 16 | (unsigned long)d[2] << 8 | d[3];
        unsigned long h = (unsigned long)d[4] << 24 | (unsigned long)d[5] << 16 | (unsigned long)d[6] << 8 | d[7];
        if (check_dims(name, "PNG", w, h)) {
            png_destroy_read_struct(&png, &info, NULL);
            return -1;
        }
    }
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile int bad_dims = 0;
    if (setjmp(err.jb)) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (!bad_dims) a2f_set_error("%s: corrupt PNG: %s", name, err.msg);
        return -1;
    }
    MemSrc src = {data, n, 0};
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ct, il;
    png_get_IHDR(png, info, &w, &h, &depth, &ct, &il, NULL, NULL);
    if (check_dims(name, "PNG", w, h)) {
        bad_dims = 1;
        png_error(png, "bad dimensions");
    }
    // deflate expands at most ~1032:1, so the file must be big enough for the
    // raw rows it claims (filter byte + packed samples per row).
    unsigned long long chans = (ct & PNG_COLOR_MASK_PALETTE)
                                   ? 1
                                   : ((ct & PNG_COLOR_MASK_COLOR) ? 3 : 1) + ((ct & PNG_COLOR_MASK_ALPHA) ? 1 : 0);
    unsigned long long raw = (unsigned long long)h * (1 + ((unsigned long long)w * chans * depth + 7) / 8);
    if (raw > 1040ull * n + 65536) {
        a2f_set_error("%s: PNG declares %lu x %lu pixels but holds only %zu bytes (truncated or corrupt)", name,
                      (unsigned long)w, (unsigned long)h, n);
        bad_dims = 1;
        png_error(png, "too small");
    }
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);  // high byte, as PIL
    // Alpha dropped, including the one palette_to_rgb makes from tRNS.
    if ((ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unsupported pixel layout after conversion");
    px = malloc((size_t)w * h * 3);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    im->w = (int)w, im->h = (int)h, im->c = 3, im->px = px;
    return 0;
}

// ================================================================== JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_on_error(j_common_ptr ci) {
    JpegErr *e = (JpegErr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}

// Warnings (level -1): premature end of data is an error (Pillow: "image file
// is truncated"); the rest are tolerated. Trace messages (level >= 0) ignored.
static void jpeg_on_message(j_common_ptr ci, int level) {
    if (level == -1 && ci->err->msg_code == JWRN_JPEG_EOF) {
        JpegErr *e = (JpegErr *)ci->err;
        snprintf(e->msg, sizeof e->msg, "file is truncated (premature end of JPEG data)");
        longjmp(e->jb, 1);
    }
}

// x * y / 255 rounded as Pillow's MULDIV255.
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static int decode_jpeg(Image *im, const uint8_t *data, size_t n, const char *name) {
    struct jpeg_decompress_struct ci;
    JpegErr err;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    err.msg[0] = 0;
    uint8_t *volatile px = NULL, *volatile row = NULL;
    volatile int bad_dims = 0;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&ci);
        free(px);
        free(row);
        if (!bad_dims) a2f_set_error("%s: corrupt JPEG: %s", name, err.msg);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    if (check_dims(name, "JPEG", ci.image_width, ci.image_height)) {
        bad_dims = 1;
        longjmp(err.jb, 1);
    }
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    int inverted = cmyk && ci.saw_Adobe_marker;  // Photoshop writes inverted CMYK (Pillow "CMYK;I")
    ci.out_color_space = ci.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
    ci.dct_method = JDCT_ISLOW;  // the libjpeg default, as Pillow
    ci.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height, oc = ci.output_components;
    if (!((oc == 1 && ci.out_color_space == JCS_GRAYSCALE) || (oc == 3 && ci.out_color_space == JCS_RGB) ||
          (oc == 4 && cmyk))) {
        snprintf(err.msg, sizeof err.msg, "unsupported colour layout (%d components)", oc);
        longjmp(err.jb, 1);
    }
    px = malloc((size_t)w * h * 3);
    row = malloc((size_t)w * oc);
    if (!px || !row) {
        snprintf(err.msg, sizeof err.msg, "out of memory for %d x %d", w, h);
        longjmp(err.jb, 1);
    }
    while ((int)ci.output_scanline < h) {
        int y = (int)ci.output_scanline;
        uint8_t *dst = px + (size_t)y * w * 3;
        JSAMPROW r = oc == 3 ? dst : row;
        if (jpeg_read_scanlines(&ci, &r, 1) != 1) {
            snprintf(err.msg, sizeof err.msg, "decoder stopped at row %d of %d", y, h);
            longjmp(err.jb, 1);
        }
        if (oc == 1) {
            for (int x = 0; x < w; x++) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
        } else if (oc == 4) {
            // Pillow's cmyk2rgb: R = (255 - K) - C (255 - K) / 255, on un-inverted C, K.
            for (int x = 0; x < w; x++) {
                const uint8_t *s = row + 4 * x;
                int k = inverted ? 255 - s[3] : s[3], nk = 255 - k;
                for (int ch = 0; ch < 3; ch++) {
                    int cc = inverted ? 255 - s[ch] : s[ch];
                    int v = nk - muldiv255(cc, nk);
                    dst[3 * x + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    // No jpeg_finish_decompress: every row is in, and a missing EOI marker after
    // complete image data is tolerated (as Pillow).
    jpeg_destroy_decompress(&ci);
    free(row);
    im->w = w, im->h = h, im->c = 3, im->px = px;
    return 0;
}

// ================================================================== load

int image_load_memory(Image *im, const void *data, size_t n, const char *name) {
    memset(im, 0, sizeof *im);
    const uint8_t *p = data;
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(p, png_magic, 8) == 0) return decode_png(im, p, n, name);
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return decode_jpeg(im, p, n, name);
    if (n == 0)
        a2f_set_error("%s: empty file (not an image)", name);
    else
        a2f_set_error("%s: not a PNG or JPEG file (unrecognised magic bytes)", name);
    return -1;
}

int image_load(Image *im, const char *path) {
    memset(im, 0, sizeof *im);
    MappedFile f;
    if (read_file(&f, path, IMAGE_MAX_FILE, "an image")) return -1;
    int rc = image_load_memory(im, f.data, f.len, path);
    unmap_file(&f);
    return rc;
}

// ================================================================== PNG writing

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} MemDst;

static void png_write_mem(png_structp png, png_bytep data, size_t len) {
    MemDst *d = png_get_io_ptr(png);
    if (d->n + len > d->cap) {
        size_t cap = d->cap ? d->cap : 65536;
        while (cap < d->n + len) cap *= 2;
        uint8_t *q = realloc(d->p, cap);
        if (!q) png_error(png, "out of memory");
        d->p = q, d->cap = cap;
    }
    memcpy(d->p + d->n, data, len);
    d->n += len;
}
static void png_flush_mem(png_structp png) {
    (void)png;
}

int image_encode_png(const Image *im, uint8_t **out, size_t *nout) {
    *out = NULL, *nout = 0;
    if (!im || !im->px || im->w < 1 || im->h < 1 || (im->c != 1 && im->c != 3 && im->c != 4)) {
        a2f_set_error("image_encode_png: bad image (%d x %d x %d)", im ? im->w : 0, im ? im->h : 0, im ? im->c : 0);
        return -1;
    }
    JumpErr err;
    err.msg[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        a2f_set_error("image_encode_png: cannot create a PNG encoder (out of memory)");
        return -1;
    }
    MemDst dst = {0};
    png_bytep *volatile rows = NULL;
    if (setjmp(err.jb)) {
        free(rows);
        free(dst.p);
        png_destroy_write_struct(&png, &info);
        a2f_set_error("image_encode_png: %s", err.msg);
        return -1;
    }
    png_set_write_fn(png, &dst, png_write_mem, png_flush_mem);
    int ct = im->c == 1 ? PNG_COLOR_TYPE_GRAY : im->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc(sizeof(png_bytep) * (size_t)im->h);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < im->h; y++) rows[y] = im->px + (size_t)y * im->w * im->c;
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    *out = dst.p, *nout = dst.n;
    return 0;
}

int image_save_png(const Image *im, const char *path) {
    uint8_t *buf;
    size_t n;
    if (image_encode_png(im, &buf, &n)) {
        char msg[A2F_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", a2f_last_error());
        a2f_set_error("%s: %s", path, msg);
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        a2f_set_error("%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    size_t off = 0;
    int ok = 1;
    while (ok && off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            ok = 0;
        else
            off += (size_t)w;
    }
    if (ok && fsync(fd) != 0) ok = 0;
    int e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (!ok) {
        a2f_set_error("%s: cannot write %s: %s", path, tmp, strerror(e));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        a2f_set_error("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    free(buf);
    return rc;
}

// ================================================================== resize, grid

// Per output coordinate, the source taps and weights along one axis.
typedef struct {
    int *idx;
    float *wt;
    int taps;
} Axis;

static void axis_build(Axis *a, int src, int dst) {
    double s = (double)src / dst;
    a->taps = s > 2.0 ? (int)ceil(s) + 1 : 2;
    a->idx = xcalloc((size_t)dst * a->taps, sizeof(int));
    a->wt = xcalloc((size_t)dst * a->taps, sizeof(float));
    for (int i = 0; i < dst; i++) {
        int *id = a->idx + (size_t)i * a->taps;
        float *wt = a->wt + (size_t)i * a->taps;
        if (s > 2.0) {  // area: overlap of [i s, (i+1) s) with each source pixel
            double lo = i * s, hi = (i + 1) * s;
            int k0 = (int)floor(lo);
            for (int t = 0; t < a->taps; t++) {
                int k = k0 + t;
                double ov = fmin(hi, k + 1.0) - fmax(lo, (double)k);
                id[t] = k < src ? k : src - 1;
                wt[t] = (k < src && ov > 0) ? (float)(ov / s) : 0.0f;
            }
        } else {  // bilinear, half-pixel centres, clamped
            double f = (i + 0.5) * s - 0.5;
            if (f < 0) f = 0;
            int k = (int)floor(f);
            if (k > src - 1) k = src - 1;
            double fr = f - k;
            id[0] = k, id[1] = k + 1 < src ? k + 1 : src - 1;
            wt[0] = (float)(1 - fr), wt[1] = (float)fr;
        }
    }
}

int image_resize(Image *dst, const Image *src, int dw, int dh) {
    memset(dst, 0, sizeof *dst);
    if (!src || !src->px || image_alloc(dst, dw, dh, src->c)) {
        if (src && !src->px) a2f_set_error("image_resize: empty source image");
        return -1;
    }
    Axis ax, ay;
    axis_build(&ax, src->w, dw);
    axis_build(&ay, src->h, dh);
    int C = src->c;
    float *tmp = xmalloc(sizeof(float) * (size_t)src->h * dw * C);  // horizontal pass [h, dw, C]
    for (int y = 0; y < src->h; y++)
        for (int x = 0; x < dw; x++)
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int t = 0; t < ax.taps; t++)
                    acc += ax.wt[(size_t)x * ax.taps + t] *
                           src->px[((size_t)y * src->w + ax.idx[(size_t)x * ax.taps + t]) * C + c];
                tmp[((size_t)y * dw + x) * C + c] = acc;
            }
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int c = 0; c < C; c++) {
                float acc = 0;
                for (int t = 0; t < ay.taps; t++)
                    acc += ay.wt[(size_t)y * ay.taps + t] *
                           tmp[((size_t)ay.idx[(size_t)y * ay.taps + t] * dw + x) * C + c];
                long v = lrintf(acc);
                dst->px[((size_t)y * dw + x) * C + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(tmp);
    free(ax.idx), free(ax.wt), free(ay.idx), free(ay.wt);
    return 0;
}

int image_grid(Image *out, const Image *const *imgs, int n, int cols, int cell, int pad, uint8_t bg) {
    memset(out, 0, sizeof *out);
    if (n < 1 || cols < 1 || cell < 1 || pad < 0) {
        a2f_set_error("image_grid: bad layout (%d images, %d columns, cell %d, pad %d)", n, cols, cell, pad);
        return -1;
    }
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    long W = (long)cols * cell + (long)(cols + 1) * pad, H = (long)rows * cell + (long)(rows + 1) * pad;
    if (W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE) {
        a2f_set_error("image_grid: %ld x %ld pixels is too large", W, H);
        return -1;
    }
    if (image_alloc(out, (int)W, (int)H, 3)) return -1;
    memset(out->px, bg, (size_t)W * H * 3);
    for (int i = 0; i < n; i++) {
        const Image *s = imgs[i];
        if (!s || !s->px || s->c != 3) {
            a2f_set_error("image_grid: image %d is not an RGB image", i);
            image_free(out);
            return -1;
        }
        double sc = fmin((double)cell / s->w, (double)cell / s->h);
        int nw = (int)lround(s->w * sc), nh = (int)lround(s->h * sc);
        nw = nw < 1 ? 1 : nw > cell ? cell : nw;
        nh = nh < 1 ? 1 : nh > cell ? cell : nh;
        Image r;
        const Image *use = s;
        if (nw != s->w || nh != s->h) {
            if (image_resize(&r, s, nw, nh)) {
                image_free(out);
                return -1;
            }
            use = &r;
        }
        int x0 = pad + (i % cols) * (cell + pad) + (cell - nw) / 2,
            y0 = pad + (i / cols) * (cell + pad) + (cell - nh) / 2;
        for (int y = 0; y < nh; y++)
            memcpy(out->px + ((size_t)(y0 + y) * W + x0) * 3, use->px + (size_t)y * nw * 3, (size_t)nw * 3);
        if (use == &r) image_free(&r);
    }
    return 0;
}
