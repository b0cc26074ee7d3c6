// test_shape_embed.c: upsample2x, concat, add, embedding and the diffusers
// timestep embedding against PyTorch fixtures (diffusers'
// get_timestep_embedding itself), plus finite-difference gradient checks.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

TEST(shape_embed_fixtures_torch) {
    Fixture *f = fx_open("misc/shape_embed.safetensors");
    if (!f) return;
    {  // upsample: x [2,5,4,3] NHWC -> [2,10,8,3]
        const int B = 2, H = 5, W = 4, C = 3;
        size_t nx = B * H * W * C, ny = 4 * nx;
        float *x = fx_f32(f, nx, "up.x"), *yr = fx_f32(f, ny, "up.y");
        float *dy = fx_f32(f, ny, "up.dy"), *dxr = fx_f32(f, nx, "up.dx");
        if (x && yr && dy && dxr) {
            float *y = malloc(ny * 4), *dx = calloc(nx, 4);
            upsample2x_fwd(y, x, B, H, W, C);
            EXPECT_CLOSE("upsample y", y, yr, ny, 0, 0);  // copies: exact
            upsample2x_bwd(dx, dy, B, H, W, C);
            EXPECT_CLOSE("upsample dx", dx, dxr, nx, 1e-6, 1e-6);  // 4-term sums, order may differ
            free(y), free(dx);
        }
    }
    {  // concat: a [2,3,5,3], b [2,3,5,7] NHWC -> P = 30 rows
        const size_t P = 30;
        const int Ca = 3, Cb = 7;
        float *a = fx_f32(f, P * Ca, "cat.a"), *b = fx_f32(f, P * Cb, "cat.b");
        float *yr = fx_f32(f, P * (Ca + Cb), "cat.y"), *dy = fx_f32(f, P * (Ca + Cb), "cat.dy");
        float *dar = fx_f32(f, P * Ca, "cat.da"), *dbr = fx_f32(f, P * Cb, "cat.db");
        if (a && b && yr && dy && dar && dbr) {
            float y[30 * 10], da[30 * 3] = {0}, db[30 * 7] = {0};
            concat_fwd(y, a, b, P, Ca, Cb);
            EXPECT_CLOSE("concat y", y, yr, P * (Ca + Cb), 0, 0);  // copies: exact
            concat_bwd(da, db, dy, P, Ca, Cb);
            EXPECT_CLOSE("concat da", da, dar, P * Ca, 0, 0);  // 0 + dy: exact
            EXPECT_CLOSE("concat db", db, dbr, P * Cb, 0, 0);
        }
    }
    {  // embedding: table [11,6], ids [7] with repeats
        int32_t *ids = fx_i32(f, 7, "emb.ids");
        float *table = fx_f32(f, 66, "emb.table"), *yr = fx_f32(f, 42, "emb.y");
        float *dy = fx_f32(f, 42, "emb.dy"), *dtr = fx_f32(f, 66, "emb.dtable");
        if (ids && table && yr && dy && dtr) {
            float y[42], dt[66] = {0};
            embedding_fwd(y, ids, table, 7, 11, 6);
            EXPECT_CLOSE("embedding y", y, yr, 42, 0, 0);  // copies: exact
            embedding_bwd(dt, dy, ids, 7, 11, 6);
            EXPECT_CLOSE("embedding dtable", dt, dtr, 66, 1e-6, 1e-6);  // up to 3 repeats summed
        }
    }
    for (int c = 0; c < 4; c++) {  // timestep embedding cases: cfg = dim, flip, shift, max_period
        char tag[16];
        snprintf(tag, sizeof tag, "temb%d", c);
        const int B = 6;
        float *cfg = fx_f32(f, 4, "%s.cfg", tag);
        if (!cfg) continue;
        int dim = (int)cfg[0], flip = (int)cfg[1];
        float *t = fx_f32(f, B, "%s.t", tag), *yr = fx_f32(f, (size_t)B * dim, "%s.y", tag);
        float *dy = fx_f32(f, (size_t)B * dim, "%s.dy", tag), *dtr = fx_f32(f, B, "%s.dt", tag);
        if (t && yr && dy && dtr) {
            float *y = malloc((size_t)B * dim * 4), dt[6] = {0};
            timestep_embedding_fwd(y, t, B, dim, flip, cfg[2], cfg[3]);
            char what[64];
            snprintf(what, sizeof what, "timestep_embedding dim %d flip %d y", dim, flip);
            // The fp32 exponent ops match torch bit for bit, but torch's fp32
            // exp is off by 1 ulp for a few k (ours is correctly rounded): freq
            // then differs by <= 2^-24 (freq <= 1), the argument t*freq by
            // <= |t| 2^-24 (6e-5 at t = 999), and so does sin/cos. Per row:
            // atol = 5e-7 (sin/cos of the same fp32 argument) + 2 |t| 2^-24.
            for (int b = 0; b < B; b++)
                EXPECT_CLOSE(what, y + (size_t)b * dim, yr + (size_t)b * dim, dim,
                             5e-7 + 2.0 * fabs(t[b]) / 16777216.0, 0);
            timestep_embedding_bwd(dt, dy, t, B, dim, flip, cfg[2], cfg[3]);
            snprintf(what, sizeof what, "timestep_embedding dim %d flip %d dt", dim, flip);
            // sum over dim terms of O(freq) size, torch accumulates in fp32: 1e-5 rel + 1e-5
            EXPECT_CLOSE(what, dt, dtr, B, 1e-5, 1e-5);
            free(y);
        }
    }
    fx_close(f);
}

