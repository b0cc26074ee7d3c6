// schedule.c: `arc2face schedule --steps N [--sampler S] [--config FILE]`:
// prints a sampler's schedule (infer/scheduler.h), one line per step:
// index, the timestep the UNet gets, and the sigma of the latents entering
// that step. A first line starting with '#' names the settings.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/scheduler.h"
#include "../kernels/common.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face schedule --steps N [--sampler dpmpp2m|ddim|euler] [--config scheduler_config.json]\n"
            "\n"
            "Prints the sampler's schedule as diffusers computes it: one line per step with the\n"
            "step index, the timestep passed to the UNet and sigma = sqrt((1 - abar) / abar) of the\n"
            "latents entering that step. A first '#' line gives the sampler, the timestep spacing,\n"
            "the sigma after the last step and init_noise_sigma.\n"
            "\n"
            "  --steps N        number of denoising steps (1 .. num_train_timesteps)\n"
            "  --sampler S      dpmpp2m (default; DPM-Solver++ 2M, as Arc2Face), ddim (eta 0), euler\n"
            "  --config FILE    a diffusers scheduler_config.json (default: SD1.5's, built in:\n"
            "                   scaled_linear 0.00085..0.012, 1000 steps, steps_offset 1)\n"
            "\n"
            "Keys absent from the file take each sampler's diffusers default, as\n"
            "DPMSolverMultistepScheduler.from_config(pipe.scheduler.config) does: with SD1.5's file\n"
            "dpmpp2m and euler use \"linspace\" spacing (999 959 ... 40 for 25 steps), ddim \"leading\".\n");
}

int cmd_schedule(int argc, char **argv) {
    const char *cfg_path = NULL, *sampler = "dpmpp2m";
    int steps = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--steps") || !strcmp(argv[i], "--sampler") || !strcmp(argv[i], "--config")) {
            if (i + 1 == argc) return cli_usage_error("schedule", "%s needs a value", argv[i]);
            const char *v = argv[++i];
            if (!strcmp(argv[i - 1], "--steps")) {
                char *end;
                long n = strtol(v, &end, 10);
                if (*v == 0 || *end || n < 1 || n > 100000)
                    return cli_usage_error("schedule", "--steps must be a positive integer, got '%s'", v);
                steps = (int)n;
            } else if (!strcmp(argv[i - 1], "--sampler")) {
                sampler = v;
            } else {
                cfg_path = v;
            }
        } else {
            return cli_usage_error("schedule", "unknown argument '%s'", argv[i]);
        }
    }
    if (!steps) return cli_usage_error("schedule", "--steps N is required");
    SamplerKind kind;
    if (sampler_parse(sampler, &kind)) return cli_usage_error("schedule", "%s", a2f_last_error());
    SchedulerConfig cfg;
    if (cfg_path) {
        if (scheduler_config_load(&cfg, cfg_path)) return cli_error("schedule: %s", a2f_last_error());
    } else {
        scheduler_config_sd15(&cfg);
    }
    Scheduler s;
    if (scheduler_init(&s, kind, &cfg, steps)) return cli_error("schedule: %s", a2f_last_error());
    static const char *spacing[] = {"default", "linspace", "leading", "trailing"};
    int n = scheduler_steps(&s);
    printf("# %s, %d steps, %s spacing: step timestep sigma (final sigma %.9g, init_noise_sigma %.9g)\n",
           sampler_name(kind), n, spacing[s.spacing], scheduler_sigma(&s, n), scheduler_init_noise_sigma(&s));
    for (int i = 0; i < n; i++) printf("%d %.9g %.9g\n", i, scheduler_timestep(&s, i), scheduler_sigma(&s, i));
    scheduler_free(&s);
    return CLI_OK;
}
