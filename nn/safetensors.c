// safetensors.c: validating reader (mmap or memory buffer) and atomic writer
// for .safetensors files. See safetensors.h for the format and the checks.
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"

// ---- dtypes ----------------------------------------------------------------

static const struct {
    const char *name;
    int bits;
} k_dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 8},
    [ST_F4] = {"F4", 4},
    [ST_F6_E2M3] = {"F6_E2M3", 6},
    [ST_F6_E3M2] = {"F6_E3M2", 6},
    [ST_U8] = {"U8", 8},
    [ST_I8] = {"I8", 8},
    [ST_F8_E5M2] = {"F8_E5M2", 8},
    [ST_F8_E4M3] = {"F8_E4M3", 8},
    [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [ST_I16] = {"I16", 16},
    [ST_U16] = {"U16", 16},
    [ST_F16] = {"F16", 16},
    [ST_BF16] = {"BF16", 16},
    [ST_I32] = {"I32", 32},
    [ST_U32] = {"U32", 32},
    [ST_F32] = {"F32", 32},
    [ST_C64] = {"C64", 64},
    [ST_F64] = {"F64", 64},
    [ST_I64] = {"I64", 64},
    [ST_U64] = {"U64", 64},
};

const char *st_dtype_name(StDType t) { return (unsigned)t < ST_DTYPE_COUNT ? k_dtypes[t].name : "?"; }
int st_dtype_bits(StDType t) { return (unsigned)t < ST_DTYPE_COUNT ? k_dtypes[t].bits : 0; }

int st_dtype_parse(const char *s) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) return i;
    return -1;
}

int st_dtype_to_dtype(StDType t, DType *out) {
    switch (t) {
        case ST_F32: *out = DT_F32; return 0;
        case ST_F16: *out = DT_F16; return 0;
        case ST_BF16: *out = DT_BF16; return 0;
        default: return -1;
    }
}

StDType st_dtype_from_dtype(DType t) {
    switch (t) {
        case DT_F32: return ST_F32;
        case DT_F16: return ST_F16;
        case DT_BF16: return ST_BF16;
        default: CHECKM(0, "bad dtype");
    }
}

// ---- small helpers -----------------------------------------------------------

// Copies s into out (size n) with non-printable bytes as \xNN and at most ~64
// characters, so names taken from a file stay on one short line.
static const char *esc(char *out, size_t n, const char *s) {
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 8 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 64) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = 0;
    return out;
}

// "[2, 3]" (elided after 8 dims) into out.
static const char *shape_str(char *out, size_t n, int ndim, const int64_t *dims) {
    size_t o = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && o + 24 < n; i++) {
        if (i == 8) {
            o += (size_t)snprintf(out + o, n - o, ", ...");
            break;
        }
        o += (size_t)snprintf(out + o, n - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
    }
    snprintf(out + o, n - o, "]");
    return out;
}

// Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
static size_t utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int is_num_char(uint8_t c) { return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E'; }
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

// The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
static int json_number_ok(const uint8_t *s, size_t n) {
    size_t k = 0, d;
    if (k < n && s[k] == '-') k++;
    if (k < n && s[k] == '0') k++;
    else if (k < n && s[k] >= '1' && s[k] <= '9')
        while (k < n && is_digit(s[k])) k++;
    else return 0;
    if (k < n && s[k] == '.') {
        for (d = ++k; k < n && is_digit(s[k]);) k++;
        if (k == d) return 0;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        for (d = k; k < n && is_digit(s[k]);) k++;
        if (k == d) return 0;
    }
    return k == n;
}

// Checks the raw header bytes where cJSON is more lenient than JSON (and the
// reference serde parser): valid UTF-8; no control bytes other than JSON
// whitespace (cJSON lets them through inside strings); nothing non-ASCII
// outside strings (cJSON skips a leading byte-order mark); numbers that follow
// the JSON grammar (cJSON takes "01", "+1", "1."); and no "\u0000" escape
// (cJSON strings end at NUL, which would silently truncate a name).
// Returns 0 or -1 with the error set.
static int check_header_bytes(const char *name, const uint8_t *h, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = h[i];
        if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            a2f_set_error("%s: header has control byte 0x%02x at byte %zu (not valid JSON)", name, c, i);
            return -1;
        }
        size_t l = utf8_len(h + i, n - i);
        if (!l) {
            a2f_set_error("%s: header is not valid UTF-8 (byte %zu)", name, i);
            return -1;
        }
        if (in_str) {
            if (c == '"') in_str = 0;
            else if (c == '\\' && i + 1 < n && h[i + 1] < 0x80) {
                if (i + 5 < n && h[i + 1] == 'u' && memcmp(h + i + 2, "0000", 4) == 0) {
                    a2f_set_error("%s: header has a \\u0000 (NUL) escape in a string at byte %zu", name, i);
                    return -1;
                }
                i += 2;  // skip the escaped byte (it may be '"')
                continue;
            }
            i += l;
        } else if (c == '"') {
            in_str = 1;
            i++;
        } else if (c >= 0x80) {
            a2f_set_error("%s: header has a non-ASCII byte outside a string at byte %zu (not valid JSON)", name, i);
            return -1;
        } else if (c == '-' || c == '+' || c == '.' || is_digit(c)) {
            size_t j = i;
            while (j < n && is_num_char(h[j])) j++;
            if (!json_number_ok(h + i, j - i)) {
                a2f_set_error("%s: header has a malformed number '%.*s' at byte %zu (not valid JSON)", name,
                              (int)A2F_MIN(j - i, (size_t)24), (const char *)h + i, i);
                return -1;
            }
            i = j;
        } else if (c >= 'a' && c <= 'z') {  // true/false/null: cJSON checks the word
            while (i < n && h[i] >= 'a' && h[i] <= 'z') i++;
        } else {
            i++;
        }
    }
    return 0;
}

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "invalid";
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

// A JSON number that is an integer in [0, 2^48-1].
static int json_u48(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= (double)ST_MAX_DIM) || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

// ---- reader ----------------------------------------------------------------

void st_close(SafeTensors *st) {
    if (st->mapped && st->buf) munmap((void *)st->buf, st->len);
    free(st->name);
    free(st->tensors);
    free(st->by_name);
    free(st->meta_key);
    free(st->meta_val);
    free(st->pool);
    free(st->dims);
    memset(st, 0, sizeof *st);
}

static _Thread_local const StTensor *t_sort_tensors;  // qsort context for cmp_by_name

static int cmp_by_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    uint64_t ex = x->offset + x->nbytes, ey = y->offset + y->nbytes;
    if (ex != ey) return ex < ey ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(t_sort_tensors[*(const int *)a].name, t_sort_tensors[*(const int *)b].name);
}

typedef struct {
    const char *key, *val;
} KV;
static int cmp_kv(const void *a, const void *b) { return strcmp(((const KV *)a)->key, ((const KV *)b)->key); }

