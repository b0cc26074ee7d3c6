// plan.c: `arc2face plan --config FILE.json`: the memory plan of a run
// (nn/plan.h) as a table, per GPU, with and without gradient checkpointing.
#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "../nn/plan.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face plan --config FILE.json\n"
            "\n"
            "Prints the memory plan of a training or inference run before anything is allocated:\n"
            "parameters (counted from the models' real parameter tables, built from their config\n"
            "files), working weights, fp32 gradients, fp32 master weights and AdamW moments\n"
            "(sharded over zero1_world_size with ZeRO-1), and the activation peak with and\n"
            "without gradient checkpointing, per GPU, against gpu_memory_gb (GB = 1e9 bytes).\n"
            "\n"
            "FILE.json: {\"models\": [{\"model\": \"unet\"|\"clip\"|\"vae-enc\"|\"vae-dec\"|\"vae\"|\"mlp\"|\"iresnet\",\n"
            "                          \"config\": PATH (iresnet: r50, r100, ...), \"train\": BOOL}, ...],\n"
            "            \"resolution\": 512, \"batch\": 4 (per GPU), \"text_tokens\": 77,\n"
            "            \"compute_dtype\": \"bf16\"|\"f32\", \"master_weights\": \"f32\"|\"none\",\n"
            "            \"zero1_world_size\": 1, \"gpu_memory_gb\": 80}\n"
            "Examples: configs/plan_sd15_train_512.json, configs/plan_sd15_train_512_zero1x8.json\n");
}

static double gb(double b) { return b / 1e9; }

int cmd_plan(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--config")) {
            if (++i == argc) return cli_usage_error("plan", "--config needs a value");
            path = argv[i];
        } else {
            return cli_usage_error("plan", "unknown argument '%s'", argv[i]);
        }
    }
    if (!path) return cli_usage_error("plan", "--config FILE.json is required");
    PlanConfig p;
    PlanRow rows[PLAN_MAX_MODELS];
    if (plan_config_read(&p, path) || plan_compute(&p, rows)) return cli_error("plan: %s", a2f_last_error());
    printf("plan %s: %dx%d px, batch %d per GPU, %s compute%s, ZeRO-1 over %d, budget %.0f GB per GPU\n", path,
           p.resolution, p.resolution, p.batch, p.compute == DT_BF16 ? "bf16" : "f32",
           p.master_f32 && p.compute != DT_F32 ? " + fp32 master weights" : "", p.zero1, p.gpu_gb);
    printf("%-8s %5s %15s %9s %9s %9s %9s %11s %11s\n", "model", "train", "parameters", "weights", "grads", "master",
           "adamw m+v", "act (no ck)", "act (ckpt)");
    double tw = 0, tg = 0, tm = 0, ta = 0, tact = 0, tck = 0;
    uint64_t tp = 0;
    for (int k = 0; k < p.nmodels; k++) {
        const PlanRow *r = &rows[k];
        char g[32];
        printf("%-8s %5s %15s %9.2f %9.2f %9.2f %9.2f %11.2f %11.2f\n", r->name, r->train ? "yes" : "no",
               cli_group(g, r->params), gb(r->weights), gb(r->grads), gb(r->master), gb(r->adam), gb(r->act),
               gb(r->act_ckpt));
        tp += r->params, tw += r->weights, tg += r->grads, tm += r->master, ta += r->adam;
        // Models run one after another in a step (VAE encode, CLIP, UNet): their activations
        // are alive together only for trained models (both tapes until the backward).
        tact += r->train ? r->act : 0, tck += r->train ? r->act_ckpt : 0;
    }
    double frozen_peak = 0;
    for (int k = 0; k < p.nmodels; k++)
        if (!rows[k].train && rows[k].act > frozen_peak) frozen_peak = rows[k].act;
    if (frozen_peak > tact) tact = frozen_peak;
    if (frozen_peak > tck) tck = frozen_peak;
    char g[32];
    printf("%-8s %5s %15s %9.2f %9.2f %9.2f %9.2f %11.2f %11.2f\n", "total", "", cli_group(g, tp), gb(tw), gb(tg),
           gb(tm), gb(ta), gb(tact), gb(tck));
    double state = tw + tg + tm + ta, ov = PLAN_RUNTIME_OVERHEAD;
    double peak = state + tact + ov, peak_ck = state + tck + ov;
    printf("model state %.2f GB + runtime overhead %.2f GB (CUDA context, workspaces)\n", gb(state), gb(ov));
    printf("peak per GPU without checkpointing: %6.2f GB  %s %.0f GB budget\n", gb(peak),
           peak <= p.gpu_gb * 1e9 ? "FITS the" : "EXCEEDS the", p.gpu_gb);
    printf("peak per GPU with checkpointing:    %6.2f GB  %s %.0f GB budget\n", gb(peak_ck),
           peak_ck <= p.gpu_gb * 1e9 ? "FITS the" : "EXCEEDS the", p.gpu_gb);
    return CLI_OK;
}
