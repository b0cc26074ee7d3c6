// embed.c: photo / crop / file -> L2-normalised 512-d ID vector (see embed.h).
#include "embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/tensor.h"
#include "../nn/iresnet.h"
#include "../nn/models.h"
#include "../nn/safetensors.h"
#include "align.h"
#include "npy.h"

#define REC_SIZE ALIGN_ARCFACE_SIZE        // 112
#define REC_ACT_BYTES ((size_t)256 << 20)  // IResNet-100 inference at 112x112, batch 1: well under this

static const ModelDef *rec_def(const IdEmbedder *e) {
    return (const ModelDef *)e->rec_def;
}

// Re-prefixes the current error with NAME (one line).
static int err_prefix(const char *name) {
    char m[A2F_ERR_MAX];
    snprintf(m, sizeof m, "%s", a2f_last_error());
    a2f_set_error("%s: %s", name, m);
    return -1;
}

static ModelArg crop_arg(void) {
    ModelArg a;
    memset(&a, 0, sizeof a);
    a.ndim = 4;
    a.shape[0] = 1, a.shape[1] = 3, a.shape[2] = REC_SIZE, a.shape[3] = REC_SIZE;
    a.numel = (size_t)3 * REC_SIZE * REC_SIZE;
    return a;
}

void embedder_close(IdEmbedder *e) {
    if (!e) return;
    if (e->rec) rec_def(e)->free(e->rec);
    if (e->has_det) {
        weights_free(&e->det_w);
        params_free(&e->det_w.t);
    }
    if (e->ctx.act) nn_ctx_free(&e->ctx);
    memset(e, 0, sizeof *e);
}

int embedder_open(IdEmbedder *e, const char *arcface, const char *detector, const Backend *be, DType dt) {
    memset(e, 0, sizeof *e);
    e->be = be ? be : cpu_backend();
    e->dt = dt;
    e->det_thresh = 0.5f, e->nms_thresh = 0.4f;
    const ModelDef *d = models_find("iresnet");
    CHECK(d);
    e->rec_def = d;
    if (d->load(&e->rec, arcface, e->be, dt, 0)) {
        char m[A2F_ERR_MAX];
        snprintf(m, sizeof m, "%s", a2f_last_error());
        embedder_close(e);
        a2f_set_error("%s", m);
        return -1;
    }
    ModelArg a = crop_arg();
    int nd;
    int64_t os[MODEL_MAX_DIMS];
    if (d->check(e->rec, &a, &nd, os)) {
        err_prefix(arcface);
        embedder_close(e);
        return -1;
    }
    if (nd != 2 || os[1] != ID_DIM) {
        a2f_set_error("%s: the recognizer gives %lld-d embeddings (Arc2Face needs %d)", arcface,
                      (long long)(nd == 2 ? os[1] : -1), ID_DIM);
        embedder_close(e);
        return -1;
    }
    size_t act = REC_ACT_BYTES;
    if (detector) {
        if (scrfd_load(&e->det, &e->det_w, detector, e->be, dt)) {
            char m[A2F_ERR_MAX];
            snprintf(m, sizeof m, "%s", a2f_last_error());
            embedder_close(e);
            a2f_set_error("%s", m);
            return -1;
        }
        e->has_det = 1;
        size_t db = face_detect_act_bytes(&e->det, FACE_DET_SIZE, FACE_DET_SIZE, dt);
        if (db > act) act = db;
    }
    if (nn_ctx_init(&e->ctx, e->be, dt, act, 4096)) {
        embedder_close(e);
        return -1;
    }
    return 0;
}

int embed_crop(IdEmbedder *e, const uint8_t *crop, float emb[ID_DIM]) {
    const size_t npx = (size_t)REC_SIZE * REC_SIZE, nin = npx * 3;
    const Ctx *c = &e->ctx;
    const size_t mark = arena_mark(c->act);
    int rc = -1;
    float *host = xmalloc(sizeof(float) * nin);
    void *tmp = NULL;
    iresnet_preprocess(host, crop, npx, 0);  // RGB crop in, RGB (v - 127.5) / 127.5 out
    void *x = nn_push(c, nin), *y = nn_push(c, ID_DIM);
    if (!x || !y) goto done;
    if (e->dt == DT_F32) {
        if (e->be->upload(x, host, nin * sizeof(float))) goto done;
    } else {
        tmp = xmalloc(nin * dtype_size(e->dt));
        convert_dtype(tmp, e->dt, host, DT_F32, nin);
        if (e->be->upload(x, tmp, nin * dtype_size(e->dt))) goto done;
    }
    ModelArg a = crop_arg();
    int nd;
    int64_t os[MODEL_MAX_DIMS];
    void *in[1] = {x};
    if (rec_def(e)->check(e->rec, &a, &nd, os) || rec_def(e)->forward(e->rec, c, y, in, &a)) goto done;
    if (e->dt == DT_F32) {
        if (e->be->download(emb, y, ID_DIM * sizeof(float))) goto done;
    } else {
        uint8_t buf[ID_DIM * 8];
        if (e->be->download(buf, y, ID_DIM * dtype_size(e->dt))) goto done;
        convert_dtype(emb, DT_F32, buf, e->dt, ID_DIM);
    }
    rc = 0;
    for (int i = 0; i < ID_DIM; i++)
        if (!isfinite(emb[i])) {
            a2f_set_error("recognizer output is not finite (component %d)", i);
            rc = -1;
            break;
        }
done:
    arena_reset(c->act, mark);
    free(host);
    free(tmp);
    return rc;
}