// Validates one tensor entry E called NAME into *t (shape into dims). Offsets
// are checked against the data buffer later.
static int parse_entry(const char *fname, const char *name, const cJSON *e, StTensor *t, int64_t *dims) {
    char en[96];
    esc(en, sizeof en, name);
    if (!cJSON_IsObject(e)) {
        a2f_set_error("%s: tensor '%s': entry is %s, not an object", fname, en, json_kind(e));
        return -1;
    }
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = NULL;
        if (strcmp(f->string, "dtype") == 0) slot = &dt;
        else if (strcmp(f->string, "shape") == 0) slot = &shape;
        else if (strcmp(f->string, "data_offsets") == 0) slot = &offs;
        else continue;  // unknown fields are ignored, as the reference does
        if (*slot) {
            a2f_set_error("%s: tensor '%s': duplicate field \"%s\"", fname, en, f->string);
            return -1;
        }
        *slot = f;
    }
    const char *missing = !dt ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) {
        a2f_set_error("%s: tensor '%s': missing field \"%s\"", fname, en, missing);
        return -1;
    }
    if (!cJSON_IsString(dt)) {
        a2f_set_error("%s: tensor '%s': dtype is %s, not a string", fname, en, json_kind(dt));
        return -1;
    }
    int d = st_dtype_parse(dt->valuestring);
    if (d < 0) {
        char ed[96];
        a2f_set_error("%s: tensor '%s': unknown dtype \"%s\"", fname, en, esc(ed, sizeof ed, dt->valuestring));
        return -1;
    }
    t->dtype = (StDType)d;
    if (!cJSON_IsArray(shape)) {
        a2f_set_error("%s: tensor '%s': shape is %s, not an array", fname, en, json_kind(shape));
        return -1;
    }
    int nd = 0;
    uint64_t numel = 1;
    int overflow = 0;
    for (const cJSON *x = shape->child; x; x = x->next, nd++) {
        uint64_t v;
        if (!json_u48(x, &v)) {
            if (cJSON_IsNumber(x))
                a2f_set_error("%s: tensor '%s': shape dimension %d is %.17g, not an integer in [0, 2^48-1]", fname, en,
                              nd, x->valuedouble);
            else
                a2f_set_error("%s: tensor '%s': shape dimension %d is %s, not an integer", fname, en, nd, json_kind(x));
            return -1;
        }
        dims[nd] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel)) overflow = 1;
    }
    t->ndim = nd;
    t->shape = dims;
    char ss[160];
    uint64_t bits;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)st_dtype_bits(t->dtype), &bits)) {
        a2f_set_error("%s: tensor '%s': %s shape %s overflows a 64-bit byte count", fname, en, st_dtype_name(t->dtype),
                      shape_str(ss, sizeof ss, nd, dims));
        return -1;
    }
    if (bits % 8) {
        a2f_set_error("%s: tensor '%s': %s shape %s is %llu bits, not a whole number of bytes", fname, en,
                      st_dtype_name(t->dtype), shape_str(ss, sizeof ss, nd, dims), (unsigned long long)bits);
        return -1;
    }
    t->numel = numel;
    uint64_t ob, oe;
    const cJSON *b = cJSON_IsArray(offs) ? offs->child : NULL;
    const cJSON *en2 = b ? b->next : NULL;
    if (!cJSON_IsArray(offs) || !b || !en2 || en2->next) {
        a2f_set_error("%s: tensor '%s': data_offsets must be an array of two integers [begin, end]", fname, en);
        return -1;
    }
    if (!json_u48(b, &ob) || !json_u48(en2, &oe)) {
        a2f_set_error("%s: tensor '%s': data_offsets entries must be integers in [0, 2^48-1]", fname, en);
        return -1;
    }
    if (oe < ob) {
        a2f_set_error("%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", fname, en,
                      (unsigned long long)ob, (unsigned long long)oe);
        return -1;
    }
    if (oe - ob != bits / 8) {
        a2f_set_error("%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s shape %s needs %llu", fname,
                      en, (unsigned long long)ob, (unsigned long long)oe, (unsigned long long)(oe - ob),
                      st_dtype_name(t->dtype), shape_str(ss, sizeof ss, nd, dims), (unsigned long long)(bits / 8));
        return -1;
    }
    t->offset = ob;
    t->nbytes = oe - ob;
    return 0;
}

