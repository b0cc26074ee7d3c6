// test_cli.c: the `arc2face` program, run as a child process.
//
// The binary is $A2F_BIN or build/arc2face (run from the repository root).
// Checks: --help lists the verbs; usage errors exit 2; `inspect` on a valid
// file prints exactly what tools/ref/make_safetensors_fixtures.py computed
// from Python's view of the file; every tests/fixtures/safetensors/bad_*
// file exits 1 with nothing on stdout and exactly one stderr line
// "arc2face: error: ..." naming the file; a missing file likewise.
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "test.h"

#define FIX "tests/fixtures/safetensors/"

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

// rc 1, empty stdout, exactly one stderr line "arc2face: error: ..." containing NEEDLE.
static void expect_one_error(const char *what, int rc, const char *out, const char *err, const char *needle) {
    EXPECT(rc == 1, "%s: exit %d, want 1", what, rc);
    EXPECT(out[0] == 0, "%s: stdout not empty: %s", what, out);
    EXPECT(count_lines(err) == 1 && err[strlen(err) - 1] == '\n', "%s: want one stderr line, got: %s", what, err);
    EXPECT(strncmp(err, "arc2face: error: ", 17) == 0, "%s: stderr: %s", what, err);
    EXPECT(strstr(err, needle), "%s: stderr lacks '%s': %s", what, needle, err);
}

TEST(cli_help_and_usage) {
    if (!TEST_HAVE_BIN()) return;
    char *out, *err;
    int rc = test_run(NULL, "--help", &out, &err);
    EXPECT(rc == 0, "--help exit %d", rc);
    EXPECT(strstr(out, "usage: arc2face VERB") && strstr(out, "inspect") && strstr(out, "arc2face VERB --help"),
           "--help output: %s", out);
    free(out), free(err);

    rc = test_run(NULL, "", &out, &err);
    EXPECT(rc == 2 && strstr(err, "usage:"), "no verb: exit %d, stderr %s", rc, err);
    free(out), free(err);

    rc = test_run(NULL, "frobnicate", &out, &err);
    EXPECT(rc == 2, "unknown verb exit %d", rc);
    EXPECT(count_lines(err) == 1 && strncmp(err, "arc2face: error: ", 17) == 0 && strstr(err, "frobnicate"),
           "unknown verb stderr: %s", err);
    free(out), free(err);

    rc = test_run(NULL, "inspect --help", &out, &err);
    EXPECT(rc == 0 && strstr(out, "usage: arc2face inspect"), "inspect --help: exit %d: %s", rc, out);
    free(out), free(err);

    rc = test_run(NULL, "inspect", &out, &err);
    EXPECT(rc == 2 && count_lines(err) == 1 && strncmp(err, "arc2face: error: ", 17) == 0, "inspect w/o file: %d %s",
           rc, err);
    free(out), free(err);

    rc = test_run(NULL, "inspect --bogus " FIX "valid_mixed.safetensors", &out, &err);
    EXPECT(rc == 2 && strstr(err, "--bogus"), "unknown option: %d %s", rc, err);
    free(out), free(err);
}

TEST(cli_inspect_matches_python) {
    if (!TEST_HAVE_BIN()) return;
    char *want = test_slurp(FIX "valid_mixed.inspect.txt");
    if (!want) {
        EXPECT(0, "missing " FIX "valid_mixed.inspect.txt");
        return;
    }
    char *out, *err;
    int rc = test_run(NULL, "inspect '" FIX "valid_mixed.safetensors'", &out, &err);
    EXPECT(rc == 0, "exit %d, stderr %s", rc, err);
    EXPECT(err[0] == 0, "stderr: %s", err);
    if (strcmp(out, want) != 0) {  // report the first differing line
        const char *a = out, *b = want;
        int line = 1;
        while (*a && *a == *b) line += *a == '\n', a++, b++;
        EXPECT(0, "inspect output differs from Python's at line %d:\n--- got\n%s--- want\n%s", line, out, want);
    }
    free(out), free(err), free(want);
}

TEST(cli_inspect_errors) {
    if (!TEST_HAVE_BIN()) return;
    DIR *d = opendir(FIX);
    if (!d) {
        EXPECT(0, "cannot open " FIX);
        return;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "bad_", 4) != 0 || l < 12 || strcmp(de->d_name + l - 12, ".safetensors") != 0) continue;
        char path[512], args[600];
        snprintf(path, sizeof path, FIX "%s", de->d_name);
        snprintf(args, sizeof args, "inspect '%s'", path);
        char *out, *err;
        int rc = test_run(NULL, args, &out, &err);
        expect_one_error(de->d_name, rc, out, err, path);
        free(out), free(err);
        n++;
    }
    closedir(d);
    EXPECT(n >= 20, "only %d malformed fixtures found", n);

    char *out, *err;
    int rc = test_run(NULL, "inspect '" FIX "no_such_file.safetensors'", &out, &err);
    expect_one_error("missing file", rc, out, err, "no_such_file.safetensors: cannot open: No such file");
    free(out), free(err);
}
