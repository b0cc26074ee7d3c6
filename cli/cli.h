// cli.h: the verbs of the `arc2face` program and helpers they share.
//
// Each verb is `int cmd_VERB(int argc, char **argv)` with argv[0] = the verb
// name; it returns the process exit status: 0 ok, 1 error (after printing one
// "arc2face: error: ..." line via cli_error), 2 usage error. cli/main.c lists
// the verbs in a table.
#pragma once
#include <stdint.h>

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

int cmd_inspect(int argc, char **argv);