int embed_detect(IdEmbedder *e, const Image *img, const char *name, Face *faces, int max_faces, int *n) {
    *n = 0;
    if (!e->has_det) {
        a2f_set_error("%s: a photo needs the face detector (--detector), or pass an aligned 112x112 crop (--crop)",
                      name);
        return -1;
    }
    if (face_detect(&e->ctx, &e->det_w, &e->det, img->px, img->h, img->w, e->det_thresh, e->nms_thresh, faces,
                    max_faces, n))
        return err_prefix(name);
    return 0;
}

int embed_face(IdEmbedder *e, const Image *img, const char *name, const Face *faces, int n, int face_index,
               float emb[ID_DIM], uint8_t *crop_out) {
    if (n == 0) {
        a2f_set_error("%s: no face found (SCRFD at %dx%d, score threshold %.2f)", name, FACE_DET_SIZE, FACE_DET_SIZE,
                      e->det_thresh);
        return -1;
    }
    int k = face_index < 0 ? face_pick_largest(faces, n) : face_index;
    if (k >= n) {
        a2f_set_error("%s: face %d requested but only %d face%s found (faces are numbered from 0 in score order)", name,
                      face_index, n, n == 1 ? "" : "s");
        return -1;
    }
    uint8_t *crop = xmalloc((size_t)REC_SIZE * REC_SIZE * 3);
    int rc = -1;
    if (align_norm_crop(img->px, img->h, img->w, faces[k].kps, REC_SIZE, crop, NULL) || embed_crop(e, crop, emb)) {
        err_prefix(name);
    } else {
        if (crop_out) memcpy(crop_out, crop, (size_t)REC_SIZE * REC_SIZE * 3);
        rc = k;
    }
    free(crop);
    return rc;
}

int embed_photo(IdEmbedder *e, const Image *img, const char *name, int face_index, float emb[ID_DIM], uint8_t *crop,
                Face *chosen, int *nfaces) {
    Face *faces = xmalloc(sizeof(Face) * EMBED_MAX_FACES);
    int n = 0, rc = -1;
    if (embed_detect(e, img, name, faces, EMBED_MAX_FACES, &n) == 0) {
        if (nfaces) *nfaces = n;
        int k = embed_face(e, img, name, faces, n, face_index, emb, crop);
        if (k >= 0) {
            if (chosen) *chosen = faces[k];
            rc = 0;
        }
    }
    free(faces);
    return rc;
}

// ------------------------------------------------------------------ vector maths

int embed_normalize(float *v, int n, const char *what) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s)) {
        a2f_set_error("%s: the ID vector is %s (cannot L2-normalise)", what, s == 0 ? "all zero" : "not finite");
        return -1;
    }
    double inv = 1.0 / sqrt(s);
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
    return 0;
}

int embed_average(const float *v, int n, float out[ID_DIM]) {
    if (n < 1) {
        a2f_set_error("embed_average: no vectors");
        return -1;
    }
    double acc[ID_DIM] = {0};
    float tmp[ID_DIM];
    for (int k = 0; k < n; k++) {
        memcpy(tmp, v + (size_t)k * ID_DIM, sizeof tmp);
        char what[32];
        snprintf(what, sizeof what, "vector %d", k);
        if (embed_normalize(tmp, ID_DIM, what)) return -1;
        for (int i = 0; i < ID_DIM; i++) acc[i] += tmp[i];
    }
    for (int i = 0; i < ID_DIM; i++) out[i] = (float)(acc[i] / n);
    return embed_normalize(out, ID_DIM, "the mean of the ID vectors");
}

double embed_cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

// ------------------------------------------------------------------ vector files

int embed_is_vector_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t h[9];
    size_t got = fread(h, 1, sizeof h, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (got >= 6 && h[0] == 0x93 && !memcmp(h + 1, "NUMPY", 5)) return 1;
    if (got == 9 && h[8] == '{') {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)h[i] << (8 * i);
        return size > 0 && hl + 8 <= (uint64_t)size;
    }
    return 0;
}

static int shape_ok(int ndim, const int64_t *shape) {
    return (ndim == 1 && shape[0] == ID_DIM) || (ndim == 2 && shape[0] == 1 && shape[1] == ID_DIM);
}

