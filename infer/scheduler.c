// scheduler.c: noise schedule, timesteps and the three sampler updates
// (DPM-Solver++ 2M, DDIM eta 0, Euler), following diffusers 0.42 line by line
// and in its dtypes (see scheduler.h). Python references are in comments.
//
// Floating point: the per-element updates are float32 in diffusers' operation
// order (each torch op rounds once; -std=c11 keeps gcc from contracting into
// FMAs). Scalar coefficients that diffusers computes as 0-d float32 tensors
// (alpha, sigma, lambda, exp(-h)) are computed here in double and rounded to
// float32 where they meet the latents: torch's float32 chain (Sleef exp/log)
// and this differ by ~1e-6 relative in h, far below anything visible.
// torch.linspace itself depends on the CPU's vector width by an ulp; the
// scalar formula below is torch's non-vectorised one.
#include <math.h>
#include <string.h>

#include "../kernels/common.h"
#include "scheduler.h"

// ---------------------------------------------------------------- schedule

// torch.linspace(start, end, steps, dtype=float32), the scalar kernel:
// step = (end - start) / (steps - 1) in float; the first half counts up from
// start, the second half down from end.
static float torch_linspace_f32(float start, float end, int steps, int idx) {
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    return idx < halfway ? start + step * (float)idx : end - step * (float)(steps - idx - 1);
}

void scheduler_alphas_cumprod(const SchedulerConfig *cfg, float *out) {
    int T = cfg->num_train_timesteps;
    int scaled = cfg->beta_schedule == BETA_SCALED_LINEAR;
    // betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, float32) ** 2  (scaled_linear)
    //       = torch.linspace(beta_start, beta_end, T, float32)                  (linear)
    float b0 = (float)(scaled ? sqrt(cfg->beta_start) : cfg->beta_start);
    float b1 = (float)(scaled ? sqrt(cfg->beta_end) : cfg->beta_end);
    double acc = 1.0;  // torch.cumprod on the CPU accumulates float in double
    for (int t = 0; t < T; t++) {
        float b = torch_linspace_f32(b0, b1, T, t);
        if (scaled) b = b * b;
        float alpha = 1.0f - b;
        acc *= (double)alpha;
        out[t] = (float)acc;
    }
}

// sqrt((1 - abar) / abar) in float32 (torch: ((1 - ac) / ac) ** 0.5).
static float sigma_of_abar(float abar) { return sqrtf((1.0f - abar) / abar); }

// np.interp(x, arange(T), sig) for the float32 table sig[T], in double.
static double interp(const float *sig, int T, double x) {
    if (x <= 0) return sig[0];
    if (x >= T - 1) return sig[T - 1];
    int j = (int)floor(x);
    if ((double)j == x) return sig[j];
    double slope = ((double)sig[j + 1] - (double)sig[j]) / 1.0;
    return slope * (x - (double)j) + (double)sig[j];
}

// np.linspace(0, stop, num)[i] in float64: i * (stop / (num - 1)), the last exactly stop.
static double np_linspace(double stop, int num, int i) {
    if (num == 1) return 0.0;
    if (i == num - 1) return stop;
    return (double)i * (stop / (double)(num - 1));
}

// np.arange(start, 0, -step)[i] in float64: numpy fills start + i * delta with
// delta = (start - step) - start.
static double np_arange_down(double start, double step, int i) {
    double delta = (start + -step) - start;
    return i == 0 ? start : start + (double)i * delta;
}

