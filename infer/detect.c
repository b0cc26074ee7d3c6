// detect.c: letterbox + blob + SCRFD + decode + NMS, insightface's detector
// (see detect.h).
#include "detect.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "resize.h"

// ------------------------------------------------------------------ decode

typedef struct {
    Face f;
    int idx;  // candidate index in level-concatenated row order (tie-break)
} Cand;

// Score descending; equal scores: higher index first (argsort()[::-1]).
static int cand_cmp(const void *pa, const void *pb) {
    const Cand *a = pa, *b = pb;
    if (a->f.score != b->f.score) return a->f.score > b->f.score ? -1 : 1;
    return (a->idx < b->idx) - (a->idx > b->idx);
}

int scrfd_decode(const float *const heads[9], int det_w, int det_h, int anchors, double det_scale,
                 float score_thresh, float nms_thresh, Face *out, int max_faces, int *n) {
    *n = 0;
    if (anchors < 1 || det_w < 32 || det_h < 32 || !(det_scale > 0) || max_faces < 0) {
        a2f_set_error("scrfd_decode: bad arguments (det %dx%d, %d anchors, det_scale %g, max_faces %d)", det_w, det_h,
                      anchors, det_scale, max_faces);
        return -1;
    }
    const float ds = (float)det_scale;  // numpy: float32 array / Python float -> float32 arithmetic
    size_t ncand = 0, cap = 0;
    for (int l = 0; l < SCRFD_LEVELS; l++) {
        const int s = SCRFD_STRIDES[l];
        const size_t rows = (size_t)(det_h / s) * (det_w / s) * anchors;
        for (size_t k = 0; k < rows; k++) cap += heads[l][k] >= score_thresh;
    }
    Cand *cd = xmalloc(sizeof(Cand) * (cap ? cap : 1));
    int base = 0;
    for (int l = 0; l < SCRFD_LEVELS; l++) {
        const int s = SCRFD_STRIDES[l], Ws = det_w / s, Hs = det_h / s;
        const float sf = (float)s;
        const float *sc = heads[l], *bb = heads[3 + l], *kp = heads[6 + l];
        const size_t rows = (size_t)Hs * Ws * anchors;
        for (size_t k = 0; k < rows; k++) {
            if (!(sc[k] >= score_thresh)) continue;
            const size_t pos = k / anchors;
            const float cx = (float)((int)(pos % Ws) * s), cy = (float)((int)(pos / Ws) * s);
            Cand *c = &cd[ncand++];
            const float *d = bb + k * 4, *q = kp + k * 10;
            c->f.x1 = (cx - d[0] * sf) / ds;
            c->f.y1 = (cy - d[1] * sf) / ds;
            c->f.x2 = (cx + d[2] * sf) / ds;
            c->f.y2 = (cy + d[3] * sf) / ds;
            c->f.score = sc[k];
            for (int j = 0; j < 10; j++) c->f.kps[j] = ((j % 2 ? cy : cx) + q[j] * sf) / ds;
            c->idx = base + (int)k;
        }
        base += (int)rows;
    }
    qsort(cd, ncand, sizeof(Cand), cand_cmp);
    // greedy NMS (insightface RetinaFace.nms, float32)
    char *dead = xcalloc(ncand ? ncand : 1, 1);
    float *area = xmalloc(sizeof(float) * (ncand ? ncand : 1));
    for (size_t i = 0; i < ncand; i++)
        area[i] = (cd[i].f.x2 - cd[i].f.x1 + 1.0f) * (cd[i].f.y2 - cd[i].f.y1 + 1.0f);
    int kept = 0;
    for (size_t i = 0; i < ncand; i++) {
        if (dead[i]) continue;
        if (kept < max_faces) out[kept] = cd[i].f;
        kept++;
        const Face *a = &cd[i].f;
        for (size_t j = i + 1; j < ncand; j++) {
            if (dead[j]) continue;
            const Face *b = &cd[j].f;
            const float xx1 = a->x1 > b->x1 ? a->x1 : b->x1, yy1 = a->y1 > b->y1 ? a->y1 : b->y1;
            const float xx2 = a->x2 < b->x2 ? a->x2 : b->x2, yy2 = a->y2 < b->y2 ? a->y2 : b->y2;
            float w = xx2 - xx1 + 1.0f, h = yy2 - yy1 + 1.0f;
            w = w > 0.0f ? w : 0.0f, h = h > 0.0f ? h : 0.0f;
            const float inter = w * h, ovr = inter / (area[i] + area[j] - inter);
            if (!(ovr <= nms_thresh)) dead[j] = 1;
        }
    }
    *n = kept < max_faces ? kept : max_faces;
    free(cd), free(dead), free(area);
    return 0;
}

