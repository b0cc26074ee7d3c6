// test_core.c: dtype conversions (against torch's rounding), tensors, arenas,
// the LIFO tape and the parameter table.
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/arena.h"
#include "../kernels/common.h"
#include "../kernels/params.h"
#include "../kernels/tensor.h"
#include "test.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Every value torch rounded in tools/ref/make_dtype_fixtures.py must round the
// same way here: bit-exact, the conversion is fully specified by IEEE RNE.
TEST(dtype_conversion_matches_torch) {
    FILE *f = fopen("tests/fixtures/dtype/convert.txt", "r");
    EXPECT(f != NULL, "missing tests/fixtures/dtype/convert.txt");
    if (!f) return;
    char line[128];
    int n = 0, bad_bf = 0, bad_h = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned a, b, c;
        if (line[0] == '#' || sscanf(line, "%x %x %x", &a, &b, &c) != 3) continue;
        float x = from_bits(a);
        if (f32_to_bf16(x) != b) {
            if (bad_bf++ < 3) test_fail(__FILE__, __LINE__, "bf16(%08x) = %04x, torch %04x", a, f32_to_bf16(x), b);
        }
        if (f32_to_f16(x) != c) {
            if (bad_h++ < 3) test_fail(__FILE__, __LINE__, "f16(%08x) = %04x, torch %04x", a, f32_to_f16(x), c);
        }
        n++;
    }
    fclose(f);
    EXPECT(n > 1000, "only %d fixture values read", n);
}

// Widening is exact: every non-NaN 16-bit pattern survives f16->f32->f16 and
// bf16->f32->bf16, and f16 decoding agrees with the value formula.
TEST(dtype_roundtrip_exhaustive) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        if (e == 31 && m) {
            bad += !isnan(f);
            continue;
        }
        double want = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, (int)e - 25);
        if (h & 0x8000) want = -want;
        bad += (double)f != want;
        bad += f32_to_f16(f) != h;
        float g = bf16_to_f32((uint16_t)h);
        if (!isnan(g)) bad += f32_to_bf16(g) != h;
    }
    EXPECT(bad == 0, "%d patterns failed", bad);
    EXPECT(isnan(bf16_to_f32(f32_to_bf16(NAN))) && isnan(f16_to_f32(f32_to_f16(NAN))), "NaN lost");
}

TEST(convert_dtype_buffers) {
    float src[5] = {1.5f, -2.25f, 0.1f, 1e-3f, 300.0f};
    uint16_t bf[5], hf[5];
    float back[5];
    convert_dtype(bf, DT_BF16, src, DT_F32, 5);
    convert_dtype(hf, DT_F16, src, DT_F32, 5);
    for (int i = 0; i < 5; i++) EXPECT(bf[i] == f32_to_bf16(src[i]) && hf[i] == f32_to_f16(src[i]), "i=%d", i);
    convert_dtype(back, DT_F32, hf, DT_F16, 5);
    // f16 keeps 11 significant bits: relative error <= 2^-11
    EXPECT_CLOSE("f16 round trip", back, src, 5, 0, 1.0 / 2048);
    convert_dtype(back, DT_F32, bf, DT_BF16, 5);
    // bf16 keeps 8 significant bits: relative error <= 2^-8
    EXPECT_CLOSE("bf16 round trip", back, src, 5, 0, 1.0 / 256);
}

TEST(tensor_descriptor) {
    Tensor t = tensor_nhwc(NULL, DT_BF16, DEV_CPU, 2, 64, 64, 320);
    char buf[64];
    EXPECT(tensor_numel(&t) == 2LL * 64 * 64 * 320, "numel");
    EXPECT(tensor_bytes(&t) == 2ULL * 64 * 64 * 320 * 2, "bytes");
    EXPECT(strcmp(tensor_shape_str(&t, buf, sizeof buf), "[2, 64, 64, 320]") == 0, "got %s", buf);
    int64_t s0[1] = {0};
    Tensor e = tensor_make(NULL, DT_F32, DEV_CPU, 1, s0);
    EXPECT(tensor_numel(&e) == 0, "empty");
    Tensor sc = tensor_make(NULL, DT_F32, DEV_CPU, 0, NULL);
    EXPECT(tensor_numel(&sc) == 1 && strcmp(tensor_shape_str(&sc, buf, sizeof buf), "[]") == 0, "scalar %s", buf);
}

