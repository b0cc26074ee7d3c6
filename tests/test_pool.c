// test_pool.c: max/avg pooling (ceil_mode, count_include_pad, ties), global
// average pooling and channel scaling against PyTorch fixtures, output sizes
// against hand-worked PyTorch values, and backward by finite differences.
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/ops.h"
#include "fixture.h"
#include "gradcheck.h"
#include "test.h"

TEST(pool_out_size) {
    // {in, k, s, p, ceil, expected}; expected values from PyTorch's formula
    // out = floor_or_ceil((in + 2p - k) / s) + 1, minus one in ceil mode when
    // the last window would start at or past in + p.
    int cases[][6] = {
        {7, 3, 2, 1, 0, 4}, {7, 3, 2, 1, 1, 4}, {6, 3, 2, 1, 0, 3}, {6, 3, 2, 1, 1, 4},
        {5, 2, 2, 1, 1, 3},  // ceil gives 4, but window 3 would start at 6 = in + p: dropped
        {5, 2, 2, 0, 0, 2}, {5, 2, 2, 0, 1, 3}, {1, 1, 1, 0, 1, 1}, {8, 3, 3, 1, 1, 3}, {112, 3, 2, 1, 0, 56},
    };
    for (int i = 0; i < 10; i++) {
        Pool2dShape s = {1, cases[i][0], 4, 1, cases[i][1], 1, cases[i][2], 1, cases[i][3], 0, cases[i][4], 0};
        int got = pool2d_out_h(&s);
        EXPECT(got == cases[i][5], "case %d: in %d k %d s %d p %d ceil %d: got %d want %d", i, cases[i][0],
               cases[i][1], cases[i][2], cases[i][3], cases[i][4], got, cases[i][5]);
    }
}

