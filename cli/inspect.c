// inspect.c: `arc2face inspect FILE.safetensors...`: validates each file and
// prints its tensors (one per line, in data-offset order = file order: name,
// dtype, shape), its metadata (sorted by key) and the totals.
#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "cli.h"

static void help(void) {
    printf("usage: arc2face inspect FILE.safetensors...\n"
           "\n"
           "Validates each safetensors file (header, dtypes, shapes, offsets) and prints\n"
           "one line per tensor in file order (by data offset):\n"
           "  NAME  DTYPE  [SHAPE]\n"
           "then the metadata sorted by key (\"metadata:\" and \"  KEY: VALUE\" lines),\n"
           "then \"tensors: N  parameters: P  bytes: B\" (B = size of the data buffer).\n"
           "With several files each listing starts with \"==> FILE <==\".\n"
           "Non-printable bytes in names and metadata are shown as \\xNN.\n");
}

// Writes s with non-printable bytes as \xNN.
static void put_escaped(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
}

static int escaped_len(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s < 0x20 || *s == 0x7f) ? 4 : 1;
    return n;
}

static int inspect_file(const char *path) {
    SafeTensors st;
    if (st_open(&st, path)) return cli_error("%s", a2f_last_error());
    int wn = 0, wd = 0;
    uint64_t params = 0;
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        wn = A2F_MAX(wn, escaped_len(t->name));
        wd = A2F_MAX(wd, (int)strlen(st_dtype_name(t->dtype)));
        params += t->numel;
    }
    for (int i = 0; i < st_count(&st); i++) {
        const StTensor *t = st_tensor(&st, i);
        put_escaped(t->name);
        printf("%*s  %-*s  [", wn - escaped_len(t->name), "", wd, st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("]\n");
    }
    if (st.nmeta) {
        printf("metadata:\n");
        for (int i = 0; i < st.nmeta; i++) {
            printf("  ");
            put_escaped(st.meta_key[i]);
            printf(": ");
            put_escaped(st.meta_val[i]);
            printf("\n");
        }
    }
    char g1[32], g2[32];
    printf("tensors: %d  parameters: %s  bytes: %s\n", st_count(&st), cli_group(g1, params),
           cli_group(g2, st.data_len));
    st_close(&st);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv) {
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            return CLI_OK;
        }
        if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("inspect", "unknown option '%s'", argv[i]);
        nfiles++;
    }
    if (nfiles == 0) return cli_usage_error("inspect", "missing FILE.safetensors");
    int first = 1;
    for (int i = 1; i < argc; i++) {
        if (nfiles > 1) printf("%s==> %s <==\n", first ? "" : "\n", argv[i]);
        first = 0;
        fflush(stdout);
        int rc = inspect_file(argv[i]);
        if (rc) return rc;
    }
    return CLI_OK;
}