TEST(add_fwd_bwd) {
    uint64_t seed = 61;
    float a[13], b[13], y[13], da[13], db[13], dy[13];
    test_fill_normal(a, 13, 1, &seed), test_fill_normal(b, 13, 1, &seed), test_fill_normal(dy, 13, 1, &seed);
    add_fwd(y, a, b, 13);
    int ok = 1;
    for (int i = 0; i < 13; i++) ok &= y[i] == a[i] + b[i];
    EXPECT(ok, "add_fwd differs from a + b");
    for (int i = 0; i < 13; i++) da[i] = 1.0f, db[i] = -2.0f;
    add_bwd(da, db, dy, 13);
    add_bwd(NULL, db, dy, 13);  // NULL skipped; db accumulates twice
    ok = 1;
    for (int i = 0; i < 13; i++) ok &= da[i] == 1.0f + dy[i] && db[i] == (-2.0f + dy[i]) + dy[i];
    EXPECT(ok, "add_bwd does not add dy into da, db");
    add_fwd(a, a, b, 13);  // in place: y aliases a
    ok = 1;
    for (int i = 0; i < 13; i++) ok &= a[i] == y[i];
    EXPECT(ok, "in-place add_fwd");
}

// ---------------------------------------------------------------- gradient checks

typedef struct {
    int op, B, H, W, C, Cb;  // op 0 upsample, 1 concat, 2 embedding, 3 timestep
    float *x, *x2, *y, *dx, *dx2;
    int32_t *ids;
    int flip;
    float shift, maxp;
} SeCtx;

static void se_fwd(void *p) {
    SeCtx *c = p;
    if (c->op == 0) upsample2x_fwd(c->y, c->x, c->B, c->H, c->W, c->C);
    if (c->op == 1) concat_fwd(c->y, c->x, c->x2, (size_t)c->B * c->H * c->W, c->C, c->Cb);
    if (c->op == 2) embedding_fwd(c->y, c->ids, c->x, c->B, c->H, c->C);  // N = B, V = H, D = C
    if (c->op == 3) timestep_embedding_fwd(c->y, c->x, c->B, c->C, c->flip, c->shift, c->maxp);
}

static void se_bwd(void *p, const float *dy) {
    SeCtx *c = p;
    if (c->op == 0) upsample2x_bwd(c->dx, dy, c->B, c->H, c->W, c->C);
    if (c->op == 1) concat_bwd(c->dx, c->dx2, dy, (size_t)c->B * c->H * c->W, c->C, c->Cb);
    if (c->op == 2) embedding_bwd(c->dx, dy, c->ids, c->B, c->H, c->C);
    if (c->op == 3) timestep_embedding_bwd(c->dx, dy, c->x, c->B, c->C, c->flip, c->shift, c->maxp);
}

static void se_run(SeCtx *c, size_t nx, size_t nx2, size_t ny, const char *label) {
    uint64_t seed = 70 + nx;
    c->x = malloc(nx * 4), c->dx = malloc(nx * 4), c->y = malloc(ny * 4);
    c->x2 = malloc((nx2 ? nx2 : 1) * 4), c->dx2 = malloc((nx2 ? nx2 : 1) * 4);
    if (c->op == 3) test_fill_uniform(c->x, nx, 0.0f, 5.0f, &seed);  // small t: see timestep test comment
    else test_fill_normal(c->x, nx, 1.0f, &seed);
    test_fill_normal(c->x2, nx2 ? nx2 : 1, 1.0f, &seed);
    GradCheck g;
    gc_init(&g, c, se_fwd, se_bwd, c->y, ny);
    gc_input(&g, "x", c->x, c->dx, nx);
    if (nx2) gc_input(&g, "x2", c->x2, c->dx2, nx2);
    gc_run(&g, label);
    free(c->x), free(c->dx), free(c->y), free(c->x2), free(c->dx2);
}

TEST(shape_embed_gradcheck) {
    int ups[][4] = {{1, 1, 1, 1}, {2, 3, 5, 2}, {1, 7, 4, 3}};
    for (int i = 0; i < 3; i++) {
        SeCtx c = {0, ups[i][0], ups[i][1], ups[i][2], ups[i][3]};
        size_t nx = (size_t)c.B * c.H * c.W * c.C;
        se_run(&c, nx, 0, 4 * nx, "upsample2x");
    }
    int cats[][5] = {{1, 1, 1, 1, 1}, {2, 3, 1, 4, 3}, {1, 5, 3, 2, 7}};
    for (int i = 0; i < 3; i++) {
        SeCtx c = {1, cats[i][0], cats[i][1], cats[i][2], cats[i][3], cats[i][4]};
        size_t P = (size_t)c.B * c.H * c.W;
        se_run(&c, P * c.C, P * c.Cb, P * (c.C + c.Cb), "concat");
    }
    {  // embedding: N = 9 ids (repeats) into V = 5 rows of D = 3
        int32_t ids[9] = {4, 0, 2, 2, 4, 1, 2, 0, 3};
        SeCtx c = {2, 9, 5, 1, 3};
        c.ids = ids;
        se_run(&c, 5 * 3, 0, 9 * 3, "embedding");
    }
    // timestep embedding: t in [0, 5) so that t + h is exact enough in fp32
    // (ulp(5) = 5e-7, 5e-5 relative to h); the highest frequency is 1, so the
    // h^2 truncation term is ~2e-5 relative.
    int dims[] = {2, 7, 16, 13};
    for (int i = 0; i < 4; i++) {
        SeCtx c = {3, 3, 1, 1, dims[i]};
        c.flip = i & 1, c.shift = (float)(i % 3) * 0.5f, c.maxp = i == 2 ? 100.0f : 10000.0f;
        char label[64];
        snprintf(label, sizeof label, "timestep_embedding dim %d flip %d", dims[i], c.flip);
        se_run(&c, 3, 0, (size_t)3 * dims[i], label);
    }
}
