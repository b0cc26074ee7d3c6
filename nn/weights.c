// weights.c: a model's flat weight buffers, loading from and saving to
// safetensors with upstream names and PyTorch layouts (see nn.h).
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/rng.h"
#include "nn.h"
#include "safetensors.h"
#include "torch_zip.h"

int weights_alloc(Weights *W, const Backend *be, DType dt, int train) {
    size_t n = W->t.total ? W->t.total : 1;
    W->be = be;
    W->dt = dt;
    W->w = W->master = NULL;
    W->grad = NULL;
    if (!(W->w = be->alloc(n * dtype_size(dt)))) return -1;
    if (train) {
        if (dt == DT_F32) W->master = W->w;
        else if (!(W->master = be->alloc(n * sizeof(float)))) return -1;
        if (!(W->grad = be->alloc(n * sizeof(float)))) return -1;
        if (be->memset(W->grad, 0, n * sizeof(float)) != 0) return -1;
    }
    return 0;
}

void weights_free(Weights *W) {
    if (!W->be) return;
    if (W->master && W->master != W->w) W->be->free(W->master);
    W->be->free(W->w);
    W->be->free(W->grad);
    W->w = W->master = W->grad = NULL;
}

void *wptr(const Weights *W, int i) { return (char *)W->w + W->t.entries[i].offset * dtype_size(W->dt); }

float *gptr(const Weights *W, int i) {
    if (!W->grad || !W->t.entries[i].trainable) return NULL;
    return W->grad + W->t.entries[i].offset;
}

int weights_upload(Weights *W, const float *host) {
    size_t n = W->t.total;
    if (W->dt == DT_F32) {
        if (W->be->upload(W->w, host, n * sizeof(float)) != 0) return -1;
    } else {
        void *tmp = xmalloc(n * dtype_size(W->dt) + 1);
        convert_dtype(tmp, W->dt, host, DT_F32, n);
        int rc = W->be->upload(W->w, tmp, n * dtype_size(W->dt));
        free(tmp);
        if (rc != 0) return -1;
    }
    if (W->master && W->master != W->w && W->be->upload(W->master, host, n * sizeof(float)) != 0) return -1;
    return 0;
}

int weights_download(const Weights *W, float *host) {
    size_t n = W->t.total;
    if (W->master) return W->be->download(host, W->master, n * sizeof(float));
    if (W->dt == DT_F32) return W->be->download(host, W->w, n * sizeof(float));
    void *tmp = xmalloc(n * dtype_size(W->dt) + 1);
    int rc = W->be->download(tmp, W->w, n * dtype_size(W->dt));
    if (rc == 0) convert_dtype(host, DT_F32, tmp, W->dt, n);
    free(tmp);
    return rc;
}

// Our [O, KH, KW, I] <-> PyTorch [O, I, KH, KW]; `to_file` picks the direction.
static void conv_relayout(float *dst, const float *src, const ParamEntry *e, int to_file) {
    int64_t O = e->shape[0], KH = e->shape[1], KW = e->shape[2], I = e->shape[3];
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t y = 0; y < KH; y++)
                for (int64_t x = 0; x < KW; x++) {
                    size_t ours = (size_t)(((o * KH + y) * KW + x) * I + i);
                    size_t file = (size_t)(((o * I + i) * KH + y) * KW + x);
                    if (to_file) dst[file] = src[ours];
                    else dst[ours] = src[file];
                }
}

