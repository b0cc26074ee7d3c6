// generate.c: `arc2face generate`: new photos of a person from a face photo,
// an aligned crop or an ArcFace embedding file, with the released Arc2Face
// weights (or the bundled tiny demo model). See usage() for every option and
// infer/pipeline.h for what runs.
//
// Nothing is written unless generation succeeded; every PNG is written
// atomically (temp file + rename), and on a failed write the PNGs already
// written by this run are removed.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../data/image.h"
#include "../infer/embed.h"
#include "../infer/pipeline.h"
#include "../kernels/common.h"
#include "cli.h"

// The CUDA backend is linked only into CUDA builds; NULL otherwise.

#define MAX_PHOTOS 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face generate --model DIR --base DIR (--photo P [--photo P2 ...] | --crop C | --embedding E)\n"
            "                         [options]\n"
            "\n"
            "Generates new photos of the person whose identity is given, as Arc2Face does: the ArcFace\n"
            "vector (L2-normalised) is injected into the CLIP encoder at the \"id\" token of the prompt\n"
            "\"photo of a id person\"; the UNet denoises with DPM-Solver++ and classifier-free guidance\n"
            "(negative: the encoder's output for the empty prompt); the VAE decodes. A seed gives the\n"
            "initial latents diffusers draws with torch.Generator(\"cpu\").manual_seed(seed).\n"
            "\n"
            "models (Hugging Face layouts, as released):\n"
            "  --model DIR        FoivosPar/Arc2Face download: DIR/arc2face/ (diffusers UNet) and\n"
            "                     DIR/encoder/ (CLIPTextModel: config.json + model.safetensors or pytorch_model.bin)\n"
            "  --base DIR         Stable Diffusion 1.5 folder: DIR/vae/, DIR/scheduler/scheduler_config.json,\n"
            "                     DIR/tokenizer/ (vocab.json, merges.txt)\n"
            "  --tokenizer DIR    tokenizer folder when BASE has none (e.g. the bundled assets/tokenizer)\n"
            "  --arcface W        ArcFace IResNet-100 weights (.safetensors, from arcface.onnx by `arc2face convert`)\n"
            "  --detector D       SCRFD-10G detector weights (.safetensors, from scrfd_10g_bnkps.onnx)\n"
            "\n"
            "identity (exactly one):\n"
            "  --photo P          a face photo (PNG/JPEG); repeat for several photos of one person\n"
            "                     (embeddings averaged, renormalised); needs --arcface and --detector\n"
            "  --crop C           a face already aligned to the ArcFace 112x112 template; needs --arcface\n"
            "  --embedding E      an ArcFace vector: .npy (512 float32/float64) or .safetensors (one tensor\n"
            "                     of 512 values, or one named \"embedding\" / \"id\")\n"
            "  --face-index K     with --photo: the K-th face in detection-score order, 0 = the most\n"
            "                     confident (default: the largest face, as upstream)\n"
            "\n"
            "sampling:\n"
            "  --n N              images (default 4)\n"
            "  --seed S           seed of the initial noise (default 0)\n"
            "  --steps N          denoising steps (default 25)\n"
            "  --guidance G       classifier-free guidance scale (default 3.0; <= 1 disables guidance)\n"
            "  --sampler S        dpmpp2m (DPM-Solver++ 2M, default), ddim or euler\n"
            "  --noise torch|philox  initial latents: torch's CPU generator (default; matches diffusers)\n"
            "                     or the framework's Philox stream\n"
            "  --negative empty|zero  negative conditioning: the empty prompt (default, upstream) or the\n"
            "                     prompt with a zero ID vector\n"
            "  --size N           image height and width in pixels (default 512; multiple of 8)\n"
            "  --height H --width W  the same, separately\n"
            "\n"
            "identity interpolation:\n"
            "  --interpolate E2   a second identity (embedding file, or a photo): generates --strip K images along the\n"
            "                     blend (1 - t) id + t id2, renormalised, t = 0 .. 1, same seed, and writes\n"
            "                     them as OUT/interp_K.png plus OUT/strip.png\n"
            "  --strip K          images along the interpolation (default 5)\n"
            "\n"
            "output and device:\n"
            "  --out DIR          output folder (default out): DIR/img_000.png ...\n"
            "  --grid             also write DIR/grid.png (the input face first, when there is one)\n"
            "  --device cpu|cuda  backend (default cpu; cuda needs a CUDA build)\n"
            "  --dtype f32|bf16   compute dtype (default f32; bf16 on cuda only)\n"
            "  --mem-mb N         activation stack in MiB (default: enough for --n 4 at 512x512; raise it\n"
            "                     for more images or larger sizes)\n"
            "  --quiet            no progress bar and no timings\n"
            "\n"
            "Per-stage timings are printed at the end; a progress bar over the steps is drawn when\n"
            "stderr is a terminal. tools/get-weights.sh prints the commands that fetch the released\n"
            "weights; `make demo` runs this verb on a tiny, untrained bundled model.\n");
}

