// torch_zip.c: torch.save zip checkpoints -> SafeTensors view (see torch_zip.h).
#include "torch_zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "torch_pickle.h"

static uint16_t u16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t u32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t u64(const uint8_t *b) { return (uint64_t)u32(b) | (uint64_t)u32(b + 4) << 32; }

// zlib's CRC-32 (the zip checksum), over n bytes that may exceed uInt.
static uint32_t crc32_bytes(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

// A name from the file, safe for a one-line error: control bytes as '?', at most 120 bytes.
static const char *esc(char *out, size_t n, const char *s) {
    size_t o = 0;
    for (; *s && o + 4 < n && o < 120; s++) out[o++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (*s) out[o++] = '.', out[o++] = '.', out[o++] = '.';
    out[o] = 0;
    return out;
}

// ------------------------------------------------------------------ ZIP

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

void tzip_close(TZip *z) {
    free(z->e);
    free(z->names);
    memset(z, 0, sizeof *z);
}

// Finds the classic end record: the last signature whose comment reaches the end of the file.
static int64_t find_eocd(const uint8_t *buf, size_t len) {
    if (len < 22) return -1;
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (u32(buf + i) == SIG_EOCD && i + 22 + u16(buf + i + 20) == len) return (int64_t)i;
    return -1;
}

static int zip_fail(TZip *z, const char *msg) {
    a2f_set_error("%s: %s", z->what, msg);
    tzip_close(z);
    return -1;
}

int tzip_open(TZip *z, const char *what, const uint8_t *buf, size_t len) {
    memset(z, 0, sizeof *z);
    z->what = what;
    z->buf = buf;
    z->len = len;
    char msg[400];
    if (len >= 2 && buf[0] == 0x80 && buf[1] == 0x02)
        return zip_fail(z, "legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a newer torch");
    if (len < 22) {
        snprintf(msg, sizeof msg, "truncated: %zu bytes is too short for a zip file", len);
        return zip_fail(z, msg);
    }
    int64_t eocd = find_eocd(buf, len);
    if (eocd < 0) return zip_fail(z, "not a zip file or truncated (no end of central directory record)");
    const uint8_t *e = buf + eocd;
    uint64_t count = u16(e + 10), cd_size = u32(e + 12), cd_ofs = u32(e + 16), cd_limit = (uint64_t)eocd;
    if (eocd >= 20 && u32(buf + eocd - 20) == SIG_LOC64) {
        uint64_t z64 = u64(buf + eocd - 20 + 8);
        if (z64 > (uint64_t)eocd - 20 || (uint64_t)eocd - 20 - z64 < 56 || u32(buf + z64) != SIG_EOCD64)
            return zip_fail(z, "bad ZIP64 end of central directory record");
        const uint8_t *r = buf + z64;
        count = u64(r + 32);
        cd_size = u64(r + 40);
        cd_ofs = u64(r + 48);
        cd_limit = z64;
    } else if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_ofs == 0xFFFFFFFFu) {
        return zip_fail(z, "the end record needs ZIP64 records, which are missing");
    }
    if (u16(e + 4) != 0 || u16(e + 6) != 0) return zip_fail(z, "multi-disk zip archives are not supported");
    if (cd_ofs > cd_limit || cd_size > cd_limit - cd_ofs)
        return zip_fail(z, "bad central directory: it lies outside the file (truncated?)");
    if (count > cd_size / 46) return zip_fail(z, "bad central directory: entry count does not fit its size");
    z->e = xcalloc(count + 1, sizeof *z->e);
    z->names = xmalloc(cd_size + 1);  // names total < cd_size
    size_t pos = cd_ofs, npool = 0, cd_end = cd_ofs + cd_size;
    for (uint64_t k = 0; k < count; k++) {
        if (cd_end - pos < 46 || u32(buf + pos) != SIG_CENTRAL) {
            snprintf(msg, sizeof msg, "bad central directory: entry %llu has no header", (unsigned long long)k);
            return zip_fail(z, msg);
        }
        const uint8_t *c = buf + pos;
        TZipEntry *en = &z->e[k];
        en->flags = u16(c + 8);
        en->method = u16(c + 10);
        en->crc = u32(c + 16);
        en->csize = u32(c + 20);
        en->size = u32(c + 24);
        uint64_t lho = u32(c + 42);
        size_t nl = u16(c + 28), xl = u16(c + 30), cl = u16(c + 32);
        if (cd_end - pos - 46 < nl + xl + cl) return zip_fail(z, "bad central directory: an entry runs past its end");
        const uint8_t *nm = c + 46, *x = nm + nl;
        if (memchr(nm, 0, nl)) return zip_fail(z, "bad central directory: an entry name contains a NUL byte");
        // ZIP64 extended information: only the fields whose 32-bit value is 0xFFFFFFFF, in this order.
        for (size_t q = 0; q + 4 <= xl;) {
            uint16_t id = u16(x + q), sz = u16(x + q + 2);
            if (q + 4 + sz > xl) return zip_fail(z, "bad central directory: malformed extra field");
            if (id == 1) {
                size_t r = q + 4, rend = q + 4 + sz;
                uint64_t *f[3] = {&en->size, &en->csize, &lho};
                for (int j = 0; j < 3; j++) {
                    if (*f[j] != 0xFFFFFFFFu) continue;
                    if (rend - r < 8) return zip_fail(z, "bad central directory: short ZIP64 extra field");
                    *f[j] = u64(x + r);
                    r += 8;
                }
            }
            q += 4 + (size_t)sz;
        }
        memcpy(z->names + npool, nm, nl);
        z->names[npool + nl] = 0;
        en->name = z->names + npool;  // the pool never moves
        npool += nl + 1;
        // Local header: the data starts after ITS name and extra (the FB alignment padding lives there).
        if (lho > cd_ofs || cd_ofs - lho < 30 || u32(buf + lho) != SIG_LOCAL) {
            char en_[160];
            snprintf(msg, sizeof msg, "entry '%s': bad local header offset", esc(en_, sizeof en_, z->names + npool - nl - 1));
            return zip_fail(z, msg);
        }
        uint64_t data = lho + 30 + u16(buf + lho + 26) + u16(buf + lho + 28);
        if (data > cd_ofs || en->csize > cd_ofs - data) {
            char en_[160];
            snprintf(msg, sizeof msg, "entry '%s': data runs past the central directory (truncated or corrupt)",
                     esc(en_, sizeof en_, z->names + npool - nl - 1));
            return zip_fail(z, msg);
        }
        en->data = data;
        pos += 46 + nl + xl + cl;
    }
    z->count = (int)count;
    return 0;
}

int tzip_find(const TZip *z, const char *name) {
    for (int k = 0; k < z->count; k++)
        if (strcmp(z->e[k].name, name) == 0) return k;
    return -1;
}

const uint8_t *tzip_data(const TZip *z, int i, uint64_t *n) {
    const TZipEntry *en = &z->e[i];
    char nm[160];
    if (en->flags & 1) {
        a2f_set_error("%s: entry '%s' is encrypted", z->what, esc(nm, sizeof nm, en->name));
        return NULL;
    }
    if (en->method != 0) {
        a2f_set_error("%s: entry '%s' is compressed (zip method %d); torch.save stores entries uncompressed, "
                      "re-save the checkpoint with torch.save",
                      z->what, esc(nm, sizeof nm, en->name), en->method);
        return NULL;
    }
    if (en->csize != en->size) {
        a2f_set_error("%s: entry '%s' is STORED but its sizes differ (%llu vs %llu)", z->what, esc(nm, sizeof nm, en->name),
                      (unsigned long long)en->csize, (unsigned long long)en->size);
        return NULL;
    }
    *n = en->size;
    return z->buf + en->data;
}

// ------------------------------------------------------------------ checkpoint

int torch_is_checkpoint_path(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    return !strcmp(dot, ".bin") || !strcmp(dot, ".pt") || !strcmp(dot, ".pth") || !strcmp(dot, ".ckpt");
}

// A small record (data.pkl, byteorder, version) with its CRC checked into *d, *n.
// Returns 1 found, 0 absent, -1 error (set).
static int record(const TZip *z, const char *prefix, const char *name, const uint8_t **d, uint64_t *n) {
    char full[512];
    snprintf(full, sizeof full, "%s/%s", prefix, name);
    int i = tzip_find(z, full);
    if (i < 0) return 0;
    if (!(*d = tzip_data(z, i, n))) return -1;
    if (crc32_bytes(*d, *n) != z->e[i].crc) {
        char nm[160];
        a2f_set_error("%s: record '%s' fails its CRC check (corrupt file)", z->what, esc(nm, sizeof nm, full));
        return -1;
    }
    return 1;
}

static _Thread_local const StTensor *t_sort;
static int cmp_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}
static int cmp_name(const void *a, const void *b) { return strcmp(t_sort[*(const int *)a].name, t_sort[*(const int *)b].name); }