static int parse_header(SafeTensors *st, const char *fname, const cJSON *root) {
    if (!cJSON_IsObject(root)) {
        a2f_set_error("%s: header is %s, not a JSON object", fname, json_kind(root));
        return -1;
    }
    // Duplicate keys (cJSON keeps them all): sort the names and compare neighbours.
    int nkeys = 0;
    for (const cJSON *c = root->child; c; c = c->next) nkeys++;
    const char **keys = xmalloc((size_t)nkeys * sizeof *keys);
    int k = 0;
    for (const cJSON *c = root->child; c; c = c->next) keys[k++] = c->string;
    qsort(keys, (size_t)nkeys, sizeof *keys, cmp_str_ptr);
    for (int i = 1; i < nkeys; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            char en[96];
            a2f_set_error("%s: duplicate key '%s' in header", fname, esc(en, sizeof en, keys[i]));
            free(keys);
            return -1;
        }
    }
    free(keys);

    // Sizes of the owned arrays (all bounded by the header length).
    const cJSON *meta = NULL;
    size_t pool_len = 0, ndims = 0;
    int ntens = 0, nmeta = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            meta = c;
            if (!cJSON_IsObject(c)) {
                a2f_set_error("%s: __metadata__ is %s, not a string->string map", fname, json_kind(c));
                return -1;
            }
            const char **mk = NULL;
            int nm = 0;
            for (const cJSON *m = c->child; m; m = m->next) nm++;
            mk = xmalloc((size_t)nm * sizeof *mk);
            nm = 0;
            for (const cJSON *m = c->child; m; m = m->next) {
                char en[96];
                if (!cJSON_IsString(m)) {
                    int looks_tensor = !strcmp(m->string, "dtype") || !strcmp(m->string, "shape") ||
                                       !strcmp(m->string, "data_offsets");
                    const char *hint = looks_tensor ? " (a tensor may not be named __metadata__)" : "";
                    a2f_set_error("%s: __metadata__ value for key '%s' is %s, not a string%s", fname,
                                  esc(en, sizeof en, m->string), json_kind(m), hint);
                    free(mk);
                    return -1;
                }
                mk[nm++] = m->string;
                pool_len += strlen(m->string) + strlen(m->valuestring) + 2;
            }
            qsort(mk, (size_t)nm, sizeof *mk, cmp_str_ptr);
            for (int i = 1; i < nm; i++) {
                if (strcmp(mk[i - 1], mk[i]) == 0) {
                    char en[96];
                    a2f_set_error("%s: duplicate __metadata__ key '%s'", fname, esc(en, sizeof en, mk[i]));
                    free(mk);
                    return -1;
                }
            }
            free(mk);
            nmeta = nm;
            continue;
        }
        ntens++;
        pool_len += strlen(c->string) + 1;
        if (cJSON_IsObject(c)) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "shape");
            if (cJSON_IsArray(s))
                for (const cJSON *x = s->child; x; x = x->next) ndims++;
        }
    }

    st->tensors = xcalloc((size_t)ntens, sizeof *st->tensors);
    st->by_name = xmalloc((size_t)ntens * sizeof *st->by_name);
    st->dims = xmalloc(ndims * sizeof *st->dims);
    st->pool = xmalloc(pool_len);
    st->meta_key = xmalloc((size_t)nmeta * sizeof *st->meta_key);
    st->meta_val = xmalloc((size_t)nmeta * sizeof *st->meta_val);
    char *p = st->pool;
    size_t di = 0;
    int ti = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        StTensor *t = &st->tensors[ti];
        if (parse_entry(fname, c->string, c, t, st->dims + di)) return -1;
        di += (size_t)t->ndim;
        size_t l = strlen(c->string) + 1;
        memcpy(p, c->string, l);
        t->name = p;
        p += l;
        ti++;
    }
    st->count = ntens;
    if (meta) {
        KV *kv = xmalloc((size_t)nmeta * sizeof *kv);
        int i = 0;
        for (const cJSON *m = meta->child; m; m = m->next, i++) kv[i].key = m->string, kv[i].val = m->valuestring;
        qsort(kv, (size_t)nmeta, sizeof *kv, cmp_kv);
        for (i = 0; i < nmeta; i++) {
            size_t lk = strlen(kv[i].key) + 1, lv = strlen(kv[i].val) + 1;
            memcpy(p, kv[i].key, lk);
            st->meta_key[i] = p;
            p += lk;
            memcpy(p, kv[i].val, lv);
            st->meta_val[i] = p;
            p += lv;
        }
        free(kv);
    }
    st->nmeta = nmeta;
    return 0;
}

