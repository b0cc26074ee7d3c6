// scheduler.h: the samplers of the generation pipeline, and DDPM training
// noise -- exactly as diffusers 0.42 computes them.
//
//   DPM-Solver++ 2M  DPMSolverMultistepScheduler (algorithm_type dpmsolver++,
//                    solver_order 2, solver_type midpoint, lower_order_final,
//                    final_sigmas_type "zero"): Arc2Face's sampler, 25 steps.
//   DDIM             DDIMScheduler, eta 0.
//   Euler            EulerDiscreteScheduler (s_churn 0, linear interpolation).
//
// Configuration. The pipeline builds its sampler with
// Cls.from_config(SD1.5 scheduler/scheduler_config.json), a PNDM config:
// keys in the file apply, keys absent from it take each sampler's own default
// (diffusers drops them via `_use_default_values`). So with the SD1.5 file
// DPM-Solver++ and Euler use timestep_spacing "linspace" and DDIM "leading"
// (with the file's steps_offset 1); see ../shared/reference/architectures.md
// section 5. SchedulerConfig records what the file says, with "not in the
// file" kept distinct where the samplers' defaults differ.
//
// Noise schedule (as diffusers, in its dtypes): betas = torch.linspace(
// sqrt(beta_start), sqrt(beta_end), T, float32)^2 ("scaled_linear"), alphas =
// 1 - betas, abar = cumprod(alphas) (torch accumulates in double, stores
// float32); sigma_t = sqrt((1 - abar_t)/abar_t) in float32. The per-step sigmas
// are numpy float64 interpolations of those, stored as float32. The updates run
// in float32 in diffusers' operation order.
//
// Use (latents are host fp32 arrays of n elements, any layout):
//   Scheduler s;
//   scheduler_init(&s, SAMPLER_DPMPP2M, &cfg, 25);
//   x *= scheduler_init_noise_sigma(&s);                  // x ~ N(0, 1)
//   for (i = 0; i < scheduler_steps(&s); i++) {
//       x_in = x * scheduler_input_scale(&s, i);         // scale_model_input
//       eps  = unet(x_in, scheduler_timestep(&s, i)) (+ guidance);
//       scheduler_step(&s, i, eps, x, n);                  // x <- x_{i+1}
//   }
//   scheduler_free(&s);
// Errors: functions returning int give 0, or -1 with a2f_last_error() set.
#pragma once
#include <stddef.h>

typedef enum { BETA_LINEAR, BETA_SCALED_LINEAR } BetaSchedule;
typedef enum {
    SPACING_DEFAULT,   // not in the file: the sampler's default (DPM, Euler: linspace; DDIM: leading)
    SPACING_LINSPACE,
    SPACING_LEADING,
    SPACING_TRAILING,
} TimestepSpacing;

// Only prediction_type "epsilon" is supported (the loader rejects others).
typedef struct {
    int num_train_timesteps;          // T = 1000
    double beta_start, beta_end;      // 0.00085, 0.012
    BetaSchedule beta_schedule;       // scaled_linear
    int steps_offset;                 // 1 (used by "leading" spacing only)
    int set_alpha_to_one;             // DDIM's abar after the last step: 1 -> 1.0, 0 -> abar_0; -1 not in file (DDIM: 1)
    int clip_sample;                  // DDIM clamps x0 to +-clip_sample_range; -1 not in file (DDIM: 1)
    double clip_sample_range;         // 1.0
    TimestepSpacing timestep_spacing; // SPACING_DEFAULT unless the file names one
} SchedulerConfig;

// SD1.5's scheduler_config.json: scaled_linear 0.00085..0.012, T 1000,
// steps_offset 1, set_alpha_to_one false, clip_sample false, no spacing key.
void scheduler_config_sd15(SchedulerConfig *cfg);
// Reads a diffusers scheduler_config.json (any scheduler class). Unknown keys
// are ignored; keys this code does not implement must have their default
// value (e.g. beta_schedule squaredcos_cap_v2, prediction_type v_prediction,
// trained_betas, thresholding, karras sigmas, solver_order 3 are rejected with
// one error line naming the file and the key).
int scheduler_config_load(SchedulerConfig *cfg, const char *scheduler_config_json);

// abar_t for t = 0..T-1, float32 as diffusers computes it. out [T].
void scheduler_alphas_cumprod(const SchedulerConfig *cfg, float *out);

typedef enum { SAMPLER_DPMPP2M, SAMPLER_DDIM, SAMPLER_EULER } SamplerKind;
// "dpmpp2m", "ddim", "euler" -> *kind; -1 (error set) for anything else.
int sampler_parse(const char *name, SamplerKind *kind);
const char *sampler_name(SamplerKind kind);

typedef struct {
    SamplerKind kind;
    SchedulerConfig cfg;
    TimestepSpacing spacing;  // resolved (never SPACING_DEFAULT)
    int steps;                // N
    float *timesteps;         // [N]   what the UNet gets (integers except Euler linspace)
    float *sigmas;            // [N+1] sigma at each step, then after the last (0; DDIM: from final abar)
    float *alphas_cumprod;    // [T]
    float final_alpha_cumprod;// DDIM
    float init_noise_sigma;
    // DPM-Solver++ state: its data predictions x0 (diffusers' model_outputs).
    size_t n;                 // latent size the buffers hold (0 until the first step)
    float *x0_prev;           // [n] data prediction of the previous step
    float *x0;                // [n] data prediction of this step
    int lower_order_nums;     // steps taken so far (capped at the solver order, 2)
    int last_step;            // index of the last step taken, -1 before the first
} Scheduler;

// Computes the schedule for `steps` steps (1 <= steps <= T). Allocates the
// schedule arrays; the solver history is allocated on the first step.
int scheduler_init(Scheduler *s, SamplerKind kind, const SchedulerConfig *cfg, int steps);
void scheduler_free(Scheduler *s);

int scheduler_steps(const Scheduler *s);
// Value passed to the UNet at step i (0 <= i < steps).
float scheduler_timestep(const Scheduler *s, int i);
// Sigma of the latents entering step i (0 <= i <= steps; i == steps: after the last).
float scheduler_sigma(const Scheduler *s, int i);
// Initial latents = N(0, 1) * this (1 for DPM and DDIM; Euler: max sigma,
// or sqrt(max sigma^2 + 1) with leading spacing).
float scheduler_init_noise_sigma(const Scheduler *s);
// scale_model_input factor at step i: 1 for DPM and DDIM, 1/sqrt(sigma_i^2 + 1) for Euler.
float scheduler_input_scale(const Scheduler *s, int i);

// One sampler step: latents [n] (in/out) go from step i to i+1 given the
// model's noise prediction eps [n] for them. DPM-Solver++ keeps its history
// inside s: after the first call, steps must come in order (i = previous + 1)
// with the same n. Returns -1 (error set) on a bad i or n.
int scheduler_step(Scheduler *s, int i, const float *eps, float *latents, size_t n);

// DDPM forward noising for training: xt = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
// (diffusers DDPMScheduler.add_noise, float32). 0 <= t < T; x0, eps, xt [n].
void ddpm_add_noise(const SchedulerConfig *cfg, int t, const float *x0, const float *eps, float *xt, size_t n);
