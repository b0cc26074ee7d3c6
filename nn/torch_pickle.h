// torch_pickle.h: a restricted unpickler for the data.pkl of torch.save zip
// checkpoints (format: shared/reference/file-formats.md section 1.2).
//
// It is a stack machine that EXECUTES NOTHING: GLOBAL only resolves names on a
// fixed allowlist (tensor rebuild functions, legacy typed storage classes,
// collections.OrderedDict); any other global (os.system, builtins.eval, ...)
// stops the parse with one error naming it. REDUCE is interpreted only for
// those allowlisted callables and builds plain values (dicts, tensor records).
//
// Opcodes: protocol 2 as torch writes it (PROTO, STOP, MARK, POP, EMPTY_DICT,
// DICT, SETITEM(S), EMPTY_LIST, LIST, APPEND(S), EMPTY_TUPLE, TUPLE, TUPLE1-3,
// NONE, NEWTRUE, NEWFALSE, BININT, BININT1, BININT2, LONG1, BINFLOAT,
// BINUNICODE, SHORT_BINSTRING, BINPUT, LONG_BINPUT, BINGET, LONG_BINGET,
// GLOBAL, REDUCE, BUILD, BINPERSID) plus the protocol 4 ones a re-pickled file
// may hold (SHORT_BINUNICODE, MEMOIZE, FRAME, STACK_GLOBAL). Anything else is
// an "unknown opcode" error.
//
// Result: every tensor reachable from the top-level object through (nested)
// dicts, named by its key path joined with '.' ({"state_dict": {"w": t}} gives
// "state_dict.w"). Non-tensor values (ints, strings, None, lists) are skipped.
// Tensors must be contiguous (torch.save of a state dict always is).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"  // StDType

#define TPKL_MAX_DIMS 8

typedef struct {
    char *name;              // key path, NUL-terminated (owned by TPklResult)
    char *storage_key;       // archive record data/<storage_key>
    StDType dtype;           // from the storage class (FloatStorage -> F32, ...)
    uint64_t storage_numel;  // storage size in elements (from the persistent id)
    uint64_t offset;         // storage offset in elements
    int ndim;
    int64_t shape[TPKL_MAX_DIMS];
    int64_t stride[TPKL_MAX_DIMS];
    uint64_t numel;          // product of shape
} TPklTensor;

typedef struct {
    int count;
    TPklTensor *tensors;     // [count] in the order first reached
} TPklResult;

// Parses the pickle bytes p[0..n). `what` names the stream in error lines
// ("FILE:data.pkl"). Returns 0, or -1 with one a2f_set_error() line; on failure
// *out needs no tpkl_free.
int tpkl_parse(const uint8_t *p, size_t n, const char *what, TPklResult *out);
void tpkl_free(TPklResult *r);