TEST(arena_alignment_and_oom) {
    Arena a;
    EXPECT(arena_init(&a, "scratch", 4096) == 0, "init");
    char *p = arena_alloc(&a, 3), *q = arena_alloc(&a, 100);
    EXPECT(((uintptr_t)p % ARENA_ALIGN) == 0 && ((uintptr_t)q % ARENA_ALIGN) == 0, "alignment");
    EXPECT(q - p == ARENA_ALIGN, "bump %td", q - p);
    size_t m = arena_mark(&a);
    EXPECT(arena_alloc(&a, 8192) == NULL, "oversized allocation succeeded");
    EXPECT(strstr(a2f_last_error(), "scratch") && strstr(a2f_last_error(), "out of memory"), "error: %s",
           a2f_last_error());
    EXPECT(arena_mark(&a) == m, "failed allocation moved the mark");
    arena_reset(&a, 0);
    EXPECT(arena_alloc(&a, 4096) == a.base, "reset did not free");
    EXPECT(a.peak == 4096, "peak %zu", a.peak);
    arena_free(&a);
}

// Runs fn in a child and reports whether it aborted (CHECK failure).
static int aborts(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void pop_out_of_order(void) {
    Tape t;
    tape_init(&t, 1 << 16);
    void *a = tape_push(&t, 100);
    tape_push(&t, 100);
    tape_pop(&t, a);  // a is not on top: must abort
}

static void pop_empty(void) {
    Tape t;
    tape_init(&t, 1024);
    int x;
    tape_pop(&t, &x);
}

TEST(tape_lifo) {
    Tape t;
    EXPECT(tape_init(&t, 1 << 16) == 0, "init");
    float *a = tape_push(&t, 1000 * sizeof(float));
    float *b = tape_push(&t, 10 * sizeof(float));
    for (int i = 0; i < 1000; i++) a[i] = (float)i;
    for (int i = 0; i < 10; i++) b[i] = -1.0f;
    EXPECT(a[999] == 999.0f && t.depth == 2, "contents");
    tape_pop(&t, b);
    tape_pop(&t, a);
    EXPECT(t.depth == 0 && t.arena.used == 0, "not empty after pops");
    EXPECT(tape_push(&t, 1 << 20) == NULL && strstr(a2f_last_error(), "tape"), "overflow not reported");
    tape_free(&t);
    EXPECT(aborts(pop_out_of_order), "out-of-order pop did not abort");
    EXPECT(aborts(pop_empty), "pop of an empty tape did not abort");
}

TEST(param_table) {
    ParamTable t;
    params_init(&t);
    int64_t w[4] = {320, 3, 3, 4}, b[1] = {320}, s[2] = {7, 5};
    int i0 = params_add(&t, "conv_in.weight", 4, w);
    int i1 = params_add(&t, "conv_in.bias", 1, b);
    int i2 = params_add(&t, "x", 2, s);
    EXPECT(i0 == 0 && i1 == 1 && i2 == 2, "indices");
    EXPECT(t.entries[1].offset == 11520 && t.entries[2].offset == 11840, "offsets %zu %zu", t.entries[1].offset,
           t.entries[2].offset);
    EXPECT(t.total == 11840 + 35, "total %zu", t.total);
    EXPECT(params_find(&t, "conv_in.bias") == 1 && params_find(&t, "nope") == -1, "find");
    float *flat = xcalloc(t.total, sizeof(float));
    Tensor v = params_view(&t, 2, flat, DT_F32, DEV_CPU);
    EXPECT((float *)v.data == flat + 11840 && v.ndim == 2 && v.shape[1] == 5, "view");
    free(flat);
    params_free(&t);
}
