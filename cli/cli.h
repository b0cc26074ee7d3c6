// cli.h: the verbs of the `arc2face` program and helpers they share.
//
// Each verb is `int cmd_VERB(int argc, char **argv)` with argv[0] = the verb
// name; it returns the process exit status: 0 ok, 1 error (after printing one
// "arc2face: error: ..." line via cli_error), 2 usage error. cli/main.c lists
// the verbs in a table.
#pragma once
#include <stdint.h>

#include "../kernels/backend.h"

#define CLI_OK 0
#define CLI_ERR 1
#define CLI_USAGE 2

// Prints "arc2face: error: MSG" on stderr (one line). Returns CLI_ERR.
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Same for a usage error, with a hint to VERB --help. Returns CLI_USAGE.
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Writes n with thousands separators ("1,234,567") into buf (>= 32 bytes).
const char *cli_group(char *buf, uint64_t n);
// 1 when s is "--help" or "-h".
int cli_is_help(const char *s);

// cli/options.c: options several verbs share.
// --device cpu|cuda and --dtype f32|bf16 -> *be, *dt. Usage errors (exit 2) name
// VERB ("--dtype must be f32 or bf16, not 'X'", "the CPU backend computes in f32
// only (use --dtype f32)", "--device must be cpu or cuda, not 'X'"); a build
// without the CUDA backend gives "VERB: this build has no CUDA backend ..."
// (exit 1). Returns CLI_OK or the exit status.
int cli_backend(const char *verb, const char *device, const char *dtype, const Backend **be, DType *dt);
// --face K (argv[*i] is "--face"): consumes the value, K in [0, 100000] ->
// *face. Returns CLI_OK or CLI_USAGE ("--face needs a value", "bad --face 'X'").
int cli_face_option(const char *verb, int argc, char **argv, int *i, long *face);

int cmd_inspect(int argc, char **argv);
