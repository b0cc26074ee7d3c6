// torch_pickle.c: restricted, non-executing unpickler for torch state dicts
// (see torch_pickle.h). Values live in one object table; the stack, the mark
// stack and the memo hold object indices. Every count that grows with the
// input (objects, memo slots, container items) is bounded by the input size.
#include "torch_pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"

enum { K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT, K_GLOBAL, K_STORAGE, K_TENSOR };
static const char *const k_kind_name[] = {"None", "bool", "int", "float", "str", "tuple",
                                          "list", "dict", "global", "storage", "tensor"};

// Allowlisted globals.
enum { G_ODICT = 1, G_REBUILD_V2, G_REBUILD, G_REBUILD_PARAM, G_STORAGE };
static const struct {
    const char *mod, *name;
    int id;
    StDType dt;  // G_STORAGE only
} k_globals[] = {
    {"collections", "OrderedDict", G_ODICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0},
    {"torch._utils", "_rebuild_tensor", G_REBUILD, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0},
    {"torch", "FloatStorage", G_STORAGE, ST_F32},
    {"torch", "HalfStorage", G_STORAGE, ST_F16},
    {"torch", "BFloat16Storage", G_STORAGE, ST_BF16},
    {"torch", "DoubleStorage", G_STORAGE, ST_F64},
    {"torch", "LongStorage", G_STORAGE, ST_I64},
    {"torch", "IntStorage", G_STORAGE, ST_I32},
    {"torch", "ShortStorage", G_STORAGE, ST_I16},
    {"torch", "CharStorage", G_STORAGE, ST_I8},
    {"torch", "ByteStorage", G_STORAGE, ST_U8},
    {"torch", "BoolStorage", G_STORAGE, ST_BOOL},
};
#define NGLOBALS ((int)(sizeof k_globals / sizeof k_globals[0]))

typedef struct {
    int kind;
    int64_t i;             // BOOL/INT value; GLOBAL: k_globals index; TENSOR: index in P.tens
    const uint8_t *s;      // STR: bytes in the input (not NUL-terminated); STORAGE: key
    uint32_t slen;
    int *items;            // TUPLE/LIST: [n] items; DICT: [n] = n/2 (key, value) pairs
    int n, cap;
    StDType sdt;           // STORAGE
    uint64_t snumel;       // STORAGE: elements
    int visited;           // DICT: collected already
} Obj;

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    const char *what;
    Obj *obj;
    int nobj, capobj;
    int *stack, nstack, capstack;
    int *marks, nmarks, capmarks;
    int *memo;
    size_t nmemo;          // memo slots allocated
    uint64_t memo_len;     // distinct slots stored (MEMOIZE's next index)
    TPklTensor *tens;      // tensor records (name unset until collected)
    int ntens, captens;
    TPklResult *out;
    int capout;
} P;

