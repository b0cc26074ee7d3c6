// scheduler_config.c: SchedulerConfig from a diffusers scheduler_config.json
// (see scheduler.h for what the fields mean and how absent keys behave).
//
// The file may come from any diffusers scheduler class. Keys that select
// features not implemented here are accepted only with diffusers' default
// value (k_must_default), since another value would change the result.
// Other unknown keys are ignored, as diffusers' from_config does.
//
// diffusers writes float('-inf') (DPM's lambda_min_clipped default) as the
// non-JSON token -Infinity; it is read as null (= the default).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/common.h"
#include "../kernels/mapfile.h"
#include "scheduler.h"

void scheduler_config_sd15(SchedulerConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.00085;
    cfg->beta_end = 0.012;
    cfg->beta_schedule = BETA_SCALED_LINEAR;
    cfg->steps_offset = 1;
    cfg->set_alpha_to_one = 0;
    cfg->clip_sample = 0;
    cfg->clip_sample_range = 1.0;
    cfg->timestep_spacing = SPACING_DEFAULT;
}

// The defaults every diffusers scheduler class shares for keys absent from a file.
static void config_class_defaults(SchedulerConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = 0.0001;
    cfg->beta_end = 0.02;
    cfg->beta_schedule = BETA_LINEAR;
    cfg->steps_offset = 0;
    cfg->set_alpha_to_one = -1;
    cfg->clip_sample = -1;
    cfg->clip_sample_range = 1.0;
    cfg->timestep_spacing = SPACING_DEFAULT;
}

// Replaces the bare token -Infinity (outside strings) by "null     ".
static void patch_neg_infinity(char *s) {
    int in_str = 0;
    for (char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if (!strncmp(p, "-Infinity", 9)) {
            memcpy(p, "null     ", 9);
            p += 8;
        }
    }
}

// Keys with no effect on DPM-Solver++ 2M / DDIM / Euler as implemented, accepted
// with any value: _class_name, _diffusers_version, skip_prk_steps,
// dynamic_thresholding_ratio and sample_max_value (thresholding is off),
// sigma_min / sigma_max (karras etc. only), flow_shift, time_shift_type,
// use_dynamic_shifting (flow sigmas only), lower_order_final and euler_at_final
// (with final_sigmas_type "zero" the last step is first order either way, and
// order 2 has no lower-order second-to-last step).

typedef struct {
    const char *key;
    int type;          // cJSON_True (bool), cJSON_String, cJSON_Number
    const char *sval;  // default string
    double nval;       // default number / bool (0, 1)
} MustDefault;

static const MustDefault k_must_default[] = {
    {"thresholding", cJSON_True, NULL, 0},
    {"rescale_betas_zero_snr", cJSON_True, NULL, 0},
    {"use_karras_sigmas", cJSON_True, NULL, 0},
    {"use_exponential_sigmas", cJSON_True, NULL, 0},
    {"use_beta_sigmas", cJSON_True, NULL, 0},
    {"use_lu_lambdas", cJSON_True, NULL, 0},
    {"use_flow_sigmas", cJSON_True, NULL, 0},
    {"algorithm_type", cJSON_String, "dpmsolver++", 0},
    {"solver_type", cJSON_String, "midpoint", 0},
    {"solver_order", cJSON_Number, NULL, 2},
    {"final_sigmas_type", cJSON_String, "zero", 0},
    {"interpolation_type", cJSON_String, "linear", 0},
    {"timestep_type", cJSON_String, "discrete", 0},
    {NULL, 0, NULL, 0},
};

// Fails with "PATH: key: message".
#define BAD(...)                                   \
    do {                                           \
        char m_[256];                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);      \
        a2f_set_error("%s: %s", path, m_);         \
        goto done;                                 \
    } while (0)

