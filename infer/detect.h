// detect.h: face detection as insightface's FaceAnalysis(antelopev2) does it
// (RetinaFace/SCRFD.detect of insightface 0.7.3 with det_size 640x640,
// det_thresh 0.5, nms_thresh 0.4; shared/reference/face-detection-alignment.md
// sections 3-4), on the SCRFD network of nn/scrfd.h:
//  1. letterbox (infer/resize.h): keep aspect, OpenCV-exact bilinear resize,
//     paste top-left into a black det_w x det_h canvas; det_scale = new_h / H;
//  2. blob: RGB, (v - 127.5) / 128 (cv2.dnn.blobFromImage(1/128, mean 127.5,
//     swapRB=True) on insightface's BGR image: the network sees RGB);
//  3. the network's 9 outputs (scores, distances, keypoint offsets per stride);
//  4. decode (scrfd_decode): anchors at (w*s, h*s), A per location, row
//     (h*W_s + w)*A + a; keep score >= thresh; box = (cx - d0, cy - d1,
//     cx + d2, cy + d3) * s, keypoints (cx + d2j, cy + d2j+1) * s, both divided
//     by det_scale (float32 arithmetic as numpy does); levels concatenated
//     8, 16, 32; sorted by score descending; greedy NMS with the +1 pixel
//     convention (area = (x2 - x1 + 1)(y2 - y1 + 1)), a box is dropped when
//     its overlap with a kept one is > nms_thresh.
// Ties in score (which numpy's unstable argsort orders arbitrarily) are broken
// by the higher candidate index first (what numpy does for small arrays).
#pragma once
#include <stdint.h>

#include "../nn/scrfd.h"

typedef struct {
    float x1, y1, x2, y2, score;
    float kps[10];  // (x, y) of: left eye, right eye, nose, left mouth corner, right mouth corner (image-left first)
} Face;

#define FACE_DET_SIZE 640  // insightface's det_size

// Faces of an RGB image rgb [H, Wd, 3] (uint8) at det_size 640x640, sorted by
// score descending: out [max_faces], *n = number written (when more survive
// NMS, the max_faces highest-scoring ones). Weights/network from scrfd_load;
// the context's activation stack needs face_detect_act_bytes(m, 640, 640, dt)
// (66 MB in f32 for SCRFD-10G) and is back at its mark on return. 0, or -1
// with the error set.
int face_detect(const Ctx *c, const Weights *W, const Scrfd *m, const uint8_t *rgb, int H, int Wd,
                float score_thresh, float nms_thresh, Face *out, int max_faces, int *n);
// Same at another det size (det_w, det_h multiples of 32).
int face_detect_ex(const Ctx *c, const Weights *W, const Scrfd *m, const uint8_t *rgb, int H, int Wd, int det_w,
                   int det_h, float score_thresh, float nms_thresh, Face *out, int max_faces, int *n);
// Bytes of the activation stack face_detect_ex needs.
size_t face_detect_act_bytes(const Scrfd *m, int det_w, int det_h, DType dt);

// Step 4 alone, on host outputs in the ONNX order (heads[0..2] scores [n_l],
// heads[3..5] bbox [n_l, 4], heads[6..8] kps [n_l, 10], levels at strides 8,
// 16, 32 of a det_w x det_h input with `anchors` per location). 0 / -1.
int scrfd_decode(const float *const heads[9], int det_w, int det_h, int anchors, double det_scale,
                 float score_thresh, float nms_thresh, Face *out, int max_faces, int *n);

// Arc2Face's choice: the face with the largest (x2 - x1) * (y2 - y1) (float),
// the last one among equal areas (Python sorted(...)[-1]); -1 when n == 0.
int face_pick_largest(const Face *f, int n);