int embed_read_vector(const char *path, float emb[ID_DIM]) {
    FILE *f = fopen(path, "rb");
    uint8_t m[6] = {0};
    if (!f) {
        a2f_set_error("%s: cannot open", path);
        return -1;
    }
    size_t got = fread(m, 1, 6, f);
    fclose(f);
    if (got == 6 && m[0] == 0x93 && !memcmp(m + 1, "NUMPY", 5)) {
        float *d;
        NpyInfo info;
        if (npy_read(path, &d, &info)) return -1;
        if (!shape_ok(info.ndim, info.shape)) {
            a2f_set_error("%s: .npy embedding has %d dimensions / %zu values (want shape (512,) or (1, 512))", path,
                          info.ndim, info.numel);
            free(d);
            return -1;
        }
        memcpy(emb, d, sizeof(float) * ID_DIM);
        free(d);
        return 0;
    }
    SafeTensors st;
    if (st_open(&st, path)) return -1;
    int idx = st_count(&st) == 1 ? 0 : st_find(&st, "embedding");
    if (idx < 0) idx = st_find(&st, "id");
    int rc = -1;
    if (idx < 0) {
        a2f_set_error("%s: %d tensors and none called 'embedding' or 'id' (an embedding file holds one [512] vector)",
                      path, st_count(&st));
        goto done;
    }
    const StTensor *t = st_tensor(&st, idx);
    if (!shape_ok(t->ndim, t->shape)) {
        a2f_set_error("%s: tensor '%s' has %llu values in %d dimensions (want [512] or [1, 512])", path, t->name,
                      (unsigned long long)t->numel, t->ndim);
        goto done;
    }
    if (t->dtype == ST_F64) {
        for (int i = 0; i < ID_DIM; i++) {
            double v;
            memcpy(&v, (const uint8_t *)t->data + 8 * i, 8);
            emb[i] = (float)v;
        }
        rc = 0;
    } else {
        rc = st_load_f32(&st, t->name, emb, 0, NULL);  // F32 / F16 / BF16; others -> error naming the file
    }
done:
    st_close(&st);
    return rc;
}

int embed_write_vector(const char *path, const float emb[ID_DIM]) {
    const int64_t shape[1] = {ID_DIM};
    size_t l = strlen(path);
    if (l >= 4 && !strcmp(path + l - 4, ".npy")) return npy_write_f32(path, emb, 1, shape);
    StWriter *w = st_writer_begin(path);
    if (!w) return -1;
    if (st_writer_metadata(w, "format", "arc2face-id") || st_writer_add(w, "embedding", ST_F32, 1, shape, emb)) {
        st_writer_abort(w);
        return -1;
    }
    return st_writer_finish(w);
}

// ------------------------------------------------------------------ sources

int embed_sources(IdEmbedder *e, const char *const *paths, int n, EmbedImageKind kind, int face_index,
                  float out[ID_DIM], FILE *log) {
    if (n < 1) {
        a2f_set_error("no identity source given");
        return -1;
    }
    float *all = xmalloc(sizeof(float) * ID_DIM * (size_t)n);
    int rc = -1;
    for (int k = 0; k < n; k++) {
        const char *p = paths[k];
        float *v = all + (size_t)k * ID_DIM;
        if (embed_is_vector_file(p)) {
            if (embed_read_vector(p, v)) goto done;
            if (log) fprintf(log, "%s: embedding file\n", p);
        } else {
            Image img;
            if (image_load(&img, p)) goto done;
            int bad = 0;
            if (!e) {
                a2f_set_error("%s: an image needs the recognizer (--arcface)", p);
                bad = 1;
            } else if (kind == EMBED_CROP) {
                if (img.w != REC_SIZE || img.h != REC_SIZE) {
                    a2f_set_error(
                        "%s: an aligned crop must be %dx%d, this image is %dx%d (drop --crop to detect and "
                        "align a face)",
                        p, REC_SIZE, REC_SIZE, img.w, img.h);
                    bad = 1;
                } else if (embed_crop(e, img.px, v)) {
                    err_prefix(p);
                    bad = 1;
                } else if (log) {
                    fprintf(log, "%s: aligned %dx%d crop\n", p, REC_SIZE, REC_SIZE);
                }
            } else {
                Face f;
                int nf = 0;
                if (embed_photo(e, &img, p, face_index, v, NULL, &f, &nf))
                    bad = 1;
                else if (log)
                    fprintf(log, "%s: %d face%s, using %s: box (%.1f, %.1f)-(%.1f, %.1f), score %.3f\n", p, nf,
                            nf == 1 ? "" : "s", face_index < 0 ? "the largest" : "the one chosen", f.x1, f.y1, f.x2,
                            f.y2, f.score);
            }
            image_free(&img);
            if (bad) goto done;
        }
        if (embed_normalize(v, ID_DIM, p)) goto done;
    }
    rc = embed_average(all, n, out);
done:
    free(all);
    return rc;
}
