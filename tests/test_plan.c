// test_plan.c: the memory planner (nn/plan.h).
//
// Checks: parameter counts built from the SD1.5 config files equal the
// reference (shared/reference/architectures.md: UNet 859,520,964, CLIP text
// encoder 123,060,480, VAE encoder + quant_conv 34,163,664, decoder +
// post_quant_conv 49,490,199, IResNet-100 learnable 65,156,160 + BN stats);
// the byte accounting (weights e*P, fp32 grads, master and AdamW sharded by
// ZeRO-1); the two SD1.5 training plans fit their budgets (80 GB on one GPU,
// 40 GB per GPU with ZeRO-1 over 8) with and without checkpointing, and
// checkpointing lowers the UNet's activation peak; bad configs give one error.
#include <string.h>

#include "../kernels/common.h"
#include "../nn/plan.h"
#include "test.h"

TEST(plan_param_counts) {
    struct {
        const char *model, *config;
        uint64_t want;
    } k[] = {{"unet", "configs/sd15_unet.json", 859520964ull},
             {"clip", "configs/sd15_text_encoder.json", 123060480ull},
             {"vae-enc", "configs/sd15_vae.json", 34163664ull},
             {"vae-dec", "configs/sd15_vae.json", 49490199ull},
             {"vae", "configs/sd15_vae.json", 83653863ull}};
    for (int i = 0; i < 5; i++) {
        uint64_t p = 0, t = 0;
        int rc = plan_count_params(k[i].model, k[i].config, &p, &t);
        EXPECT(rc == 0, "%s: %s", k[i].model, a2f_last_error());
        EXPECT(p == k[i].want && t == k[i].want, "%s: %llu parameters (%llu trainable), want %llu", k[i].model,
               (unsigned long long)p, (unsigned long long)t, (unsigned long long)k[i].want);
    }
    // IResNet-100: 65,156,160 learnable (features.weight counted, frozen in training) + 69,632 BN statistics.
    uint64_t p = 0, t = 0;
    EXPECT(plan_count_params("iresnet", "r100", &p, &t) == 0, "%s", a2f_last_error());
    EXPECT(p == 65225792ull, "iresnet r100: %llu entries (want 65,225,792 with BN stats)",
           (unsigned long long)p);
}

static void check_plan(const char *path, double budget_gb, int zero1) {
    PlanConfig c;
    PlanRow r[PLAN_MAX_MODELS];
    if (plan_config_read(&c, path) != 0 || plan_compute(&c, r) != 0) {
        test_fail(__FILE__, __LINE__, "%s", a2f_last_error());
        return;
    }
    EXPECT(c.zero1 == zero1 && c.gpu_gb == budget_gb && c.batch == 4 && c.resolution == 512, "%s: config values", path);
    double state = 0, act = 0, ck = 0, frozen = 0;
    for (int k = 0; k < c.nmodels; k++) {
        double P = (double)r[k].params;
        EXPECT(r[k].weights == 2 * P, "%s: bf16 weights", r[k].name);
        if (r[k].train) {
            EXPECT(r[k].grads == 4 * P && r[k].master == 4 * P / zero1 && r[k].adam == 8 * P / zero1, "%s: bytes",
                   r[k].name);
            act += r[k].act, ck += r[k].act_ckpt;
        } else {
            EXPECT(r[k].grads == 0 && r[k].adam == 0, "%s: frozen", r[k].name);
            if (r[k].act > frozen) frozen = r[k].act;
        }
        if (!strcmp(r[k].name, "unet"))
            EXPECT(r[k].act_ckpt < r[k].act && r[k].act > 1e9, "unet: checkpointing lowers %g -> %g", r[k].act,
                   r[k].act_ckpt);
        state += r[k].weights + r[k].grads + r[k].master + r[k].adam;
    }
    act = act > frozen ? act : frozen;
    ck = ck > frozen ? ck : frozen;
    double peak = state + act + PLAN_RUNTIME_OVERHEAD, peak_ck = state + ck + PLAN_RUNTIME_OVERHEAD;
    EXPECT(peak <= budget_gb * 1e9 && peak_ck <= budget_gb * 1e9, "%s: peak %.2f / %.2f GB over %.0f GB", path,
           peak / 1e9, peak_ck / 1e9, budget_gb);
}

TEST(plan_sd15_budgets) {
    check_plan("configs/plan_sd15_train_512.json", 80, 1);
    check_plan("configs/plan_sd15_train_512_zero1x8.json", 40, 8);
}

TEST(plan_bad_configs) {
    PlanConfig c;
    EXPECT(plan_config_read(&c, "configs/does_not_exist.json") == -1 && strstr(a2f_last_error(), "cannot read"), "%s",
           a2f_last_error());
    uint64_t p, t;
    EXPECT(plan_count_params("gan", "x", &p, &t) == -1 && strstr(a2f_last_error(), "unknown model"), "%s",
           a2f_last_error());
    EXPECT(plan_count_params("unet", "configs/nope.json", &p, &t) == -1 && !strchr(a2f_last_error(), '\n'), "%s",
           a2f_last_error());
}
