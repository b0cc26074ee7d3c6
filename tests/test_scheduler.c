// test_scheduler.c: the samplers (infer/scheduler.h) against diffusers 0.42.
//
// Fixtures: tests/fixtures/scheduler/ from tools/ref/make_scheduler_fixtures.py
// (DPMSolverMultistepScheduler / DDIMScheduler / EulerDiscreteScheduler made
// with from_config(SD1.5's PNDM scheduler config), as the Arc2Face pipeline
// does). Checks: alphas_cumprod; timesteps (exact), sigmas, init_noise_sigma
// and input scales for 10, 25 and 50 steps and for config variants; whole
// trajectories of the pipeline loop with a fake model eps = 0.3 x_in +
// 0.01 t / 1000; DDPM add_noise; config errors; `arc2face schedule`.
//
// Tolerances. torch.linspace's float32 result depends on the CPU's vector
// width by an ulp (145 of the 1000 betas differ between its AVX512 path, which
// made the fixtures, and its scalar formula, which we use), so abar and sigma
// agree to a few ulp: measured max relative error 1.8e-7 (abar 1.2e-7, 121 of
// 1000 values not bitwise equal); we allow 1e-6.
// Trajectories (latents of magnitude <= ~40 for Euler, ~3 otherwise) also see
// the DPM coefficients computed in double here vs float32 (Sleef exp/log) in
// torch, ~1e-6 relative in h; errors grow mildly over the steps. Measured
// worst relative error (to max(|x|, 1)) over all 17 runs: 1.2e-6
// (dpmpp2m_50); DDIM at 10 steps is bitwise equal. Allowed: 1e-5.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../infer/scheduler.h"
#include "../kernels/common.h"
#include "fixture.h"
#include "test.h"

#define FIXDIR "tests/fixtures/scheduler/"
#define NLAT 512  // fixture latents [2, 4, 8, 8]

static const char *const k_samplers[] = {"dpmpp2m", "ddim", "euler"};

// Max relative error (|got - want| / max(|want|, floor)) over n.
static double max_rel(const float *got, const float *want, size_t n, double floor_) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor_);
        if (!(d <= m)) m = d;  // NaN propagates
    }
    return m;
}

TEST(sched_alphas_cumprod) {
    Fixture *f = fx_open("scheduler/sched.safetensors");
    if (!f) return;
    SchedulerConfig c;
    scheduler_config_sd15(&c);
    float got[1000];
    scheduler_alphas_cumprod(&c, got);
    const float *want = fx_f32(f, 1000, "alphas_cumprod");
    // a few float32 ulp (see the header): measured 1.2e-7
    if (want) EXPECT_CLOSE("alphas_cumprod", got, want, 1000, 0, 1e-6);
    fx_close(f);
}

TEST(sched_config_file_is_sd15) {
    SchedulerConfig a, b;
    scheduler_config_sd15(&a);
    EXPECT(scheduler_config_load(&b, FIXDIR "scheduler_config.json") == 0, "%s", a2f_last_error());
    EXPECT(a.num_train_timesteps == b.num_train_timesteps && a.beta_start == b.beta_start &&
               a.beta_end == b.beta_end && a.beta_schedule == b.beta_schedule && a.steps_offset == b.steps_offset &&
               a.set_alpha_to_one == b.set_alpha_to_one && a.clip_sample == b.clip_sample &&
               a.clip_sample_range == b.clip_sample_range && a.timestep_spacing == b.timestep_spacing,
           "scheduler_config.json differs from scheduler_config_sd15");
    SamplerKind k;
    EXPECT(sampler_parse("dpmpp2m", &k) == 0 && k == SAMPLER_DPMPP2M, "dpmpp2m");
    EXPECT(sampler_parse("ddim", &k) == 0 && k == SAMPLER_DDIM, "ddim");
    EXPECT(sampler_parse("euler", &k) == 0 && k == SAMPLER_EULER, "euler");
    EXPECT(sampler_parse("pndm", &k) == -1 && strstr(a2f_last_error(), "pndm"), "pndm rejected");
}

// One fixture run: tag "euler_25", config file (NULL: SD1.5 built in).
typedef struct {
    const char *tag;
    const char *sampler;
    int steps;
    const char *config;
} Run;

static void runs(Run *r, int *n) {
    static char tags[32][40];
    int k = 0;
    for (int s = 0; s < 3; s++) {
        int st[3] = {10, 25, 50};
        for (int j = 0; j < 3; j++) {
            snprintf(tags[k], sizeof tags[k], "%s_%d", k_samplers[s], st[j]);
            r[k] = (Run){tags[k], k_samplers[s], st[j], NULL}, k++;
        }
        snprintf(tags[k], sizeof tags[k], "%s_leading_10", k_samplers[s]);
        r[k] = (Run){tags[k], k_samplers[s], 10, FIXDIR "cfg_leading.json"}, k++;
        snprintf(tags[k], sizeof tags[k], "%s_trailing_10", k_samplers[s]);
        r[k] = (Run){tags[k], k_samplers[s], 10, FIXDIR "cfg_trailing.json"}, k++;
    }
    r[k++] = (Run){"ddim_clip_10", "ddim", 10, FIXDIR "cfg_ddim_clip.json"};
    r[k++] = (Run){"ddim_defaults_10", "ddim", 10, FIXDIR "cfg_defaults.json"};
    *n = k;
}

