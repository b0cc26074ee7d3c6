// scrfd.c: SCRFD-10G-KPS network: config, parameter table, loading, forward
// (see scrfd.h).
#include "scrfd.h"

#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "safetensors.h"

const int SCRFD_STRIDES[SCRFD_LEVELS] = {8, 16, 32};
static const int STAGE_STRIDE[4] = {1, 2, 2, 2};

// ------------------------------------------------------------------ config

ScrfdConfig scrfd_config_10g(void) {
    ScrfdConfig c = {{28, 28, 56}, {3, 4, 2, 3}, {56, 88, 88, 224}, 56, 80, 3, 2};
    return c;
}

// Output channels (file shape [O, I, kh, kw]) of NAME, or -1 with an error.
static int64_t out_ch(const SafeTensors *st, const char *name, int64_t want_k) {
    int i = st_find(st, name);
    if (i < 0) {
        a2f_set_error("%s: not an SCRFD weights file: tensor '%s' missing (convert the ONNX with "
                      "tools/onnx2safetensors.py)", st->name, name);
        return -1;
    }
    const StTensor *t = st_tensor(st, i);
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[2] != want_k || t->shape[3] != want_k) {
        a2f_set_error("%s: tensor '%s' is not a %lldx%lld conv weight [O, I, k, k] (ndim %d)", st->name, name,
                      (long long)want_k, (long long)want_k, t->ndim);
        return -1;
    }
    return t->shape[0];
}

int scrfd_config_from_file(ScrfdConfig *cfg, const char *path) {
    SafeTensors st;
    if (st_open(&st, path) != 0) return -1;
    ScrfdConfig c;
    memset(&c, 0, sizeof c);
    char key[PARAM_NAME_MAX];
    int64_t v;
    int rc = -1;
    for (int k = 0; k < 3; k++) {
        snprintf(key, sizeof key, "backbone.stem.%d.weight", k);
        if ((v = out_ch(&st, key, 3)) < 0) goto done;
        c.stem[k] = (int)v;
    }
    for (int s = 0; s < 4; s++) {
        snprintf(key, sizeof key, "backbone.layer%d.0.conv1.weight", s + 1);
        if ((v = out_ch(&st, key, 3)) < 0) goto done;
        c.planes[s] = (int)v;
        for (c.blocks[s] = 0; c.blocks[s] <= SCRFD_MAX_BLOCKS; c.blocks[s]++) {
            snprintf(key, sizeof key, "backbone.layer%d.%d.conv1.weight", s + 1, c.blocks[s]);
            if (st_find(&st, key) < 0) break;
        }
    }
    if ((v = out_ch(&st, "neck.lateral.0.weight", 1)) < 0) goto done;
    c.neck = (int)v;
    if ((v = out_ch(&st, "head.stride8.tower.0.weight", 3)) < 0) goto done;
    c.feat = (int)v;
    for (c.tower = 0; c.tower <= SCRFD_MAX_TOWER; c.tower++) {
        snprintf(key, sizeof key, "head.stride8.tower.%d.weight", c.tower);
        if (st_find(&st, key) < 0) break;
    }
    if ((v = out_ch(&st, "head.stride8.cls.weight", 3)) < 0) goto done;
    c.anchors = (int)v;
    *cfg = c;
    rc = 0;
done:
    st_close(&st);
    return rc;
}

static int check_config(const ScrfdConfig *c) {
    int ok = c->neck > 0 && c->feat > 0 && c->tower >= 1 && c->tower <= SCRFD_MAX_TOWER && c->anchors >= 1, n = 0;
    for (int i = 0; i < 3; i++) ok = ok && c->stem[i] > 0;
    for (int i = 0; i < 4; i++) ok = ok && c->blocks[i] >= 1 && c->planes[i] > 0, n += c->blocks[i];
    if (!ok || n > SCRFD_MAX_BLOCKS) {
        a2f_set_error("scrfd: bad config (stem [%d, %d, %d], blocks [%d, %d, %d, %d] (at most %d), planes [%d, %d, "
                      "%d, %d], neck %d, feat %d, tower %d (1..%d), anchors %d)",
                      c->stem[0], c->stem[1], c->stem[2], c->blocks[0], c->blocks[1], c->blocks[2], c->blocks[3],
                      SCRFD_MAX_BLOCKS, c->planes[0], c->planes[1], c->planes[2], c->planes[3], c->neck, c->feat,
                      c->tower, SCRFD_MAX_TOWER, c->anchors);
        return -1;
    }
    return 0;
}

