#!/usr/bin/env python3
"""make_scheduler_fixtures.py: diffusers reference fixtures for the samplers
(infer/scheduler.h) -> tests/fixtures/scheduler/.

The samplers are configured exactly as the Arc2Face pipeline configures its
DPM-Solver: SD1.5's scheduler/scheduler_config.json (a PNDMScheduler config,
written below verbatim) is loaded into PNDMScheduler, and each sampler class is
made with Cls.from_config(pndm.config). Keys that were absent from the file are
then dropped (diffusers' `_use_default_values`), so each sampler takes its own
defaults for them: DPM-Solver++ and Euler get timestep_spacing "linspace",
DDIM gets "leading" (with the file's steps_offset 1).

sched.safetensors (all F32):
  alphas_cumprod                 [1000]  torch float32 cumprod of the SD1.5 betas
  noise                          [2*4*8*8] fixed N(0,1) latents (torch seed 0)
  {S}_{N}.timesteps              [N]     what the pipeline passes to the UNet
  {S}_{N}.sigmas                 [N+1]   sqrt((1-abar)/abar) per step, then the final one
                                         (DDIM: computed from alphas_cumprod[t], final from
                                         final_alpha_cumprod; diffusers' DDIM has no sigmas)
  {S}_{N}.init_noise_sigma       [1]
  {S}_{N}.input_scale            [N]     scale_model_input(ones) (1 for DPM and DDIM)
  {S}_{N}.traj                   [N, 512] latents after each scheduler.step
  for S in dpmpp2m, ddim, euler and N in 10, 25, 50; plus variants with other
  configs (files cfg_*.json here): {S}_leading_10, {S}_trailing_10 (timestep_spacing
  set in the file), ddim_clip_10 (clip_sample true), ddim_defaults_10 (a config
  without clip_sample / set_alpha_to_one: DDIM's defaults, true and true, apply).
  ddpm.x0, ddpm.eps [8, 256], ddpm.t [8] (I32), ddpm.xt [8, 256]: DDPMScheduler.add_noise.

The trajectory runs the pipeline's loop with a deterministic fake model
  eps(x_in, t) = 0.3 * x_in + float32(0.01 * t / 1000)   (float32 arithmetic)
where x_in = scheduler.scale_model_input(x, t) and x starts as noise * init_noise_sigma.

Also writes scheduler_config.json (the SD1.5 file), cfg_*.json (variants) and
bad_*.json (configs the C loader must reject) next to the fixture.

Needs torch, numpy, diffusers (0.42), safetensors.
Usage: python3 tools/ref/make_scheduler_fixtures.py [outdir]
"""
import json
import os
import sys

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       PNDMScheduler)
from safetensors.numpy import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures",
                                                         "scheduler")

# SD1.5 scheduler/scheduler_config.json (stable-diffusion-v1-5, 308 bytes), verbatim
# (../shared/reference/architectures.md section 5.1, arc2face-upstream.md section 1.5).
SD15_SCHEDULER_CONFIG = """{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.6.0",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null,
  "clip_sample": false
}
"""
assert len(SD15_SCHEDULER_CONFIG) == 308

SAMPLERS = {"dpmpp2m": DPMSolverMultistepScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}


def with_keys(**kw):
    d = json.loads(SD15_SCHEDULER_CONFIG)
    d.update(kw)
    return d


def without_keys(*keys):
    d = json.loads(SD15_SCHEDULER_CONFIG)
    for k in keys:
        del d[k]
    return d


VARIANT_CONFIGS = {
    "cfg_leading.json": with_keys(timestep_spacing="leading"),
    "cfg_trailing.json": with_keys(timestep_spacing="trailing"),
    "cfg_ddim_clip.json": with_keys(clip_sample=True),
    "cfg_defaults.json": without_keys("clip_sample", "set_alpha_to_one"),
}
BAD_CONFIGS = {
    "bad_beta_schedule.json": with_keys(beta_schedule="squaredcos_cap_v2"),
    "bad_prediction_type.json": with_keys(prediction_type="v_prediction"),
    "bad_spacing.json": with_keys(timestep_spacing="quadratic"),
    "bad_trained_betas.json": with_keys(trained_betas=[0.1, 0.2]),
    "bad_not_object.json": [1, 2, 3],
}