// ------------------------------------------------------------------ helpers

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}
static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static int mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return is_dir(buf) ? 0 : -1;
}

typedef struct {
    char path[GEN_MAX_IMAGES + 8][4096 + 32];
    int n;
} Written;

static int save(Written *wr, const Image *im, const char *dir, const char *name) {
    char p[4096 + 32];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (image_save_png(im, p) != 0) return -1;
    if (wr->n < GEN_MAX_IMAGES + 8) snprintf(wr->path[wr->n++], sizeof wr->path[0], "%s", p);
    printf("wrote %s\n", p);
    return 0;
}

static void unwind(Written *wr) {
    for (int i = 0; i < wr->n; i++) unlink(wr->path[i]);
    wr->n = 0;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

// ------------------------------------------------------------------ the verb

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *base = NULL, *tokdir = NULL, *arcface = NULL, *detector = NULL, *crop = NULL;
    const char *embedding = NULL, *interp = NULL, *outdir = "out", *device = "cpu", *dtype = "f32";
    const char *sampler = "dpmpp2m", *noise = "torch", *negative = "empty";
    const char *photos[MAX_PHOTOS];
    int nphotos = 0, grid = 0, quiet = 0;
    long n = 4, steps = 25, strip = 5, face_index = -1, height = 512, width = 512, mem_mb = 0;
    unsigned long long seed = 0;
    double guidance = 3.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--grid")) {
            grid = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (++i == argc) return cli_usage_error("generate", "%s needs a value", a);
        const char *v = argv[i];
        const char **dst = !strcmp(a, "--model") ? &model : !strcmp(a, "--base") ? &base
                           : !strcmp(a, "--tokenizer") ? &tokdir : !strcmp(a, "--arcface") ? &arcface
                           : !strcmp(a, "--detector") ? &detector : !strcmp(a, "--crop") ? &crop
                           : !strcmp(a, "--embedding") ? &embedding : !strcmp(a, "--interpolate") ? &interp
                           : !strcmp(a, "--out") ? &outdir : !strcmp(a, "--device") ? &device
                           : !strcmp(a, "--dtype") ? &dtype : !strcmp(a, "--sampler") ? &sampler
                           : !strcmp(a, "--noise") ? &noise : !strcmp(a, "--negative") ? &negative : NULL;
        if (dst) {
            *dst = v;
            continue;
        }
        if (!strcmp(a, "--photo")) {
            if (nphotos == MAX_PHOTOS) return cli_usage_error("generate", "at most %d --photo", MAX_PHOTOS);
            photos[nphotos++] = v;
            continue;
        }
        long *iv = !strcmp(a, "--n") ? &n : !strcmp(a, "--steps") ? &steps : !strcmp(a, "--strip") ? &strip
                   : !strcmp(a, "--face-index") ? &face_index : !strcmp(a, "--height") ? &height
                   : !strcmp(a, "--width") ? &width : !strcmp(a, "--mem-mb") ? &mem_mb : NULL;
        if (iv) {
            if (parse_int(v, 0, 1L << 24, iv) != 0) return cli_usage_error("generate", "bad value '%s' for %s", v, a);
            continue;
        }
        if (!strcmp(a, "--size")) {
            if (parse_int(v, 1, 1L << 16, &height) != 0) return cli_usage_error("generate", "bad --size '%s'", v);
            width = height;
            continue;
        }
        if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-') return cli_usage_error("generate", "bad --seed '%s'", v);
            continue;
        }
        if (!strcmp(a, "--guidance")) {
            char *end;
            guidance = strtod(v, &end);
            if (end == v || *end || !isfinite(guidance) || guidance < 0 || guidance > 100)
                return cli_usage_error("generate", "bad --guidance '%s'", v);
            continue;
        }
        return cli_usage_error("generate", "unknown argument '%s'", a);
    }

    // ---- validate the arguments (usage errors: nothing loaded yet)
    if (!model || !base) return cli_usage_error("generate", "--model and --base are required");
    if ((nphotos > 0) + (crop != NULL) + (embedding != NULL) != 1)
        return cli_usage_error("generate", "give exactly one identity: --photo, --crop or --embedding");
    if (n < 1 || n > GEN_MAX_IMAGES) return cli_usage_error("generate", "--n must be in [1, %d]", GEN_MAX_IMAGES);
    if (steps < 1 || steps > GEN_MAX_STEPS) return cli_usage_error("generate", "--steps must be in [1, %d]", GEN_MAX_STEPS);
    if (interp && (strip < 2 || strip > 64)) return cli_usage_error("generate", "--strip must be in [2, 64]");
    GenerateOptions o;
    generate_options_default(&o);
    o.n_images = (int)n;
    o.steps = (int)steps;
    o.seed = seed;
    o.guidance = (float)guidance;
    o.height = (int)height;
    o.width = (int)width;
    o.progress = !quiet;
    if (sampler_parse(sampler, &o.sampler) != 0)
        return cli_usage_error("generate", "--sampler must be dpmpp2m, ddim or euler, not '%s'", sampler);
    if (!strcmp(noise, "torch")) o.noise = NOISE_TORCH;
    else if (!strcmp(noise, "philox")) o.noise = NOISE_PHILOX;
    else return cli_usage_error("generate", "--noise must be torch or philox, not '%s'", noise);
    if (!strcmp(negative, "empty")) o.negative = NEGATIVE_EMPTY;
    else if (!strcmp(negative, "zero")) o.negative = NEGATIVE_ZERO;
    else return cli_usage_error("generate", "--negative must be empty or zero, not '%s'", negative);
    DType dt;
    const Backend *be;
    int brc = cli_backend("generate", device, dtype, &be, &dt);
    if (brc != CLI_OK) return brc;

    // ---- the model folders
    char unet_dir[4096], enc_dir[4096], vae_dir[4096], sched[4096], tok_dir[4096], probe[4200];
    if (!is_dir(model)) return cli_error("generate: --model %s: no such directory", model);
    if (!is_dir(base)) return cli_error("generate: --base %s: no such directory", base);
    snprintf(unet_dir, sizeof unet_dir, "%s/arc2face", model);
    snprintf(enc_dir, sizeof enc_dir, "%s/encoder", model);
    snprintf(vae_dir, sizeof vae_dir, "%s/vae", base);
    snprintf(sched, sizeof sched, "%s/scheduler/scheduler_config.json", base);
    if (!is_dir(unet_dir)) return cli_error("generate: %s: no such directory (the Arc2Face UNet)", unet_dir);
    if (!is_dir(enc_dir)) return cli_error("generate: %s: no such directory (the Arc2Face encoder)", enc_dir);
    if (!is_dir(vae_dir)) return cli_error("generate: %s: no such directory (the SD1.5 VAE)", vae_dir);
    if (!is_file(sched)) return cli_error("generate: %s: no such file (the SD1.5 scheduler config)", sched);
    if (tokdir) snprintf(tok_dir, sizeof tok_dir, "%s", tokdir);
    else snprintf(tok_dir, sizeof tok_dir, "%s/tokenizer", base);
    snprintf(probe, sizeof probe, "%s/vocab.json", tok_dir);
    if (!is_file(probe))
        return cli_error("generate: %s: no such file (give the tokenizer folder with --tokenizer, e.g. assets/tokenizer)",
                         probe);

    // ---- the identity (the embedder is closed before the generation models load)
    float id[512], id2[512];
    Image face = {0};  // the input face shown in the grid (none for an embedding)
    int need_embedder = nphotos > 0 || crop || (interp && !embed_is_vector_file(interp));
    if (need_embedder && !arcface)
        return cli_usage_error("generate", "--photo / --crop (and a photo for --interpolate) need --arcface");
    if ((nphotos > 0 || (interp && !embed_is_vector_file(interp))) && !detector)
        return cli_usage_error("generate", "--photo needs --detector (or give an aligned --crop)");
    IdEmbedder emb;
    memset(&emb, 0, sizeof emb);
    if (need_embedder && embedder_open(&emb, arcface, (nphotos || interp) ? detector : NULL, be, dt) != 0)
        return cli_error("generate: %s", a2f_last_error());
    int bad_id;
    if (embedding) bad_id = embed_read_vector(embedding, id) != 0 || embed_normalize(id, 512, embedding) != 0;
    else if (crop) bad_id = embed_sources(&emb, &crop, 1, EMBED_CROP, -1, id, quiet ? NULL : stdout) != 0;
    else bad_id = embed_sources(&emb, photos, nphotos, EMBED_PHOTO, (int)face_index, id, quiet ? NULL : stdout) != 0;
    if (!bad_id && interp) {
        if (embed_is_vector_file(interp))
            bad_id = embed_read_vector(interp, id2) != 0 || embed_normalize(id2, 512, interp) != 0;
        else
            bad_id = embed_sources(&emb, &interp, 1, EMBED_PHOTO, (int)face_index, id2, quiet ? NULL : stdout) != 0;
    }
    if (need_embedder) embedder_close(&emb);
    if (bad_id) return cli_error("generate: %s", a2f_last_error());
    if (grid && (nphotos || crop) && image_load(&face, nphotos ? photos[0] : crop) != 0)
        return cli_error("generate: %s", a2f_last_error());

    // ---- load and run
    Models m;
    ModelPaths p = {unet_dir, enc_dir, vae_dir, sched, tok_dir};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (models_load(&m, &p, be, dt, (size_t)mem_mb << 20) != 0) {
        image_free(&face);
        return cli_error("generate: %s", a2f_last_error());
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double load_s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    int h, w;
    if (generate_latent_hw(&m, &o, &h, &w) != 0) {
        models_free(&m);
        image_free(&face);
        return cli_error("generate: %s", a2f_last_error());
    }
    const int nimg = interp ? (int)strip : o.n_images;
    Image *imgs = xcalloc((size_t)nimg, sizeof(Image));
    GenerateStats *st = xcalloc(1, sizeof(GenerateStats)), *acc = xcalloc(1, sizeof(GenerateStats));
    int rc = CLI_ERR;
    if (!interp) {
        if (generate(&m, &o, id, imgs, st) != 0) goto fail;
        *acc = *st;
    } else {
        GenerateOptions oi = o;
        oi.n_images = 1;
        for (int k = 0; k < nimg; k++) {
            float v[512];
            if (id_blend(id, id2, (float)k / (nimg - 1), v) != 0 || generate(&m, &oi, v, imgs + k, st) != 0) goto fail;
            acc->cond_s += st->cond_s;
            acc->denoise_s += st->denoise_s;
            acc->decode_s += st->decode_s;
            acc->total_s += st->total_s;
            acc->nsteps += st->nsteps;
        }
    }

    // ---- write (only after everything succeeded)
    Written *wr = xcalloc(1, sizeof(Written));
    if (mkdir_p(outdir) != 0) {
        a2f_set_error("%s: cannot create the output directory: %s", outdir, strerror(errno));
        free(wr);
        goto fail;
    }
    char name[64];
    int bad = 0;
    for (int k = 0; k < nimg && !bad; k++) {
        snprintf(name, sizeof name, interp ? "interp_%02d.png" : "img_%03d.png", k);
        bad = save(wr, &imgs[k], outdir, name) != 0;
    }
    if (!bad && (grid || interp)) {
        const Image *cells[GEN_MAX_IMAGES + 1];
        int nc = 0;
        if (face.px) cells[nc++] = &face;
        for (int k = 0; k < nimg; k++) cells[nc++] = &imgs[k];
        int cols = interp ? nc : (nc <= 4 ? nc : (nc <= 9 ? 3 : 4));
        if (nc > 4 && !interp) cols = nc <= 6 ? 3 : 4;
        Image g = {0};
        int cell = o.width > o.height ? o.width : o.height;
        bad = image_grid(&g, cells, nc, cols, cell, 4, 255) != 0 ||
              save(wr, &g, outdir, interp ? "strip.png" : "grid.png") != 0;
        image_free(&g);
    }
    if (bad) {
        unwind(wr);
        free(wr);
        goto fail;
    }
    free(wr);
    if (!quiet) {
        double per = acc->nsteps ? acc->denoise_s / acc->nsteps : 0, lo = 1e30, hi = 0;
        for (int k = 0; k < st->nsteps && k < GEN_MAX_STEPS; k++) {
            lo = st->step_s[k] < lo ? st->step_s[k] : lo;
            hi = st->step_s[k] > hi ? st->step_s[k] : hi;
        }
        printf("timings (%s %s): load %.2f s, conditioning %.3f s, denoising %.2f s (%d steps, %.1f ms/step,"
               " min %.1f, max %.1f), VAE decode %.2f s, total %.2f s\n",
               be->name, dtype_name(dt), load_s, acc->cond_s, acc->denoise_s, acc->nsteps, per * 1e3,
               st->nsteps ? lo * 1e3 : 0, hi * 1e3, acc->decode_s, load_s + acc->total_s);
    }
    rc = CLI_OK;
fail:
    if (rc != CLI_OK)
        cli_error("generate: %s%s", a2f_last_error(),
                  strstr(a2f_last_error(), "out of memory") ? " (raise --mem-mb)" : "");
    for (int k = 0; k < nimg; k++) image_free(&imgs[k]);
    free(imgs);
    free(st);
    free(acc);
    image_free(&face);
    models_free(&m);
    return rc;
}