TEST(pool_fixtures_torch) {
    Fixture *f = fx_open("misc/pool.safetensors");
    if (!f) return;
    const char *tags[] = {"p0", "p1", "p2", "p3", "p4", "tie"};
    for (int t = 0; t < 6; t++) {
        char name[64];
        int32_t *d = fx_i32(f, 8, "%s.dims", tags[t]);  // B C H W k s p ceil
        if (!d) continue;
        Pool2dShape s = {d[0], d[2], d[3], d[1], d[4], d[4], d[5], d[5], d[6], d[6], d[7], 0};
        int Ho = pool2d_out_h(&s), Wo = pool2d_out_w(&s);
        size_t nx = (size_t)s.B * s.H * s.W * s.C, ny = (size_t)s.B * Ho * Wo * s.C;
        // fixture arrays have PyTorch's output size: a wrong Ho/Wo fails the lookup
        float *x = fx_f32(f, nx, "%s.x", tags[t]), *dy = fx_f32(f, ny, "%s.dy", tags[t]);
        float *my = fx_f32(f, ny, "%s.max_y", tags[t]), *mdx = fx_f32(f, nx, "%s.max_dx", tags[t]);
        int32_t *midx = fx_i32(f, ny, "%s.max_idx", tags[t]);
        float *y = malloc(ny * 4), *dx = malloc(nx * 4);
        int32_t *idx = malloc(ny * 4);
        if (x && dy && my && mdx && midx) {
            maxpool2d_fwd(y, idx, x, &s);
            snprintf(name, sizeof name, "%s max y", tags[t]);
            EXPECT_CLOSE(name, y, my, ny, 0, 0);  // pure selection: exact
            size_t bad = 0;
            for (size_t i = 0; i < ny; i++) bad += idx[i] != midx[i];
            EXPECT(bad == 0, "%s: %zu argmax indices differ from torch's (first-max rule)", tags[t], bad);
            memset(dx, 0, nx * 4);
            maxpool2d_bwd(dx, dy, idx, &s);
            snprintf(name, sizeof name, "%s max dx", tags[t]);
            EXPECT_CLOSE(name, dx, mdx, nx, 1e-6, 1e-6);  // sums of <= 4 routed dy in another order
        }
        for (int cip = 0; cip < 2; cip++) {
            char sy[32], sdx[32];
            snprintf(sy, sizeof sy, "avg%d_y", cip), snprintf(sdx, sizeof sdx, "avg%d_dx", cip);
            float *ay = fx_f32(f, ny, "%s.%s", tags[t], sy), *adx = fx_f32(f, nx, "%s.%s", tags[t], sdx);
            s.count_include_pad = cip;
            if (x && dy && ay && adx) {
                avgpool2d_fwd(y, x, &s);
                snprintf(name, sizeof name, "%s avg cip%d y", tags[t], cip);
                // <= 9 fp32 terms summed then divided, torch may order/scale differently: 1e-6
                EXPECT_CLOSE(name, y, ay, ny, 1e-6, 1e-6);
                for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;  // backward adds: start from 1
                avgpool2d_bwd(dx, dy, &s);
                for (size_t i = 0; i < nx; i++) dx[i] -= 1.0f;
                snprintf(name, sizeof name, "%s avg cip%d dx", tags[t], cip);
                EXPECT_CLOSE(name, dx, adx, nx, 2e-6, 1e-6);  // as above, plus the 1.0 offset's rounding
            }
        }
        free(y), free(dx), free(idx);
    }
    // global average pool and channel scaling: x [3, 4*7, 5] (NHWC)
    const int B = 3, HW = 28, C = 5;
    float *x = fx_f32(f, B * HW * C, "gap.x"), *gy = fx_f32(f, B * C, "gap.y");
    float *gdy = fx_f32(f, B * C, "gap.dy"), *gdx = fx_f32(f, B * HW * C, "gap.dx");
    float *cs_s = fx_f32(f, B * C, "cs.s"), *cy = fx_f32(f, B * HW * C, "cs.y");
    float *cdy = fx_f32(f, B * HW * C, "cs.dy"), *cdx = fx_f32(f, B * HW * C, "cs.dx");
    float *cds = fx_f32(f, B * C, "cs.ds");
    if (x && gy && gdy && gdx && cs_s && cy && cdy && cdx && cds) {
        float y[B * HW * C], dx[B * HW * C], ds[B * C];
        global_avgpool_fwd(y, x, B, HW, C);
        EXPECT_CLOSE("gap y", y, gy, B * C, 1e-6, 1e-6);  // mean of 28 values; ours in double
        memset(dx, 0, sizeof dx);
        global_avgpool_bwd(dx, gdy, B, HW, C);
        EXPECT_CLOSE("gap dx", dx, gdx, B * HW * C, 1e-7, 1e-6);  // dy/28: one rounding each side
        channel_scale_fwd(y, x, cs_s, B, HW, C);
        EXPECT_CLOSE("channel_scale y", y, cy, B * HW * C, 0, 1e-7);  // one fp32 product: exact
        memset(dx, 0, sizeof dx), memset(ds, 0, sizeof ds);
        channel_scale_bwd(dx, ds, cdy, x, cs_s, B, HW, C);
        EXPECT_CLOSE("channel_scale dx", dx, cdx, B * HW * C, 0, 1e-7);  // one product
        EXPECT_CLOSE("channel_scale ds", ds, cds, B * C, 1e-6, 1e-5);  // 28-term sum; torch in fp32
    }
    fx_close(f);
}

// ---------------------------------------------------------------- gradient checks

typedef struct {
    Pool2dShape s;
    float *x, *y, *dx;
    int32_t *idx;
    int max;
} PoolCtx;

static void pool_fwd(void *p) {
    PoolCtx *c = p;
    if (c->max) maxpool2d_fwd(c->y, c->idx, c->x, &c->s);
    else avgpool2d_fwd(c->y, c->x, &c->s);
}

static void pool_bwd(void *p, const float *dy) {
    PoolCtx *c = p;
    if (c->max) maxpool2d_bwd(c->dx, dy, c->idx, &c->s);
    else avgpool2d_bwd(c->dx, dy, &c->s);
}

