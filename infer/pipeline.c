// pipeline.c: Arc2Face generation (see pipeline.h for the maths and the
// upstream references).
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kernels/common.h"
#include "../kernels/rng.h"
#include "../kernels/torch_randn.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ------------------------------------------------------------------ loading

void models_free(Models *m) {
    if (m->ctx.be) nn_ctx_free(&m->ctx);
    if (m->unet_w.w) weights_free(&m->unet_w);
    if (m->clip_w.w) weights_free(&m->clip_w);
    if (m->vae_w.w) weights_free(&m->vae_w);
    params_free(&m->unet_w.t);
    params_free(&m->clip_w.t);
    params_free(&m->vae_w.t);
    if (m->tok) clip_tokenizer_free(m->tok);
    memset(m, 0, sizeof *m);
}

int models_load(Models *m, const ModelPaths *p, const Backend *be, DType dt, size_t act_bytes) {
    memset(m, 0, sizeof *m);
    m->be = be;
    m->dt = dt;
    char vocab[4096], merges[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", p->tokenizer_dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", p->tokenizer_dir);
    if (!(m->tok = clip_tokenizer_load(vocab, merges))) goto fail;
    scheduler_config_sd15(&m->sched);
    if (p->scheduler_json && scheduler_config_load(&m->sched, p->scheduler_json) != 0) goto fail;
    m->clip_w.be = be;
    m->clip_w.dt = dt;
    if (clip_load_transformers(&m->clip, &m->clip_w, p->encoder_dir) != 0) goto fail;
    // The caller's vector is normalised over all 512 components before the
    // encoder crops / pads it (upstream normalises, then F.pad), so the encoder
    // must not renormalise the (possibly cropped) part it takes.
    m->clip.id_normalize = 0;
    if (unet_load_diffusers(&m->unet, &m->unet_w, p->unet_dir, be, dt, 0) != 0) goto fail;
    if (vae_load_diffusers_ex(&m->vae, &m->vae_w, p->vae_dir, VAE_DECODER, be, dt, 0) != 0) goto fail;
    if (m->unet.cfg.cross_dim != m->clip.cfg.hidden) {
        a2f_set_error("%s: UNet cross_attention_dim %d does not match the encoder's hidden_size %d (%s)", p->unet_dir,
                      m->unet.cfg.cross_dim, m->clip.cfg.hidden, p->encoder_dir);
        goto fail;
    }
    if (m->unet.cfg.in_channels != m->vae.cfg.latent_channels || m->unet.cfg.out_channels != m->vae.cfg.latent_channels) {
        a2f_set_error("%s: UNet in/out channels %d/%d do not match the VAE's latent_channels %d (%s)", p->unet_dir,
                      m->unet.cfg.in_channels, m->unet.cfg.out_channels, m->vae.cfg.latent_channels, p->vae_dir);
        goto fail;
    }
    if (m->clip.cfg.max_pos < GEN_TOKENS) {
        a2f_set_error("%s: max_position_embeddings %d < %d tokens", p->encoder_dir, m->clip.cfg.max_pos, GEN_TOKENS);
        goto fail;
    }
    if (act_bytes == 0) {
        // Default: 1 GiB plus 40 of the UNet's widest activations at batch 8
        // (n = 4 images with guidance) on 64x64 latents: SD1.5 f32 -> 7.8 GB, which
        // holds the UNet's inference peak (1.4 GB by `arc2face plan`) and the
        // decoder's (0.7 GB per image; images are decoded one at a time). CPU
        // memory is committed lazily; more images or larger sizes: act_bytes.
        int cmax = 0;
        for (int i = 0; i < m->unet.cfg.nlevels; i++) cmax = A2F_MAX(cmax, m->unet.cfg.channels[i]);
        act_bytes = ((size_t)1 << 30) + (size_t)40 * 8 * 64 * 64 * cmax * dtype_size(dt);
    }
    if (nn_ctx_init(&m->ctx, be, dt, act_bytes, 0) != 0) goto fail;
    return 0;
fail:;
    char e[A2F_ERR_MAX];
    snprintf(e, sizeof e, "%s", a2f_last_error());
    models_free(m);
    a2f_set_error("%s", e);
    return -1;
}

// ------------------------------------------------------------------ host <-> backend

static int upload_f32(const Ctx *c, void *dst, const float *src, size_t n) {
    int st;
    if (c->dt == DT_F32) {
        st = c->be->upload(dst, src, n * sizeof(float));
    } else {
        void *tmp = xmalloc(n * nn_elt(c));
        convert_dtype(tmp, c->dt, src, DT_F32, n);
        st = c->be->upload(dst, tmp, n * nn_elt(c));
        free(tmp);
    }
    return st ? nn_op_failed("upload", c->be, st) : 0;
}

