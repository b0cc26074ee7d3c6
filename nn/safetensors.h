// safetensors.h: reader (mmap, validated) and atomic writer for .safetensors files.
//
// Format (huggingface/safetensors; see shared/reference/file-formats.md section 4):
//   u64 little-endian N | N bytes of UTF-8 JSON header | data buffer.
// The header maps tensor name -> {"dtype","shape","data_offsets":[begin,end)}
// (offsets relative to the data buffer) plus an optional "__metadata__"
// string->string map.
//
// The reader validates the whole header before anything is used: size limits,
// UTF-8, JSON shape and types, known dtype strings, dims/offsets in [0, 2^48-1],
// no overflow, duplicate keys, and that the tensors sorted by offset tile the
// data buffer exactly (no holes, no overlap, no trailing bytes). Every failure
// returns -1 with one a2f_set_error() line "NAME: problem". Tensor data is used
// in place from the mapping; it may be unaligned (the format does not promise
// alignment), so read it with memcpy or the st_load_* functions.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../kernels/tensor.h"

#define ST_MAX_HEADER 100000000ull       // reference MAX_HEADER_SIZE
#define ST_MAX_DIM ((1ull << 48) - 1)   // schema limit for dims and offsets

// The safetensors dtypes, in the reference enum order (= ascending alignment);
// the reference writer orders tensors by descending enum value, then name.
typedef enum {
    ST_BOOL = 0,
    ST_F4,
    ST_F6_E2M3,
    ST_F6_E3M2,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_F8_E8M0,
    ST_F8_E4M3FNUZ,
    ST_F8_E5M2FNUZ,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_C64,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_DTYPE_COUNT
} StDType;

const char *st_dtype_name(StDType t);  // "F32", "BF16", ...
int st_dtype_bits(StDType t);          // bits per element (F4 = 4, F6_* = 6)
// Parses a dtype string; returns -1 when unknown.
int st_dtype_parse(const char *s);
// Maps between the framework's float dtypes and safetensors: returns 0 and sets
// *out, or -1 when the dtype has no float counterpart (e.g. I64).
int st_dtype_to_dtype(StDType t, DType *out);
StDType st_dtype_from_dtype(DType t);

typedef struct {
    const char *name;      // NUL-terminated, owned by the SafeTensors
    StDType dtype;
    int ndim;              // 0 for a scalar
    const int64_t *shape;  // [ndim]
    uint64_t numel;        // product of shape (1 for a scalar, 0 if any dim is 0)
    uint64_t offset;       // begin within the data buffer
    uint64_t nbytes;       // end - begin
    const void *data;      // [nbytes] in the file mapping; may be unaligned
} StTensor;

typedef struct {
    char *name;             // path (or memory-buffer name) used in error lines
    const uint8_t *buf;     // the whole file
    size_t len;
    int mapped;             // buf is an mmap we must unmap
    uint64_t header_len;    // N
    uint64_t data_len;      // bytes in the data buffer
    int count;
    StTensor *tensors;      // [count], sorted by data offset (= file order)
    int *by_name;           // [count] tensor indices sorted by name (for st_find)
    int nmeta;
    const char **meta_key;  // [nmeta], sorted by key
    const char **meta_val;  // [nmeta]
    char *pool;             // storage for names and metadata strings
    int64_t *dims;          // storage for all shapes
} SafeTensors;

// Maps PATH read-only and validates it. Returns 0, or -1 with the error set
// ("PATH: problem"); on failure *st needs no st_close.
int st_open(SafeTensors *st, const char *path);
// Same, on a caller buffer that must outlive *st; NAME is used in error lines.
int st_open_memory(SafeTensors *st, const char *name, const void *buf, size_t len);
void st_close(SafeTensors *st);

static inline int st_count(const SafeTensors *st) { return st->count; }
static inline const StTensor *st_tensor(const SafeTensors *st, int i) { return &st->tensors[i]; }
// Index of the tensor called NAME, or -1.
int st_find(const SafeTensors *st, const char *name);
// Metadata value for KEY, or NULL.
const char *st_metadata_get(const SafeTensors *st, const char *key);

// Copies tensor NAME into dst converted to dst_t (F32/F16/BF16 stored tensors
// only). When expect_shape is non-NULL the tensor must have exactly that shape
// ([ndim]); otherwise dst must hold the tensor's numel elements. Errors (missing
// tensor, non-float dtype, shape mismatch) name the file and the tensor.
int st_load(const SafeTensors *st, const char *name, void *dst, DType dst_t, int ndim, const int64_t *expect_shape);
// dst: [prod(expect_shape)] floats.
int st_load_f32(const SafeTensors *st, const char *name, float *dst, int ndim, const int64_t *expect_shape);
// dst: [prod(expect_shape)] bf16 bit patterns.
int st_load_bf16(const SafeTensors *st, const char *name, uint16_t *dst, int ndim, const int64_t *expect_shape);

// ---- writer --------------------------------------------------------------
// Collects tensors, then writes PATH.tmp, fsyncs, and renames it onto PATH, so
// PATH is either the old file or the complete new one. Tensors are ordered as
// the reference writer does (descending dtype alignment, then name; data is
// therefore naturally aligned) and the header is padded with spaces to a
// multiple of 8, so the bytes match safetensors' own output for one metadata
// key (with several keys the reference order is a hash order; ours is sorted).
typedef struct StWriter StWriter;

StWriter *st_writer_begin(const char *path);
// data: [nbytes of prod(shape) elements of dt], borrowed until finish/abort.
int st_writer_add(StWriter *w, const char *name, StDType dt, int ndim, const int64_t *shape, const void *data);
int st_writer_metadata(StWriter *w, const char *key, const char *value);
// Writes the file and frees w (also on failure). Returns 0 or -1 with the error set.
int st_writer_finish(StWriter *w);
void st_writer_abort(StWriter *w);