// Offsets against the data buffer, then the tiling rule, then trailing bytes.
static int check_layout(SafeTensors *st, const char *fname) {
    char en[96], en2[96];
    for (int i = 0; i < st->count; i++) {
        const StTensor *t = &st->tensors[i];
        if (t->offset + t->nbytes > st->data_len) {
            a2f_set_error("%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the %llu-byte data buffer "
                          "(file truncated?)",
                          fname, esc(en, sizeof en, t->name), (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes), (unsigned long long)st->data_len);
            return -1;
        }
    }
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, cmp_by_offset);
    uint64_t end = 0;
    for (int i = 0; i < st->count; i++) {
        const StTensor *t = &st->tensors[i];
        if (t->offset < end) {
            const StTensor *q = &st->tensors[i - 1];
            a2f_set_error("%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]", fname,
                          esc(en, sizeof en, t->name), (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes), esc(en2, sizeof en2, q->name),
                          (unsigned long long)q->offset, (unsigned long long)(q->offset + q->nbytes));
            return -1;
        }
        if (t->offset > end) {
            a2f_set_error("%s: hole in the data buffer: bytes [%llu, %llu) before tensor '%s' belong to no tensor",
                          fname, (unsigned long long)end, (unsigned long long)t->offset, esc(en, sizeof en, t->name));
            return -1;
        }
        end = t->offset + t->nbytes;
    }
    if (end != st->data_len) {
        a2f_set_error("%s: %llu trailing bytes after the last tensor's data (data buffer is %llu bytes, tensors end at "
                      "%llu)",
                      fname, (unsigned long long)(st->data_len - end), (unsigned long long)st->data_len,
                      (unsigned long long)end);
        return -1;
    }
    const uint8_t *data = st->buf + 8 + st->header_len;
    for (int i = 0; i < st->count; i++) {
        st->tensors[i].data = data + st->tensors[i].offset;
        st->by_name[i] = i;
    }
    t_sort_tensors = st->tensors;
    qsort(st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_by_name);
    return 0;
}

int st_open_memory(SafeTensors *st, const char *name, const void *buf, size_t len) {
    memset(st, 0, sizeof *st);
    const uint8_t *b = buf;
    if (len == 0) {
        a2f_set_error("%s: empty file (0 bytes)", name);
        return -1;
    }
    if (len < 8) {
        a2f_set_error("%s: file is %zu bytes, too short for the 8-byte header length", name, len);
        return -1;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    if (n > ST_MAX_HEADER) {
        a2f_set_error("%s: header length %llu exceeds the limit of 100000000 bytes (not a safetensors file?)", name,
                      (unsigned long long)n);
        return -1;
    }
    if (n > len - 8) {
        a2f_set_error("%s: header length %llu runs past the end of the file (%zu bytes)", name, (unsigned long long)n,
                      len);
        return -1;
    }
    if (check_header_bytes(name, b + 8, (size_t)n)) return -1;
    // Parse from a NUL-terminated copy (n <= file size, checked above).
    char *hdr = xmalloc((size_t)n + 1);
    memcpy(hdr, b + 8, (size_t)n);
    hdr[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n + 1, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        a2f_set_error("%s: header is not valid JSON (error near byte %zu of %llu)", name, at, (unsigned long long)n);
        free(hdr);
        return -1;
    }
    for (const char *q = end; q < hdr + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            a2f_set_error("%s: header has extra bytes after the JSON object (byte %zu)", name, (size_t)(q - hdr));
            cJSON_Delete(root);
            free(hdr);
            return -1;
        }
    }
    st->name = xmalloc(strlen(name) + 1);
    strcpy(st->name, name);
    st->buf = b;
    st->len = len;
    st->header_len = n;
    st->data_len = len - 8 - n;
    int rc = parse_header(st, name, root);
    cJSON_Delete(root);
    free(hdr);
    if (rc == 0) rc = check_layout(st, name);
    if (rc) {
        st->buf = NULL;  // not ours to unmap
        st_close(st);
        return -1;
    }
    return 0;
}

