// npy.h: a small strict reader and writer of NumPy .npy files holding one
// float array (ID embeddings: np.save("emb.npy", emb) with emb float32 or
// float64 of shape (512,) or (1, 512)).
//
// Format (numpy.lib.format): "\x93NUMPY", major, minor (1.0, 2.0 or 3.0),
// header length (u16 LE for 1.x, u32 LE for 2.x/3.x), then the header: a
// Python dict literal such as
//     {'descr': '<f4', 'fortran_order': False, 'shape': (1, 512), }
// padded with spaces and ending in '\n' (latin-1 for 1.x/2.x, UTF-8 for 3.x),
// then the raw data in C order.
// Strict: exactly the keys descr, fortran_order and shape, each once;
// descr '<f4' or '<f8' (little-endian float32 / float64, what np.save writes
// for them; other dtypes and byte orders are refused); fortran_order False;
// shape a tuple of
// non-negative ints (at most NPY_MAX_DIMS); the header at most 10000 bytes
// (numpy's own max_header_size); the data exactly numel * itemsize bytes (no
// trailing bytes). Every problem: -1 and one error line "NAME: problem".
#pragma once
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8
#define NPY_MAX_HEADER 10000

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    size_t numel;
    int itemsize;  // 4 (<f4) or 8 (<f8) as stored
} NpyInfo;

// Parses a whole .npy file image; *data = malloc'd float32 copy [numel]
// (float64 values rounded to nearest float32). NAME is used in errors. 0 / -1.
int npy_read_memory(const void *buf, size_t n, const char *name, float **data, NpyInfo *info);
// Same from a file.
int npy_read(const char *path, float **data, NpyInfo *info);
// Writes data [prod(shape)] as a version 1.0 '<f4' C-order .npy (header
// padded to a 64-byte boundary, as numpy does); atomic (PATH.tmp, fsync,
// rename). 0 / -1.
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
