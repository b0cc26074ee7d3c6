// test.h: a minimal test registry. Each TEST() registers itself before main;
// the runner (tests/main.c) runs them all, or those whose name contains argv[1],
// and ends with the line "N passed, N failed".
#pragma once
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);
// Marks the running test as failed and prints the reason (does not return early).
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// EXPECT's failure path: "expected <expr>: <message>".
void test_fail_expect(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int test_current_failed(void);

#define TEST(name)                                                                    \
    static void test_##name(void);                                                    \
    __attribute__((constructor)) static void test_reg_##name(void) {                  \
        test_register(#name, test_##name, __FILE__);                                  \
    }                                                                                 \
    static void test_##name(void)

#define EXPECT(cond, ...)                                                             \
    do {                                                                              \
        if (!(cond)) test_fail_expect(__FILE__, __LINE__, #cond, __VA_ARGS__);        \
    } while (0)

// Element-wise |got - want| <= atol + rtol * |want|; reports the worst index.
// Returns 1 when all pass.
int expect_close_(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                  double atol, double rtol);
#define EXPECT_CLOSE(what, got, want, n, atol, rtol) \
    expect_close_(__FILE__, __LINE__, (what), (got), (want), (n), (atol), (rtol))

// Gradient buffers for the "+=" contract: test_grad_buffer(n) returns n floats
// (calloc'd, caller frees) set to TEST_GRAD_PRE; EXPECT_GRAD compares
// got - TEST_GRAD_PRE with want (subtraction exact to ~3e-8 for |got| ~ 1).
// A NULL want (a fixture read that already failed the test) is skipped.
#define TEST_GRAD_PRE 0.25f
float *test_grad_buffer(size_t n);
int expect_grad_(const char *file, int line, const char *what, const float *got, const float *want, size_t n,
                 double atol, double rtol);
#define EXPECT_GRAD(what, got, want, n, atol, rtol) \
    expect_grad_(__FILE__, __LINE__, (what), (got), (want), (n), (atol), (rtol))

// Deterministic test data (xorshift; independent of the Philox code under test).
void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t *state);
void test_fill_normal(float *x, size_t n, float stddev, uint64_t *state);

// CLI tests: the `arc2face` binary run as a child process from the repository
// root. test_bin() is $A2F_BIN, or build/arc2face when that is unset or empty.
const char *test_bin(void);
// 1 when test_bin() is executable; else fails the running test ("... not found
// or not executable: run `make` first (or set A2F_BIN)") and returns 0.
int test_have_bin_(const char *file, int line);
#define TEST_HAVE_BIN() test_have_bin_(__FILE__, __LINE__)
// The whole file, NUL-terminated (caller frees); NULL when it cannot be opened.
char *test_slurp(const char *path);
// Runs `[ENV] 'BIN' ARGS` through the shell (ARGS already shell-quoted; ENV:
// NULL or assignments such as "OMP_NUM_THREADS=1"). Captures stderr into *err
// and stdout into *out (out NULL: stdout discarded); both are malloc'd strings,
// "" when empty. Returns the exit status, or -1 if the child did not exit normally.
int test_run(const char *env, const char *args, char **out, char **err);
