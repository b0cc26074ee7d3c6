// test_pipeline.c: the generation pipeline (infer/pipeline.h) against
// diffusers' StableDiffusionPipeline run the upstream Arc2Face way on the
// tiny bundled model assets/demo (fixtures: tools/ref/make_pipeline_fixtures.py,
// model: tools/make_demo_model.py). CPU fp32.
//
// Per case (sampler, steps, guidance, n, seed, size, negative as in the script):
//  - the torch-compatible initial latents equal diffusers' randn latents
//    BITWISE (same generator, same float kernel; NCHW -> NHWC);
//  - the conditioning rows (ID prompt, negative) match transformers';
//  - the latents after EVERY step match callback_on_step_end's, and the
//    decoded image (output_type "np", before uint8) matches.
//
// Tolerances. One UNet / CLIP / VAE forward of these tiny models agrees with
// torch to ~1e-6 relative (their own tests); the sampler then amplifies: each
// DPM-Solver++ step forms x0 = (x - sigma eps) / alpha, which at the first
// steps divides by alpha ~ 0.07 (sigma ~ 14.6), and the latents of this
// untrained model grow to |x| ~ 60. Errors are bounded relative to the
// latents' scale: |got - want| <= 2e-5 * max|want| (per step); measured
// worst 3.2e-7 (dpm10), 4.7e-7 (ddim6), 5.3e-7 (euler8_zero), 5.1e-7
// (dpm5_nocfg) -- ~40x margin for other compilers, FMA contraction and thread
// counts. The image (values in [0, 1]) gets 2e-5 absolute; measured worst
// 8.9e-7.
#include <math.h>
#include <string.h>

#include "../infer/pipeline.h"
#include "../kernels/common.h"
#include "../kernels/torch_randn.h"
#include "fixture.h"
#include "test.h"

#define DEMO "assets/demo"

typedef struct {
    const char *name;
    SamplerKind sampler;
    int steps;
    float guidance;
    int n, seed, H, W;
    NegativeKind negative;
} Case;

// The same cases as tools/ref/make_pipeline_fixtures.py's CASES.
static const Case k_cases[] = {
    {"dpm10", SAMPLER_DPMPP2M, 10, 3.0f, 2, 0, 64, 64, NEGATIVE_EMPTY},
    {"ddim6", SAMPLER_DDIM, 6, 3.0f, 1, 3, 64, 48, NEGATIVE_EMPTY},
    {"euler8_zero", SAMPLER_EULER, 8, 3.0f, 1, 5, 64, 64, NEGATIVE_ZERO},
    {"dpm5_nocfg", SAMPLER_DPMPP2M, 5, 1.0f, 1, 9, 64, 64, NEGATIVE_EMPTY},
};

static Models g_models;
static int g_loaded;  // 1 loaded, -1 failed

static const Models *models(void) {
    if (!g_loaded) {
        ModelPaths p = {DEMO "/model/arc2face", DEMO "/model/encoder", DEMO "/base/vae",
                        DEMO "/base/scheduler/scheduler_config.json", "assets/tokenizer"};
        g_loaded = models_load(&g_models, &p, cpu_backend(), DT_F32, (size_t)256 << 20) == 0 ? 1 : -1;
        if (g_loaded < 0) test_fail(__FILE__, __LINE__, "models_load: %s", a2f_last_error());
    }
    return g_loaded > 0 ? &g_models : NULL;
}

typedef struct {
    Fixture *fx;
    const Case *c;
    double worst;  // max over steps of max|got - want| / max|want|
    int failed_step;
} StepCheck;

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static int on_step(void *user, int step, int nsteps, const float *x, int n, int h, int w) {
    StepCheck *sc = user;
    size_t N = (size_t)n * h * w * 4;
    float *want = fx_f32(sc->fx, N, "latents.%d", step);
    if (!want) return 0;
    double scale = max_abs(want, N), err = 0;
    for (size_t i = 0; i < N; i++) err = fmax(err, fabs((double)x[i] - want[i]));
    double rel = err / scale;
    if (rel > sc->worst) sc->worst = rel;
    if (!(rel <= 2e-5) && sc->failed_step < 0) {
        sc->failed_step = step;
        test_fail(__FILE__, __LINE__, "%s: latents after step %d: max err %.3g (%.3g of max|x| %.3g)", sc->c->name, step,
                  err, rel, scale);
    }
    return 0;
}

