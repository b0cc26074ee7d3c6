// test_shape_cuda.c: the CUDA data-movement ops (kernels/cuda/shape.cu) and
// embeddings (kernels/cuda/embed.cu) against the CPU reference ops
// (kernels/cpu/shape.c, embed.c), f32 and bf16, forward and backward
// (backward adds into random gradients), odd channel counts (scalar paths),
// multiples of 8 (16-byte packed paths) and unaligned pointers.
//
// Tolerances. Upsample, concat, add and the embedding lookup / scatter do the
// same fp32 operations in the same order as the CPU (copies; sums
// (g00 + g01) + (g10 + g11); dx + dy; dtable rows added in increasing i), so
// the GPU result equals the CPU result rounded once to dt: compared EXACTLY
// (atol = rtol = 0) after round_through. The timestep embedding evaluates
// exp / sin / cos in double and rounds to float like the CPU, so f32 agrees
// to 1 ulp (rtol 2^-22 = 2 ulp margin; atol 1e-7 for values near 0, where an
// ulp of the fp32 argument is absolute); bf16 adds the output rounding
// (2^-9 relative; rtol 2^-8). Its backward is a double sum rounded to float:
// rtol 1e-6 (a few float ulps), atol 1e-7.
#include <stdlib.h>
#include <string.h>

#include "../../kernels/common.h"
#include "../../kernels/cpu/ops.h"
#include "../../kernels/cuda/embed.h"
#include "../../kernels/cuda/shape.h"
#include "../test.h"
#include "gpu_test.h"

static const DType DTS[2] = {DT_F32, DT_BF16};

// ---------------------------------------------------------------- upsample

TEST(cuda_upsample2x) {
    if (!gpu_ready()) return;
    const int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 3}, {1, 4, 4, 8}, {2, 2, 3, 16}, {1, 3, 2, 13}, {2, 1, 2, 4}};
    uint64_t st = 11;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++)
            for (int off = 0; off < 2; off++) {
                const DType dt = DTS[di];
                const int B = shapes[k][0], H = shapes[k][1], W = shapes[k][2], C = shapes[k][3];
                const size_t n = (size_t)B * H * W * C, no = 4 * n;
                float *x = hrand(n, 1.0f, &st, dt), *dy = hrand(no, 1.0f, &st, dt), *dx0 = hrand(n, 1.0f, &st, dt);
                float *y = hnew(no), *dx = hcopy(dx0, n);
                upsample2x_fwd(y, x, B, H, W, C);
                upsample2x_bwd(dx, dy, B, H, W, C);
                void *dX = dput(x, n, dt, off), *dY = dput(dy, no, dt, off), *dDY = dput(dy, no, dt, off);
                void *dDX = dput(dx0, n, dt, off);
                char w[96];
                snprintf(w, sizeof w, "upsample fwd %s %dx%dx%dx%d off=%d", dtype_name(dt), B, H, W, C, off);
                if (!gpu_ok(cuda_upsample2x_fwd(dt, dY, dX, B, H, W, C, dev_stream()), w)) goto out;
                expect_rounded(w, dY, y, no, dt);
                snprintf(w, sizeof w, "upsample bwd %s %dx%dx%dx%d off=%d", dtype_name(dt), B, H, W, C, off);
                if (!gpu_ok(cuda_upsample2x_bwd(dt, dDX, dDY, B, H, W, C, dev_stream()), w)) goto out;
                expect_rounded(w, dDX, dx, n, dt);
                gpu_free_all();
            }
out:
    gpu_free_all();
}

// ---------------------------------------------------------------- concat

TEST(cuda_concat) {
    if (!gpu_ready()) return;
    const int shapes[][3] = {{1, 1, 1}, {5, 3, 4}, {7, 8, 16}, {3, 16, 8}, {4, 8, 5}, {2, 0, 3}, {6, 32, 64}};
    uint64_t st = 12;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 7; k++)
            for (int which = 0; which < 3; which++) {  // gradients: both, da only, db only
                const DType dt = DTS[di];
                const size_t P = (size_t)shapes[k][0];
                const int Ca = shapes[k][1], Cb = shapes[k][2];
                const size_t na = P * Ca, nb = P * Cb, ny = na + nb;
                float *a = hrand(na, 1.0f, &st, dt), *b = hrand(nb, 1.0f, &st, dt), *dy = hrand(ny, 1.0f, &st, dt);
                float *da0 = hrand(na, 1.0f, &st, dt), *db0 = hrand(nb, 1.0f, &st, dt);
                float *y = hnew(ny), *da = hcopy(da0, na), *db = hcopy(db0, nb);
                concat_fwd(y, a, b, P, Ca, Cb);
                concat_bwd(which != 2 ? da : NULL, which != 1 ? db : NULL, dy, P, Ca, Cb);
                void *dA = dput(a, na, dt, 0), *dB = dput(b, nb, dt, 0), *dY = dput(y, ny, dt, 0);
                void *dDY = dput(dy, ny, dt, 0), *dDA = dput(da0, na, dt, 0), *dDB = dput(db0, nb, dt, 0);
                char w[96];
                snprintf(w, sizeof w, "concat fwd %s P=%zu Ca=%d Cb=%d", dtype_name(dt), P, Ca, Cb);
                if (!gpu_ok(cuda_concat_fwd(dt, dY, dA, dB, P, Ca, Cb, dev_stream()), w)) goto out;
                expect_rounded(w, dY, y, ny, dt);
                snprintf(w, sizeof w, "concat bwd %s P=%zu Ca=%d Cb=%d grads=%d", dtype_name(dt), P, Ca, Cb, which);
                if (!gpu_ok(cuda_concat_bwd(dt, which != 2 ? dDA : NULL, which != 1 ? dDB : NULL, dDY, P, Ca, Cb,
                                            dev_stream()),
                            w))
                    goto out;
                expect_rounded(w, dDA, da, na, dt);
                expect_rounded(w, dDB, db, nb, dt);
                gpu_free_all();
            }
