// convert.c: `arc2face convert IN OUT.safetensors [--dtype keep|f32|f16|bf16]`.
//
//  IN.bin / .pt / .pth / .ckpt  torch.save zip checkpoint, read natively by the
//                               restricted unpickler (nn/torch_zip.h; nothing runs)
//  IN.safetensors               re-written (e.g. to change the float dtype)
//  IN.onnx                      tools/onnx2safetensors.py (python3 + the onnx package)
// Tensor names and PyTorch layouts are kept; the output is written atomically.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../nn/safetensors.h"
#include "../nn/torch_zip.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face convert IN OUT.safetensors [--dtype keep|f32|f16|bf16]\n"
            "\n"
            "Converts upstream weight files to safetensors with the original tensor names and\n"
            "PyTorch layouts (loadable by diffusers / transformers / torch).\n"
            "  IN.bin, .pt, .pth, .ckpt  torch.save zip checkpoints (e.g. the Arc2Face encoder's\n"
            "                            pytorch_model.bin), read natively by a restricted unpickler\n"
            "                            that executes nothing and refuses any global other than\n"
            "                            tensor rebuilds, torch storages and OrderedDict.\n"
            "                            Nested dicts give names joined with '.'.\n"
            "  IN.safetensors            re-written (use with --dtype).\n"
            "  IN.onnx                   ArcFace / glintr100 IResNets and SCRFD, through\n"
            "                            tools/onnx2safetensors.py (needs python3 and `pip install onnx`):\n"
            "                            IResNet graphs get the insightface key names (folded\n"
            "                            BatchNorms unfolded), others keep ONNX names; whether input\n"
            "                            normalisation is inside the graph is recorded in the metadata\n"
            "                            (input_norm, input_mean, input_std).\n"
            "  --dtype D                 convert floating-point tensors to D (default keep).\n"
            "Set A2F_ROOT to the repository root if tools/ cannot be found next to the binary.\n");
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

// ---------------------------------------------------------------- native

static int convert_native(const char *in, const char *out, int dtype_keep, DType want) {
    SafeTensors st;
    int rc = torch_is_checkpoint_path(in) ? torch_open(&st, in) : st_open(&st, in);
    if (rc) return cli_error("%s", a2f_last_error());
    StWriter *w = st_writer_begin(out);
    if (!w) {
        st_close(&st);
        return cli_error("%s", a2f_last_error());
    }
    void **bufs = xcalloc((size_t)st_count(&st) + 1, sizeof(void *));
    uint64_t values = 0;
    rc = 0;
    for (int i = 0; i < st_count(&st) && rc == 0; i++) {
        const StTensor *t = st_tensor(&st, i);
        DType src;
        const void *data = t->data;
        StDType sdt = t->dtype;
        if (!dtype_keep && st_dtype_to_dtype(t->dtype, &src) == 0 && src != want) {
            bufs[i] = xmalloc((size_t)t->numel * dtype_size(want) + 1);
            rc = st_load(&st, t->name, bufs[i], want, 0, NULL);
            data = bufs[i];
            sdt = st_dtype_from_dtype(want);
        }
        if (rc == 0) rc = st_writer_add(w, t->name, sdt, t->ndim, t->shape, data);
        values += t->numel;
    }
    if (rc == 0) rc = st_writer_metadata(w, "format", "pt");
    if (rc == 0) rc = st_writer_finish(w);
    else st_writer_abort(w);
    int n = st_count(&st);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    st_close(&st);
    if (rc) return cli_error("%s", a2f_last_error());
    char g[32];
    printf("%s: %d tensors, %s values\n", out, n, cli_group(g, values));
    return CLI_OK;
}

// ---------------------------------------------------------------- ONNX

// tools/onnx2safetensors.py: $A2F_ROOT/tools, next to the binary (build/..), or ./tools.
static int find_tool(char *path, size_t n) {
    const char *root = getenv("A2F_ROOT");
    if (root && *root) {
        snprintf(path, n, "%s/tools/onnx2safetensors.py", root);
        if (access(path, R_OK) == 0) return 0;
    }
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, n, "%s/../tools/onnx2safetensors.py", exe);
            if (access(path, R_OK) == 0) return 0;
        }
    }
    snprintf(path, n, "tools/onnx2safetensors.py");
    return access(path, R_OK) == 0 ? 0 : -1;
}

static int convert_onnx(const char *in, const char *out, int dtype_keep) {
    if (!dtype_keep) return cli_usage_error("convert", "--dtype is not supported for .onnx inputs (they are fp32)");
    char tool[PATH_MAX + 64];
    if (find_tool(tool, sizeof tool))
        return cli_error("convert: cannot find tools/onnx2safetensors.py (set A2F_ROOT to the repository root)");
    int fd[2];
    if (pipe(fd)) return cli_error("convert: pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return cli_error("convert: fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        close(fd[1]);
        execlp("python3", "python3", tool, in, out, (char *)NULL);
        fprintf(stderr, "onnx2safetensors: error: ONNX conversion needs python3 with the onnx package, and "
                        "python3 was not found (%s)\n", strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    // Keep the child's stderr; its last line is the error to report.
    char buf[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0) len += (size_t)r;
        if (len == sizeof buf - 1) {  // keep the tail
            memmove(buf, buf + len / 2, len - len / 2);
            len -= len / 2;
        }
    }
    buf[len] = 0;
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return CLI_OK;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) buf[--len] = 0;
    char *last = strrchr(buf, '\n');
    last = last ? last + 1 : buf;
    const char *pfx = "onnx2safetensors: error: ";
    if (strncmp(last, pfx, strlen(pfx)) == 0) last += strlen(pfx);
    if (!*last) last = "the converter failed without a message";
    return cli_error("convert: %s", last);
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dt = "keep";
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--dtype")) {
            if (++i == argc) return cli_usage_error("convert", "--dtype needs a value");
            dt = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("convert", "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            return cli_usage_error("convert", "too many arguments");
        }
    }
    if (!in || !out) return cli_usage_error("convert", "needs IN and OUT.safetensors");
    int keep = !strcmp(dt, "keep");
    DType want = DT_F32;
    if (!keep) {
        if (!strcmp(dt, "f32")) want = DT_F32;
        else if (!strcmp(dt, "f16")) want = DT_F16;
        else if (!strcmp(dt, "bf16")) want = DT_BF16;
        else return cli_usage_error("convert", "--dtype must be keep, f32, f16 or bf16, not '%s'", dt);
    }
    if (!ends_with(out, ".safetensors")) return cli_usage_error("convert", "OUT must end in .safetensors");
    if (ends_with(in, ".onnx")) return convert_onnx(in, out, keep);
    if (torch_is_checkpoint_path(in) || ends_with(in, ".safetensors")) return convert_native(in, out, keep, want);
    return cli_usage_error("convert", "'%s': unknown input type (want .bin, .pt, .pth, .ckpt, .safetensors or .onnx)", in);
}
