// embed.c: `arc2face embed`: the ArcFace ID vector of a person from face
// photos, aligned crops or embedding files (infer/embed.h), printed or saved.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/embed.h"
#include "../kernels/common.h"
#include "cli.h"

#define MAX_SOURCES 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face embed PHOTO... --arcface W [--detector D] [--crop] [--face K]\n"
            "                      [--out EMB.npy|EMB.safetensors] [--device cpu|cuda] [--dtype f32|bf16] [--quiet]\n"
            "\n"
            "Computes the identity vector Arc2Face is conditioned on, as upstream does: SCRFD face\n"
            "detection at 640x640, the largest face, insightface's 5-point alignment to the 112x112\n"
            "ArcFace template, the IResNet recognizer on (v - 127.5) / 127.5 RGB, L2 normalisation.\n"
            "Several inputs are one person: each vector is normalised, the mean is renormalised.\n"
            "An input may also be an embedding file (.npy or .safetensors with 512 values), read as is.\n"
            "\n"
            "  --arcface W       recognizer weights (.safetensors converted from arcface.onnx)\n"
            "  --detector D      SCRFD weights (.safetensors converted from scrfd_10g_bnkps.onnx);\n"
            "                    needed for photos\n"
            "  --crop            the images are already aligned 112x112 crops: no detection\n"
            "  --face K          use the K-th face in detection-score order (0 = most confident)\n"
            "                    instead of the largest\n"
            "  --out FILE        write the vector: .npy (float32 [512]) or .safetensors (\"embedding\" [512]);\n"
            "                    without --out it is printed on stdout, 512 numbers on one line\n"
            "  --device cpu|cuda backend (default cpu)   --dtype f32|bf16 (default f32; bf16 on cuda)\n"
            "  --quiet           no per-input lines (they go to stderr)\n");
}

int cmd_embed(int argc, char **argv) {
    const char *srcs[MAX_SOURCES];
    int nsrc = 0, crop = 0, quiet = 0;
    long face = -1;
    const char *arcface = NULL, *detector = NULL, *out = NULL, *device = "cpu", *dtype = "f32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--crop")) {
            crop = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        const char **dst = !strcmp(a, "--arcface")    ? &arcface
                           : !strcmp(a, "--detector") ? &detector
                           : !strcmp(a, "--out")      ? &out
                           : !strcmp(a, "--device")   ? &device
                           : !strcmp(a, "--dtype")    ? &dtype
                                                      : NULL;
        if (!strcmp(a, "--face")) {
            int rc = cli_face_option("embed", argc, argv, &i, &face);
            if (rc) return rc;
            continue;
        }
        if (dst) {
            if (++i == argc) return cli_usage_error("embed", "%s needs a value", a);
            *dst = argv[i];
            continue;
        }
        if (a[0] == '-' && a[1] == '-') return cli_usage_error("embed", "unknown option '%s'", a);
        if (nsrc == MAX_SOURCES) return cli_usage_error("embed", "at most %d inputs", MAX_SOURCES);
        srcs[nsrc++] = a;
    }
    if (nsrc == 0) return cli_usage_error("embed", "no input photo, crop or embedding file");
    if (crop && face >= 0) return cli_usage_error("embed", "--face has no meaning with --crop");
    int need_rec = 0;
    for (int k = 0; k < nsrc; k++) need_rec |= !embed_is_vector_file(srcs[k]);
    if (need_rec && !arcface) return cli_usage_error("embed", "images need the recognizer: --arcface W.safetensors");
    if (need_rec && !crop && !detector)
        return cli_usage_error("embed",
                               "photos need the face detector (--detector D.safetensors), or pass aligned "
                               "112x112 crops with --crop");

    DType dt;
    const Backend *be;
    int brc = cli_backend("embed", device, dtype, &be, &dt);
    if (brc) return brc;

    IdEmbedder e;
    if (need_rec && embedder_open(&e, arcface, crop ? NULL : detector, be, dt) != 0)
        return cli_error("%s", a2f_last_error());
    float id[ID_DIM];
    int rc = embed_sources(need_rec ? &e : NULL, srcs, nsrc, crop ? EMBED_CROP : EMBED_PHOTO, (int)face, id,
                           quiet ? NULL : stderr);
    if (need_rec) embedder_close(&e);
    if (rc) return cli_error("%s", a2f_last_error());
    if (out) {
        if (embed_write_vector(out, id)) return cli_error("%s", a2f_last_error());
        printf("%s: wrote the %d-d ID vector of %d input%s\n", out, ID_DIM, nsrc, nsrc == 1 ? "" : "s");
    } else {
        for (int i = 0; i < ID_DIM; i++) printf("%s%.8g", i ? " " : "", id[i]);
        printf("\n");
    }
    return CLI_OK;
}