int st_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    MappedFile m;
    if (map_file(&m, path)) return -1;
    if (st_open_memory(st, path, m.data, m.len)) {
        unmap_file(&m);
        return -1;
    }
    st->mapped = m.mapped;
    return 0;
}

int st_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[st->by_name[mid]].name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

const char *st_metadata_get(const SafeTensors *st, const char *key) {
    int lo = 0, hi = st->nmeta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->meta_key[mid], key);
        if (c == 0) return st->meta_val[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int st_load(const SafeTensors *st, const char *name, void *dst, DType dst_t, int ndim, const int64_t *expect_shape) {
    char en[96], s1[160], s2[160];
    int i = st_find(st, name);
    if (i < 0) {
        a2f_set_error("%s: no tensor named '%s' (the file has %d tensors)", st->name, esc(en, sizeof en, name),
                      st->count);
        return -1;
    }
    const StTensor *t = &st->tensors[i];
    DType src_t;
    if (st_dtype_to_dtype(t->dtype, &src_t)) {
        a2f_set_error("%s: tensor '%s' is %s; only F32, F16 and BF16 tensors load as floating point", st->name,
                      esc(en, sizeof en, name), st_dtype_name(t->dtype));
        return -1;
    }
    if (expect_shape) {
        int same = ndim == t->ndim;
        for (int d = 0; same && d < ndim; d++) same = expect_shape[d] == t->shape[d];
        if (!same) {
            a2f_set_error("%s: tensor '%s' has shape %s, expected %s", st->name, esc(en, sizeof en, name),
                          shape_str(s1, sizeof s1, t->ndim, t->shape), shape_str(s2, sizeof s2, ndim, expect_shape));
            return -1;
        }
    }
    size_t es = dtype_size(src_t), n = (size_t)t->numel;
    if (src_t == dst_t || ((uintptr_t)t->data % es) == 0) {
        convert_dtype(dst, dst_t, t->data, src_t, n);  // same dtype: memcpy, any alignment
        return 0;
    }
    // Unaligned source (allowed by the format): convert through an aligned bounce buffer.
    _Alignas(8) uint8_t tmp[4096];
    size_t chunk = sizeof tmp / es, ds = dtype_size(dst_t);
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = A2F_MIN(chunk, n - off);
        memcpy(tmp, (const uint8_t *)t->data + off * es, m * es);
        convert_dtype((uint8_t *)dst + off * ds, dst_t, tmp, src_t, m);
    }
    return 0;
}

int st_load_f32(const SafeTensors *st, const char *name, float *dst, int ndim, const int64_t *expect_shape) {
    return st_load(st, name, dst, DT_F32, ndim, expect_shape);
}

int st_load_bf16(const SafeTensors *st, const char *name, uint16_t *dst, int ndim, const int64_t *expect_shape) {
    return st_load(st, name, dst, DT_BF16, ndim, expect_shape);
}

// ---- writer ----------------------------------------------------------------

typedef struct {
    char *name;
    StDType dt;
    int ndim;
    int64_t *shape;
    const void *data;
    uint64_t nbytes;
} WEntry;