static int fail(P *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(P *p, const char *fmt, ...) {
    char msg[A2F_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a2f_set_error("%s: %s (at byte %zu)", p->what, msg, p->pos);
    return -1;
}

static void grow(void **buf, int *cap, int need, size_t elt) {
    if (need <= *cap) return;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*buf, (size_t)c * elt);
    CHECK(q);
    *buf = q;
    *cap = c;
}

static int new_obj(P *p, int kind) {
    grow((void **)&p->obj, &p->capobj, p->nobj + 1, sizeof(Obj));
    Obj *o = &p->obj[p->nobj];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return p->nobj++;
}

static void push(P *p, int id) {
    grow((void **)&p->stack, &p->capstack, p->nstack + 1, sizeof(int));
    p->stack[p->nstack++] = id;
}

static int push_new(P *p, int kind, int64_t v) {
    int id = new_obj(p, kind);
    p->obj[id].i = v;
    push(p, id);
    return id;
}

static void add_item(P *p, int container, int item) {
    Obj *o = &p->obj[container];
    grow((void **)&o->items, &o->cap, o->n + 1, sizeof(int));
    o->items[o->n++] = item;
}

// Reads k bytes of operand; NULL (error set) when the input ends first.
static const uint8_t *take(P *p, size_t k, const char *op) {
    if (p->n - p->pos < k) {
        fail(p, "truncated pickle: %s needs %zu more bytes", op, k);
        return NULL;
    }
    const uint8_t *r = p->p + p->pos;
    p->pos += k;
    return r;
}

static uint32_t rd_u32(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

// Index of the object popped from the stack, or -1 (underflow; error set).
static int pop(P *p, const char *op) {
    int floor = p->nmarks ? p->marks[p->nmarks - 1] : 0;
    if (p->nstack <= floor) return fail(p, "stack underflow in %s", op);
    return p->stack[--p->nstack];
}

// Pops the topmost mark; returns the stack position it recorded, or -1.
static int pop_mark(P *p, const char *op) {
    if (!p->nmarks) return fail(p, "%s without MARK", op);
    return p->marks[--p->nmarks];
}

static int memo_put(P *p, uint64_t idx) {
    if (p->nstack == 0 || (p->nmarks && p->nstack <= p->marks[p->nmarks - 1]))
        return fail(p, "memo put with an empty stack");
    // The pickler numbers memo entries 0, 1, 2, ...; each costs >= 2 input bytes.
    if (idx > p->n) return fail(p, "memo index %llu out of range", (unsigned long long)idx);
    if (idx >= p->nmemo) {
        size_t m = p->nmemo ? p->nmemo : 64;
        while (m <= idx) m *= 2;
        p->memo = realloc(p->memo, m * sizeof(int));
        CHECK(p->memo);
        for (size_t k = p->nmemo; k < m; k++) p->memo[k] = -1;
        p->nmemo = m;
    }
    if (p->memo[idx] < 0) p->memo_len++;
    p->memo[idx] = p->stack[p->nstack - 1];
    return 0;
}

static int memo_get(P *p, uint64_t idx) {
    if (idx >= p->nmemo || p->memo[idx] < 0) return fail(p, "memo index %llu was never stored", (unsigned long long)idx);
    push(p, p->memo[idx]);
    return 0;
}

// "module.name" with anything unprintable as '?', for error lines.
static void global_str(char *buf, size_t cap, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
    size_t k = 0;
    for (size_t i = 0; i < ml + 1 + nl && k + 1 < cap; i++) {
        uint8_t c = i < ml ? mod[i] : i == ml ? '.' : name[i - ml - 1];
        buf[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[k] = 0;
}

static int push_global(P *p, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
    for (int g = 0; g < NGLOBALS; g++)
        if (strlen(k_globals[g].mod) == ml && memcmp(k_globals[g].mod, mod, ml) == 0 &&
            strlen(k_globals[g].name) == nl && memcmp(k_globals[g].name, name, nl) == 0) {
            push_new(p, K_GLOBAL, g);
            return 0;
        }
    char g[160];
    global_str(g, sizeof g, mod, ml, name, nl);
    return fail(p, "refusing global '%s': only tensor rebuilds, torch storage types and collections.OrderedDict "
                   "are allowed (this loader executes no code)",
                g);
}

// GLOBAL: "module\nname\n".
static int op_global(P *p) {
    const uint8_t *s[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(p->p + p->pos, '\n', p->n - p->pos);
        if (!nl) return fail(p, "truncated pickle: GLOBAL operand has no newline");
        s[k] = p->p + p->pos;
        len[k] = (size_t)(nl - s[k]);
        p->pos += len[k] + 1;
    }
    return push_global(p, s[0], len[0], s[1], len[1]);
}

static int is_kind(const P *p, int id, int kind) { return p->obj[id].kind == kind; }
static int is_global(const P *p, int id, int g) {
    return p->obj[id].kind == K_GLOBAL && k_globals[p->obj[id].i].id == g;
}

// A tuple of non-negative ints (shape or stride) into v[TPKL_MAX_DIMS]; returns its length or -1.
static int int_tuple(P *p, int id, int64_t *v, const char *what) {
    const Obj *o = &p->obj[id];
    if (o->kind != K_TUPLE) return fail(p, "tensor %s is a %s, not a tuple", what, k_kind_name[o->kind]);
    if (o->n > TPKL_MAX_DIMS) return fail(p, "tensor has %d dims (at most %d supported)", o->n, TPKL_MAX_DIMS);
    for (int d = 0; d < o->n; d++) {
        const Obj *e = &p->obj[o->items[d]];
        if (e->kind != K_INT || e->i < 0 || e->i > (int64_t)ST_MAX_DIM)
            return fail(p, "tensor %s[%d] is not an int in [0, 2^48)", what, d);
        v[d] = e->i;
    }
    return o->n;
}

// _rebuild_tensor[_v2](storage, storage_offset, size, stride, ...) -> tensor record.
static int rebuild_tensor(P *p, const Obj *args) {
    const Obj *st = &p->obj[args->items[0]], *off = &p->obj[args->items[1]];
    if (st->kind != K_STORAGE) return fail(p, "tensor rebuild: first argument is a %s, not a storage", k_kind_name[st->kind]);
    if (off->kind != K_INT || off->i < 0 || off->i > (int64_t)ST_MAX_DIM)
        return fail(p, "tensor rebuild: bad storage offset");
    TPklTensor t;
    memset(&t, 0, sizeof t);
    int nd = int_tuple(p, args->items[2], t.shape, "size");
    if (nd < 0) return -1;
    int ns = int_tuple(p, args->items[3], t.stride, "stride");
    if (ns < 0) return -1;
    if (ns != nd) return fail(p, "tensor rebuild: size has %d dims but stride %d", nd, ns);
    t.ndim = nd;
    t.dtype = st->sdt;
    t.storage_numel = st->snumel;
    t.offset = (uint64_t)off->i;
    t.numel = 1;
    for (int d = 0; d < nd; d++) {
        if (t.shape[d] && t.numel > ((uint64_t)1 << 62) / (uint64_t)t.shape[d])
            return fail(p, "tensor rebuild: element count overflows");
        t.numel *= (uint64_t)t.shape[d];
    }
    // Contiguous (row-major) strides; size-1 dims may have any stride (as torch's is_contiguous).
    int64_t want = 1;
    for (int d = nd - 1; d >= 0 && t.numel; d--) {
        if (t.shape[d] != 1 && t.stride[d] != want)
            return fail(p, "tensor rebuild: non-contiguous strides (dim %d has stride %lld, want %lld); "
                           "save contiguous tensors (.contiguous())",
                        d, (long long)t.stride[d], (long long)want);
        want *= t.shape[d];
    }
    if (t.numel && t.offset + t.numel > t.storage_numel)
        return fail(p, "tensor rebuild: offset %llu + %llu elements exceeds the storage's %llu",
                    (unsigned long long)t.offset, (unsigned long long)t.numel, (unsigned long long)t.storage_numel);
    t.storage_key = xmalloc(st->slen + 1);
    memcpy(t.storage_key, st->s, st->slen);
    t.storage_key[st->slen] = 0;
    grow((void **)&p->tens, &p->captens, p->ntens + 1, sizeof(TPklTensor));
    p->tens[p->ntens] = t;
    push_new(p, K_TENSOR, p->ntens++);
    return 0;
}

static int op_reduce(P *p) {
    int a = pop(p, "REDUCE"), f;
    if (a < 0 || (f = pop(p, "REDUCE")) < 0) return -1;
    if (!is_kind(p, a, K_TUPLE)) return fail(p, "REDUCE arguments are a %s, not a tuple", k_kind_name[p->obj[a].kind]);
    if (!is_kind(p, f, K_GLOBAL)) return fail(p, "REDUCE on a %s, not a global", k_kind_name[p->obj[f].kind]);
    const Obj *args = &p->obj[a];
    int g = k_globals[p->obj[f].i].id;
    const char *gname = k_globals[p->obj[f].i].name;
    switch (g) {
    case G_ODICT:
        if (args->n != 0) return fail(p, "collections.OrderedDict with %d arguments (want 0)", args->n);
        push_new(p, K_DICT, 0);
        return 0;
    case G_REBUILD_V2:
        if (args->n != 6 && args->n != 7) return fail(p, "_rebuild_tensor_v2 with %d arguments (want 6 or 7)", args->n);
        return rebuild_tensor(p, args);
    case G_REBUILD:
        if (args->n != 4) return fail(p, "_rebuild_tensor with %d arguments (want 4)", args->n);
        return rebuild_tensor(p, args);
    case G_REBUILD_PARAM:
        if (args->n < 1 || !is_kind(p, args->items[0], K_TENSOR))
            return fail(p, "_rebuild_parameter without a tensor argument");
        push(p, args->items[0]);
        return 0;
    default:
        return fail(p, "REDUCE on torch.%s is not allowed", gname);
    }
}

// BINPERSID: ('storage', <XStorage global>, key, location, numel) -> storage.
static int op_persid(P *p) {
    int t = pop(p, "BINPERSID");
    if (t < 0) return -1;
    const Obj *o = &p->obj[t];
    if (o->kind != K_TUPLE || o->n < 5) return fail(p, "persistent id is not a 5-tuple");
    const Obj *tag = &p->obj[o->items[0]], *key = &p->obj[o->items[2]], *num = &p->obj[o->items[4]];
    if (tag->kind != K_STR || tag->slen != 7 || memcmp(tag->s, "storage", 7) != 0)
        return fail(p, "persistent id does not start with 'storage'");
    if (!is_global(p, o->items[1], G_STORAGE)) return fail(p, "persistent id has no torch storage type");
    if (key->kind != K_STR || key->slen == 0 || key->slen > 64 || memchr(key->s, 0, key->slen) || memchr(key->s, '/', key->slen))
        return fail(p, "persistent id has a bad storage key");
    if (num->kind != K_INT || num->i < 0 || num->i > (int64_t)ST_MAX_DIM) return fail(p, "persistent id has a bad element count");
    StDType dt = k_globals[p->obj[o->items[1]].i].dt;
    const uint8_t *ks = key->s;
    uint32_t kl = key->slen;
    uint64_t numel = (uint64_t)num->i;
    int id = new_obj(p, K_STORAGE);  // may move p->obj: o, tag, key, num are stale from here
    Obj *s = &p->obj[id];
    s->sdt = dt;
    s->s = ks;
    s->slen = kl;
    s->snumel = numel;
    push(p, id);
    return 0;
}

// Pops everything above the topmost mark into a new container of KIND (DICT: pairs).
static int collect_mark(P *p, int kind, const char *op) {
    int m = pop_mark(p, op);
    if (m < 0) return -1;
    int n = p->nstack - m;
    if (kind == K_DICT && n % 2) return fail(p, "%s with an odd number of items", op);
    int id = new_obj(p, kind);
    for (int k = m; k < p->nstack; k++) add_item(p, id, p->stack[k]);
    p->nstack = m;
    push(p, id);
    return 0;
}

// SETITEMS / APPENDS: moves the items above the mark into the container below it.
static int extend_mark(P *p, int kind, const char *op) {
    int m = pop_mark(p, op);
    if (m < 0) return -1;
    int n = p->nstack - m;
    if (m == 0 || (p->nmarks && m <= p->marks[p->nmarks - 1])) return fail(p, "stack underflow in %s", op);
    int c = p->stack[m - 1];
    if (!is_kind(p, c, kind)) return fail(p, "%s on a %s", op, k_kind_name[p->obj[c].kind]);
    if (kind == K_DICT && n % 2) return fail(p, "%s with an odd number of items", op);
    for (int k = m; k < p->nstack; k++) add_item(p, c, p->stack[k]);
    p->nstack = m;
    return 0;
}

static int op_tuple_n(P *p, int k) {
    if (p->nstack - (p->nmarks ? p->marks[p->nmarks - 1] : 0) < k) return fail(p, "stack underflow in TUPLE%d", k);
    int id = new_obj(p, K_TUPLE);
    for (int j = p->nstack - k; j < p->nstack; j++) add_item(p, id, p->stack[j]);
    p->nstack -= k;
    push(p, id);
    return 0;
}

static int run(P *p, int *result) {
    while (p->pos < p->n) {
        uint8_t op = p->p[p->pos++];
        const uint8_t *b;
        int x, y;
        switch (op) {
        case 0x80:  // PROTO
            if (!(b = take(p, 1, "PROTO"))) return -1;
            if (b[0] < 2 || b[0] > 5) return fail(p, "pickle protocol %d not supported (torch.save writes 2)", b[0]);
            break;
        case 0x95:  // FRAME (protocol 4): 8-byte length, contents follow inline
            if (!take(p, 8, "FRAME")) return -1;
            break;
        case '.':  // STOP
            if ((*result = pop(p, "STOP")) < 0) return -1;
            return 0;
        case '(':  // MARK
            grow((void **)&p->marks, &p->capmarks, p->nmarks + 1, sizeof(int));
            p->marks[p->nmarks++] = p->nstack;
            break;
        case '0':  // POP
            if (pop(p, "POP") < 0) return -1;
            break;
        case '2':  // DUP
            if ((x = pop(p, "DUP")) < 0) return -1;
            push(p, x);
            push(p, x);
            break;
        case '}': push_new(p, K_DICT, 0); break;   // EMPTY_DICT
        case ']': push_new(p, K_LIST, 0); break;   // EMPTY_LIST
        case ')': push_new(p, K_TUPLE, 0); break;  // EMPTY_TUPLE
        case 'N': push_new(p, K_NONE, 0); break;   // NONE
        case 0x88: push_new(p, K_BOOL, 1); break;  // NEWTRUE
        case 0x89: push_new(p, K_BOOL, 0); break;  // NEWFALSE
        case 'd': if (collect_mark(p, K_DICT, "DICT")) return -1; break;
        case 'l': if (collect_mark(p, K_LIST, "LIST")) return -1; break;
        case 't': if (collect_mark(p, K_TUPLE, "TUPLE")) return -1; break;
        case 0x85: if (op_tuple_n(p, 1)) return -1; break;
        case 0x86: if (op_tuple_n(p, 2)) return -1; break;
        case 0x87: if (op_tuple_n(p, 3)) return -1; break;
        case 'u': if (extend_mark(p, K_DICT, "SETITEMS")) return -1; break;
        case 'e': if (extend_mark(p, K_LIST, "APPENDS")) return -1; break;
        case 's':  // SETITEM
            if ((y = pop(p, "SETITEM")) < 0 || (x = pop(p, "SETITEM")) < 0) return -1;
            if (p->nstack <= (p->nmarks ? p->marks[p->nmarks - 1] : 0)) return fail(p, "stack underflow in SETITEM");
            if (!is_kind(p, p->stack[p->nstack - 1], K_DICT)) return fail(p, "SETITEM on a non-dict");
            add_item(p, p->stack[p->nstack - 1], x);
            add_item(p, p->stack[p->nstack - 1], y);
            break;
        case 'a':  // APPEND
            if ((x = pop(p, "APPEND")) < 0) return -1;
            if (p->nstack <= (p->nmarks ? p->marks[p->nmarks - 1] : 0)) return fail(p, "stack underflow in APPEND");
            if (!is_kind(p, p->stack[p->nstack - 1], K_LIST)) return fail(p, "APPEND on a non-list");
            add_item(p, p->stack[p->nstack - 1], x);
            break;
        case 'J':  // BININT
            if (!(b = take(p, 4, "BININT"))) return -1;
            push_new(p, K_INT, (int32_t)rd_u32(b));
            break;
        case 'K':  // BININT1
            if (!(b = take(p, 1, "BININT1"))) return -1;
            push_new(p, K_INT, b[0]);
            break;
        case 'M':  // BININT2
            if (!(b = take(p, 2, "BININT2"))) return -1;
            push_new(p, K_INT, b[0] | b[1] << 8);
            break;
        case 0x8a: {  // LONG1: n bytes two's complement little endian
            if (!(b = take(p, 1, "LONG1"))) return -1;
            int nb = b[0];
            if (nb > 8) return fail(p, "LONG1 of %d bytes does not fit 64 bits", nb);
            if (!(b = take(p, (size_t)nb, "LONG1"))) return -1;
            uint64_t v = 0;
            for (int k = 0; k < nb; k++) v |= (uint64_t)b[k] << (8 * k);
            if (nb && nb < 8 && (b[nb - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * nb);  // sign-extend
            push_new(p, K_INT, (int64_t)v);
            break;
        }
        case 'G':  // BINFLOAT: big-endian double (value unused by the loader)
            if (!take(p, 8, "BINFLOAT")) return -1;
            push_new(p, K_FLOAT, 0);
            break;
        case 'X': case 0x8c: case 'U': {  // BINUNICODE (u32 len), SHORT_BINUNICODE, SHORT_BINSTRING (u8 len)
            const char *nm = op == 'X' ? "BINUNICODE" : op == 'U' ? "SHORT_BINSTRING" : "SHORT_BINUNICODE";
            uint32_t len;
            if (op == 'X') {
                if (!(b = take(p, 4, nm))) return -1;
                len = rd_u32(b);
            } else {
                if (!(b = take(p, 1, nm))) return -1;
                len = b[0];
            }
            if (!(b = take(p, len, nm))) return -1;
            int id = push_new(p, K_STR, 0);
            p->obj[id].s = b;
            p->obj[id].slen = len;
            break;
        }
        case 'q':  // BINPUT
            if (!(b = take(p, 1, "BINPUT")) || memo_put(p, b[0])) return -1;
            break;
        case 'r':  // LONG_BINPUT
            if (!(b = take(p, 4, "LONG_BINPUT")) || memo_put(p, rd_u32(b))) return -1;
            break;
        case 0x94:  // MEMOIZE
            if (memo_put(p, p->memo_len)) return -1;  // index = number of memo entries so far
            break;
        case 'h':  // BINGET
            if (!(b = take(p, 1, "BINGET")) || memo_get(p, b[0])) return -1;
            break;
        case 'j':  // LONG_BINGET
            if (!(b = take(p, 4, "LONG_BINGET")) || memo_get(p, rd_u32(b))) return -1;
            break;
        case 'c':
            if (op_global(p)) return -1;
            break;
        case 0x93: {  // STACK_GLOBAL: module and name strings from the stack
            if ((y = pop(p, "STACK_GLOBAL")) < 0 || (x = pop(p, "STACK_GLOBAL")) < 0) return -1;
            if (!is_kind(p, x, K_STR) || !is_kind(p, y, K_STR)) return fail(p, "STACK_GLOBAL on non-strings");
            if (push_global(p, p->obj[x].s, p->obj[x].slen, p->obj[y].s, p->obj[y].slen)) return -1;
            break;
        }
        case 'R':
            if (op_reduce(p)) return -1;
            break;
        case 'Q':
            if (op_persid(p)) return -1;
            break;
        case 'b':  // BUILD: state is ignored (OrderedDict._metadata, tensor state)
            if ((x = pop(p, "BUILD")) < 0) return -1;
            if (p->nstack <= (p->nmarks ? p->marks[p->nmarks - 1] : 0)) return fail(p, "stack underflow in BUILD");
            y = p->stack[p->nstack - 1];
            if (!is_kind(p, y, K_DICT) && !is_kind(p, y, K_TENSOR))
                return fail(p, "BUILD on a %s (only dicts and tensors)", k_kind_name[p->obj[y].kind]);
            break;
        default:
            p->pos--;
            return fail(p, "unknown or unsupported pickle opcode 0x%02x", op);
        }
    }
    return fail(p, "truncated pickle: no STOP opcode");
}

// ---------------------------------------------------------------- results

static int add_result(P *p, const char *name, int tensor) {
    TPklResult *r = p->out;
    for (int k = 0; k < r->count; k++)
        if (strcmp(r->tensors[k].name, name) == 0) {
            char e[128];
            size_t o = 0;
            for (const char *c = name; *c && o < 100; c++) e[o++] = ((unsigned char)*c < 0x20 || *c == 0x7f) ? '?' : *c;
            e[o] = 0;
            return fail(p, "duplicate tensor name '%s'", e);
        }
    grow((void **)&r->tensors, &p->capout, r->count + 1, sizeof(TPklTensor));
    TPklTensor *t = &r->tensors[r->count++];
    *t = p->tens[tensor];
    size_t kl = strlen(p->tens[tensor].storage_key);
    t->storage_key = xmalloc(kl + 1);
    memcpy(t->storage_key, p->tens[tensor].storage_key, kl + 1);
    t->name = xmalloc(strlen(name) + 1);
    strcpy(t->name, name);
    return 0;
}

#define NAME_MAX_LEN 1024

static int collect(P *p, int dict, char *name, size_t len, int depth) {
    Obj *d = &p->obj[dict];
    if (d->visited) return 0;  // a dict reachable twice is listed once (no cycles, no blow-up)
    if (depth > 32) return fail(p, "dicts nested more than 32 deep");
    d->visited = 1;
    for (int k = 0; k < d->n / 2; k++) {
        const Obj *key = &p->obj[d->items[2 * k]];
        int v = d->items[2 * k + 1];
        int vk = p->obj[v].kind;
        if (vk != K_TENSOR && vk != K_DICT) continue;
        char kbuf[32];
        const char *ks;
        size_t kl;
        if (key->kind == K_STR) {
            ks = (const char *)key->s;
            kl = key->slen;
            if (memchr(ks, 0, kl)) return fail(p, "a dict key contains a NUL byte");
        } else if (key->kind == K_INT) {
            kl = (size_t)snprintf(kbuf, sizeof kbuf, "%lld", (long long)key->i);
            ks = kbuf;
        } else {
            continue;
        }
        size_t nl = len + (len ? 1 : 0) + kl;
        if (nl >= NAME_MAX_LEN) return fail(p, "tensor name longer than %d bytes", NAME_MAX_LEN);
        if (len) name[len] = '.';
        memcpy(name + len + (len ? 1 : 0), ks, kl);
        name[nl] = 0;
        if (vk == K_TENSOR) {
            if (add_result(p, name, (int)p->obj[v].i)) return -1;
        } else if (collect(p, v, name, nl, depth + 1)) {
            return -1;
        }
        name[len] = 0;
    }
    return 0;
}

void tpkl_free(TPklResult *r) {
    for (int k = 0; k < r->count; k++) {
        free(r->tensors[k].name);
        free(r->tensors[k].storage_key);
    }
    free(r->tensors);
    memset(r, 0, sizeof *r);
}

int tpkl_parse(const uint8_t *bytes, size_t n, const char *what, TPklResult *out) {
    memset(out, 0, sizeof *out);
    P p;
    memset(&p, 0, sizeof p);
    p.p = bytes;
    p.n = n;
    p.what = what;
    p.out = out;
    int top = -1, rc = run(&p, &top);
    if (rc == 0 && !is_kind(&p, top, K_DICT))
        rc = fail(&p, "the pickled object is a %s, not a dict of tensors (a state dict)", k_kind_name[p.obj[top].kind]);
    if (rc == 0) {
        char name[NAME_MAX_LEN + 1] = "";
        rc = collect(&p, top, name, 0, 0);
    }
    for (int k = 0; k < p.nobj; k++) free(p.obj[k].items);
    for (int k = 0; k < p.ntens; k++) free(p.tens[k].storage_key);
    free(p.obj);
    free(p.stack);
    free(p.marks);
    free(p.memo);
    free(p.tens);
    if (rc) tpkl_free(out);
    return rc;
}
