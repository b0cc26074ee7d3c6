// options.c: option parsing shared by several verbs (see cli.h).
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "cli.h"

// The CUDA backend is linked only into CUDA builds; NULL otherwise.
const Backend *cuda_backend(void) __attribute__((weak));

int cli_backend(const char *verb, const char *device, const char *dtype, const Backend **be, DType *dt) {
    if (!strcmp(dtype, "f32"))
        *dt = DT_F32;
    else if (!strcmp(dtype, "bf16"))
        *dt = DT_BF16;
    else
        return cli_usage_error(verb, "--dtype must be f32 or bf16, not '%s'", dtype);
    if (!strcmp(device, "cpu")) {
        *be = cpu_backend();
        if (*dt != DT_F32) return cli_usage_error(verb, "the CPU backend computes in f32 only (use --dtype f32)");
    } else if (!strcmp(device, "cuda")) {
        if (!cuda_backend) return cli_error("%s: this build has no CUDA backend (link build/libarc2face_cuda.a)", verb);
        *be = cuda_backend();
        if (!*be) return cli_error("%s: --device cuda: %s", verb, a2f_last_error());
    } else {
        return cli_usage_error(verb, "--device must be cpu or cuda, not '%s'", device);
    }
    return CLI_OK;
}

int cli_face_option(const char *verb, int argc, char **argv, int *i, long *face) {
    if (++*i == argc) return cli_usage_error(verb, "--face needs a value");
    const char *v = argv[*i];
    char *end;
    *face = strtol(v, &end, 10);
    if (*end || end == v || *face < 0 || *face > 100000) return cli_usage_error(verb, "bad --face '%s'", v);
    return CLI_OK;
}