static int download_f32(const Ctx *c, float *dst, const void *src, size_t n) {
    int st = c->be->sync();
    if (st) return nn_op_failed("sync", c->be, st);
    if (c->dt == DT_F32) {
        st = c->be->download(dst, src, n * sizeof(float));
    } else {
        void *tmp = xmalloc(n * nn_elt(c));
        st = c->be->download(tmp, src, n * nn_elt(c));
        if (!st) convert_dtype(dst, DT_F32, tmp, c->dt, n);
        free(tmp);
    }
    return st ? nn_op_failed("download", c->be, st) : 0;
}

// ------------------------------------------------------------------ options and helpers

void generate_options_default(GenerateOptions *o) {
    memset(o, 0, sizeof *o);
    o->steps = 25;
    o->guidance = 3.0f;
    o->sampler = SAMPLER_DPMPP2M;
    o->seed = 0;
    o->n_images = 1;
    o->height = o->width = 512;
    o->noise = NOISE_TORCH;
    o->negative = NEGATIVE_EMPTY;
    o->progress = 1;
}

int id_normalize(float v[512]) {
    double s = 0;
    for (int i = 0; i < 512; i++) s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s)) {
        a2f_set_error("ID vector is zero or not finite: cannot normalise it");
        return -1;
    }
    float r = (float)(1.0 / sqrt(s));
    for (int i = 0; i < 512; i++) v[i] *= r;
    return 0;
}

int id_blend(const float a[512], const float b[512], float t, float out[512]) {
    for (int i = 0; i < 512; i++) out[i] = (1.0f - t) * a[i] + t * b[i];
    return id_normalize(out);
}

int generate_latent_hw(const Models *m, const GenerateOptions *o, int *h, int *w) {
    int f = 1 << (m->vae.cfg.nblocks - 1);  // diffusers' vae_scale_factor
    if (o->height < f || o->width < f || o->height % f || o->width % f) {
        a2f_set_error("image size %dx%d must be a positive multiple of %d (the VAE's downsampling)", o->width,
                      o->height, f);
        return -1;
    }
    *h = o->height / f;
    *w = o->width / f;
    return 0;
}

static int check_options(const Models *m, const GenerateOptions *o) {
    if (o->steps < 1 || o->steps > GEN_MAX_STEPS) {
        a2f_set_error("steps %d must be in [1, %d]", o->steps, GEN_MAX_STEPS);
        return -1;
    }
    if (o->n_images < 1 || o->n_images > GEN_MAX_IMAGES) {
        a2f_set_error("number of images %d must be in [1, %d]", o->n_images, GEN_MAX_IMAGES);
        return -1;
    }
    if (!isfinite(o->guidance)) {
        a2f_set_error("guidance scale must be finite");
        return -1;
    }
    int h, w;
    return generate_latent_hw(m, o, &h, &w);
}

int generate_initial_latents(const Models *m, const GenerateOptions *o, float *x) {
    int h, w;
    TRY(generate_latent_hw(m, o, &h, &w));
    const int n = o->n_images, C = m->unet.cfg.in_channels;
    const size_t N = (size_t)n * C * h * w;
    Scheduler s;
    TRY(scheduler_init(&s, o->sampler, &m->sched, o->steps));
    float sigma0 = scheduler_init_noise_sigma(&s);
    scheduler_free(&s);
    if (o->init_latents) {
        for (size_t i = 0; i < N; i++) x[i] = o->init_latents[i];
        return 0;
    }
    if (o->noise == NOISE_PHILOX) {
        philox_fill_normal(x, N, o->seed, 0, 0.0f, 1.0f);  // element i of the NHWC tensor
    } else {
        // diffusers: randn([n, C, h, w], generator=torch.Generator("cpu").manual_seed(seed)) -> NHWC
        float *t = xmalloc(N * sizeof(float));
        torch_randn(t, N, o->seed);
        for (int b = 0; b < n; b++)
            for (int c = 0; c < C; c++)
                for (int p = 0; p < h * w; p++) x[((size_t)b * h * w + p) * C + c] = t[((size_t)b * C + c) * h * w + p];
        free(t);
    }
    // diffusers' prepare_latents: latents * init_noise_sigma (1 for DPM / DDIM)
    if (sigma0 != 1.0f)
        for (size_t i = 0; i < N; i++) x[i] *= sigma0;
    return 0;
}

