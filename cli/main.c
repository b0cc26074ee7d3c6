// main.c: the `arc2face` program: verb dispatch and top-level --help.
//
// Adding a verb: write cli/VERB.c with cmd_VERB(), declare it in cli/cli.h and
// add one line to k_verbs below.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv);  // cli/convert.c
int cmd_forward(int argc, char **argv);  // cli/forward.c
int cmd_plan(int argc, char **argv);     // cli/plan.c
int cmd_tokenize(int argc, char **argv); // cli/tokenize.c
int cmd_schedule(int argc, char **argv); // cli/schedule.c
int cmd_generate(int argc, char **argv); // cli/generate.c
int cmd_embed(int argc, char **argv);    // cli/embed.c
int cmd_eval_id(int argc, char **argv);  // cli/eval_id.c

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} Verb;

static const Verb k_verbs[] = {
    {"inspect", cmd_inspect, "list the tensors (name, dtype, shape), metadata and totals of .safetensors files"},
    {"convert", cmd_convert, "convert torch .bin / ONNX / safetensors weights to safetensors"},
    {"forward", cmd_forward, "run one network (unet, vae-enc, vae-dec, clip, clip-id, mlp, iresnet) [+ backward]"},
    {"plan", cmd_plan, "memory plan: parameters, gradients, optimizer state, activation peak"},
    {"tokenize", cmd_tokenize, "print the 77 CLIP token ids of a prompt (SD1.5 tokenizer)"},
    {"schedule", cmd_schedule, "print a sampler's timesteps and sigmas (dpmpp2m, ddim, euler) as diffusers computes them"},
    {"generate", cmd_generate, "new photos of a person from a face photo, crop or ArcFace embedding"},
    {"embed", cmd_embed, "the ArcFace ID vector of face photos / aligned crops (print or save .npy/.safetensors)"},
    {"eval-id", cmd_eval_id, "cosine of generated images' faces to an identity (per image and mean)"},
};
#define NVERBS ((int)(sizeof k_verbs / sizeof k_verbs[0]))

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("arc2face: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_ERR;
}

int cli_usage_error(const char *verb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("arc2face: error: ", stderr);
    if (verb) fprintf(stderr, "%s: ", verb);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see arc2face %s%s--help)\n", verb ? verb : "", verb ? " " : "");
    va_end(ap);
    return CLI_USAGE;
}

const char *cli_group(char *buf, uint64_t n) {
    char tmp[32];
    int l = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)n), o = 0;
    for (int i = 0; i < l; i++) {
        if (i && (l - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

int cli_is_help(const char *s) { return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0; }

static void print_help(FILE *f) {
    fprintf(f,
            "usage: arc2face VERB [ARGS...]\n"
            "\n"
            "arc2face: a C framework reproducing Arc2Face (ID-conditioned Stable Diffusion 1.5).\n"
            "\n"
            "verbs:\n");
    for (int i = 0; i < NVERBS; i++) fprintf(f, "  %-10s %s\n", k_verbs[i].name, k_verbs[i].summary);
    fprintf(f,
            "\n"
            "Run \"arc2face VERB --help\" for the details of a verb.\n"
            "Training (train) arrives with the training issue.\n"
            "Exit status: 0 success, 1 error (one \"arc2face: error:\" line on stderr), 2 usage error.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    for (int i = 0; i < NVERBS; i++)
        if (strcmp(argv[1], k_verbs[i].name) == 0) return k_verbs[i].fn(argc - 1, argv + 1);
    return cli_usage_error(NULL, "unknown verb '%s'", argv[1]);
}