static void gc_pool(int max, int B, int H, int W, int C, int k, int st, int pad, int ceil, int cip, uint64_t seed) {
    PoolCtx c = {{B, H, W, C, k, k, st, st, pad, pad, ceil, cip}};
    c.max = max;
    int Ho = pool2d_out_h(&c.s), Wo = pool2d_out_w(&c.s);
    size_t nx = (size_t)B * H * W * C, ny = (size_t)B * Ho * Wo * C;
    c.x = malloc(nx * 4), c.dx = malloc(nx * 4), c.y = malloc(ny * 4), c.idx = malloc(ny * 4);
    if (max) {
        // Distinct values 0.1 apart in shuffled order: a perturbation of h = 1e-2
        // (times |v| < 5 for a random direction) cannot reorder two inputs,
        // so the argmax is fixed and the op is linear around x.
        for (size_t i = 0; i < nx; i++) c.x[i] = 0.1f * (float)i - 0.05f * (float)nx;
        for (size_t i = nx - 1; i > 0; i--) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t j = seed % (i + 1);
            float t = c.x[i];
            c.x[i] = c.x[j], c.x[j] = t;
        }
    } else {
        test_fill_normal(c.x, nx, 1.0f, &seed);
    }
    GradCheck g;
    gc_init(&g, &c, pool_fwd, pool_bwd, c.y, ny);
    gc_input(&g, "x", c.x, c.dx, nx);
    char label[96];
    snprintf(label, sizeof label, "%spool B%d %dx%dx%d k%d s%d p%d ceil%d cip%d", max ? "max" : "avg", B, H, W, C, k,
             st, pad, ceil, cip);
    gc_run(&g, label);
    free(c.x), free(c.dx), free(c.y), free(c.idx);
}

TEST(pool_gradcheck) {
    for (int max = 0; max < 2; max++)
        for (int cip = 0; cip < 2 - max; cip++) {
            gc_pool(max, 2, 7, 6, 3, 3, 2, 1, 1, cip, 41);
            gc_pool(max, 1, 5, 5, 2, 2, 2, 1, 1, cip, 42);
            gc_pool(max, 3, 4, 9, 1, 3, 1, 1, 0, cip, 43);
            gc_pool(max, 1, 13, 7, 2, 3, 2, 0, 1, cip, 44);
            gc_pool(max, 2, 1, 1, 5, 1, 1, 0, 0, cip, 45);
        }
}

typedef struct {
    int B, HW, C;
    float *x, *s, *y, *dx, *ds;
    int scale;  // 0: global avgpool, 1: channel_scale
} GapCtx;

static void gap_fwd(void *p) {
    GapCtx *c = p;
    if (c->scale) channel_scale_fwd(c->y, c->x, c->s, c->B, c->HW, c->C);
    else global_avgpool_fwd(c->y, c->x, c->B, c->HW, c->C);
}

static void gap_bwd(void *p, const float *dy) {
    GapCtx *c = p;
    if (c->scale) channel_scale_bwd(c->dx, c->ds, dy, c->x, c->s, c->B, c->HW, c->C);
    else global_avgpool_bwd(c->dx, dy, c->B, c->HW, c->C);
}

TEST(global_pool_channel_scale_gradcheck) {
    int shapes[][3] = {{1, 1, 1}, {2, 7, 3}, {3, 13, 5}};
    for (int i = 0; i < 3; i++)
        for (int scale = 0; scale < 2; scale++) {
            GapCtx c = {shapes[i][0], shapes[i][1], shapes[i][2]};
            c.scale = scale;
            size_t nx = (size_t)c.B * c.HW * c.C, ns = (size_t)c.B * c.C;
            uint64_t seed = 50 + i;
            c.x = malloc(nx * 4), c.dx = malloc(nx * 4), c.s = malloc(ns * 4), c.ds = malloc(ns * 4);
            c.y = malloc(nx * 4);
            test_fill_normal(c.x, nx, 1.0f, &seed), test_fill_normal(c.s, ns, 1.0f, &seed);
            GradCheck g;
            gc_init(&g, &c, gap_fwd, gap_bwd, c.y, scale ? nx : ns);
            gc_input(&g, "x", c.x, c.dx, nx);
            if (scale) gc_input(&g, "s", c.s, c.ds, ns);
            char label[64];
            snprintf(label, sizeof label, "%s B%d HW%d C%d", scale ? "channel_scale" : "global_avgpool", c.B, c.HW,
                     c.C);
            gc_run(&g, label);
            free(c.x), free(c.dx), free(c.s), free(c.ds), free(c.y);
        }
}