int generate_conditioning(const Models *m, const GenerateOptions *o, const float id[512], float *cond) {
    const Ctx *c = &m->ctx;
    const int L = GEN_TOKENS, D = m->clip.cfg.hidden, ID = m->clip.id_dim;
    int32_t ids[2 * GEN_TOKENS];
    // row 0: the negative ("" or the prompt with a zero ID), row 1: the ID prompt
    if (clip_tokenize(m->tok, o->negative == NEGATIVE_ZERO ? GEN_PROMPT : "", ids, L) < 0) return -1;
    if (clip_tokenize(m->tok, GEN_PROMPT, ids + L, L) < 0) return -1;
    int found = 0;
    for (int i = 0; i < L; i++) found += ids[L + i] == m->clip.id_token;
    if (found != 1) {
        a2f_set_error("tokenizer: \"%s\" does not hold the id token %d exactly once", GEN_PROMPT, m->clip.id_token);
        return -1;
    }
    float v[512], idv[2 * 512] = {0};
    memcpy(v, id, sizeof v);
    TRY(id_normalize(v));
    memcpy(idv + ID, v, (size_t)ID * sizeof(float));  // row 1 (rows are ID wide); row 0 stays zero
    size_t mark = arena_mark(c->act);
    void *idd = nn_push(c, 2 * (size_t)ID), *y = nn_push(c, (size_t)2 * L * D);
    int rc = -1;
    if (idd && y && upload_f32(c, idd, idv, 2 * (size_t)ID) == 0 &&
        clip_f(c, &m->clip_w, &m->clip, y, ids, idd, 2, L, NULL) == 0 &&
        download_f32(c, cond, y, (size_t)2 * L * D) == 0)
        rc = 0;
    arena_reset(c->act, mark);
    return rc;
}

// ------------------------------------------------------------------ progress

static void progress(int i, int n, double elapsed) {
    const int W = 30;
    int f = (int)((double)W * i / n);
    char bar[64];
    for (int k = 0; k < W; k++) bar[k] = k < f ? '#' : '.';
    bar[W] = 0;
    fprintf(stderr, "\r  denoising [%s] %d/%d  %.2f s/step", bar, i, n, i ? elapsed / i : 0.0);
    if (i == n) fputc('\n', stderr);
    fflush(stderr);
}

// ------------------------------------------------------------------ the pipeline

void generate_to_u8(const float *img, uint8_t *rgb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = img[i] * 255.0f;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        rgb[i] = (uint8_t)nearbyintf(v);  // numpy round: half to even
    }
}

