// arena.h: bump arenas and the LIFO activation tape.
//
// An Arena is one allocation carved by a bump pointer (256-byte aligned
// blocks, the alignment cudaMalloc gives). Models use one arena for
// parameters, one for gradients, one for the tape and one for scratch.
//
// The Tape is a stack on top of an arena: forward pushes what backward needs,
// backward pops in reverse. Popping anything but the top block is a bug and
// is caught by CHECK. Gradient checkpointing of a block = push nothing in
// forward, recompute in backward.
#pragma once
#include <stddef.h>

#include "tensor.h"

#define ARENA_ALIGN 256

typedef struct {
    char *base;
    size_t cap;   // bytes
    size_t used;  // bytes in use
    size_t peak;  // high-water mark
    Device device;
    const char *name;
    int owns;     // base was allocated by arena_init
} Arena;

// Allocates cap bytes on the CPU (device memory comes from the CUDA backend
// through arena_wrap). Returns 0, or -1 with a2f_last_error() set.
int arena_init(Arena *a, const char *name, size_t cap);
// Wraps caller memory (e.g. one cudaMalloc) without taking ownership.
void arena_wrap(Arena *a, const char *name, void *base, size_t cap, Device dev);
void arena_free(Arena *a);
// Returns an aligned block, or NULL with a2f_last_error() naming the arena,
// the request and what is left ("out of memory").
void *arena_alloc(Arena *a, size_t bytes);
size_t arena_mark(const Arena *a);
void arena_reset(Arena *a, size_t mark);

#define TAPE_MAX_ENTRIES 65536

typedef struct {
    Arena arena;
    size_t offsets[TAPE_MAX_ENTRIES];  // start of each pushed block
    int depth;
} Tape;

int tape_init(Tape *t, size_t cap);
void tape_free(Tape *t);
// Pushes a block of `bytes` and returns it (NULL + error when full).
void *tape_push(Tape *t, size_t bytes);
// Pops the top block; p must be the pointer the matching push returned.
void tape_pop(Tape *t, const void *p);
