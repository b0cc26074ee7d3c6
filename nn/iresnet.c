// iresnet.c: IResNet / IR-SE network, weight loading, preprocessing (see iresnet.h).
#include "iresnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "safetensors.h"

// ------------------------------------------------------------------ config

int iresnet_config(IResNetConfig *cfg, const char *name) {
    static const struct {
        const char *name;
        int style, se, layers[4];
    } presets[] = {
        {"r18", IRES_INSIGHTFACE, 0, {2, 2, 2, 2}},      {"r34", IRES_INSIGHTFACE, 0, {3, 4, 6, 3}},
        {"r50", IRES_INSIGHTFACE, 0, {3, 4, 14, 3}},     {"r100", IRES_INSIGHTFACE, 0, {3, 13, 30, 3}},
        {"r200", IRES_INSIGHTFACE, 0, {6, 26, 60, 6}},   {"ir50", IRES_TREB1EN, 0, {3, 4, 14, 3}},
        {"irse50", IRES_TREB1EN, 1, {3, 4, 14, 3}},      {"ir100", IRES_TREB1EN, 0, {3, 13, 30, 3}},
        {"irse100", IRES_TREB1EN, 1, {3, 13, 30, 3}},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        IResNetConfig c = {presets[i].style, presets[i].se, {0}, {64, 128, 256, 512}, 64, 512, 112, 112, 0.0f};
        memcpy(c.layers, presets[i].layers, sizeof c.layers);
        *cfg = c;
        return 0;
    }
    a2f_set_error("iresnet: unknown configuration '%s' (r18, r34, r50, r100, r200, ir50, irse50, ir100, irse100)",
                  name);
    return -1;
}

static int check_config(const IResNetConfig *c) {
    int n = 0, ok = (c->style == IRES_INSIGHTFACE || c->style == IRES_TREB1EN) && c->stem > 0 && c->emb > 0 &&
                    c->in_h > 0 && c->in_w > 0 && c->dropout >= 0.0f && c->dropout < 1.0f;
    for (int i = 0; i < 4; i++) {
        ok = ok && c->layers[i] >= 1 && c->widths[i] >= 1;
        ok = ok && !(c->style == IRES_TREB1EN && c->se && c->widths[i] < 16);  // SE width C/16 >= 1
        n += c->layers[i];
    }
    if (!ok || n > IRES_MAX_BLOCKS) {
        a2f_set_error("iresnet: bad config (style %d, se %d, layers [%d, %d, %d, %d] (at most %d blocks), widths "
                      "[%d, %d, %d, %d] (>= 16 with SE), stem %d, emb %d, input %dx%d, dropout %g)",
                      c->style, c->se, c->layers[0], c->layers[1], c->layers[2], c->layers[3], IRES_MAX_BLOCKS,
                      c->widths[0], c->widths[1], c->widths[2], c->widths[3], c->stem, c->emb, c->in_h, c->in_w,
                      (double)c->dropout);
        return -1;
    }
    return 0;
}

int iresnet_build(IResNet *m, ParamTable *t, const IResNetConfig *cfg) {
    memset(m, 0, sizeof *m);
    params_init(t);
    TRY(check_config(cfg));
    m->cfg = *cfg;
    m->style = cfg->style;
    m->l2norm = cfg->style == IRES_TREB1EN;
    const int tre = cfg->style == IRES_TREB1EN;
    int64_t ps[1] = {cfg->stem};
    conv2d_add(&m->conv1, t, tre ? "input_layer.0" : "conv1", 3, cfg->stem, 3, 1, 1, 0);
    batchnorm_add(&m->bn1, t, tre ? "input_layer.1" : "bn1", cfg->stem, 1, &m->nstats);
    m->prelu = nn_param(t, "", tre ? "input_layer.2.weight" : "prelu.weight", 1, ps, PARAM_PLAIN);
    int cin = cfg->stem, h = cfg->in_h, w = cfg->in_w;
    char prefix[64];
    for (int st = 0; st < 4; st++)
        for (int i = 0; i < cfg->layers[st]; i++) {
            IRBlock *b = &m->blocks[m->nblocks];
            if (tre) snprintf(prefix, sizeof prefix, "body.%d", m->nblocks);
            else snprintf(prefix, sizeof prefix, "layer%d.%d", st + 1, i);
            irblock_add(b, t, prefix, cfg->style, cfg->se, cin, cfg->widths[st], i == 0 ? 2 : 1, &m->nstats);
            h = irblock_out(b, h);
            w = irblock_out(b, w);
            cin = cfg->widths[st];
            m->nblocks++;
        }
    m->fh = h;
    m->fw = w;
    batchnorm_add(&m->bn2, t, tre ? "output_layer.0" : "bn2", cin, 1, &m->nstats);
    linear_add(&m->fc, t, tre ? "output_layer.3" : "fc", cin * h * w, cfg->emb, 1);
    // insightface freezes features.weight at 1.0 (requires_grad False); TreB1eN trains it.
    batchnorm_add(&m->features, t, tre ? "output_layer.4" : "features", cfg->emb, tre, &m->nstats);
    return 0;
}

