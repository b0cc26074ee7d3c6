// eval_id.c: `arc2face eval-id`: identity similarity of generated images to
// the input identity -- each image is detected, aligned and embedded exactly
// as the input photo (infer/embed.h), and the cosine of its L2-normalised
// ArcFace vector to the identity vector is printed, then the mean.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/embed.h"
#include "../kernels/common.h"
#include "cli.h"

#define MAX_INPUTS 4096
#define MAX_IDENTITY 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face eval-id --identity EMB_OR_PHOTO [--identity ...] GENERATED.png...\n"
            "                        --arcface W --detector D [--face K] [--device cpu|cuda] [--dtype f32|bf16]\n"
            "\n"
            "Prints, for every generated image, the cosine similarity between the ArcFace vector of its\n"
            "largest face and the identity vector, then the mean over the images where a face was found.\n"
            "Faces are detected (SCRFD 640x640), aligned (112x112 ArcFace template) and embedded exactly\n"
            "as arc2face embed does.\n"
            "\n"
            "  --identity X      the input identity: an embedding file (.npy / .safetensors) or a face\n"
            "                    photo; repeat for several photos of one person (vectors averaged)\n"
            "  --face K          for identity photos: the K-th face in score order instead of the largest\n"
            "  --arcface W       recognizer weights     --detector D   SCRFD weights\n"
            "  --device cpu|cuda backend (default cpu)  --dtype f32|bf16 (default f32; bf16 on cuda)\n"
            "\n"
            "Output: one line per image, \"COSINE  PATH\" (or \"no-face  PATH\"), then \"mean COSINE over N\n"
            "of M images\". Exit status 1 when no image has a face.\n");
}

int cmd_eval_id(int argc, char **argv) {
    const char *ids[MAX_IDENTITY], *gen[MAX_INPUTS];
    int nid = 0, ngen = 0;
    long face = -1;
    const char *arcface = NULL, *detector = NULL, *device = "cpu", *dtype = "f32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--identity")) {
            if (++i == argc) return cli_usage_error("eval-id", "--identity needs a value");
            if (nid == MAX_IDENTITY) return cli_usage_error("eval-id", "at most %d --identity inputs", MAX_IDENTITY);
            ids[nid++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--face")) {
            int rc = cli_face_option("eval-id", argc, argv, &i, &face);
            if (rc) return rc;
            continue;
        }
        const char **dst = !strcmp(a, "--arcface")    ? &arcface
                           : !strcmp(a, "--detector") ? &detector
                           : !strcmp(a, "--device")   ? &device
                           : !strcmp(a, "--dtype")    ? &dtype
                                                      : NULL;
        if (dst) {
            if (++i == argc) return cli_usage_error("eval-id", "%s needs a value", a);
            *dst = argv[i];
            continue;
        }
        if (a[0] == '-' && a[1] == '-') return cli_usage_error("eval-id", "unknown option '%s'", a);
        if (ngen == MAX_INPUTS) return cli_usage_error("eval-id", "at most %d images", MAX_INPUTS);
        gen[ngen++] = a;
    }
    if (nid == 0) return cli_usage_error("eval-id", "--identity is required");
    if (ngen == 0) return cli_usage_error("eval-id", "no generated images given");
    if (!arcface || !detector) return cli_usage_error("eval-id", "--arcface and --detector are required");
    DType dt;
    const Backend *be;
    int brc = cli_backend("eval-id", device, dtype, &be, &dt);
    if (brc) return brc;

    IdEmbedder e;
    if (embedder_open(&e, arcface, detector, be, dt) != 0) return cli_error("%s", a2f_last_error());
    float id[ID_DIM], v[ID_DIM];
    if (embed_sources(&e, ids, nid, EMBED_PHOTO, (int)face, id, NULL) != 0) {
        embedder_close(&e);
        return cli_error("%s", a2f_last_error());
    }
    double sum = 0;
    int measured = 0;
    for (int k = 0; k < ngen; k++) {
        Image img;
        if (image_load(&img, gen[k]) != 0) {
            embedder_close(&e);
            return cli_error("%s", a2f_last_error());
        }
        Face faces[EMBED_MAX_FACES];
        int n = 0;
        int rc = embed_detect(&e, &img, gen[k], faces, EMBED_MAX_FACES, &n);
        if (rc == 0 && n == 0) {
            printf("no-face  %s\n", gen[k]);
        } else if (rc != 0 || embed_face(&e, &img, gen[k], faces, n, -1, v, NULL) < 0 ||
                   embed_normalize(v, ID_DIM, gen[k]) != 0) {
            image_free(&img);
            embedder_close(&e);
            return cli_error("%s", a2f_last_error());
        } else {
            double c = embed_cosine(v, id, ID_DIM);
            printf("%.4f  %s\n", c, gen[k]);
            sum += c, measured++;
        }
        fflush(stdout);
        image_free(&img);
    }
    embedder_close(&e);
    if (!measured) return cli_error("eval-id: no face found in any of the %d images", ngen);
    printf("mean %.4f over %d of %d images\n", sum / measured, measured, ngen);
    return CLI_OK;
}
