// npy.c: strict .npy reader / writer for float arrays (see npy.h).
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"

#define NPY_MAX_FILE (1ull << 32)

static const char MAGIC[6] = {(char)0x93, 'N', 'U', 'M', 'P', 'Y'};

// ------------------------------------------------------------------ header parser

typedef struct {
    const char *p, *end;
    const char *name;
} Lex;

static void skip_ws(Lex *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t')) l->p++;
}

static int fail(const Lex *l, const char *what) {
    a2f_set_error("%s: malformed .npy header: %s", l->name, what);
    return -1;
}

// A Python string literal in single or double quotes (no escapes) into out.
static int parse_str(Lex *l, char *out, size_t n) {
    skip_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return fail(l, "expected a quoted string");
    char q = *l->p++;
    size_t k = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || k + 1 >= n) return fail(l, "unexpected string");
        out[k++] = *l->p++;
    }
    if (l->p >= l->end) return fail(l, "unterminated string");
    l->p++;
    out[k] = 0;
    return 0;
}

static int expect_ch(Lex *l, char c, const char *what) {
    skip_ws(l);
    if (l->p >= l->end || *l->p != c) return fail(l, what);
    l->p++;
    return 0;
}

static int parse_shape(Lex *l, NpyInfo *info) {
    if (expect_ch(l, '(', "shape is not a tuple")) return -1;
    info->ndim = 0;
    for (;;) {
        skip_ws(l);
        if (l->p < l->end && *l->p == ')') {
            l->p++;
            break;
        }
        if (l->p >= l->end || *l->p < '0' || *l->p > '9') return fail(l, "shape entry is not a non-negative integer");
        int64_t v = 0;
        while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
            if (v > ((int64_t)1 << 40)) return fail(l, "shape entry too large");
            v = v * 10 + (*l->p++ - '0');
        }
        if (l->p < l->end && *l->p == 'L') l->p++;  // Python 2 long suffix
        if (info->ndim == NPY_MAX_DIMS) return fail(l, "too many dimensions");
        info->shape[info->ndim++] = v;
        skip_ws(l);
        if (l->p < l->end && *l->p == ',') {
            l->p++;
            continue;
        }
        if (expect_ch(l, ')', "shape tuple not closed")) return -1;
        // "(512)" is an int in parentheses, not a tuple: numpy never writes it.
        if (info->ndim == 1) return fail(l, "one-element shape without a trailing comma");
        break;
    }
    return 0;
}

static int parse_header(const char *h, size_t n, const char *name, NpyInfo *info) {
    Lex l = {h, h + n, name};
    char key[32], descr[32] = "";
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0, fortran = 0;
    if (expect_ch(&l, '{', "does not start with '{'")) return -1;
    for (;;) {
        skip_ws(&l);
        if (l.p < l.end && *l.p == '}') {
            l.p++;
            break;
        }
        if (parse_str(&l, key, sizeof key) || expect_ch(&l, ':', "expected ':'")) return -1;
        if (!strcmp(key, "descr")) {
            if (seen_descr++) return fail(&l, "duplicate key 'descr'");
            if (parse_str(&l, descr, sizeof descr)) return -1;
        } else if (!strcmp(key, "fortran_order")) {
            if (seen_fortran++) return fail(&l, "duplicate key 'fortran_order'");
            skip_ws(&l);
            if ((size_t)(l.end - l.p) >= 4 && !memcmp(l.p, "True", 4))
                fortran = 1, l.p += 4;
            else if ((size_t)(l.end - l.p) >= 5 && !memcmp(l.p, "False", 5))
                fortran = 0, l.p += 5;
            else
                return fail(&l, "fortran_order is not True or False");
        } else if (!strcmp(key, "shape")) {
            if (seen_shape++) return fail(&l, "duplicate key 'shape'");
            if (parse_shape(&l, info)) return -1;
        } else {
            char m[96];
            snprintf(m, sizeof m, "unexpected key '%s'", key);
            return fail(&l, m);
        }
        skip_ws(&l);
        if (l.p < l.end && *l.p == ',')
            l.p++;
        else if (l.p < l.end && *l.p == '}')
            continue;
        else
            return fail(&l, "expected ',' or '}'");
    }
    skip_ws(&l);
    if (l.p != l.end - 1 || *l.p != '\n') return fail(&l, "does not end with '}' and spaces then a newline");
    if (!seen_descr || !seen_fortran || !seen_shape) return fail(&l, "needs the keys descr, fortran_order and shape");
    if (fortran) {
        a2f_set_error("%s: .npy array is in Fortran order (save a C-order array: np.ascontiguousarray)", name);
        return -1;
    }
    if (!strcmp(descr, "<f4"))
        info->itemsize = 4;
    else if (!strcmp(descr, "<f8"))
        info->itemsize = 8;
    else {
        a2f_set_error("%s: .npy dtype '%s' is not supported (float32 '<f4' or float64 '<f8')", name, descr);
        return -1;
    }
    size_t numel = 1;
    for (int d = 0; d < info->ndim; d++) {
        if (info->shape[d] != 0 && numel > ((size_t)1 << 40) / (size_t)info->shape[d]) {
            a2f_set_error("%s: .npy shape too large", name);
            return -1;
        }
        numel *= (size_t)info->shape[d];
    }
    info->numel = numel;
    return 0;
}

