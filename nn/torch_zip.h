// torch_zip.h: reader for PyTorch `torch.save` zip checkpoints (.bin / .pt /
// .pth, e.g. transformers' pytorch_model.bin), format in
// shared/reference/file-formats.md section 1.
//
// Container: a ZIP written by miniz: every entry STORED (compressed entries are
// refused with a clear error), 64-byte aligned data, ZIP64 end records, local
// headers with zero sizes (so sizes and offsets come from the central
// directory; the data start from the local header's name and extra lengths).
// Records live under one prefix folder (`archive/`, `pytorch_model/`, ...):
// data.pkl (the pickled state dict, read by the restricted unpickler of
// torch_pickle.h, which executes nothing), data/<key> (raw storages), byteorder
// (must be "little"), version (1..6).
//
// torch_open presents the checkpoint through the SafeTensors view of
// safetensors.h: the tensors (name, dtype, shape, data pointer into the
// read-only mapping) can be used with st_find / st_load / st_load_f32 /
// st_load_bf16 and released with st_close, so weight loading and conversion
// treat both formats alike. Tensor names are the state-dict keys (nested dicts
// joined with '.'). `offset` is the tensor's absolute file offset; tensors that
// share a storage may overlap; tensors[] is sorted by offset.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

// ---- ZIP layer --------------------------------------------------------------
typedef struct {
    const char *name;  // NUL-terminated copy (owned by TZip)
    uint16_t method;   // 0 = STORED
    uint16_t flags;
    uint32_t crc;
    uint64_t size;     // uncompressed size (central directory)
    uint64_t csize;    // compressed size
    uint64_t data;     // file offset of the entry's data
} TZipEntry;

typedef struct {
    const char *what;  // name for error lines (borrowed)
    const uint8_t *buf;
    size_t len;
    int count;
    TZipEntry *e;
    char *names;
} TZip;

// Parses the end records and the central directory of buf[0..len) and checks
// every local header. Returns 0 or -1 with one error line "WHAT: problem".
int tzip_open(TZip *z, const char *what, const uint8_t *buf, size_t len);
void tzip_close(TZip *z);
// Index of the entry called NAME, or -1.
int tzip_find(const TZip *z, const char *name);
// Data of entry i after checking it is STORED: returns a pointer into buf and
// sets *n, or NULL with the error set.
const uint8_t *tzip_data(const TZip *z, int i, uint64_t *n);

// ---- checkpoint --------------------------------------------------------------
// Maps PATH read-only and reads it as a torch zip checkpoint into *st.
// Returns 0, or -1 with one error line naming PATH (truncated zip, bad central
// directory, compressed entry, refused pickle global, missing storage, storage
// size mismatch, ...); on failure *st needs no st_close.
int torch_open(SafeTensors *st, const char *path);
// Same on a caller buffer that outlives *st (NAME for error lines).
int torch_open_memory(SafeTensors *st, const char *name, const void *buf, size_t len);
// 1 when PATH's extension says torch checkpoint (.bin, .pt, .pth, .ckpt).
int torch_is_checkpoint_path(const char *path);