int scrfd_build(Scrfd *m, ParamTable *t, const ScrfdConfig *cfg) {
    memset(m, 0, sizeof *m);
    params_init(t);
    TRY(check_config(cfg));
    m->cfg = *cfg;
    char p[PARAM_NAME_MAX];
    int cin = 3;
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "backbone.stem.%d", k);
        conv2d_add(&m->stem[k], t, p, cin, cfg->stem[k], 3, k == 0 ? 2 : 1, 1, 1);
        cin = cfg->stem[k];
    }
    for (int s = 0; s < 4; s++) {
        m->stage_first[s] = m->nblocks;
        for (int i = 0; i < cfg->blocks[s]; i++) {
            ScrfdBlock *b = &m->blocks[m->nblocks++];
            b->stride = i == 0 ? STAGE_STRIDE[s] : 1;
            b->cin = cin, b->cout = cfg->planes[s];
            snprintf(p, sizeof p, "backbone.layer%d.%d.conv1", s + 1, i);
            conv2d_add(&b->conv1, t, p, cin, b->cout, 3, b->stride, 1, 1);
            snprintf(p, sizeof p, "backbone.layer%d.%d.conv2", s + 1, i);
            conv2d_add(&b->conv2, t, p, b->cout, b->cout, 3, 1, 1, 1);
            b->has_down = b->stride != 1 || cin != b->cout;
            if (b->has_down) {  // avg_down: the pool does the striding, the 1x1 conv has stride 1
                snprintf(p, sizeof p, "backbone.layer%d.%d.downsample", s + 1, i);
                conv2d_add(&b->down, t, p, cin, b->cout, 1, 1, 0, 1);
            }
            cin = b->cout;
        }
    }
    m->stage_first[4] = m->nblocks;
    const int n = cfg->neck;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "neck.lateral.%d", i);
        conv2d_add(&m->lateral[i], t, p, cfg->planes[i + 1], n, 1, 1, 0, 1);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "neck.fpn.%d", i);
        conv2d_add(&m->fpn[i], t, p, n, n, 3, 1, 1, 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "neck.down.%d", i);
        conv2d_add(&m->down[i], t, p, n, n, 3, 2, 1, 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "neck.pafpn.%d", i);
        conv2d_add(&m->pafpn[i], t, p, n, n, 3, 1, 1, 1);
    }
    const int A = cfg->anchors;
    for (int l = 0; l < SCRFD_LEVELS; l++) {
        int c = n;
        for (int j = 0; j < cfg->tower; j++) {
            snprintf(p, sizeof p, "head.stride%d.tower.%d", SCRFD_STRIDES[l], j);
            conv2d_add(&m->tower[l][j], t, p, c, cfg->feat, 3, 1, 1, 1);
            c = cfg->feat;
        }
        snprintf(p, sizeof p, "head.stride%d.cls", SCRFD_STRIDES[l]);
        conv2d_add(&m->cls[l], t, p, c, A, 3, 1, 1, 1);
        snprintf(p, sizeof p, "head.stride%d.reg", SCRFD_STRIDES[l]);
        conv2d_add(&m->reg[l], t, p, c, 4 * A, 3, 1, 1, 1);
        snprintf(p, sizeof p, "head.stride%d.kps", SCRFD_STRIDES[l]);
        conv2d_add(&m->kps[l], t, p, c, 10 * A, 3, 1, 1, 1);
    }
    return 0;
}

int scrfd_load(Scrfd *m, Weights *W, const char *path, const Backend *be, DType dt) {
    ScrfdConfig cfg;
    memset(W, 0, sizeof *W);
    TRY(scrfd_config_from_file(&cfg, path));
    if (scrfd_build(m, &W->t, &cfg) != 0) {
        a2f_set_error("%s: %s", path, a2f_last_error());
        params_free(&W->t);
        return -1;
    }
    const char *files[1] = {path};
    if (weights_alloc(W, be, dt, 0) != 0 || weights_load(W, files, 1, NULL) != 0) {
        weights_free(W);
        params_free(&W->t);
        return -1;
    }
    return 0;
}