// Fills st from the parsed pickle and the storages. Returns 0 / -1.
static int assemble(SafeTensors *st, const TZip *z, const char *prefix, const TPklResult *r) {
    size_t pool_n = 0;
    int ndims = 0;
    for (int k = 0; k < r->count; k++) {
        pool_n += strlen(r->tensors[k].name) + 1;
        ndims += r->tensors[k].ndim;
    }
    st->count = r->count;
    st->tensors = xcalloc((size_t)r->count + 1, sizeof(StTensor));
    st->by_name = xcalloc((size_t)r->count + 1, sizeof(int));
    st->pool = xmalloc(pool_n + 1);
    st->dims = xcalloc((size_t)ndims + 1, sizeof(int64_t));
    size_t pn = 0;
    int dn = 0;
    for (int k = 0; k < r->count; k++) {
        const TPklTensor *t = &r->tensors[k];
        char full[400];  // prefix < 256, key <= 64
        snprintf(full, sizeof full, "%s/data/%s", prefix, t->storage_key);
        int i = tzip_find(z, full);
        char k_[160], n_[160];
        if (i < 0) {
            a2f_set_error("%s: storage record 'data/%s' of tensor '%s' is missing", z->what,
                          esc(k_, sizeof k_, t->storage_key), esc(n_, sizeof n_, t->name));
            return -1;
        }
        uint64_t n;
        const uint8_t *d = tzip_data(z, i, &n);
        if (!d) return -1;
        uint64_t es = (uint64_t)st_dtype_bits(t->dtype) / 8;
        if (n != t->storage_numel * es) {
            a2f_set_error("%s: storage 'data/%s' has %llu bytes but the pickle says %llu (%llu x %s) (tensor '%s')",
                          z->what, esc(k_, sizeof k_, t->storage_key), (unsigned long long)n, (unsigned long long)(t->storage_numel * es),
                          (unsigned long long)t->storage_numel, st_dtype_name(t->dtype), esc(n_, sizeof n_, t->name));
            return -1;
        }
        StTensor *o = &st->tensors[k];
        size_t nl = strlen(t->name) + 1;
        memcpy(st->pool + pn, t->name, nl);
        o->name = st->pool + pn;
        pn += nl;
        memcpy(st->dims + dn, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        o->shape = st->dims + dn;
        dn += t->ndim;
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        o->numel = t->numel;
        o->nbytes = t->numel * es;
        o->offset = (uint64_t)(d - z->buf) + t->offset * es;
        o->data = z->buf + o->offset;
    }
    qsort(st->tensors, (size_t)st->count, sizeof(StTensor), cmp_offset);
    for (int k = 0; k < st->count; k++) st->by_name[k] = k;
    t_sort = st->tensors;
    qsort(st->by_name, (size_t)st->count, sizeof(int), cmp_name);
    return 0;
}

int torch_open_memory(SafeTensors *st, const char *name, const void *buf, size_t len) {
    memset(st, 0, sizeof *st);
    TZip z;
    if (tzip_open(&z, name, buf, len)) return -1;
    TPklResult r = {0};
    int rc = -1;
    char prefix[256], what[600];
    uint64_t n;
    const uint8_t *d;
    if (z.count == 0) {
        a2f_set_error("%s: empty zip archive: not a torch.save checkpoint", name);
        goto done;
    }
    const char *slash = strchr(z.e[0].name, '/');
    if (!slash || slash == z.e[0].name || slash - z.e[0].name >= (long)sizeof prefix) {
        a2f_set_error("%s: first zip entry is not in a folder: not a torch.save checkpoint", name);
        goto done;
    }
    snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - z.e[0].name), z.e[0].name);
    char cp[300];
    snprintf(cp, sizeof cp, "%s/constants.pkl", prefix);
    if (tzip_find(&z, cp) >= 0) {
        a2f_set_error("%s: a TorchScript archive (torch.jit.save), not a torch.save checkpoint", name);
        goto done;
    }
    int got = record(&z, prefix, "byteorder", &d, &n);  // absent before torch 2.1: little endian
    if (got < 0) goto done;
    if (got && !(n == 6 && memcmp(d, "little", 6) == 0)) {
        char bo[20];
        snprintf(bo, sizeof bo, "%.*s", (int)(n < 16 ? n : 16), (const char *)d);
        a2f_set_error("%s: byteorder is '%s'; only little-endian checkpoints are supported", name, esc(bo, sizeof bo, bo));
        goto done;
    }
    if ((got = record(&z, prefix, "version", &d, &n)) == 0) got = record(&z, prefix, ".data/version", &d, &n);
    if (got < 0) goto done;
    if (got) {
        int v = 0, k = 0;
        while (k < (int)n && k < 8 && d[k] >= '0' && d[k] <= '9') v = v * 10 + (d[k++] - '0');
        if (k == 0 || v < 1 || v > 6) {
            char vs[12];
            snprintf(vs, sizeof vs, "%.*s", (int)(n < 8 ? n : 8), (const char *)d);
            a2f_set_error("%s: unsupported archive version '%s' (want 1..6)", name, esc(vs, sizeof vs, vs));
            goto done;
        }
    }
    if ((got = record(&z, prefix, "data.pkl", &d, &n)) <= 0) {
        char pf[160];
        if (got == 0) a2f_set_error("%s: no record '%s/data.pkl': not a torch.save checkpoint", name, esc(pf, sizeof pf, prefix));
        goto done;
    }
    snprintf(what, sizeof what, "%s: data.pkl", name);
    if (tpkl_parse(d, n, what, &r)) goto done;
    if (r.count == 0) {
        a2f_set_error("%s: the checkpoint holds no tensors", name);
        goto done;
    }
    st->name = xmalloc(strlen(name) + 1);
    strcpy(st->name, name);
    st->buf = buf;
    st->len = len;
    st->data_len = len;
    if (assemble(st, &z, prefix, &r) == 0) rc = 0;
done:
    if (rc) {
        char *keep = st->name;
        st->name = NULL;
        free(st->tensors);
        free(st->by_name);
        free(st->pool);
        free(st->dims);
        free(keep);
        memset(st, 0, sizeof *st);
    }
    tpkl_free(&r);
    tzip_close(&z);
    return rc;
}

int torch_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    MappedFile m;
    if (map_file(&m, path)) return -1;
    if (torch_open_memory(st, path, m.data, m.len)) {
        unmap_file(&m);
        return -1;
    }
    st->mapped = m.mapped;
    return 0;
}