int face_pick_largest(const Face *f, int n) {
    int best = -1;
    float ba = 0.0f;
    for (int i = 0; i < n; i++) {
        const float a = (f[i].x2 - f[i].x1) * (f[i].y2 - f[i].y1);
        if (best < 0 || a >= ba) best = i, ba = a;
    }
    return best;
}

// ------------------------------------------------------------------ detect

static size_t blk(size_t bytes) { return (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

size_t face_detect_act_bytes(const Scrfd *m, int det_w, int det_h, DType dt) {
    const size_t e = dtype_size(dt);
    size_t b = ARENA_ALIGN + scrfd_act_bytes(m, 1, det_h, det_w, dt) + blk((size_t)det_w * det_h * 3 * e);
    static const int per_row[3] = {1, 4, 10};
    for (int k = 0; k < 9; k++) b += blk(scrfd_rows(m, k % 3, det_h, det_w) * per_row[k / 3] * e);
    return b;
}

int face_detect_ex(const Ctx *c, const Weights *W, const Scrfd *m, const uint8_t *rgb, int H, int Wd, int det_w,
                   int det_h, float score_thresh, float nms_thresh, Face *out, int max_faces, int *n) {
    *n = 0;
    if (!rgb || !out || max_faces < 0) {
        a2f_set_error("face_detect: no image or no output array");
        return -1;
    }
    if (det_w < 32 || det_h < 32 || det_w % 32 || det_h % 32) {
        a2f_set_error("face_detect: det size %dx%d must be positive multiples of 32", det_w, det_h);
        return -1;
    }
    const size_t npx = (size_t)det_w * det_h, e = dtype_size(c->dt);
    uint8_t *img = xmalloc(npx * 3);
    double det_scale = 0;
    if (letterbox_u8(img, det_w, det_h, rgb, H, Wd, &det_scale) != 0) {
        free(img);
        return -1;
    }
    // blob: RGB (v - 127.5) / 128, exact in float (the scale is a power of 2)
    float *blob = xmalloc(npx * 3 * sizeof(float));
    for (size_t i = 0; i < npx * 3; i++) blob[i] = ((float)img[i] - 127.5f) * 0.0078125f;
    free(img);
    static const int per_row[3] = {1, 4, 10};
    size_t rows[9];
    float *host[9] = {NULL};
    void *dev[9] = {NULL}, *x = NULL;
    const size_t mark = arena_mark(c->act);
    int rc = -1;
    void *conv = e == sizeof(float) ? NULL : xmalloc(npx * 3 * e);
    if (!(x = nn_push(c, npx * 3))) goto done;
    if (conv) convert_dtype(conv, c->dt, blob, DT_F32, npx * 3);
    int st = c->be->upload(x, conv ? conv : blob, npx * 3 * e);
    if (st != 0) {
        a2f_set_error("face_detect: upload (%s backend): %s", c->be->name, c->be->status_str(st));
        goto done;
    }
    for (int k = 0; k < 9; k++) {
        rows[k] = scrfd_rows(m, k % 3, det_h, det_w) * per_row[k / 3];
        if (!(dev[k] = nn_push(c, rows[k]))) goto done;
    }
    if (scrfd_f(c, W, m, dev, x, 1, det_h, det_w) != 0) goto done;
    if ((st = c->be->sync()) != 0) {
        a2f_set_error("face_detect: %s backend: %s", c->be->name, c->be->status_str(st));
        goto done;
    }
    for (int k = 0; k < 9; k++) {
        host[k] = xmalloc(rows[k] * sizeof(float));
        void *tmp = e == sizeof(float) ? (void *)host[k] : xmalloc(rows[k] * e);
        st = c->be->download(tmp, dev[k], rows[k] * e);
        if (tmp != host[k]) {
            if (st == 0) convert_dtype(host[k], DT_F32, tmp, c->dt, rows[k]);
            free(tmp);
        }
        if (st != 0) {
            a2f_set_error("face_detect: download (%s backend): %s", c->be->name, c->be->status_str(st));
            goto done;
        }
    }
    rc = scrfd_decode((const float *const *)host, det_w, det_h, m->cfg.anchors, det_scale, score_thresh, nms_thresh,
                      out, max_faces, n);
done:
    arena_reset(c->act, mark);
    for (int k = 0; k < 9; k++) free(host[k]);
    free(blob), free(conv);
    return rc;
}

int face_detect(const Ctx *c, const Weights *W, const Scrfd *m, const uint8_t *rgb, int H, int Wd,
                float score_thresh, float nms_thresh, Face *out, int max_faces, int *n) {
    return face_detect_ex(c, W, m, rgb, H, Wd, FACE_DET_SIZE, FACE_DET_SIZE, score_thresh, nms_thresh, out,
                          max_faces, n);
}
