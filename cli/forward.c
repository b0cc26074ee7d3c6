// forward.c: `arc2face forward`: runs one network of the registry
// (nn/models.h) on named inputs, optionally with backward. The way to check
// the framework against PyTorch: same inputs, same layouts, compare outputs and
// gradients.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/models.h"
#include "cli.h"

// The CUDA backend is linked only into CUDA builds; NULL otherwise.

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face forward --model NAME --weights PATH --inputs IN.safetensors --out OUT.safetensors\n"
            "                        [--grad DOUT.safetensors] [--device cpu|cuda] [--dtype f32|bf16] [--mem-mb N]\n"
            "\n"
            "Runs one network on the named tensors of IN.safetensors and writes its output as \"out\"\n"
            "(fp32). With --grad (a file holding \"out\": the upstream gradient dL/dout) it also runs\n"
            "the backward and writes \"grad.<input>\" for every differentiable input and\n"
            "\"grad.<upstream key>\" for every trainable parameter. All tensors use PyTorch layouts\n"
            "(images and latents NCHW, conv weights [O, I, kH, kW]), so they compare 1:1 with\n"
            "diffusers / transformers / insightface. BatchNorms run in eval mode.\n"
            "\n"
            "  --device cpu|cuda   backend (default cpu; cuda needs a CUDA build)\n"
            "  --dtype f32|bf16    compute dtype (default f32; bf16 keeps fp32 master weights and gradients)\n"
            "  --mem-mb N          activation and gradient stack size, MiB each (default 8192)\n"
            "\n"
            "models and their inputs:\n");
    for (int i = 0; i < models_count(); i++) {
        const ModelDef *d = models_get(i);
        fprintf(f, "  %-8s %s\n           --weights: %s\n", d->name, d->summary, d->weights_doc);
        for (int k = 0; k < d->ninputs; k++)
            fprintf(f, "           %-22s %s%s\n", d->in[k].name, d->in[k].doc, d->in[k].differentiable ? "" : " (no gradient)");
        fprintf(f, "           %-22s %s\n", "out", d->out_doc);
    }
}

int cmd_forward(int argc, char **argv) {
    ModelRunOpts o = {0};
    const char *device = "cpu", *dtype = "f32";
    long mem_mb = 8192;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        }
        const char **dst = !strcmp(a, "--model") ? &o.model : !strcmp(a, "--weights") ? &o.weights
                           : !strcmp(a, "--inputs") ? &o.inputs : !strcmp(a, "--out") ? &o.out
                           : !strcmp(a, "--grad") ? &o.grad : !strcmp(a, "--device") ? &device
                           : !strcmp(a, "--dtype") ? &dtype : NULL;
        if (!strcmp(a, "--mem-mb")) {
            if (++i == argc) return cli_usage_error("forward", "--mem-mb needs a value");
            char *end;
            mem_mb = strtol(argv[i], &end, 10);
            if (*end || mem_mb < 1 || mem_mb > (1L << 24)) return cli_usage_error("forward", "bad --mem-mb '%s'", argv[i]);
            continue;
        }
        if (!dst) return cli_usage_error("forward", "unknown argument '%s'", a);
        if (++i == argc) return cli_usage_error("forward", "%s needs a value", a);
        *dst = argv[i];
    }
    if (!o.model || !o.weights || !o.inputs || !o.out)
        return cli_usage_error("forward", "--model, --weights, --inputs and --out are required");
    if (!models_find(o.model)) {
        char names[256] = "";
        for (int i = 0; i < models_count(); i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", models_get(i)->name);
        return cli_usage_error("forward", "unknown model '%s' (one of %s)", o.model, names);
    }
    int brc = cli_backend("forward", device, dtype, &o.be, &o.dt);
    if (brc != CLI_OK) return brc;
    o.act_bytes = (size_t)mem_mb << 20;
    if (models_run(&o)) return cli_error("forward: %s", a2f_last_error());
    printf("%s: wrote out%s\n", o.out, o.grad ? " and gradients" : "");
    return CLI_OK;
}
