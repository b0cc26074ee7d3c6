// common.h: error reporting and CHECK macros used by every layer.
//
// Two kinds of failure:
//  - programmer errors (a violated precondition inside the framework): CHECK()
//    prints file, line and the failing expression, then aborts.
//  - bad outside input (files, shapes, keys, NaN loss, out of memory): the
//    function returns a non-zero status after a2f_set_error(); the CLI prints the
//    one line a2f_last_error() holds and exits 1. Nothing half-written.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define A2F_ERR_MAX 512

#ifdef __cplusplus
extern "C" {
#endif

// Records one human-readable line ("FILE: problem"); thread-local.
void a2f_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *a2f_last_error(void);
void a2f_clear_error(void);

// Prints "FILE:LINE: CHECK failed: EXPR" (plus errno text where relevant) and aborts.
__attribute__((noreturn)) void a2f_check_failed(const char *file, int line, const char *expr, const char *msg);

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) a2f_check_failed(__FILE__, __LINE__, #cond, NULL);    \
    } while (0)
#define CHECKM(cond, msg)                                                  \
    do {                                                                   \
        if (!(cond)) a2f_check_failed(__FILE__, __LINE__, #cond, (msg));   \
    } while (0)

// malloc/calloc that abort with file:line on failure (for framework-sized
// allocations; sizes that come from outside files are validated first).
void *a2f_malloc_check(size_t n, const char *file, int line);
void *a2f_calloc_check(size_t count, size_t size, const char *file, int line);
#ifdef __cplusplus
}
#endif

#define xmalloc(n) a2f_malloc_check((n), __FILE__, __LINE__)
#define xcalloc(c, s) a2f_calloc_check((c), (s), __FILE__, __LINE__)

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#define A2F_MIN(a, b) ((a) < (b) ? (a) : (b))
#define A2F_MAX(a, b) ((a) > (b) ? (a) : (b))