out:
    gpu_free_all();
}

// ---------------------------------------------------------------- add

TEST(cuda_add) {
    if (!gpu_ready()) return;
    const size_t sizes[] = {1, 3, 7, 13, 64, 1000, 4099};
    uint64_t st = 13;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 7; k++)
            for (int off = 0; off < 2; off++) {
                const DType dt = DTS[di];
                const size_t n = sizes[k];
                float *a = hrand(n, 1.0f, &st, dt), *b = hrand(n, 1.0f, &st, dt), *dy = hrand(n, 1.0f, &st, dt);
                float *da0 = hrand(n, 1.0f, &st, dt), *db0 = hrand(n, 1.0f, &st, dt);
                float *y = hnew(n), *da = hcopy(da0, n), *db = hcopy(db0, n), *dbn = hcopy(db0, n);
                add_fwd(y, a, b, n);
                add_bwd(da, db, dy, n);
                void *dA = dput(a, n, dt, off), *dB = dput(b, n, dt, off), *dY = dput(y, n, dt, off);
                void *dDY = dput(dy, n, dt, off), *dDA = dput(da0, n, dt, off), *dDB = dput(db0, n, dt, off);
                void *dDB2 = dput(db0, n, dt, off);
                char w[96];
                snprintf(w, sizeof w, "add fwd %s n=%zu off=%d", dtype_name(dt), n, off);
                if (!gpu_ok(cuda_add_fwd(dt, dY, dA, dB, n, dev_stream()), w)) goto out;
                expect_rounded(w, dY, hcopy(y, n), n, dt);
                // in place (y = a), as residual connections do
                if (!gpu_ok(cuda_add_fwd(dt, dA, dA, dB, n, dev_stream()), w)) goto out;
                expect_rounded("add fwd in place", dA, y, n, dt);
                snprintf(w, sizeof w, "add bwd %s n=%zu off=%d", dtype_name(dt), n, off);
                if (!gpu_ok(cuda_add_bwd(dt, dDA, dDB, dDY, n, dev_stream()), w)) goto out;
                expect_rounded(w, dDA, da, n, dt);
                expect_rounded(w, dDB, db, n, dt);
                // only db (da NULL)
                if (!gpu_ok(cuda_add_bwd(dt, NULL, dDB2, dDY, n, dev_stream()), w)) goto out;
                add_bwd(NULL, dbn, dy, n);
                expect_rounded("add bwd db only", dDB2, dbn, n, dt);
                gpu_free_all();
            }
out:
    gpu_free_all();
}

// ---------------------------------------------------------------- embedding

// ids [N] on the device (a tracked 4-byte buffer from gpu_fill, then a raw upload).
static int32_t *dput_ids(const int32_t *ids, int N) {
    int32_t *d = gpu_fill((size_t)N, DT_F32, 0.0f);
    CHECK(dev_upload(d, ids, (size_t)N * sizeof(int32_t)) == 0);
    return d;
}