void iresnet_free(IResNet *m) {
    if (m->stats32 && m->stats_be) m->stats_be->free(m->stats32);
    m->stats32 = NULL;
}

// ------------------------------------------------------------------ forward / backward

#define PUSH(p, n) \
    if (!((p) = nn_push(c, (n)))) return -1
#define PUSHF(p, n) \
    if (!((p) = nn_push_f32(c, (n)))) return -1
#define GPUSH(p, n) \
    if (!((p) = nn_gpush(c, (n)))) return -1

// Identity [n, n] of the context dtype on the activation stack.
static void *push_eye(const Ctx *c, int n) {
    void *d = nn_push(c, (size_t)n * n);
    if (!d) return NULL;
    float *one = xcalloc((size_t)n * n, sizeof(float));
    for (int i = 0; i < n; i++) one[(size_t)i * n + i] = 1.0f;
    void *h = one;
    if (c->dt != DT_F32) {
        h = xmalloc((size_t)n * n * dtype_size(c->dt));
        convert_dtype(h, c->dt, one, DT_F32, (size_t)n * n);
    }
    int st = c->be->upload(d, h, (size_t)n * n * dtype_size(c->dt));
    if (h != one) free(h);
    free(one);
    if (st != 0) {
        a2f_set_error("iresnet identity upload (%s backend): %s", c->be->name, c->be->status_str(st));
        return NULL;
    }
    return d;
}

// Largest activation [B, h, w, C] between the stem and the head (elements).
static size_t max_act(const IResNet *m, const IResNetSaved *s) {
    size_t mx = (size_t)s->B * s->hs[0] * s->ws[0] * m->cfg.stem;
    for (int i = 0; i < m->nblocks; i++) {
        size_t n = (size_t)s->B * s->hs[i + 1] * s->ws[i + 1] * m->blocks[i].cout;
        if (n > mx) mx = n;
    }
    return mx;
}

int iresnet_f(const Ctx *c, const Weights *W, IResNet *m, void *y, const void *x, int B, IResNetSaved *sv) {
    IResNetSaved local, *s = c->train ? sv : &local;
    CHECK(s);
    memset(s, 0, sizeof *s);
    s->mark = arena_mark(c->act);
    s->x = x;
    s->B = B;
    const BnMode bn = {m->bn_train, m->stats32};
    const int H = m->cfg.in_h, Wd = m->cfg.in_w, E = m->cfg.emb, C4 = m->cfg.widths[3], FP = m->fh * m->fw;
    s->hs[0] = H;
    s->ws[0] = Wd;
    for (int i = 0; i < m->nblocks; i++) {
        s->hs[i + 1] = irblock_out(&m->blocks[i], s->hs[i]);
        s->ws[i + 1] = irblock_out(&m->blocks[i], s->ws[i]);
    }
    if (B < 1) {
        a2f_set_error("iresnet: batch size %d", B);
        return -1;
    }
    if (bn.train) {
        const int ch[3] = {m->cfg.stem, C4, E};
        for (int i = 0; i < 3; i++) {
            PUSHF(s->st[i][0], ch[i]);  // mean [C]
            PUSHF(s->st[i][1], ch[i]);  // rstd [C]
        }
    }
    // stem; inference ping-pongs the block activations between two buffers
    const size_t P0 = (size_t)B * H * Wd, n0 = P0 * m->cfg.stem;
    void *buf[2] = {NULL, NULL};
    if (!c->train) {
        size_t mx = max_act(m, s);
        PUSH(buf[0], mx);
        PUSH(buf[1], mx);
        s->c0 = buf[0];
        s->b0 = buf[1];
        s->p0 = buf[0];
    } else {
        PUSH(s->c0, n0);  // [B, H, W, stem]
        PUSH(s->b0, n0);  // [B, H, W, stem]
        PUSH(s->p0, n0);  // [B, H, W, stem]
    }
    TRY(conv2d_f(c, W, &m->conv1, s->c0, x, B, H, Wd));
    TRY(batchnorm_f(c, W, &m->bn1, &bn, s->b0, s->st[0][0], s->st[0][1], s->c0, (int)P0));
    OP(c, prelu_fwd, s->p0, s->b0, wptr(W, m->prelu), P0, m->cfg.stem);
    const void *cur = s->p0;
    for (int i = 0; i < m->nblocks; i++) {
        const IRBlock *b = &m->blocks[i];
        if (c->train) {
            PUSH(s->outs[i], (size_t)B * s->hs[i + 1] * s->ws[i + 1] * b->cout);  // [B, h, w, C]
        } else {
            s->outs[i] = buf[(i + 1) & 1];
        }
        TRY(irblock_f(c, W, b, &bn, s->outs[i], cur, B, s->hs[i], s->ws[i], &s->blk[i]));
        cur = s->outs[i];
    }
    // head: BN2d -> flatten (NCHW order) -> dropout -> fc -> BN1d (-> l2norm)
    const size_t nh = (size_t)B * FP * C4;
    PUSH(s->h, nh);  // [B, fh, fw, C4]
    TRY(batchnorm_f(c, W, &m->bn2, &bn, s->h, s->st[1][0], s->st[1][1], cur, B * FP));
    if (!(s->eye = push_eye(c, FP))) return -1;  // [FP, FP]
    PUSH(s->t, nh);                              // [B, C4, fh*fw]
    // t_b [C4, FP] = h_b^T [C4, FP] @ I [FP, FP]
    OP(c, gemm_batched, 1, 0, C4, FP, FP, 1.0f, s->h, C4, (long)FP * C4, s->eye, FP, 0, 0.0f, s->t, FP,
       (long)C4 * FP, B);
    s->td = s->t;
    if (m->cfg.dropout > 0.0f && bn.train) {
        s->dropped = 1;
        s->seed = m->drop_seed;
        s->offset = m->drop_offset;
        PUSH(s->td, nh);  // [B, C4*FP]
        OP(c, dropout_fwd, s->td, s->t, nh, m->cfg.dropout, s->seed, s->offset);
    }
    PUSH(s->f, (size_t)B * E);  // [B, E]
    TRY(linear_f(c, W, &m->fc, s->f, s->td, B));
    if (m->l2norm) {
        PUSH(s->z, (size_t)B * E);  // [B, E]
        TRY(batchnorm_f(c, W, &m->features, &bn, s->z, s->st[2][0], s->st[2][1], s->f, B));
        OP(c, l2norm_fwd, y, s->z, B, E, 1e-12f);
    } else {
        TRY(batchnorm_f(c, W, &m->features, &bn, y, s->st[2][0], s->st[2][1], s->f, B));
    }
    if (!c->train) arena_reset(c->act, s->mark);
    return 0;
}