struct StWriter {
    char *path;
    WEntry *e;
    int n, cap;
    KV *meta;  // owned strings
    int nmeta, metacap;
    int failed;  // sticky: the first add/metadata error, kept in err
    char err[A2F_ERR_MAX];
};

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        CHECKM(p, "out of memory");
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_fmt(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(Buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int l = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    CHECK(l >= 0 && (size_t)l < sizeof tmp);
    buf_put(b, tmp, (size_t)l);
}
// A JSON string escaped as serde_json does (", \, and control bytes only).
static void buf_json_str(Buf *b, const char *s) {
    buf_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
            case '"': buf_str(b, "\\\""); break;
            case '\\': buf_str(b, "\\\\"); break;
            case '\b': buf_str(b, "\\b"); break;
            case '\f': buf_str(b, "\\f"); break;
            case '\n': buf_str(b, "\\n"); break;
            case '\r': buf_str(b, "\\r"); break;
            case '\t': buf_str(b, "\\t"); break;
            default:
                if (c < 0x20) buf_fmt(b, "\\u%04x", c);
                else buf_put(b, (const char *)&c, 1);
        }
    }
    buf_str(b, "\"");
}

static char *dupstr(const char *s) {
    size_t l = strlen(s) + 1;
    char *p = xmalloc(l);
    memcpy(p, s, l);
    return p;
}

static int valid_utf8(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len((const uint8_t *)s + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

static void writer_fail(StWriter *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void writer_fail(StWriter *w, const char *fmt, ...) {
    char msg[A2F_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!w->failed) memcpy(w->err, msg, sizeof msg);
    w->failed = 1;
    a2f_set_error("%s", msg);
}

StWriter *st_writer_begin(const char *path) {
    StWriter *w = xcalloc(1, sizeof *w);
    w->path = dupstr(path);
    return w;
}

int st_writer_add(StWriter *w, const char *name, StDType dt, int ndim, const int64_t *shape, const void *data) {
    char en[96], ss[160];
    CHECK(w && name);
    if ((unsigned)dt >= ST_DTYPE_COUNT || ndim < 0 || (ndim > 0 && !shape)) {
        writer_fail(w, "%s: tensor '%s': bad dtype or shape arguments", w->path, esc(en, sizeof en, name));
        return -1;
    }
    if (strcmp(name, "__metadata__") == 0 || !valid_utf8(name)) {
        writer_fail(w, "%s: tensor name '%s' is reserved or not valid UTF-8", w->path, esc(en, sizeof en, name));
        return -1;
    }
    uint64_t numel = 1, bits;
    int bad = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (uint64_t)shape[d] > ST_MAX_DIM || __builtin_mul_overflow(numel, (uint64_t)shape[d], &numel))
            bad = 1;
    }
    if (bad || __builtin_mul_overflow(numel, (uint64_t)st_dtype_bits(dt), &bits) || bits % 8) {
        writer_fail(w, "%s: tensor '%s': invalid %s shape %s", w->path, esc(en, sizeof en, name), st_dtype_name(dt),
                    shape_str(ss, sizeof ss, ndim, shape));
        return -1;
    }
    if (bits && !data) {
        writer_fail(w, "%s: tensor '%s': no data", w->path, esc(en, sizeof en, name));
        return -1;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        CHECKM(w->e, "out of memory");
    }
    WEntry *e = &w->e[w->n++];
    e->name = dupstr(name);
    e->dt = dt;
    e->ndim = ndim;
    e->shape = xmalloc((size_t)(ndim ? ndim : 1) * sizeof *e->shape);
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->data = data;
    e->nbytes = bits / 8;
    return 0;
}

int st_writer_metadata(StWriter *w, const char *key, const char *value) {
    char en[96];
    CHECK(w && key && value);
    if (!valid_utf8(key) || !valid_utf8(value)) {
        writer_fail(w, "%s: metadata '%s' is not valid UTF-8", w->path, esc(en, sizeof en, key));
        return -1;
    }
    for (int i = 0; i < w->nmeta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            writer_fail(w, "%s: duplicate metadata key '%s'", w->path, esc(en, sizeof en, key));
            return -1;
        }
    }
    if (w->nmeta == w->metacap) {
        w->metacap = w->metacap ? 2 * w->metacap : 8;
        w->meta = realloc(w->meta, (size_t)w->metacap * sizeof *w->meta);
        CHECKM(w->meta, "out of memory");
    }
    w->meta[w->nmeta].key = dupstr(key);
    w->meta[w->nmeta].val = dupstr(value);
    w->nmeta++;
    return 0;
}