int generate_f32(const Models *m, const GenerateOptions *o, const float id[512], float *img, GenerateStats *stats) {
    const Ctx *c = &m->ctx;
    GenerateStats local;
    GenerateStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    TRY(check_options(m, o));
    int h, w;
    TRY(generate_latent_hw(m, o, &h, &w));
    const int n = o->n_images, C = m->unet.cfg.in_channels, L = GEN_TOKENS, D = m->clip.cfg.hidden;
    const int cfg = o->guidance > 1.0f;  // diffusers: do_classifier_free_guidance = guidance_scale > 1
    const int B = cfg ? 2 * n : n;
    const size_t lat = (size_t)n * h * w * C;  // one copy of the latents
    const double t0 = now_s();

    // conditioning [B, 77, D]: n uncond rows then n cond rows (diffusers' cat order)
    float *cond = xmalloc((size_t)2 * L * D * sizeof(float));
    float *ehs_h = xmalloc((size_t)B * L * D * sizeof(float));
    float *x = xmalloc(lat * sizeof(float)), *xin = xmalloc(2 * lat * sizeof(float));
    float *eps = xmalloc(2 * lat * sizeof(float)), *e = xmalloc(lat * sizeof(float));
    Scheduler s;
    int have_sched = 0, rc = -1;
    size_t mark = arena_mark(c->act);
    if (generate_conditioning(m, o, id, cond) != 0) goto done;
    for (int b = 0; b < B; b++) {
        const float *row = cond + (size_t)(cfg ? (b < n ? 0 : 1) : 1) * L * D;
        memcpy(ehs_h + (size_t)b * L * D, row, (size_t)L * D * sizeof(float));
    }
    if (generate_initial_latents(m, o, x) != 0) goto done;
    if (scheduler_init(&s, o->sampler, &m->sched, o->steps) != 0) goto done;
    have_sched = 1;
    void *ehs = nn_push(c, (size_t)B * L * D), *xd = nn_push(c, (size_t)B * h * w * C);
    void *out = nn_push(c, (size_t)B * h * w * C);
    float *tt = nn_push_f32(c, (size_t)B);
    if (!ehs || !xd || !out || !tt || upload_f32(c, ehs, ehs_h, (size_t)B * L * D) != 0) goto done;
    {
        int st_ = c->be->sync();
        if (st_) {
            nn_op_failed("sync", c->be, st_);
            goto done;
        }
    }
    const double t1 = now_s();
    st->cond_s = t1 - t0;

    // denoising
    const int nsteps = scheduler_steps(&s);
    const int bar = o->progress && isatty(2);
    st->nsteps = nsteps;
    if (bar) progress(0, nsteps, 0);
    for (int i = 0; i < nsteps; i++) {
        const double ts = now_s();
        const float scale = scheduler_input_scale(&s, i), t = scheduler_timestep(&s, i);
        for (size_t k = 0; k < lat; k++) xin[k] = x[k] * scale;
        if (cfg) memcpy(xin + lat, xin, lat * sizeof(float));
        float tb[2 * GEN_MAX_IMAGES];
        for (int b = 0; b < B; b++) tb[b] = t;
        int st_ = c->be->upload(tt, tb, (size_t)B * sizeof(float));
        if (st_) {
            nn_op_failed("upload", c->be, st_);
            goto done;
        }
        if (upload_f32(c, xd, xin, (size_t)B * h * w * C) != 0 ||
            unet_f(c, &m->unet_w, &m->unet, out, xd, tt, ehs, B, h, w, L, NULL) != 0 ||
            download_f32(c, eps, out, (size_t)B * h * w * C) != 0)
            goto done;
        if (cfg) {
            const float g = o->guidance;
            for (size_t k = 0; k < lat; k++) e[k] = eps[k] + g * (eps[lat + k] - eps[k]);
        } else {
            memcpy(e, eps, lat * sizeof(float));
        }
        if (scheduler_step(&s, i, e, x, lat) != 0) goto done;
        if (o->on_step && o->on_step(o->user, i, nsteps, x, n, h, w) != 0) {
            a2f_set_error("generation stopped by the step callback at step %d", i);
            goto done;
        }
        if (i < GEN_MAX_STEPS) st->step_s[i] = now_s() - ts;
        if (bar) progress(i + 1, nsteps, now_s() - t1);
    }
    const double t2 = now_s();
    st->denoise_s = t2 - t1;

    // decode
    arena_reset(c->act, mark);
    {
        int H, Wd;
        vae_image_hw(&m->vae.cfg, h, w, &H, &Wd);
        const int Co = m->vae.cfg.out_channels;
        if (H != o->height || Wd != o->width || Co != 3) {
            a2f_set_error("VAE decodes %dx%dx%d images from %dx%d latents, not %dx%dx3", Wd, H, Co, w, h, o->width,
                          o->height);
            goto done;
        }
        // One image at a time: the decoder's activations at 512x512 are ~0.7 GB
        // per image (GroupNorm is per sample, so this equals diffusers' batch decode).
        const size_t zl = (size_t)h * w * C, il = (size_t)H * Wd * 3;
        for (int b = 0; b < n; b++) {
            size_t mk = arena_mark(c->act);
            void *zd = nn_push(c, zl), *im = nn_push(c, il);
            if (!zd || !im || upload_f32(c, zd, x + b * zl, zl) != 0 ||
                vae_decode(c, &m->vae_w, &m->vae, im, zd, 1, h, w, 1) != 0 ||
                download_f32(c, img + b * il, im, il) != 0)
                goto done;
            arena_reset(c->act, mk);
        }
        for (size_t k = 0; k < (size_t)n * H * Wd * 3; k++) {
            float v = img[k] * 0.5f + 0.5f;  // diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1)
            img[k] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
    st->decode_s = now_s() - t2;
    st->total_s = now_s() - t0;
    rc = 0;
done:
    arena_reset(c->act, mark);
    if (have_sched) scheduler_free(&s);
    free(cond);
    free(ehs_h);
    free(x);
    free(xin);
    free(eps);
    free(e);
    return rc;
}

int generate(const Models *m, const GenerateOptions *o, const float id[512], Image *out, GenerateStats *stats) {
    TRY(check_options(m, o));
    const int n = o->n_images, H = o->height, W = o->width;
    const size_t per = (size_t)H * W * 3;
    float *img = xmalloc(n * per * sizeof(float));
    if (generate_f32(m, o, id, img, stats) != 0) {
        free(img);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (image_alloc(&out[i], W, H, 3) != 0) {
            for (int k = 0; k < i; k++) image_free(&out[k]);
            free(img);
            return -1;
        }
        generate_to_u8(img + i * per, out[i].px, per);
    }
    free(img);
    return 0;
}