// ------------------------------------------------------------------ reader

int npy_read_memory(const void *buf, size_t n, const char *name, float **data, NpyInfo *info) {
    *data = NULL;
    memset(info, 0, sizeof *info);
    const uint8_t *b = buf;
    if (n < 10 || memcmp(b, MAGIC, 6) != 0) {
        a2f_set_error("%s: not a .npy file (no \\x93NUMPY magic)", name);
        return -1;
    }
    int major = b[6], minor = b[7];
    size_t hlen, off;
    if (major == 1 && minor == 0)
        hlen = (size_t)b[8] | (size_t)b[9] << 8, off = 10;
    else if ((major == 2 || major == 3) && minor == 0) {
        if (n < 12) {
            a2f_set_error("%s: .npy file truncated in its preamble", name);
            return -1;
        }
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24, off = 12;
    } else {
        a2f_set_error("%s: unsupported .npy format version %d.%d (1.0, 2.0 or 3.0)", name, major, minor);
        return -1;
    }
    if (hlen > NPY_MAX_HEADER) {
        a2f_set_error("%s: .npy header of %zu bytes exceeds %d", name, hlen, NPY_MAX_HEADER);
        return -1;
    }
    if (hlen == 0 || off + hlen > n) {
        a2f_set_error("%s: .npy file truncated in its header (%zu bytes declared, %zu present)", name, hlen,
                      n > off ? n - off : 0);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        uint8_t c = b[off + i];
        if (c == 0 || (c >= 0x80 && major < 3)) {
            a2f_set_error("%s: malformed .npy header: byte 0x%02x at %zu", name, c, i);
            return -1;
        }
    }
    if (parse_header((const char *)b + off, hlen, name, info)) return -1;
    size_t want = info->numel * (size_t)info->itemsize, have = n - off - hlen;
    if (have != want) {
        a2f_set_error("%s: .npy data is %zu bytes but the shape and dtype need %zu (%s)", name, have, want,
                      have < want ? "truncated" : "trailing bytes");
        return -1;
    }
    float *out = malloc(info->numel * sizeof(float) + 1);
    if (!out) {
        a2f_set_error("%s: out of memory for %zu values", name, info->numel);
        return -1;
    }
    const uint8_t *d = b + off + hlen;
    for (size_t i = 0; i < info->numel; i++) {
        if (info->itemsize == 4)
            memcpy(&out[i], d + 4 * i, 4);  // little-endian host
        else {
            double v;
            memcpy(&v, d + 8 * i, 8);
            out[i] = (float)v;
        }
    }
    *data = out;
    return 0;
}

int npy_read(const char *path, float **data, NpyInfo *info) {
    *data = NULL;
    memset(info, 0, sizeof *info);
    MappedFile m;
    if (read_file(&m, path, NPY_MAX_FILE, "a .npy embedding file") != 0) return -1;
    int rc = npy_read_memory(m.data, m.len, path, data, info);
    unmap_file(&m);
    return rc;
}

// ------------------------------------------------------------------ writer

int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        a2f_set_error("%s: cannot write a %d-dimensional .npy", path, ndim);
        return -1;
    }
    char h[256];
    int k = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        k += snprintf(h + k, sizeof h - (size_t)k, "%s%lld", d ? ", " : "", (long long)shape[d]);
        numel *= (size_t)shape[d];
    }
    k += snprintf(h + k, sizeof h - (size_t)k, "%s), }", ndim == 1 ? "," : "");
    while ((10 + k + 1) % 64) h[k++] = ' ';  // numpy: total preamble + header a multiple of 64
    h[k++] = '\n';
    uint8_t pre[10];
    memcpy(pre, MAGIC, 6);
    pre[6] = 1, pre[7] = 0, pre[8] = (uint8_t)k, pre[9] = (uint8_t)(k >> 8);

    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        a2f_set_error("%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)k, f) == (size_t)k &&
             fwrite(data, sizeof(float), numel, f) == numel && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (!ok)
        a2f_set_error("%s: cannot write %s: %s", path, tmp, strerror(e)), unlink(tmp);
    else if (rename(tmp, path) != 0)
        a2f_set_error("%s: cannot rename %s into place: %s", path, tmp, strerror(errno)), unlink(tmp);
    else
        rc = 0;
    free(tmp);
    return rc;
}
