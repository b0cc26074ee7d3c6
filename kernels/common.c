// common.c: error line storage and CHECK failure reporting.
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static _Thread_local char g_err[A2F_ERR_MAX];

void a2f_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}

const char *a2f_last_error(void) { return g_err[0] ? g_err : "unknown error"; }

void a2f_clear_error(void) { g_err[0] = 0; }

void a2f_check_failed(const char *file, int line, const char *expr, const char *msg) {
    fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr, msg ? ": " : "", msg ? msg : "");
    fflush(stderr);
    abort();
}

void *a2f_malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory allocating %zu bytes\n", file, line, n);
        exit(1);
    }
    return p;
}

void *a2f_calloc_check(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory allocating %zu x %zu bytes\n", file, line, count, size);
        exit(1);
    }
    return p;
}
