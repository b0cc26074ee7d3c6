// main.c: runs every registered test and prints "N passed, N failed".
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 4096
static struct {
    const char *name, *file;
    test_fn fn;
} g_tests[MAX_TESTS];
static int g_ntests, g_failed_now;

void test_register(const char *name, test_fn fn, const char *file) {
    if (g_ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    g_tests[g_ntests].name = name;
    g_tests[g_ntests].file = file;
    g_tests[g_ntests].fn = fn;
    g_ntests++;
}

void test_fail(const char *file, int line, const char *fmt, ...) {
    g_failed_now = 1;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, "\n");
}

void test_fail_expect(const char *file, int line, const char *expr, const char *fmt, ...) {
    g_failed_now = 1;
    fprintf(stdout, "    %s:%d: expected %s: ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, "\n");
}

int test_current_failed(void) { return g_failed_now; }

int expect_close_(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                  double atol, double rtol) {
    size_t bad = 0, worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double tol = atol + rtol * fabs(w);
        double err = fabs(g - w);
        int ok = err <= tol && !isnan(g) == !isnan(w);
        if (!ok) {
            bad++;
            double ex = isnan(err) ? INFINITY : err / (tol > 0 ? tol : 1e-30);
            if (ex > worst_excess) worst_excess = ex, worst = i;
        }
    }
    if (bad) {
        test_fail(file, line, "%s: %zu of %zu values off; worst [%zu] got %.9g want %.9g (atol %.3g rtol %.3g)", what,
                  bad, n, worst, got[worst], want[worst], atol, rtol);
        return 0;
    }
    return 1;
}

float *test_grad_buffer(size_t n) {
    float *g = calloc(n ? n : 1, sizeof(float));
    if (!g) abort();
    for (size_t i = 0; i < n; i++) g[i] = TEST_GRAD_PRE;
    return g;
}

int expect_grad_(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                 double atol, double rtol) {
    if (!want) return 0;
    float *g = calloc(n ? n : 1, sizeof(float));
    if (!g) abort();
    for (size_t i = 0; i < n; i++) g[i] = got[i] - TEST_GRAD_PRE;
    int ok = expect_close_(file, line, what, g, want, n, atol, rtol);
    free(g);
    return ok;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t *state) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((xorshift(state) >> 40) * (1.0 / 16777216.0));
}

void test_fill_normal(float *x, size_t n, float stddev, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        double u1 = ((xorshift(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
        double u2 = (xorshift(state) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = (float)(stddev * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

const char *test_bin(void) {
    const char *b = getenv("A2F_BIN");
    return b && *b ? b : "build/arc2face";
}

int test_have_bin_(const char *file, int line) {
    if (access(test_bin(), X_OK) == 0) return 1;
    test_fail(file, line, "%s not found or not executable: run `make` first (or set A2F_BIN)", test_bin());
    return 0;
}

char *test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)(n < 0 ? 0 : n) + 1);
    if (!s) abort();
    size_t got = n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    s[got] = 0;
    fclose(f);
    return s;
}

int test_run(const char *env, const char *args, char **out, char **err) {
    char o[64], e[64];
    snprintf(o, sizeof o, "/tmp/a2f_test_out_%d", (int)getpid());
    snprintf(e, sizeof e, "/tmp/a2f_test_err_%d", (int)getpid());
    const char *fmt = "%s%s'%s' %s >%s 2>%s";
    const char *pre = env ? env : "", *sep = env ? " " : "", *odst = out ? o : "/dev/null";
    int len = snprintf(NULL, 0, fmt, pre, sep, test_bin(), args, odst, e);
    char *cmd = malloc((size_t)len + 1);
    if (!cmd) abort();
    snprintf(cmd, (size_t)len + 1, fmt, pre, sep, test_bin(), args, odst, e);
    int st = system(cmd);
    free(cmd);
    if (out) {
        *out = test_slurp(o);
        unlink(o);
        if (!*out && !(*out = calloc(1, 1))) abort();
    }
    *err = test_slurp(e);
    unlink(e);
    if (!*err && !(*err = calloc(1, 1))) abort();
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    // Scratch files of the tests go under build/tmp/ of this checkout (tests run from the
    // repository root), so two checkouts' suites on one machine never share a path.
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    int passed = 0, failed = 0;
    for (int i = 0; i < g_ntests; i++) {
        if (filter && !strstr(g_tests[i].name, filter)) continue;
        g_failed_now = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        g_tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
        printf("%s %s (%.0f ms)\n", g_failed_now ? "FAIL" : "ok  ", g_tests[i].name, ms);
        fflush(stdout);
        if (g_failed_now) failed++;
        else passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