size_t scrfd_rows(const Scrfd *m, int level, int H, int W) {
    const int s = SCRFD_STRIDES[level];
    return (size_t)(H / s) * (W / s) * m->cfg.anchors;
}

// ------------------------------------------------------------------ memory bound

// Bytes the arena takes for n elements of es bytes (blocks are 256-aligned).
static size_t blk(size_t n, size_t es) { return (n * es + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }
static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

// Mirrors scrfd_f's pushes (same order, same sizes).
size_t scrfd_act_bytes(const Scrfd *m, int B, int H, int W, DType dt) {
    const ScrfdConfig *c = &m->cfg;
    const size_t e = dtype_size(dt);
    const size_t px[6] = {(size_t)B * H * W, (size_t)B * (H / 2) * (W / 2), (size_t)B * (H / 4) * (W / 4),
                          (size_t)B * (H / 8) * (W / 8), (size_t)B * (H / 16) * (W / 16),
                          (size_t)B * (H / 32) * (W / 32)};
    // stage s output at px[2 + s]
    size_t keep = 0;  // C3, C4, C5
    for (int s = 1; s < 4; s++) keep += blk(px[2 + s] * c->planes[s], e);
    // stem
    size_t P = blk(px[2] * c->stem[2], e);
    size_t stem = P + blk(px[1] * c->stem[0], e) + blk(px[1] * c->stem[1], e) + blk(px[1] * c->stem[2], e) +
                  blk(px[2] * c->stem[2], 4);
    // stages: [P + Y0 for stages 0 and 1] + ping-pong T + block scratch
    size_t Y0 = blk(px[2] * c->planes[0], e), bb = stem;
    for (int s = 0; s < 4; s++) {
        size_t base = s <= 1 ? P + Y0 : 0, scratch = 0;
        for (int i = m->stage_first[s]; i < m->stage_first[s + 1]; i++) {
            const ScrfdBlock *b = &m->blocks[i];
            const size_t po = px[2 + s];  // block output pixels
            size_t k = blk(po * b->cout, e);
            if (b->has_down) k += (b->stride != 1 ? blk(po * b->cin, e) : 0) + blk(po * b->cout, e);
            scratch = maxz(scratch, k);
        }
        size_t T = c->blocks[s] > 1 ? blk(px[2 + s] * c->planes[s], e) : 0;
        bb = maxz(bb, base + T + scratch);
    }
    // neck + head
    const size_t n = c->neck;
    size_t L = blk(px[3] * n, e) + blk(px[4] * n, e) + blk(px[5] * n, e);  // L0..L2, then I0..I2
    size_t neck = 2 * L + blk(px[4] * n, e) + blk(px[5] * n, e);         // + P4, P5
    size_t trans = maxz(blk(px[3] * n, e), blk(px[4] * n, e));             // upsample / down temporaries
    size_t tower = 2 * blk(px[3] * c->feat, e);
    size_t head = maxz(L + trans, maxz(2 * L + trans, neck + tower));
    return ARENA_ALIGN + keep + maxz(bb, head);  // + the alignment of the first push
}

// ------------------------------------------------------------------ forward

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1

static int conv_relu(const Ctx *c, const Weights *W, const Conv2d *cv, void *y, const void *x, int B, int H, int Wd,
                     int relu) {
    TRY(conv2d_f(c, W, cv, y, x, B, H, Wd));
    if (relu) {
        Conv2dShape s = conv2d_shape(cv, B, H, Wd);
        OP(c, relu_fwd, y, y, (size_t)B * conv2d_out_h(&s) * conv2d_out_w(&s) * cv->cout);
    }
    return 0;
}

// y [B, h/stride, w/stride, cout] = relu(conv2(relu(conv1(x))) + shortcut(x)); y != x.
static int block_f(const Ctx *c, const Weights *W, const ScrfdBlock *b, void *y, const void *x, int B, int h, int w) {
    const size_t mark = arena_mark(c->act);
    const int ho = h / b->stride, wo = w / b->stride;
    const size_t n = (size_t)B * ho * wo * b->cout;
    void *t;
    PUSH(t, n);
    TRY(conv_relu(c, W, &b->conv1, t, x, B, h, w, 1));
    TRY(conv_relu(c, W, &b->conv2, y, t, B, ho, wo, 0));
    if (b->has_down) {
        const void *src = x;
        if (b->stride != 1) {  // AvgPool2d(k=s, s=s, ceil_mode=True, count_include_pad=False)
            void *pool;
            PUSH(pool, (size_t)B * ho * wo * b->cin);
            Pool2dShape ps = {B, h, w, b->cin, b->stride, b->stride, b->stride, b->stride, 0, 0, 1, 0};
            OP(c, avgpool2d_fwd, pool, x, &ps);
            src = pool;
        }
        void *d;
        PUSH(d, n);
        TRY(conv_relu(c, W, &b->down, d, src, B, ho, wo, 0));
        OP(c, add_fwd, y, y, d, n);
    } else {
        OP(c, add_fwd, y, y, x, n);
    }
    OP(c, relu_fwd, y, y, n);
    arena_reset(c->act, mark);
    return 0;
}

// Runs stage s on x [B, h, w, cin] into y [B, h/stride, w/stride, planes[s]],
// ping-ponging through a temporary so that the last block writes y.
static int stage_f(const Ctx *c, const Weights *W, const Scrfd *m, int s, void *y, const void *x, int B, int h,
                   int w) {
    const size_t mark = arena_mark(c->act);
    const int first = m->stage_first[s], nb = m->stage_first[s + 1] - first;
    const int ho = h / STAGE_STRIDE[s], wo = w / STAGE_STRIDE[s];
    void *tmp = NULL;
    if (nb > 1) PUSH(tmp, (size_t)B * ho * wo * m->cfg.planes[s]);
    const void *src = x;
    for (int i = 0; i < nb; i++) {
        void *dst = (nb - 1 - i) % 2 == 0 ? y : tmp;
        TRY(block_f(c, W, &m->blocks[first + i], dst, src, B, i == 0 ? h : ho, i == 0 ? w : wo));
        src = dst;
    }
    arena_reset(c->act, mark);
    return 0;
}

int scrfd_f(const Ctx *c, const Weights *W, const Scrfd *m, void *const out[9], const void *x, int B, int H, int Wd) {
    const ScrfdConfig *cf = &m->cfg;
    if (B < 1 || H < 32 || Wd < 32 || H % 32 != 0 || Wd % 32 != 0) {
        a2f_set_error("scrfd: input %dx%d (batch %d): height and width must be positive multiples of 32", H, Wd, B);
        return -1;
    }
    const size_t mark0 = arena_mark(c->act);
    int hs[6], ws[6];  // size at stride 2^k
    for (int k = 0; k < 6; k++) hs[k] = H >> k, ws[k] = Wd >> k;
#define PX(k) ((size_t)B * hs[k] * ws[k])
    void *C[4] = {NULL};  // stage outputs; C[1..3] = C3, C4, C5 kept for the neck
    for (int s = 1; s < 4; s++) PUSH(C[s], PX(2 + s) * cf->planes[s]);
    const size_t mark1 = arena_mark(c->act);

    // stem -> P [B, H/4, W/4, stem2]
    void *P, *t0, *t1, *t2;
    float *am;
    PUSH(P, PX(2) * cf->stem[2]);
    {
        const size_t m2 = arena_mark(c->act);
        PUSH(t0, PX(1) * cf->stem[0]);
        PUSH(t1, PX(1) * cf->stem[1]);
        PUSH(t2, PX(1) * cf->stem[2]);
        if (!(am = nn_push_f32(c, PX(2) * cf->stem[2]))) return -1;  // int32 argmax (unused)
        TRY(conv_relu(c, W, &m->stem[0], t0, x, B, H, Wd, 1));
        TRY(conv_relu(c, W, &m->stem[1], t1, t0, B, hs[1], ws[1], 1));
        TRY(conv_relu(c, W, &m->stem[2], t2, t1, B, hs[1], ws[1], 1));
        Pool2dShape ps = {B, hs[1], ws[1], cf->stem[2], 2, 2, 2, 2, 0, 0, 0, 1};
        OP(c, maxpool2d_fwd, P, (int32_t *)am, t2, &ps);
        arena_reset(c->act, m2);
    }
    // backbone stages (layer1 at stride 4, then 8, 16, 32)
    PUSH(C[0], PX(2) * cf->planes[0]);
    TRY(stage_f(c, W, m, 0, C[0], P, B, hs[2], ws[2]));
    TRY(stage_f(c, W, m, 1, C[1], C[0], B, hs[2], ws[2]));
    arena_reset(c->act, mark1);
    TRY(stage_f(c, W, m, 2, C[2], C[1], B, hs[3], ws[3]));
    TRY(stage_f(c, W, m, 3, C[3], C[2], B, hs[4], ws[4]));

    // PAFPN neck: level i at stride 2^(3+i)
    const int n = cf->neck;
    void *L[3], *I[3], *Pn[3], *tmp;
    for (int i = 0; i < 3; i++) {
        PUSH(L[i], PX(3 + i) * n);
        TRY(conv_relu(c, W, &m->lateral[i], L[i], C[i + 1], B, hs[3 + i], ws[3 + i], 0));
    }
    for (int i = 2; i > 0; i--) {  // top-down: L[i-1] += nearest_up2(L[i])
        const size_t mk = arena_mark(c->act);
        PUSH(tmp, PX(2 + i) * n);
        OP(c, upsample2x_fwd, tmp, L[i], B, hs[3 + i], ws[3 + i], n);
        OP(c, add_fwd, L[i - 1], L[i - 1], tmp, PX(2 + i) * n);
        arena_reset(c->act, mk);
    }
    for (int i = 0; i < 3; i++) {
        PUSH(I[i], PX(3 + i) * n);
        TRY(conv_relu(c, W, &m->fpn[i], I[i], L[i], B, hs[3 + i], ws[3 + i], 0));
    }
    for (int i = 0; i < 2; i++) {  // bottom-up: I[i+1] += down_i(I[i])
        const size_t mk = arena_mark(c->act);
        PUSH(tmp, PX(4 + i) * n);
        TRY(conv_relu(c, W, &m->down[i], tmp, I[i], B, hs[3 + i], ws[3 + i], 0));
        OP(c, add_fwd, I[i + 1], I[i + 1], tmp, PX(4 + i) * n);
        arena_reset(c->act, mk);
    }
    Pn[0] = I[0];
    for (int i = 1; i < 3; i++) {
        PUSH(Pn[i], PX(3 + i) * n);
        TRY(conv_relu(c, W, &m->pafpn[i - 1], Pn[i], I[i], B, hs[3 + i], ws[3 + i], 0));
    }

    // head: per level tower (ping-pong) -> cls (sigmoid), reg, kps straight into the outputs
    for (int l = 0; l < SCRFD_LEVELS; l++) {
        const size_t mk = arena_mark(c->act);
        const int h = hs[3 + l], w = ws[3 + l];
        void *T[2];
        PUSH(T[0], PX(3 + l) * cf->feat);
        PUSH(T[1], PX(3 + l) * cf->feat);
        const void *src = Pn[l];
        for (int j = 0; j < cf->tower; j++) {
            TRY(conv_relu(c, W, &m->tower[l][j], T[j % 2], src, B, h, w, 1));
            src = T[j % 2];
        }
        TRY(conv_relu(c, W, &m->cls[l], out[l], src, B, h, w, 0));
        OP(c, sigmoid_fwd, out[l], out[l], PX(3 + l) * cf->anchors);
        TRY(conv_relu(c, W, &m->reg[l], out[3 + l], src, B, h, w, 0));
        TRY(conv_relu(c, W, &m->kps[l], out[6 + l], src, B, h, w, 0));
        arena_reset(c->act, mk);
    }
#undef PX
    arena_reset(c->act, mark0);
    return 0;
}