void st_writer_abort(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name), free(w->e[i].shape);
    for (int i = 0; i < w->nmeta; i++) free((char *)w->meta[i].key), free((char *)w->meta[i].val);
    free(w->e);
    free(w->meta);
    free(w->path);
    free(w);
}

// Reference order: descending dtype (= alignment), then name.
static int cmp_wentry(const void *a, const void *b) {
    const WEntry *x = a, *y = b;
    if (x->dt != y->dt) return x->dt > y->dt ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *p, uint64_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t m = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = write(fd, b, m);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += r;
        n -= (uint64_t)r;
    }
    return 0;
}

int st_writer_finish(StWriter *w) {
    if (w->failed) {
        a2f_set_error("%s", w->err);
        st_writer_abort(w);
        return -1;
    }
    qsort(w->e, (size_t)w->n, sizeof *w->e, cmp_wentry);
    // Duplicate names (checked here, once, instead of per add).
    const char **names = xmalloc((size_t)w->n * sizeof *names);
    for (int i = 0; i < w->n; i++) names[i] = w->e[i].name;
    qsort(names, (size_t)w->n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < w->n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            char en[96];
            a2f_set_error("%s: duplicate tensor name '%s'", w->path, esc(en, sizeof en, names[i]));
            free(names);
            st_writer_abort(w);
            return -1;
        }
    }
    free(names);

    Buf h = {0};
    buf_str(&h, "{");
    int first = 1;
    if (w->nmeta) {
        qsort(w->meta, (size_t)w->nmeta, sizeof *w->meta, cmp_kv);
        buf_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) buf_str(&h, ",");
            buf_json_str(&h, w->meta[i].key);
            buf_str(&h, ":");
            buf_json_str(&h, w->meta[i].val);
        }
        buf_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const WEntry *e = &w->e[i];
        if (!first) buf_str(&h, ",");
        first = 0;
        buf_json_str(&h, e->name);
        buf_fmt(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e->dt));
        for (int d = 0; d < e->ndim; d++) buf_fmt(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        buf_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + e->nbytes));
        off += e->nbytes;
    }
    buf_str(&h, "}");
    while (h.n % 8) buf_str(&h, " ");
    if (off > ST_MAX_DIM || h.n > ST_MAX_HEADER) {
        a2f_set_error("%s: too much data for one safetensors file (%llu bytes, header %zu bytes)", w->path,
                      (unsigned long long)off, h.n);
        free(h.p);
        st_writer_abort(w);
        return -1;
    }

    size_t plen = strlen(w->path);
    char *tmp = xmalloc(plen + 5);
    memcpy(tmp, w->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        a2f_set_error("%s: cannot create %s: %s", w->path, tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    int ok = write_all(fd, len8, 8) == 0 && write_all(fd, h.p, h.n) == 0;
    for (int i = 0; ok && i < w->n; i++) ok = write_all(fd, w->e[i].data, w->e[i].nbytes) == 0;
    if (ok && fsync(fd) != 0) ok = 0;
    int err = errno;
    if (close(fd) != 0 && ok) ok = 0, err = errno;
    if (!ok) {
        a2f_set_error("%s: cannot write %s: %s", w->path, tmp, strerror(err));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, w->path) != 0) {
        a2f_set_error("%s: cannot rename %s into place: %s", w->path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    // Persist the rename (best effort: the file itself is complete either way).
    char *dir = dupstr(w->path);
    char *slash = strrchr(dir, '/');
    if (slash) slash == dir ? (void)(slash[1] = 0) : (void)(*slash = 0);
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    rc = 0;
done:
    free(tmp);
    free(h.p);
    st_writer_abort(w);
    return rc;
}