static int zero(const Ctx *c, void *p, size_t n) {
    int st = c->be->memset(p, 0, n * nn_elt(c));
    return st == 0 ? 0 : nn_op_failed("memset", c->be, st);
}

int iresnet_b(const Ctx *c, const Weights *W, IResNet *m, void *dx, const void *dy, const IResNetSaved *sv) {
    const IResNetSaved *s = sv;
    size_t gmark = arena_mark(c->grad);
    const BnMode bn = {m->bn_train, m->stats32};
    const int B = s->B, E = m->cfg.emb, C4 = m->cfg.widths[3], FP = m->fh * m->fw, L = m->nblocks;
    const size_t nh = (size_t)B * FP * C4, mx = max_act(m, s);
    void *g[2];
    GPUSH(g[0], mx);  // block activation gradients, ping-pong [B, h, w, C]
    GPUSH(g[1], mx);
    // head
    const void *dfeat = dy;
    if (m->l2norm) {
        void *dz;
        GPUSH(dz, (size_t)B * E);  // [B, E]
        OP(c, l2norm_bwd, dz, dy, s->z, B, E, 1e-12f);
        dfeat = dz;
    }
    void *df, *dtd, *dt, *dh;
    GPUSH(df, (size_t)B * E);  // [B, E]
    TRY(batchnorm_b(c, W, &m->features, &bn, df, dfeat, s->f, s->st[2][0], s->st[2][1], B));
    GPUSH(dtd, nh);  // [B, C4*FP]
    TRY(linear_b(c, W, &m->fc, dtd, df, s->td, B));
    dt = dtd;
    if (s->dropped) {
        GPUSH(dt, nh);  // [B, C4*FP]
        OP(c, dropout_bwd, dt, dtd, nh, m->cfg.dropout, s->seed, s->offset);
    }
    GPUSH(dh, nh);  // [B, fh, fw, C4]: dh_b [FP, C4] = I [FP, FP] @ dt_b^T
    OP(c, gemm_batched, 0, 1, FP, C4, FP, 1.0f, s->eye, FP, 0, dt, FP, (long)C4 * FP, 0.0f, dh, C4, (long)FP * C4,
       B);
    const void *last = L ? s->outs[L - 1] : s->p0;
    TRY(batchnorm_b(c, W, &m->bn2, &bn, g[0], dh, last, s->st[1][0], s->st[1][1], B * FP));
    // blocks, last to first: gradient of block i's output in g[k], of its input into g[k^1]
    int k = 0;
    for (int i = L - 1; i >= 0; i--) {
        const IRBlock *b = &m->blocks[i];
        TRY(zero(c, g[k ^ 1], (size_t)B * s->hs[i] * s->ws[i] * b->cin));
        TRY(irblock_b(c, W, b, &bn, g[k ^ 1], g[k], &s->blk[i]));
        k ^= 1;
    }
    // stem
    const size_t P0 = (size_t)B * s->hs[0] * s->ws[0], n0 = P0 * m->cfg.stem;
    void *db0, *dc0;
    GPUSH(db0, n0);  // [B, H, W, stem]
    OP(c, prelu_bwd, db0, gptr(W, m->prelu), g[k], s->b0, wptr(W, m->prelu), P0, m->cfg.stem);
    GPUSH(dc0, n0);  // [B, H, W, stem]
    TRY(batchnorm_b(c, W, &m->bn1, &bn, dc0, db0, s->c0, s->st[0][0], s->st[0][1], (int)P0));
    TRY(conv2d_b(c, W, &m->conv1, dx, dc0, s->x, B, s->hs[0], s->ws[0]));
    arena_reset(c->grad, gmark);
    arena_reset(c->act, s->mark);
    return 0;
}

