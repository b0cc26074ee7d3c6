// arena.c: bump arenas and the LIFO tape.
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

int arena_init(Arena *a, const char *name, size_t cap) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->device = DEV_CPU;
    void *p = NULL;
    if (cap && posix_memalign(&p, ARENA_ALIGN, cap) != 0) {
        a2f_set_error("arena %s: out of memory allocating %zu bytes", name, cap);
        return -1;
    }
    a->base = p;
    a->cap = cap;
    a->owns = 1;
    return 0;
}

void arena_wrap(Arena *a, const char *name, void *base, size_t cap, Device dev) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->base = base;
    a->cap = cap;
    a->device = dev;
}

void arena_free(Arena *a) {
    if (a->owns) free(a->base);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t start = CEIL_DIV(a->used, (size_t)ARENA_ALIGN) * ARENA_ALIGN;
    if (start > a->cap || bytes > a->cap - start) {
        a2f_set_error("arena %s: out of memory: need %zu bytes, %zu of %zu free", a->name ? a->name : "?",
                      bytes, a->cap - A2F_MIN(start, a->cap), a->cap);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + start;
}

size_t arena_mark(const Arena *a) { return a->used; }

void arena_reset(Arena *a, size_t mark) {
    CHECK(mark <= a->used);
    a->used = mark;
}

int tape_init(Tape *t, size_t cap) {
    t->depth = 0;
    return arena_init(&t->arena, "tape", cap);
}

void tape_free(Tape *t) {
    arena_free(&t->arena);
    t->depth = 0;
}

void *tape_push(Tape *t, size_t bytes) {
    if (t->depth >= TAPE_MAX_ENTRIES) {
        a2f_set_error("tape: more than %d saved tensors", TAPE_MAX_ENTRIES);
        return NULL;
    }
    size_t mark = arena_mark(&t->arena);
    void *p = arena_alloc(&t->arena, bytes);
    if (!p) return NULL;
    t->offsets[t->depth++] = mark;
    return p;
}

void tape_pop(Tape *t, const void *p) {
    CHECKM(t->depth > 0, "tape underflow");
    size_t mark = t->offsets[t->depth - 1];
    size_t start = CEIL_DIV(mark, (size_t)ARENA_ALIGN) * ARENA_ALIGN;
    CHECKM((const char *)p == t->arena.base + start, "tape pop out of LIFO order");
    t->depth--;
    arena_reset(&t->arena, mark);
}
