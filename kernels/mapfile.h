// mapfile.h: a whole file in memory, for the loaders that parse one file at a
// time (safetensors, torch .bin, images, config.json). Errors are one line
// naming PATH exactly as given, set with a2f_set_error; nothing is left open.
#pragma once
#include <stddef.h>

typedef struct {
    const void *data;  // the contents; "" (never NULL) for an empty file
    size_t len;
    int mapped;     // 1: data is an mmap of len bytes (map_file of a non-empty file)
    int allocated;  // 1: data is malloc'd (read_file)
} MappedFile;

// Maps the regular file PATH read-only (private). Errors: "PATH: cannot open:
// ERR", "PATH: cannot stat: ERR", "PATH: not a regular file", "PATH: cannot
// mmap N bytes: ERR". Returns 0 or -1 (m zeroed).
int map_file(MappedFile *m, const char *path);
// Reads the regular file PATH into a malloc'd buffer (one byte more than its
// size, a NUL after the contents). A file over max_len bytes is refused with
// "PATH: file too large for WHAT (N bytes)" before anything is read; read
// problems give "PATH: out of memory reading N bytes" or "PATH: read error:
// ERR". Open/stat errors as map_file. Returns 0 or -1 (m zeroed).
// The buffer is always malloc'd: a caller may take it over ((char *)m->data)
// and release it with free() instead of unmap_file.
int read_file(MappedFile *m, const char *path, size_t max_len, const char *what);
// Releases either kind (munmap or free); m is zeroed. Safe on a zeroed m.
void unmap_file(MappedFile *m);

// A small text file (a config.json): malloc'd, NUL-terminated, at most 1 MiB - 1
// bytes. Errors: "PATH: cannot open", "PATH: larger than 1 MiB, not a WHAT".
// Returns NULL on error.
char *read_small_text(const char *path, const char *what);