def make(cls, file_config):
    """cls configured the way the pipeline does it: from the loaded PNDM config."""
    pndm = PNDMScheduler.from_config(file_config)
    return cls.from_config(pndm.config)


def fake_eps(x_in, t):
    c = np.float32(0.01 * float(t) / 1000.0)
    return torch.from_numpy(np.float32(0.3) * x_in.numpy() + c)


def run(recs, tag, name, file_config, steps, noise):
    s = make(SAMPLERS[name], file_config)
    s.set_timesteps(steps)
    ts = s.timesteps
    if name == "ddim":
        ac = s.alphas_cumprod
        sig = [torch.sqrt((1 - ac[int(t)]) / ac[int(t)]) for t in ts]
        fa = s.final_alpha_cumprod
        sig.append(torch.sqrt((1 - fa) / fa))
        sigmas = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in sig])
    else:
        sigmas = s.sigmas
    assert len(sigmas) == steps + 1
    x = noise * s.init_noise_sigma
    scales, traj = [], []
    for t in ts:
        x_in = s.scale_model_input(x, t)
        scales.append(float(s.scale_model_input(torch.ones(1), t)[0]))  # does not advance the step index
        eps = fake_eps(x_in, t)
        x = s.step(eps, t, x).prev_sample
        traj.append(x.reshape(-1).clone())
    recs[tag + ".timesteps"] = ts.to(torch.float64).numpy().astype("<f4")
    recs[tag + ".sigmas"] = sigmas.numpy().astype("<f4")
    recs[tag + ".init_noise_sigma"] = np.array([float(s.init_noise_sigma)], dtype="<f4")
    recs[tag + ".input_scale"] = np.array(scales, dtype="<f4")
    recs[tag + ".traj"] = torch.stack(traj).numpy().astype("<f4")
    print("%-22s spacing %-8s t[0..2] %s sigma[0] %.6f" % (tag, s.config.timestep_spacing, ts[:3].tolist(),
                                                            float(sigmas[0])))


def main():
    os.makedirs(OUT, exist_ok=True)
    base = json.loads(SD15_SCHEDULER_CONFIG)
    with open(os.path.join(OUT, "scheduler_config.json"), "w") as f:
        f.write(SD15_SCHEDULER_CONFIG)
    for fname, d in list(VARIANT_CONFIGS.items()) + list(BAD_CONFIGS.items()):
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
    with open(os.path.join(OUT, "bad_syntax.json"), "w") as f:
        f.write('{"beta_start": 0.00085, "beta_end": }\n')

    recs = {}
    recs["alphas_cumprod"] = make(DDPMScheduler, base).alphas_cumprod.numpy().astype("<f4")
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    recs["noise"] = noise.reshape(-1).numpy().astype("<f4")
    for name in SAMPLERS:
        for steps in (10, 25, 50):
            run(recs, "%s_%d" % (name, steps), name, base, steps, noise)
        run(recs, name + "_leading_10", name, VARIANT_CONFIGS["cfg_leading.json"], 10, noise)
        run(recs, name + "_trailing_10", name, VARIANT_CONFIGS["cfg_trailing.json"], 10, noise)
    run(recs, "ddim_clip_10", "ddim", VARIANT_CONFIGS["cfg_ddim_clip.json"], 10, noise)
    run(recs, "ddim_defaults_10", "ddim", VARIANT_CONFIGS["cfg_defaults.json"], 10, noise)

    # DDPM training noise: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
    ddpm = make(DDPMScheduler, base)
    x0 = torch.randn(8, 256, generator=g)
    eps = torch.randn(8, 256, generator=g)
    t = torch.tensor([0, 1, 17, 250, 499, 500, 998, 999], dtype=torch.int64)
    recs["ddpm.x0"] = x0.numpy().astype("<f4")
    recs["ddpm.eps"] = eps.numpy().astype("<f4")
    recs["ddpm.t"] = t.numpy().astype("<i4")
    recs["ddpm.xt"] = ddpm.add_noise(x0, eps, t).numpy().astype("<f4")

    path = os.path.join(OUT, "sched.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in recs.items()}, path,
              metadata={"source": "tools/ref/make_scheduler_fixtures.py"})
    print("%s: %d bytes, %d arrays" % (path, os.path.getsize(path), len(recs)))


if __name__ == "__main__":
    main()