static int make(Scheduler *s, const Run *r) {
    SchedulerConfig c;
    SamplerKind kind;
    if (r->config) {
        if (scheduler_config_load(&c, r->config)) {
            test_fail(__FILE__, __LINE__, "%s: %s", r->tag, a2f_last_error());
            return -1;
        }
    } else {
        scheduler_config_sd15(&c);
    }
    if (sampler_parse(r->sampler, &kind) || scheduler_init(s, kind, &c, r->steps)) {
        test_fail(__FILE__, __LINE__, "%s: %s", r->tag, a2f_last_error());
        return -1;
    }
    return 0;
}

TEST(sched_timesteps_sigmas) {
    Fixture *f = fx_open("scheduler/sched.safetensors");
    if (!f) return;
    Run rr[32];
    int nr;
    runs(rr, &nr);
    for (int k = 0; k < nr; k++) {
        const Run *r = &rr[k];
        Scheduler s;
        if (make(&s, r)) continue;
        int N = r->steps;
        EXPECT(scheduler_steps(&s) == N, "%s: %d steps", r->tag, scheduler_steps(&s));
        const float *ts = fx_f32(f, N, "%s.timesteps", r->tag), *sg = fx_f32(f, N + 1, "%s.sigmas", r->tag);
        const float *ins = fx_f32(f, 1, "%s.init_noise_sigma", r->tag), *sc = fx_f32(f, N, "%s.input_scale", r->tag);
        if (!ts || !sg || !ins || !sc) break;
        float got_t[64], got_s[65], got_sc[64];
        for (int i = 0; i < N; i++) {
            got_t[i] = scheduler_timestep(&s, i);
            got_sc[i] = scheduler_input_scale(&s, i);
        }
        for (int i = 0; i <= N; i++) got_s[i] = scheduler_sigma(&s, i);
        // timesteps: exact (integers, or float32 values of a float64 linspace)
        int bad = -1;
        for (int i = 0; i < N && bad < 0; i++)
            if (got_t[i] != ts[i]) bad = i;
        EXPECT(bad < 0, "%s: timestep[%d] = %.9g, diffusers %.9g", r->tag, bad, bad < 0 ? 0 : got_t[bad],
               bad < 0 ? 0 : ts[bad]);
        // sigmas, scales, init_noise_sigma: a few ulp of the abar table (header): 1e-6 relative
        char what[80];
        snprintf(what, sizeof what, "%s sigmas", r->tag);
        EXPECT_CLOSE(what, got_s, sg, (size_t)N + 1, 0, 1e-6);
        snprintf(what, sizeof what, "%s input_scale", r->tag);
        EXPECT_CLOSE(what, got_sc, sc, (size_t)N, 0, 1e-6);
        float gi = scheduler_init_noise_sigma(&s);
        snprintf(what, sizeof what, "%s init_noise_sigma", r->tag);
        EXPECT_CLOSE(what, &gi, ins, 1, 0, 1e-6);
        scheduler_free(&s);
    }
    fx_close(f);
}

// The fake model of the fixture script: eps = 0.3 * x_in + float32(0.01 * t / 1000).
static void fake_eps(const float *x_in, float t, float *eps, size_t n) {
    float c = (float)(0.01 * (double)t / 1000.0);
    for (size_t k = 0; k < n; k++) eps[k] = 0.3f * x_in[k] + c;
}

// Runs the pipeline loop; returns the worst relative error over all steps
// (relative to max(|want|, 1): latents are O(1), Euler's start at ~15).
static double trajectory(Fixture *f, const Run *r, const float *noise) {
    Scheduler s;
    if (make(&s, r)) return NAN;
    int N = r->steps;
    const float *want = fx_f32(f, (size_t)N * NLAT, "%s.traj", r->tag);
    if (!want) {
        scheduler_free(&s);
        return NAN;
    }
    float x[NLAT], xin[NLAT], eps[NLAT];
    float ins = scheduler_init_noise_sigma(&s);
    for (int k = 0; k < NLAT; k++) x[k] = noise[k] * ins;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        float sc = scheduler_input_scale(&s, i);
        for (int k = 0; k < NLAT; k++) xin[k] = x[k] * sc;
        fake_eps(xin, scheduler_timestep(&s, i), eps, NLAT);
        if (scheduler_step(&s, i, eps, x, NLAT)) {
            test_fail(__FILE__, __LINE__, "%s: %s", r->tag, a2f_last_error());
            break;
        }
        double e = max_rel(x, want + (size_t)i * NLAT, NLAT, 1.0);
        if (!(e <= worst)) worst = e;
    }
    scheduler_free(&s);
    return worst;
}