// Timesteps for N steps into ts[N] (float; integral except Euler linspace).
static void make_timesteps(SamplerKind kind, TimestepSpacing sp, const SchedulerConfig *c, int N, float *ts) {
    int T = c->num_train_timesteps;
    for (int i = 0; i < N; i++) {
        double t;
        if (kind == SAMPLER_DPMPP2M) {
            // last_timestep = T (lambda_min_clipped = -inf)
            if (sp == SPACING_LINSPACE)  // np.linspace(0, T - 1, N + 1).round()[::-1][:-1]
                t = nearbyint(np_linspace(T - 1, N + 1, N - i));
            else if (sp == SPACING_LEADING)  // (arange(N + 1) * (T // (N + 1))).round()[::-1][:-1] + offset
                t = (double)(N - i) * (T / (N + 1)) + c->steps_offset;
            else  // np.arange(T, 0, -T / N).round() - 1
                t = nearbyint(np_arange_down(T, (double)T / N, i)) - 1;
        } else if (kind == SAMPLER_DDIM) {
            if (sp == SPACING_LINSPACE)  // np.linspace(0, T - 1, N).round()[::-1]
                t = nearbyint(np_linspace(T - 1, N, N - 1 - i));
            else if (sp == SPACING_LEADING)  // (arange(N) * (T // N)).round()[::-1] + offset
                t = (double)(N - 1 - i) * (T / N) + c->steps_offset;
            else  // np.round(np.arange(T, 0, -T / N)) - 1
                t = nearbyint(np_arange_down(T, (double)T / N, i)) - 1;
        } else {
            if (sp == SPACING_LINSPACE)  // np.linspace(0, T - 1, N, dtype=float32)[::-1]
                t = (float)np_linspace(T - 1, N, N - 1 - i);
            else if (sp == SPACING_LEADING)  // (arange(N) * (T // N)).round()[::-1].astype(float32) + offset
                t = (float)((double)(N - 1 - i) * (T / N)) + (float)c->steps_offset;
            else  // np.arange(T, 0, -T / N).round().astype(float32) - 1
                t = (float)nearbyint(np_arange_down(T, (double)T / N, i)) - 1.0f;
        }
        ts[i] = (float)t;
    }
}

int sampler_parse(const char *name, SamplerKind *kind) {
    if (!strcmp(name, "dpmpp2m")) *kind = SAMPLER_DPMPP2M;
    else if (!strcmp(name, "ddim")) *kind = SAMPLER_DDIM;
    else if (!strcmp(name, "euler")) *kind = SAMPLER_EULER;
    else {
        a2f_set_error("unknown sampler '%s' (dpmpp2m, ddim, euler)", name);
        return -1;
    }
    return 0;
}

const char *sampler_name(SamplerKind kind) {
    return kind == SAMPLER_DPMPP2M ? "dpmpp2m" : kind == SAMPLER_DDIM ? "ddim" : "euler";
}