int scheduler_config_load(SchedulerConfig *out, const char *path) {
    char *text = read_small_text(path, "scheduler config");
    if (!text) {
        a2f_set_error("%s: cannot read scheduler config", path);
        return -1;
    }
    patch_neg_infinity(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    SchedulerConfig cfg;
    config_class_defaults(&cfg);
    int rc = -1;
    const cJSON *it;
    if (!root) BAD("not valid JSON");
    if (!cJSON_IsObject(root)) BAD("not a JSON object");

    if ((it = cJSON_GetObjectItemCaseSensitive(root, "num_train_timesteps"))) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 2 ||
            it->valuedouble > 100000)
            BAD("num_train_timesteps must be an integer in [2, 100000]");
        cfg.num_train_timesteps = (int)it->valuedouble;
    }
    const char *bnames[2] = {"beta_start", "beta_end"};
    double *bdst[2] = {&cfg.beta_start, &cfg.beta_end};
    for (int k = 0; k < 2; k++)
        if ((it = cJSON_GetObjectItemCaseSensitive(root, bnames[k]))) {
            if (!cJSON_IsNumber(it) || !(it->valuedouble > 0 && it->valuedouble < 1))
                BAD("%s must be a number in (0, 1)", bnames[k]);
            *bdst[k] = it->valuedouble;
        }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "beta_schedule"))) {
        if (!cJSON_IsString(it)) BAD("beta_schedule must be a string");
        if (!strcmp(it->valuestring, "scaled_linear")) cfg.beta_schedule = BETA_SCALED_LINEAR;
        else if (!strcmp(it->valuestring, "linear")) cfg.beta_schedule = BETA_LINEAR;
        else BAD("beta_schedule '%.64s' is not supported (linear, scaled_linear)", it->valuestring);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "trained_betas")) && !cJSON_IsNull(it))
        BAD("trained_betas is not supported (must be null)");
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "prediction_type"))) {
        if (!cJSON_IsString(it) || strcmp(it->valuestring, "epsilon"))
            BAD("prediction_type '%.64s' is not supported (epsilon only)",
                cJSON_IsString(it) ? it->valuestring : "(not a string)");
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "steps_offset"))) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1000)
            BAD("steps_offset must be an integer in [-1000, 1000]");
        cfg.steps_offset = (int)it->valuedouble;
    }
    const char *flags[2] = {"set_alpha_to_one", "clip_sample"};
    int *fdst[2] = {&cfg.set_alpha_to_one, &cfg.clip_sample};
    for (int k = 0; k < 2; k++)
        if ((it = cJSON_GetObjectItemCaseSensitive(root, flags[k]))) {
            if (!cJSON_IsBool(it)) BAD("%s must be true or false", flags[k]);
            *fdst[k] = cJSON_IsTrue(it);
        }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "clip_sample_range"))) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0)) BAD("clip_sample_range must be a positive number");
        cfg.clip_sample_range = it->valuedouble;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "timestep_spacing"))) {
        if (!cJSON_IsString(it)) BAD("timestep_spacing must be a string");
        if (!strcmp(it->valuestring, "linspace")) cfg.timestep_spacing = SPACING_LINSPACE;
        else if (!strcmp(it->valuestring, "leading")) cfg.timestep_spacing = SPACING_LEADING;
        else if (!strcmp(it->valuestring, "trailing")) cfg.timestep_spacing = SPACING_TRAILING;
        else BAD("timestep_spacing '%.64s' is not supported (linspace, leading, trailing)", it->valuestring);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "variance_type")) && !cJSON_IsNull(it))
        BAD("variance_type is not supported (must be null)");
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "lambda_min_clipped")) && !cJSON_IsNull(it))
        BAD("lambda_min_clipped is not supported (must be -Infinity)");
    for (const MustDefault *d = k_must_default; d->key; d++) {
        if (!(it = cJSON_GetObjectItemCaseSensitive(root, d->key)) || cJSON_IsNull(it)) continue;
        int ok = d->type == cJSON_True   ? cJSON_IsBool(it) && cJSON_IsTrue(it) == (d->nval != 0)
                 : d->type == cJSON_String ? cJSON_IsString(it) && !strcmp(it->valuestring, d->sval)
                                           : cJSON_IsNumber(it) && it->valuedouble == d->nval;
        if (!ok) {
            if (d->type == cJSON_True) BAD("%s must be %s (other values are not supported)", d->key, d->nval ? "true" : "false");
            if (d->type == cJSON_String) BAD("%s must be \"%s\" (other values are not supported)", d->key, d->sval);
            BAD("%s must be %g (other values are not supported)", d->key, d->nval);
        }
    }
    *out = cfg;
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}
