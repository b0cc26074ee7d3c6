// fixture.h: test-side access to the PyTorch reference fixtures, which are
// .safetensors files under tests/fixtures/ (written by tools/ref/*.py), read
// through the project's own validated reader (nn/safetensors.h).
//
// Every problem (missing or malformed file, missing tensor, wrong dtype or
// element count) is reported as a failure of the running test via test_fail
// and returned as NULL, so a test skips its checks but can never pass silently.
//
//   Fixture *f = fx_open("misc/%s.safetensors", "pool");
//   if (!f) return;
//   float *x = fx_f32(f, n, "%s.x", tag);   // NULL (test failed) unless F32 with n elements
//   ...
//   fx_close(f);                            // frees every array handed out
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Fixture Fixture;

// Opens tests/fixtures/<printf(fmt, ...)> (e.g. "normact/%s.safetensors");
// NULL plus a test failure when the file is missing or not valid safetensors.
Fixture *fx_open(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// A fresh, writable copy of the tensor whose name is printf(fmt, ...): it must
// be stored as F32 (fx_f32) or I32 (fx_i32) and hold exactly numel elements
// (any shape). The copy is owned by the Fixture and freed by fx_close; do not
// free it. Returns NULL plus a test failure otherwise.
float *fx_f32(Fixture *fx, size_t numel, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int32_t *fx_i32(Fixture *fx, size_t numel, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// 1 when the fixture holds a tensor called name (no failure when it does not).
int fx_has(const Fixture *fx, const char *name);

// Closes the file and frees all copies handed out; NULL is a no-op.
void fx_close(Fixture *fx);