static void run_case(const Case *c) {
    const Models *m = models();
    if (!m) return;
    Fixture *fx = fx_open("pipeline/%s.safetensors", c->name);
    if (!fx) return;
    GenerateOptions o;
    generate_options_default(&o);
    o.sampler = c->sampler;
    o.steps = c->steps;
    o.guidance = c->guidance;
    o.n_images = c->n;
    o.seed = (uint64_t)c->seed;
    o.height = c->H;
    o.width = c->W;
    o.negative = c->negative;
    o.progress = 0;
    const int h = c->H / 8, w = c->W / 8, D = m->clip.cfg.hidden;
    const size_t N = (size_t)c->n * h * w * 4, NI = (size_t)c->n * c->H * c->W * 3;
    float *id = fx_f32(fx, 512, "id"), *lat0 = fx_f32(fx, N, "latents0"), *img_want = fx_f32(fx, NI, "image");
    float *cond_want = fx_f32(fx, (size_t)77 * D, "cond"), *uncond_want = fx_f32(fx, (size_t)77 * D, "uncond");
    if (!id || !lat0 || !img_want || !cond_want || !uncond_want) goto out;

    // initial latents: bitwise torch.randn, times init_noise_sigma in float32
    // as diffusers' prepare_latents (Euler: max sigma; DPM / DDIM: 1)
    float *x0 = xmalloc(N * sizeof(float));
    Scheduler s;
    EXPECT(scheduler_init(&s, c->sampler, &m->sched, c->steps) == 0, "%s", a2f_last_error());
    const float sigma0 = scheduler_init_noise_sigma(&s);
    scheduler_free(&s);
    for (size_t i = 0; i < N; i++) lat0[i] *= sigma0;
    EXPECT(generate_initial_latents(m, &o, x0) == 0, "%s", a2f_last_error());
    EXPECT(memcmp(x0, lat0, N * sizeof(float)) == 0, "%s: initial latents differ from torch.randn", c->name);
    free(x0);

    // conditioning rows. Tiny CLIP, fp32: measured <= 5e-7; 1e-5 abs + 1e-5 rel.
    float *cond = xmalloc((size_t)2 * 77 * D * sizeof(float));
    EXPECT(generate_conditioning(m, &o, id, cond) == 0, "%s", a2f_last_error());
    EXPECT_CLOSE("uncond", cond, uncond_want, (size_t)77 * D, 1e-5, 1e-5);
    EXPECT_CLOSE("cond", cond + (size_t)77 * D, cond_want, (size_t)77 * D, 1e-5, 1e-5);
    free(cond);

    // the whole pipeline with the per-step check
    StepCheck sc = {fx, c, 0, -1};
    o.on_step = on_step;
    o.user = &sc;
    float *img = xmalloc(NI * sizeof(float));
    GenerateStats st;
    EXPECT(generate_f32(m, &o, id, img, &st) == 0, "%s", a2f_last_error());
    EXPECT(st.nsteps == c->steps, "%d steps", st.nsteps);
    double ierr = 0;
    for (size_t i = 0; i < NI; i++) ierr = fmax(ierr, fabs((double)img[i] - img_want[i]));
    EXPECT(ierr <= 2e-5, "%s: image max err %.3g", c->name, ierr);
    printf("  %s: worst step latents err %.2g of scale, image err %.2g\n", c->name, sc.worst, ierr);
    free(img);
out:
    fx_close(fx);
}

TEST(pipeline_dpm10_matches_diffusers) { run_case(&k_cases[0]); }
TEST(pipeline_ddim6_matches_diffusers) { run_case(&k_cases[1]); }
TEST(pipeline_euler8_zero_negative_matches_diffusers) { run_case(&k_cases[2]); }
TEST(pipeline_dpm5_no_guidance_matches_diffusers) { run_case(&k_cases[3]); }

// Philox noise: element i of the NHWC latents is philox normal i (seed, offset 0),
// independent of n (the first image's noise does not change when n grows).
TEST(pipeline_philox_noise_is_elementwise) {
    const Models *m = models();
    if (!m) return;
    GenerateOptions o;
    generate_options_default(&o);
    o.noise = NOISE_PHILOX;
    o.height = o.width = 64;
    o.seed = 42;
    o.n_images = 2;
    float a[2 * 8 * 8 * 4], b[8 * 8 * 4];
    EXPECT(generate_initial_latents(m, &o, a) == 0, "%s", a2f_last_error());
    o.n_images = 1;
    EXPECT(generate_initial_latents(m, &o, b) == 0, "%s", a2f_last_error());
    EXPECT(memcmp(a, b, sizeof b) == 0, "first image's noise depends on n");
    double s = 0;
    for (int i = 0; i < 512; i++) s += a[i] * a[i];
    EXPECT(s / 512 > 0.7 && s / 512 < 1.3, "variance %.3f", s / 512);
}

TEST(pipeline_id_helpers_and_bad_options) {
    float a[512] = {0}, b[512] = {0}, v[512];
    a[0] = 1;
    b[1] = 1;
    EXPECT(id_blend(a, b, 0.5f, v) == 0 && fabsf(v[0] - sqrtf(0.5f)) < 1e-6f && fabsf(v[1] - sqrtf(0.5f)) < 1e-6f,
           "blend");
    EXPECT(id_blend(a, b, 0.0f, v) == 0 && v[0] == 1.0f && v[1] == 0.0f, "t = 0");
    float z[512] = {0};
    EXPECT(id_normalize(z) != 0, "zero vector accepted");
    const Models *m = models();
    if (!m) return;
    GenerateOptions o;
    generate_options_default(&o);
    o.height = 60;  // not a multiple of 8
    o.width = 64;
    float img[1];
    EXPECT(generate_f32(m, &o, a, img, NULL) != 0 && strstr(a2f_last_error(), "multiple of 8"), "%s",
           a2f_last_error());
    o.height = 64;
    o.steps = 0;
    EXPECT(generate_f32(m, &o, a, img, NULL) != 0 && strstr(a2f_last_error(), "steps"), "%s", a2f_last_error());
}