int scheduler_init(Scheduler *s, SamplerKind kind, const SchedulerConfig *cfg, int steps) {
    memset(s, 0, sizeof *s);
    int T = cfg->num_train_timesteps;
    if (steps < 1 || steps > T) {
        a2f_set_error("scheduler: steps must be in [1, %d], got %d", T, steps);
        return -1;
    }
    s->kind = kind;
    s->cfg = *cfg;
    s->spacing = cfg->timestep_spacing != SPACING_DEFAULT ? cfg->timestep_spacing
                 : kind == SAMPLER_DDIM                    ? SPACING_LEADING
                                                           : SPACING_LINSPACE;
    s->steps = steps;
    s->last_step = -1;
    s->timesteps = xmalloc(sizeof(float) * (size_t)steps);
    s->sigmas = xmalloc(sizeof(float) * (size_t)(steps + 1));
    s->alphas_cumprod = xmalloc(sizeof(float) * (size_t)T);
    scheduler_alphas_cumprod(cfg, s->alphas_cumprod);
    make_timesteps(kind, s->spacing, cfg, steps, s->timesteps);

    float *sig = xmalloc(sizeof(float) * (size_t)T);  // [T] sigma at every train timestep
    for (int t = 0; t < T; t++) sig[t] = sigma_of_abar(s->alphas_cumprod[t]);
    if (kind == SAMPLER_DDIM) {
        // DDIM indexes alphas_cumprod[t] directly: t must be a valid index.
        for (int i = 0; i < steps; i++) {
            float t = s->timesteps[i];
            if (t < 0 || t > T - 1) {
                a2f_set_error("scheduler: ddim with %d steps gives timestep %g outside [0, %d]", steps, t, T - 1);
                free(sig);
                scheduler_free(s);
                return -1;
            }
            s->sigmas[i] = sig[(int)t];
        }
        // final_alpha_cumprod = 1.0 if set_alpha_to_one else alphas_cumprod[0] (DDIM's default: true)
        s->final_alpha_cumprod = cfg->set_alpha_to_one != 0 ? 1.0f : s->alphas_cumprod[0];
        s->sigmas[steps] = sigma_of_abar(s->final_alpha_cumprod);
        s->init_noise_sigma = 1.0f;
    } else {
        // sigmas = np.interp(timesteps, arange(T), sigmas); then final_sigmas_type "zero"
        float mx = 0;
        for (int i = 0; i < steps; i++) {
            s->sigmas[i] = (float)interp(sig, T, s->timesteps[i]);
            mx = fmaxf(mx, s->sigmas[i]);
        }
        s->sigmas[steps] = 0.0f;
        if (kind == SAMPLER_DPMPP2M) s->init_noise_sigma = 1.0f;
        else  // Euler: max sigma (linspace, trailing), else (max^2 + 1) ** 0.5
            s->init_noise_sigma = s->spacing == SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
    free(sig);
    return 0;
}

void scheduler_free(Scheduler *s) {
    free(s->timesteps);
    free(s->sigmas);
    free(s->alphas_cumprod);
    free(s->x0_prev);
    free(s->x0);
    memset(s, 0, sizeof *s);
}

int scheduler_steps(const Scheduler *s) { return s->steps; }

float scheduler_timestep(const Scheduler *s, int i) {
    CHECK(i >= 0 && i < s->steps);
    return s->timesteps[i];
}

float scheduler_sigma(const Scheduler *s, int i) {
    CHECK(i >= 0 && i <= s->steps);
    return s->sigmas[i];
}

float scheduler_init_noise_sigma(const Scheduler *s) { return s->init_noise_sigma; }

float scheduler_input_scale(const Scheduler *s, int i) {
    CHECK(i >= 0 && i < s->steps);
    if (s->kind != SAMPLER_EULER) return 1.0f;
    float sg = s->sigmas[i];
    return 1.0f / sqrtf(sg * sg + 1.0f);  // sample / ((sigma**2 + 1) ** 0.5)
}

// ---------------------------------------------------------------- samplers

// DPM-Solver++ 2M (DPMSolverMultistepScheduler.step with its defaults).
static void dpm_step(Scheduler *s, int i, const float *eps, float *x, size_t n) {
    // _sigma_to_alpha_sigma_t: alpha = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha; lambda = log(alpha / sigma_t)
    double sg_s0 = s->sigmas[i], sg_t = s->sigmas[i + 1];
    double a_s0 = 1.0 / sqrt(sg_s0 * sg_s0 + 1.0), s_s0 = sg_s0 * a_s0;
    // convert_model_output: x0 = (sample - sigma_t * eps) / alpha_t
    float fs = (float)s_s0, fa = (float)a_s0;
    for (size_t k = 0; k < n; k++) s->x0[k] = (x[k] - fs * eps[k]) / fa;

    // order: first at the first step (lower_order_nums < 1) and at the last
    // (final_sigmas_type "zero" forces lower_order_final); second otherwise.
    int first = s->lower_order_nums < 1 || i == s->steps - 1;
    if (sg_t == 0) {
        // Last step to sigma 0: alpha_t = 1, sigma_t = 0, e^{-h} = 0, so x_t = x0
        // (diffusers gets the same through log(0) = -inf).
        memcpy(x, s->x0, n * sizeof(float));
    } else {
        double a_t = 1.0 / sqrt(sg_t * sg_t + 1.0), s_t = sg_t * a_t;
        double lam_t = log(a_t) - log(s_t), lam_s0 = log(a_s0) - log(s_s0);
        double h = lam_t - lam_s0;
        float c_x = (float)(s_t / s_s0);                 // sigma_t / sigma_s0
        float c_d0 = (float)(a_t * (exp(-h) - 1.0));     // alpha_t * (exp(-h) - 1)
        if (first) {
            // x_t = (sigma_t / sigma_s) * sample - (alpha_t * (exp(-h) - 1)) * x0
            for (size_t k = 0; k < n; k++) x[k] = c_x * x[k] - c_d0 * s->x0[k];
        } else {
            double sg_s1 = s->sigmas[i - 1];
            double a_s1 = 1.0 / sqrt(sg_s1 * sg_s1 + 1.0), s_s1 = sg_s1 * a_s1;
            double lam_s1 = log(a_s1) - log(s_s1);
            double r0 = (lam_s0 - lam_s1) / h;
            float c_r = (float)(1.0 / r0);  // D1 = (1 / r0) * (m0 - m1)
            float c_d1 = 0.5f * c_d0;       // 0.5 * (alpha_t * (exp(-h) - 1))
            for (size_t k = 0; k < n; k++) {
                float d1 = c_r * (s->x0[k] - s->x0_prev[k]);
                x[k] = (c_x * x[k] - c_d0 * s->x0[k]) - c_d1 * d1;
            }
        }
    }
    // model_outputs FIFO: this step's x0 becomes the previous one.
    float *tmp = s->x0_prev;
    s->x0_prev = s->x0;
    s->x0 = tmp;
    if (s->lower_order_nums < 2) s->lower_order_nums++;
}

// DDIM, eta = 0 (DDIMScheduler.step).
static void ddim_step(Scheduler *s, int i, const float *eps, float *x, size_t n) {
    int T = s->cfg.num_train_timesteps;
    int t = (int)s->timesteps[i];
    int prev = t - T / s->steps;  // timestep - num_train_timesteps // num_inference_steps
    float a_t = s->alphas_cumprod[t];
    float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
    float b_t = 1.0f - a_t;
    float sb = sqrtf(b_t), sa = sqrtf(a_t), sa_prev = sqrtf(a_prev);
    float c_dir = sqrtf(1.0f - a_prev);  // (1 - alpha_prod_t_prev - std_dev_t**2) ** 0.5, std_dev_t = 0
    int clip = s->cfg.clip_sample != 0;  // DDIM's default (not in the file): true
    float r = (float)s->cfg.clip_sample_range;
    for (size_t k = 0; k < n; k++) {
        float x0 = (x[k] - sb * eps[k]) / sa;  // (sample - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
        if (clip) x0 = x0 < -r ? -r : x0 > r ? r : x0;
        float dir = c_dir * eps[k];
        x[k] = sa_prev * x0 + dir;
    }
}

// Euler (EulerDiscreteScheduler.step, s_churn 0 so gamma = 0 and sigma_hat = sigma).
static void euler_step(Scheduler *s, int i, const float *eps, float *x, size_t n) {
    float sg = s->sigmas[i];
    float dt = s->sigmas[i + 1] - sg;
    for (size_t k = 0; k < n; k++) {
        float x0 = x[k] - sg * eps[k];        // pred_original_sample = sample - sigma_hat * model_output
        float deriv = (x[k] - x0) / sg;       // derivative = (sample - pred_original_sample) / sigma_hat
        x[k] = x[k] + deriv * dt;             // prev_sample = sample + derivative * dt
    }
}

int scheduler_step(Scheduler *s, int i, const float *eps, float *latents, size_t n) {
    if (i < 0 || i >= s->steps) {
        a2f_set_error("scheduler_step: step %d outside [0, %d)", i, s->steps);
        return -1;
    }
    if (s->kind == SAMPLER_DPMPP2M) {
        if (s->last_step >= 0 && i != s->last_step + 1) {
            a2f_set_error("scheduler_step: dpmpp2m steps must come in order: got %d after %d", i, s->last_step);
            return -1;
        }
        if (s->n == 0) {
            s->n = n;
            s->x0 = xmalloc(n * sizeof(float));
            s->x0_prev = xmalloc(n * sizeof(float));
        } else if (n != s->n) {
            a2f_set_error("scheduler_step: latent size %zu differs from the first step's %zu", n, s->n);
            return -1;
        }
        dpm_step(s, i, eps, latents, n);
    } else if (s->kind == SAMPLER_DDIM) {
        ddim_step(s, i, eps, latents, n);
    } else {
        euler_step(s, i, eps, latents, n);
    }
    s->last_step = i;
    return 0;
}

// ---------------------------------------------------------------- training noise

void ddpm_add_noise(const SchedulerConfig *cfg, int t, const float *x0, const float *eps, float *xt, size_t n) {
    int T = cfg->num_train_timesteps;
    CHECK(t >= 0 && t < T);
    float *ac = xmalloc(sizeof(float) * (size_t)T);
    scheduler_alphas_cumprod(cfg, ac);
    float a = sqrtf(ac[t]), b = sqrtf(1.0f - ac[t]);  // alphas_cumprod[t] ** 0.5, (1 - alphas_cumprod[t]) ** 0.5
    free(ac);
    for (size_t k = 0; k < n; k++) xt[k] = a * x0[k] + b * eps[k];
}