TEST(sched_trajectories) {
    Fixture *f = fx_open("scheduler/sched.safetensors");
    if (!f) return;
    const float *noise = fx_f32(f, NLAT, "noise");
    Run rr[32];
    int nr;
    runs(rr, &nr);
    for (int k = 0; noise && k < nr; k++) {
        double e = trajectory(f, &rr[k], noise);
        if (getenv("A2F_VERBOSE")) printf("    %-20s max rel err %.3g\n", rr[k].tag, e);
        // Relative to max(|x|, 1). The inputs differ from diffusers by a few
        // ulp (abar, sigmas) and the DPM coefficients by ~1e-6 (header);
        // measured worst 1.2e-6 over all 17 runs. 1e-5 leaves room for other
        // libm/CPU builds and still catches any wrong coefficient or order
        // (first- instead of second-order DPM steps give errors of 2e-2..9e-2).
        EXPECT(e <= 1e-5, "%s: trajectory max relative error %.3g > 1e-5", rr[k].tag, e);
    }
    fx_close(f);
}

TEST(sched_ddpm_add_noise) {
    Fixture *f = fx_open("scheduler/sched.safetensors");
    if (!f) return;
    const float *x0 = fx_f32(f, 8 * 256, "ddpm.x0"), *eps = fx_f32(f, 8 * 256, "ddpm.eps");
    const float *want = fx_f32(f, 8 * 256, "ddpm.xt");
    const int32_t *t = fx_i32(f, 8, "ddpm.t");
    if (x0 && eps && want && t) {
        SchedulerConfig c;
        scheduler_config_sd15(&c);
        float got[8 * 256];
        for (int b = 0; b < 8; b++) ddpm_add_noise(&c, t[b], x0 + b * 256, eps + b * 256, got + b * 256, 256);
        // sqrt(abar) and sqrt(1 - abar) carry abar's few-ulp difference: 1e-6
        // of |x0| + |eps| (~3 at most), plus float32 rounding of the sum.
        // Measured: bitwise equal at these 8 timesteps.
        EXPECT_CLOSE("ddpm add_noise", got, want, 8 * 256, 3e-6, 1e-6);
    }
    fx_close(f);
}