static int shape_eq(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

// File shape accepted for entry e: its PyTorch shape, or [O, I, 1, 1] for a [O, I] entry.
static int shape_ok(const ParamEntry *e, const StTensor *t) {
    int64_t fs[TENSOR_MAX_DIMS];
    params_file_shape(e, fs);
    if (shape_eq(e->ndim, fs, t->ndim, t->shape)) return 1;
    return e->ndim == 2 && t->ndim == 4 && t->shape[0] == fs[0] && t->shape[1] == fs[1] && t->shape[2] == 1 &&
           t->shape[3] == 1;
}

static void shape_str(char *buf, size_t n, int nd, const int64_t *s) {
    Tensor t = tensor_make(NULL, DT_F32, DEV_CPU, nd, s);
    tensor_shape_str(&t, buf, n);
}

// Appends ", name" to a bounded list, counting what does not fit.
static void list_add(char *buf, size_t cap, int *count, const char *item) {
    (*count)++;
    size_t k = strlen(buf);
    if (*count <= 4 && k + strlen(item) + 3 < cap) snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", item);
}

int weights_load(Weights *W, const char *const *files, int nfiles, KeyMap map) {
    const ParamTable *T = &W->t;
    SafeTensors *st = xcalloc((size_t)(nfiles ? nfiles : 1), sizeof *st);
    int *src_file = xmalloc(sizeof(int) * (size_t)(T->count + 1));
    int *src_idx = xmalloc(sizeof(int) * (size_t)(T->count + 1));
    for (int i = 0; i < T->count; i++) src_file[i] = -1;
    char missing[512] = "", extra[512] = "", badshape[512] = "";
    int nmiss = 0, nextra = 0, nbad = 0, opened = 0, rc = -1;
    for (int f = 0; f < nfiles; f++, opened++)  // .bin/.pt/.pth/.ckpt: torch zip checkpoints, same view
        if ((torch_is_checkpoint_path(files[f]) ? torch_open(&st[f], files[f]) : st_open(&st[f], files[f])) != 0)
            goto done;
    for (int f = 0; f < nfiles; f++) {
        for (int j = 0; j < st_count(&st[f]); j++) {
            const StTensor *t = st_tensor(&st[f], j);
            char key[PARAM_NAME_MAX + 32];
            if (map) {
                if (!map(t->name, key, sizeof key)) continue;
            } else {
                snprintf(key, sizeof key, "%s", t->name);
            }
            int i = params_find(T, key);
            if (i < 0) {
                list_add(extra, sizeof extra, &nextra, t->name);
                continue;
            }
            if (src_file[i] >= 0) {
                a2f_set_error("%s: tensor '%s' is given twice (also in %s)", files[f], key, files[src_file[i]]);
                goto done;
            }
            if (!shape_ok(&T->entries[i], t)) {
                char a[96], b[96], item[400];
                int64_t fs[TENSOR_MAX_DIMS];
                params_file_shape(&T->entries[i], fs);
                shape_str(a, sizeof a, t->ndim, t->shape);
                shape_str(b, sizeof b, T->entries[i].ndim, fs);
                snprintf(item, sizeof item, "%s %s, want %s", t->name, a, b);
                list_add(badshape, sizeof badshape, &nbad, item);
            }
            src_file[i] = f;
            src_idx[i] = j;
        }
    }
    for (int i = 0; i < T->count; i++)
        if (src_file[i] < 0) list_add(missing, sizeof missing, &nmiss, T->entries[i].name);
    if (nmiss || nextra || nbad) {
        char msg[A2F_ERR_MAX] = "";
        size_t k = 0;
        if (nmiss) k += snprintf(msg + k, sizeof msg - k, "%d missing (%s%s)", nmiss, missing, nmiss > 4 ? ", ..." : "");
        if (nextra && k < sizeof msg)
            k += snprintf(msg + k, sizeof msg - k, "%s%d unexpected (%s%s)", k ? "; " : "", nextra, extra,
                          nextra > 4 ? ", ..." : "");
        if (nbad && k < sizeof msg)
            snprintf(msg + k, sizeof msg - k, "%s%d mis-shaped (%s%s)", k ? "; " : "", nbad, badshape,
                     nbad > 4 ? ", ..." : "");
        a2f_set_error("%s%s: %s", nfiles ? files[0] : "(no files)", nfiles > 1 ? " and others" : "", msg);
        goto done;
    }
    {
        float *host = xcalloc(T->total + 1, sizeof(float));  // alignment gaps stay zero
        float *tmp = NULL;
        size_t tmp_n = 0;
        for (int i = 0; i < T->count && rc == -1; i++) {
            const ParamEntry *e = &T->entries[i];
            const SafeTensors *s = &st[src_file[i]];
            const char *name = st_tensor(s, src_idx[i])->name;
            if (e->layout == PARAM_CONV) {
                if (tmp_n < e->numel) tmp = realloc(tmp, (tmp_n = e->numel) * sizeof(float));
                CHECK(tmp);
                if (st_load_f32(s, name, tmp, 0, NULL) != 0) break;
                conv_relayout(host + e->offset, tmp, e, 0);
            } else if (st_load_f32(s, name, host + e->offset, 0, NULL) != 0) {
                break;
            }
            if (i == T->count - 1) rc = 0;
        }
        if (T->count == 0) rc = 0;
        free(tmp);
        if (rc == 0) rc = weights_upload(W, host);
        free(host);
    }
done:
    for (int f = 0; f < opened; f++) st_close(&st[f]);
    free(st);
    free(src_file);
    free(src_idx);
    return rc;
}

int weights_save(const Weights *W, const char *path, DType file_dt) {
    const ParamTable *T = &W->t;
    float *host = xmalloc(T->total * sizeof(float) + 1);
    float *file = xmalloc(T->total * sizeof(float) + 1);
    void *packed = xmalloc(T->total * dtype_size(file_dt) + 1);
    int rc = weights_download(W, host);
    StWriter *wr = rc == 0 ? st_writer_begin(path) : NULL;
    if (!wr) rc = -1;
    for (int i = 0; i < T->count && rc == 0; i++) {
        const ParamEntry *e = &T->entries[i];
        if (e->layout == PARAM_CONV) conv_relayout(file + e->offset, host + e->offset, e, 1);
        else memcpy(file + e->offset, host + e->offset, e->numel * sizeof(float));
        char *dst = (char *)packed + e->offset * dtype_size(file_dt);
        convert_dtype(dst, file_dt, file + e->offset, DT_F32, e->numel);
        int64_t fs[TENSOR_MAX_DIMS];
        params_file_shape(e, fs);
        rc = st_writer_add(wr, e->name, st_dtype_from_dtype(file_dt), e->ndim, fs, dst);
    }
    if (rc == 0) rc = st_writer_metadata(wr, "format", "pt");
    if (wr) rc = rc == 0 ? st_writer_finish(wr) : (st_writer_abort(wr), -1);
    free(host);
    free(file);
    free(packed);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int weights_init_random(Weights *W, uint64_t seed, float std) {
    const ParamTable *T = &W->t;
    float *host = xcalloc(T->total + 1, sizeof(float));
    for (int i = 0; i < T->count; i++) {
        const ParamEntry *e = &T->entries[i];
        float *p = host + e->offset;
        if (ends_with(e->name, "running_var")) {
            for (size_t j = 0; j < e->numel; j++) p[j] = 1.0f;
        } else if (ends_with(e->name, "running_mean") || ends_with(e->name, "num_batches_tracked")) {
            // zeros
        } else if (e->ndim >= 2) {
            philox_fill_normal(p, e->numel, seed, e->offset, 0.0f, std);
        } else if (ends_with(e->name, "weight")) {
            for (size_t j = 0; j < e->numel; j++) p[j] = 1.0f;
        }
    }
    int rc = weights_upload(W, host);
    free(host);
    return rc;
}
