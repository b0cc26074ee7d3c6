// embed.h: the identity pipeline -- from a face photo (or several, or an
// aligned crop, or a saved vector) to the 512-d ArcFace ID vector Arc2Face is
// conditioned on. Upstream (shared/reference/arc2face-upstream.md 1.2):
//
//   photo (PIL RGB -> BGR)  -> FaceAnalysis(antelopev2).get: SCRFD 640x640
//   -> the largest face by box area -> norm_crop(img, face.kps) 112x112
//   -> ArcFaceONNX: blobFromImages(1/127.5, mean 127.5, swapRB) = RGB,
//      (v - 127.5) / 127.5, NCHW -> IResNet-100 -> raw 512-d "embedding"
//   -> Arc2Face: id_emb / ||id_emb|| (no other scaling)
//
// Here: image_load (RGB) -> face_detect (infer/detect.h) -> face_pick_largest
// (or the K-th face in score order, face_index >= 0) -> align_norm_crop
// (infer/align.h, the channels are independent so RGB in = RGB crop out)
// -> iresnet_preprocess (RGB, (v - 127.5) / 127.5) -> IResNet (nn/iresnet.h via
// the nn/models.h registry, which reads the configuration from the file)
// -> L2 normalisation.
//
// Several photos of one person (not in upstream): each vector is normalised,
// they are averaged and the mean is renormalised (every photo weighs the same
// whatever its raw norm). A pre-aligned 112x112 crop skips detection. An
// embedding file (.npy float32/float64 [512] or [1, 512], or a safetensors
// file with one such float tensor, or one named "embedding" or "id") is read
// as is and normalised.
#pragma once
#include <stdio.h>

#include "../data/image.h"
#include "../nn/nn.h"
#include "../nn/scrfd.h"
#include "detect.h"

#define ID_DIM 512
#define EMBED_MAX_FACES 256

typedef struct {
    const Backend *be;
    DType dt;
    Ctx ctx;
    const void *rec_def;  // nn/models.h ModelDef of "iresnet"
    void *rec;            // its state (IResNet + weights), NULL when not loaded
    int has_det;
    Scrfd det;
    Weights det_w;
    float det_thresh, nms_thresh;  // insightface: 0.5, 0.4
} IdEmbedder;

// Loads the recognizer (converted arcface.onnx / any insightface-keyed IResNet
// checkpoint with a 512-d output for 112x112 input) and, when detector is not
// NULL, the SCRFD detector (converted scrfd_10g_bnkps.onnx). On failure one
// error line naming the file; nothing left allocated. 0 / -1.
int embedder_open(IdEmbedder *e, const char *arcface, const char *detector, const Backend *be, DType dt);
void embedder_close(IdEmbedder *e);

// Raw (unnormalised) embedding of an aligned RGB crop [112, 112, 3]. 0 / -1.
int embed_crop(IdEmbedder *e, const uint8_t *crop, float emb[ID_DIM]);

// The faces of an RGB photo (score order) into faces[max_faces] (*n found).
int embed_detect(IdEmbedder *e, const Image *img, const char *name, Face *faces, int max_faces, int *n);

// Picks one of n detected faces (face_index < 0: the largest, as upstream;
// else the face_index-th in score order, 0 = most confident), aligns it and
// embeds it. crop may be NULL (else receives the 112x112 RGB crop). Returns
// the index used, or -1 ("NAME: no face found ..." when n == 0, or an index
// out of range). Raw embedding.
int embed_face(IdEmbedder *e, const Image *img, const char *name, const Face *faces, int n, int face_index,
               float emb[ID_DIM], uint8_t *crop);
// embed_detect + embed_face. chosen and nfaces may be NULL. 0 / -1.
int embed_photo(IdEmbedder *e, const Image *img, const char *name, int face_index, float emb[ID_DIM], uint8_t *crop,
                Face *chosen, int *nfaces);

// v /= ||v|| (double accumulation); a zero or non-finite vector is an error
// naming `what`. 0 / -1.
int embed_normalize(float *v, int n, const char *what);
// out = normalize(mean_i normalize(v_i)) over n vectors [n, ID_DIM]. 0 / -1.
int embed_average(const float *v, int n, float out[ID_DIM]);
// Cosine similarity of two vectors (double accumulation; 0 if either is zero).
double embed_cosine(const float *a, const float *b, int n);

// 1 when PATH starts like an embedding file (.npy magic, or a safetensors
// header), 0 otherwise (images, missing files).
int embed_is_vector_file(const char *path);
// Reads an embedding file (see above) into emb (raw values, not normalised).
int embed_read_vector(const char *path, float emb[ID_DIM]);
// Writes emb as .npy (float32 [512]) when PATH ends in ".npy", else as
// safetensors with one F32 tensor "embedding" [512]. Atomic. 0 / -1.
int embed_write_vector(const char *path, const float emb[ID_DIM]);

// How embed_sources treats an image path.
typedef enum { EMBED_PHOTO = 0, EMBED_CROP = 1 } EmbedImageKind;

// The ID vector of one person from n sources: embedding files are read,
// images embedded (photos detected + aligned, or used as 112x112 crops), each
// normalised, then averaged and renormalised. e may be NULL when every source
// is an embedding file. log (may be NULL) gets one line per source. 0 / -1.
int embed_sources(IdEmbedder *e, const char *const *paths, int n, EmbedImageKind kind, int face_index,
                  float out[ID_DIM], FILE *log);