TEST(sched_bad_configs) {
    static const struct {
        const char *file, *needle;
    } bad[] = {
        {"bad_beta_schedule.json", "beta_schedule"},  {"bad_prediction_type.json", "prediction_type"},
        {"bad_spacing.json", "timestep_spacing"},     {"bad_trained_betas.json", "trained_betas"},
        {"bad_not_object.json", "not a JSON object"}, {"bad_syntax.json", "not valid JSON"},
        {"no_such_file.json", "cannot read"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char path[256];
        snprintf(path, sizeof path, FIXDIR "%s", bad[k].file);
        SchedulerConfig c;
        a2f_clear_error();
        int rc = scheduler_config_load(&c, path);
        const char *e = a2f_last_error();
        EXPECT(rc == -1, "%s accepted", bad[k].file);
        EXPECT(strstr(e, path) && strstr(e, bad[k].needle) && !strchr(e, '\n'), "%s: error '%s' lacks '%s'",
               bad[k].file, e, bad[k].needle);
    }
}

TEST(sched_step_errors) {
    SchedulerConfig c;
    scheduler_config_sd15(&c);
    Scheduler s;
    EXPECT(scheduler_init(&s, SAMPLER_DPMPP2M, &c, 0) == -1, "0 steps accepted");
    EXPECT(scheduler_init(&s, SAMPLER_DPMPP2M, &c, 1001) == -1, "1001 steps accepted");
    // ddim, leading, steps_offset 1, 1000 steps: the first timestep would be 1000
    EXPECT(scheduler_init(&s, SAMPLER_DDIM, &c, 1000) == -1 && strstr(a2f_last_error(), "1000"), "ddim t=1000");
    if (scheduler_init(&s, SAMPLER_DPMPP2M, &c, 5)) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    float x[4] = {1, 2, 3, 4}, e[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    EXPECT(scheduler_step(&s, 5, e, x, 4) == -1, "step 5 of 5 accepted");
    EXPECT(scheduler_step(&s, 0, e, x, 4) == 0, "%s", a2f_last_error());
    EXPECT(scheduler_step(&s, 2, e, x, 4) == -1, "step 2 after 0 accepted");
    EXPECT(scheduler_step(&s, 1, e, x, 3) == -1, "changed n accepted");
    EXPECT(scheduler_step(&s, 1, e, x, 4) == 0, "%s", a2f_last_error());
    scheduler_free(&s);
    // One step to sigma 0 returns x0 = (x - sigma eps) / alpha.
    EXPECT(scheduler_init(&s, SAMPLER_DPMPP2M, &c, 1) == 0 && scheduler_sigma(&s, 1) == 0.0f, "1 step");
    float sg = scheduler_sigma(&s, 0);
    double a = 1 / sqrt((double)sg * sg + 1), want = (1.0 - sg * a * 0.5) / a;
    x[0] = 1, e[0] = 0.5f;
    EXPECT(scheduler_step(&s, 0, e, x, 1) == 0 && fabs(x[0] - want) < 1e-5 * fabs(want), "x0 %g vs %g", x[0], want);
    scheduler_free(&s);
}

// ---------------------------------------------------------------- CLI

// Runs the CLI (tests/test.h test_run); returns stdout (malloc'd), the exit
// status in *rc and stderr in err.
static char *run_cli(const char *args, int *rc, char *err, size_t errsz) {
    char *out, *e;
    *rc = test_run(NULL, args, &out, &e);
    snprintf(err, errsz, "%s", e);
    free(e);
    return out;
}

TEST(sched_cli_matches_diffusers) {
    if (!TEST_HAVE_BIN()) return;
    Fixture *f = fx_open("scheduler/sched.safetensors");
    if (!f) return;
    for (int k = 0; k < 3; k++) {
        char args[128], tag[32], err[512];
        snprintf(args, sizeof args, "schedule --steps 25 --sampler %s", k_samplers[k]);
        snprintf(tag, sizeof tag, "%s_25", k_samplers[k]);
        int rc;
        char *out = run_cli(args, &rc, err, sizeof err);
        const float *ts = fx_f32(f, 25, "%s.timesteps", tag), *sg = fx_f32(f, 26, "%s.sigmas", tag);
        EXPECT(rc == 0 && err[0] == 0, "%s: exit %d, stderr %s", args, rc, err);
        int n = 0, bad = 0;
        for (char *line = strtok(out, "\n"); line && ts && sg; line = strtok(NULL, "\n")) {
            if (line[0] == '#') continue;
            int i;
            float t, s;
            if (sscanf(line, "%d %f %f", &i, &t, &s) != 3 || i != n || n >= 25 || t != ts[n] ||
                fabsf(s - sg[n]) > 1e-6f * sg[n]) {  // %.9g round-trips float32; sigma tolerance as above
                if (!bad++) test_fail(__FILE__, __LINE__, "%s: line '%s' vs diffusers %d %.9g %.9g", args, line, n,
                                      n < 25 && ts ? ts[n] : 0, n < 25 && sg ? sg[n] : 0);
            }
            n++;
        }
        EXPECT(n == 25, "%s: %d step lines", args, n);
        free(out);
    }
    fx_close(f);
    // SD1.5's file gives the same lines as the built-in config.
    int rc1, rc2;
    char err[512];
    char *a = run_cli("schedule --steps 25", &rc1, err, sizeof err);
    char *b = run_cli("schedule --steps 25 --sampler dpmpp2m --config " FIXDIR "scheduler_config.json", &rc2, err,
                      sizeof err);
    EXPECT(rc1 == 0 && rc2 == 0 && !strcmp(a, b), "--config scheduler_config.json differs from the default");
    EXPECT(strstr(a, "\n0 999 14.614646") && strstr(a, "\n24 40 0.199"), "dpmpp2m 25: %s", a);
    free(a);
    free(b);
    // Errors: bad config -> exit 1, one line naming the file; bad usage -> exit 2.
    char *o = run_cli("schedule --steps 25 --config " FIXDIR "bad_beta_schedule.json", &rc1, err, sizeof err);
    EXPECT(rc1 == 1 && o[0] == 0 && !strncmp(err, "arc2face: error: ", 17) && strstr(err, "bad_beta_schedule.json") &&
               strchr(err, '\n') == err + strlen(err) - 1,
           "bad config: exit %d, stderr %s", rc1, err);
    free(o);
    o = run_cli("schedule --steps 25 --sampler pndm", &rc1, err, sizeof err);
    EXPECT(rc1 == 2 && o[0] == 0 && strstr(err, "pndm"), "bad sampler: exit %d, stderr %s", rc1, err);
    free(o);
    o = run_cli("schedule --steps x", &rc1, err, sizeof err);
    EXPECT(rc1 == 2 && o[0] == 0, "bad steps: exit %d", rc1);
    free(o);
    o = run_cli("schedule --help", &rc1, err, sizeof err);
    EXPECT(rc1 == 0 && strstr(o, "usage: arc2face schedule"), "--help: exit %d", rc1);
    free(o);
}