// ------------------------------------------------------------------ weights

int iresnet_keymap(const char *file_key, char *out, size_t n) {
    const char *suf = ".num_batches_tracked";
    size_t a = strlen(file_key), b = strlen(suf);
    if (a >= b && strcmp(file_key + a - b, suf) == 0) return 0;
    snprintf(out, n, "%s", file_key);
    return 1;
}

// Visits every BatchNorm of m.
static int bn_list(const IResNet *m, const BatchNorm **out) {
    int n = 0;
    out[n++] = &m->bn1;
    for (int i = 0; i < m->nblocks; i++) {
        const IRBlock *b = &m->blocks[i];
        out[n++] = &b->bn1;
        if (b->style == IRES_INSIGHTFACE) out[n++] = &b->bn2;
        out[n++] = &b->bn3;
        if (b->has_down) out[n++] = &b->down_bn;
    }
    out[n++] = &m->bn2;
    out[n++] = &m->features;
    return n;
}

static int needs_stats32(const Weights *W) { return !W->master && W->dt != DT_F32; }

int iresnet_bind_stats(IResNet *m, const Weights *W, const float *host) {
    if (!needs_stats32(W)) return 0;
    const BatchNorm **list = xmalloc(sizeof(BatchNorm *) * (4 * IRES_MAX_BLOCKS + 4));
    int n = bn_list(m, list);
    float *compact = xcalloc((size_t)m->nstats + 1, sizeof(float));
    for (int i = 0; i < n; i++) {
        const BatchNorm *bn = list[i];
        memcpy(compact + bn->soff, host + W->t.entries[bn->rm].offset, (size_t)bn->C * sizeof(float));
        memcpy(compact + bn->soff + bn->C, host + W->t.entries[bn->rv].offset, (size_t)bn->C * sizeof(float));
    }
    free(list);
    int rc = 0;
    if (!m->stats32) {
        m->stats_be = W->be;
        if (!(m->stats32 = W->be->alloc((size_t)m->nstats * sizeof(float)))) rc = -1;
    }
    if (rc == 0 && W->be->upload(m->stats32, compact, (size_t)m->nstats * sizeof(float)) != 0) {
        a2f_set_error("iresnet: running statistics upload failed");
        rc = -1;
    }
    free(compact);
    return rc;
}

int iresnet_load(IResNet *m, Weights *W, const char *safetensors_path) {
    const char *files[1] = {safetensors_path};
    if (!needs_stats32(W)) return weights_load(W, files, 1, iresnet_keymap);
    // bf16 inference weights: load through an fp32 host copy so the running
    // statistics keep their fp32 values.
    Weights tmp = {0};
    tmp.t = W->t;
    int rc = weights_alloc(&tmp, cpu_backend(), DT_F32, 0);
    if (rc == 0) rc = weights_load(&tmp, files, 1, iresnet_keymap);
    if (rc == 0) rc = weights_upload(W, tmp.w);
    if (rc == 0) rc = iresnet_bind_stats(m, W, tmp.w);
    weights_free(&tmp);
    return rc;
}

// ------------------------------------------------------------------ preprocessing

void iresnet_preprocess(float *out, const uint8_t *img, size_t n_pixels, int swap_rb) {
    for (size_t p = 0; p < n_pixels; p++)
        for (int k = 0; k < 3; k++) {
            int src = swap_rb ? 2 - k : k;
            out[p * 3 + k] = ((float)img[p * 3 + src] - 127.5f) / 127.5f;
        }
}