TEST(cuda_embedding) {
    if (!gpu_ready()) return;
    // (N, V, D): repeated ids in every case (N > V or ids drawn from few values)
    const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 50, 8}, {20, 4, 16}, {77, 30, 13}, {9, 3, 40}};
    uint64_t st = 14;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 6; k++) {
            const DType dt = DTS[di];
            const int N = shapes[k][0], V = shapes[k][1], D = shapes[k][2];
            const size_t ny = (size_t)N * D, nt = (size_t)V * D;
            int32_t ids[128];
            for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 7 + (i * i) % 5) % V);
            float *table = hrand(nt, 1.0f, &st, dt), *dy = hrand(ny, 1.0f, &st, dt);
            float *dtab0 = hrand(nt, 1.0f, &st, DT_F32);
            float *y = hnew(ny), *dtab = hcopy(dtab0, nt);
            embedding_fwd(y, ids, table, N, V, D);
            embedding_bwd(dtab, dy, ids, N, V, D);
            int32_t *dI = dput_ids(ids, N);
            void *dT = dput(table, nt, dt, 0), *dY = dput(y, ny, dt, 0), *dDY = dput(dy, ny, dt, 0);
            float *dDT = dput(dtab0, nt, DT_F32, 0);
            char w[96];
            snprintf(w, sizeof w, "embedding fwd %s N=%d V=%d D=%d", dtype_name(dt), N, V, D);
            if (!gpu_ok(cuda_embedding_fwd(dt, dY, dI, dT, N, V, D, dev_stream()), w)) break;
            expect_rounded(w, dY, y, ny, dt);
            // dtable is float and summed in the CPU's order: exact for both dtypes
            snprintf(w, sizeof w, "embedding bwd %s N=%d V=%d D=%d", dtype_name(dt), N, V, D);
            if (!gpu_ok(cuda_embedding_bwd(dt, dDT, dDY, dI, N, V, D, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dDT, nt, DT_F32), dtab, nt, 0.0, 0.0);
            gpu_free_all();
        }
    gpu_free_all();
}

TEST(cuda_embedding_bad_id_gives_zero_row) {
    if (!gpu_ready()) return;
    const int32_t ids[3] = {1, 9, -1};
    const float table[6] = {1, 2, 3, 4, 5, 6};  // [3, 2]
    int32_t *dI = dput_ids(ids, 3);
    void *dT = gpu_put(table, 6, DT_F32), *dY = gpu_fill(6, DT_F32, 7.0f);
    float *dDT = gpu_fill(6, DT_F32, 0.0f), *dDY = gpu_fill(6, DT_F32, 1.0f);
    if (gpu_ok(cuda_embedding_fwd(DT_F32, dY, dI, dT, 3, 3, 2, dev_stream()), "embedding fwd") &&
        gpu_ok(cuda_embedding_bwd(DT_F32, dDT, dDY, dI, 3, 3, 2, dev_stream()), "embedding bwd")) {
        const float want_y[6] = {3, 4, 0, 0, 0, 0}, want_dt[6] = {0, 0, 1, 1, 0, 0};
        EXPECT_CLOSE("y", gpu_get(dY, 6, DT_F32), want_y, 6, 0.0, 0.0);
        EXPECT_CLOSE("dtable", gpu_get(dDT, 6, DT_F32), want_dt, 6, 0.0, 0.0);
    }
    gpu_free_all();
}

// ---------------------------------------------------------------- timestep embedding

TEST(cuda_timestep_embedding) {
    if (!gpu_ready()) return;
    // (B, dim, flip, freq_shift): SD's UNet uses dim 320, flip 1, shift 0
    const struct {
        int B, dim, flip;
        float shift;
    } cases[] = {{1, 2, 0, 0.0f}, {3, 7, 1, 1.0f}, {2, 320, 1, 0.0f}, {4, 33, 0, 1.0f}};
    uint64_t st = 15;
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 4; k++) {
            const DType dt = DTS[di];
            const int B = cases[k].B, dim = cases[k].dim, flip = cases[k].flip;
            const float shift = cases[k].shift, maxp = 10000.0f;
            const size_t ny = (size_t)B * dim;
            float *t = hnew(B);
            for (int b = 0; b < B; b++) t[b] = b == 0 ? 999.0f : (float)((b * 337) % 1000) + 0.5f * b;
            float *dy = hrand(ny, 1.0f, &st, dt), *dt0 = hrand(B, 1.0f, &st, DT_F32);
            float *y = hnew(ny), *dtg = hcopy(dt0, B);
            timestep_embedding_fwd(y, t, B, dim, flip, shift, maxp);
            timestep_embedding_bwd(dtg, dy, t, B, dim, flip, shift, maxp);
            float *dT = dput(t, B, DT_F32, 0), *dDT = dput(dt0, B, DT_F32, 0);
            void *dY = dput(y, ny, dt, 0), *dDY = dput(dy, ny, dt, 0);
            char w[96];
            snprintf(w, sizeof w, "timestep fwd %s B=%d dim=%d", dtype_name(dt), B, dim);
            if (!gpu_ok(cuda_timestep_embedding_fwd(dt, dY, dT, B, dim, flip, shift, maxp, dev_stream()), w)) break;
            EXPECT_CLOSE(w, gpu_get(dY, ny, dt), y, ny, 1e-7, dt == DT_BF16 ? dtype_eps(dt) : 1.0 / 4194304);
            snprintf(w, sizeof w, "timestep bwd %s B=%d dim=%d", dtype_name(dt), B, dim);
            if (!gpu_ok(cuda_timestep_embedding_bwd(dt, dDT, dDY, dT, B, dim, flip, shift, maxp, dev_stream()), w))
                break;
            EXPECT_CLOSE(w, gpu_get(dDT, B, DT_F32), dtg, B, 1e-7, 1e-6);
            gpu_free_all();
        }
    gpu_free_all();
}
