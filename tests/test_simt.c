// test_simt.c: the SIMT emulator's own tests (tools/simt/). The first of these tests
// builds the CUDA test programs of tools/simt/tests/ with tools/simt/simtcc into
// build/simt/ (once per run); each test then runs one program -- a standalone CUDA
// program that checks its kernels against a CPU computation and exits 0 or 1 -- and
// asserts its exit code, plus the emulator's two debugging promises: SIMT_SHUFFLE
// exposes a missing __syncthreads, and `simtcc --asan` reports an out-of-bounds write
// with the kernel's source line. Run from the repository root (as `make test` does).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test.h"

#define SIMT_OUT "build/simt"

// Builds every program once; returns 1 when the build script ran.
static int simt_built(void) {
    static int state = 0;  // 0: not tried, 1: built, -1: failed
    if (state == 0) {
        int rc = system("tools/simt/tests/build.sh " SIMT_OUT);
        state = (rc == 0) ? 1 : -1;
    }
    return state == 1;
}

// Runs a shell command; stdout+stderr (last `cap` bytes) into buf; returns the exit code.
static int run(const char *cmd, char *buf, size_t cap) {
    char full[1024];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0;
    char tmp[4096];
    size_t got;
    buf[0] = 0;
    while ((got = fread(tmp, 1, sizeof tmp, p)) > 0) {
        for (size_t i = 0; i < got; i++) {
            if (n + 1 >= cap) {  // keep the tail
                memmove(buf, buf + cap / 2, n - cap / 2);
                n -= cap / 2;
            }
            buf[n++] = tmp[i];
        }
    }
    buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// Checks the program exists (else prints its compiler log) and runs it with `env`.
static int run_prog(const char *env, const char *name, const char *args, char *buf, size_t cap) {
    char path[256], cmd[512];
    snprintf(path, sizeof path, SIMT_OUT "/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        char log[4096];
        snprintf(cmd, sizeof cmd, "tail -c 2000 " SIMT_OUT "/%s.log", name);
        run(cmd, log, sizeof log);
        snprintf(buf, cap, "not built; compiler log:\n%s", log);
        return -1;
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %s", env, path, args);
    return run(cmd, buf, cap);
}

static void expect_pass(const char *name, const char *env) {
    EXPECT(simt_built(), "tools/simt/tests/build.sh failed to run");
    char out[8192];
    int rc = run_prog(env, name, "", out, sizeof out);
    EXPECT(rc == 0 && strstr(out, "PASS"), "%s (%s) exited %d:\n%s", name, env, rc, out);
}

TEST(simt_reduce) {
    expect_pass("reduce", "");
    expect_pass("reduce", "SIMT_SHUFFLE=7 SIMT_THREADS=1");
}

// Fiber stack switches are announced to AddressSanitizer: no false positives.
TEST(simt_reduce_asan) { expect_pass("reduce_asan", "ASAN_OPTIONS=detect_leaks=0 SIMT_SHUFFLE=3"); }

TEST(simt_transpose) {
    expect_pass("transpose", "");
    expect_pass("transpose", "SIMT_SHUFFLE=11");
}

TEST(simt_warp) {
    expect_pass("warp", "");
    expect_pass("warp", "SIMT_SHUFFLE=5");
}

TEST(simt_histogram) {
    expect_pass("histogram", "");
    expect_pass("histogram", "SIMT_SHUFFLE=2 SIMT_THREADS=2");
}

TEST(simt_api) {
    expect_pass("api", "");
    expect_pass("api", "SIMT_STACK_KB=16");  // 1024 fibers on small stacks
}

TEST(simt_bf16) { expect_pass("bf16", ""); }

// nvcuda::wmma (include/mma.h): bf16 / f16 / tf32 / f64 WMMA GEMMs vs a CPU loop,
// built with ASan (lanes read each other's fragments on their fiber stacks).
TEST(simt_wmma) {
    expect_pass("wmma", "ASAN_OPTIONS=detect_leaks=0");
    expect_pass("wmma", "ASAN_OPTIONS=detect_leaks=0 SIMT_SHUFFLE=4");
}

// kernels/cuda/mma.cuh under the emulator (include/simt_mma.h): ldmatrix / mma.sync /
// cp.async layouts lane by lane, and a cp.async double-buffered ldmatrix + mma GEMM vs a
// CPU loop (built with ASan: zero-fill rows read nothing). A pipeline that leaves out
// cp_async_wait, or waits for one group too few, must give a wrong result.
TEST(simt_mma) {
    expect_pass("mma", "ASAN_OPTIONS=detect_leaks=0");
    expect_pass("mma", "ASAN_OPTIONS=detect_leaks=0 SIMT_SHUFFLE=6");
    char out[4096];
    const char *envs[2] = {"ASAN_OPTIONS=detect_leaks=0", "ASAN_OPTIONS=detect_leaks=0 SIMT_SHUFFLE=6"};
    const char *modes[2] = {"nowait", "waitcount"};
    for (int e = 0; e < 2; e++)
        for (int m = 0; m < 2; m++) {
            int rc = run_prog(envs[e], "mma", modes[m], out, sizeof out);
            EXPECT(rc == 1, "mma %s (%s) should report a wrong result (exit 1), exited %d:\n%s", modes[m], envs[e],
                   rc, out);
        }
}

// The cuBLAS / cuBLASLt stand-in (simt_cublas.cpp) against a naive column-major loop.
TEST(simt_cublas) {
    expect_pass("cublas", "");
    expect_pass("cublas", "OMP_NUM_THREADS=1");
}

// Ordinary CUDA programs in the style of the CUDA samples build and run unchanged.
TEST(simt_cuda_samples) {
    expect_pass("vector_add", "");
    expect_pass("matrix_mul", "SIMT_SHUFFLE=2");
}

// The kernel without its barrier is right in index order, wrong for some shuffle seed;
// with the barrier it is right under every seed; a seed reproduces its result.
TEST(simt_shuffle_exposes_missing_barrier) {
    EXPECT(simt_built(), "tools/simt/tests/build.sh failed to run");
    char out[4096], env[64], first[4096] = "";
    int rc = run_prog("", "race", "nosync", out, sizeof out);
    EXPECT(rc == 0, "nosync in index order should pass, exited %d: %s", rc, out);
    int wrong_seeds = 0;
    for (int seed = 1; seed <= 8; seed++) {
        snprintf(env, sizeof env, "SIMT_SHUFFLE=%d", seed);
        rc = run_prog(env, "race", "nosync", out, sizeof out);
        EXPECT(rc == 0 || rc == 1, "seed %d: exit %d: %s", seed, rc, out);
        wrong_seeds += rc == 1;
        if (seed == 1) snprintf(first, sizeof first, "%s", out);
        rc = run_prog(env, "race", "sync", out, sizeof out);
        EXPECT(rc == 0, "with the barrier, seed %d exited %d: %s", seed, rc, out);
    }
    EXPECT(wrong_seeds > 0, "no seed in 1..8 exposed the missing __syncthreads");
    run_prog("SIMT_SHUFFLE=1", "race", "nosync", out, sizeof out);
    EXPECT(strcmp(out, first) == 0, "seed 1 is not reproducible: '%s' vs '%s'", first, out);
}

// `simtcc --asan`: one write past a cudaMalloc'd buffer is reported at the kernel line.
TEST(simt_asan_reports_oob) {
    EXPECT(simt_built(), "tools/simt/tests/build.sh failed to run");
    int line = 0;
    FILE *f = fopen("tools/simt/tests/oob.cu", "r");
    EXPECT(f != NULL, "cannot open tools/simt/tests/oob.cu");
    if (!f) return;
    char buf[512];
    for (int ln = 1; fgets(buf, sizeof buf, f); ln++)
        if (strstr(buf, "OOB-LINE") && strstr(buf, "y[i]")) line = ln;
    fclose(f);
    EXPECT(line > 0, "marker OOB-LINE not found in oob.cu");
    char out[16384], where[64];
    int rc = run_prog("ASAN_OPTIONS=detect_leaks=0", "oob", "", out, sizeof out);
    snprintf(where, sizeof where, "oob.cu:%d", line);
    EXPECT(rc != 0, "out-of-bounds write went unreported (exit 0): %s", out);
    EXPECT(strstr(out, "AddressSanitizer") != NULL, "no AddressSanitizer report:\n%s", out);
    EXPECT(strstr(out, where) != NULL, "report does not name %s:\n%s", where, out);
}
