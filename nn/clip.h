// clip.h: the CLIP text encoder (transformers CLIPTextModel, the SD1.5
// `text_encoder/`) with Arc2Face's ID injection, forward and manual backward.
//
//   x  = token_embedding[input_ids]                       [B, L, D]
//   x[b, p] = pad(normalize(id[b]), D)  for every p with input_ids[b, p] == id_token
//   x += position_embedding[0..L-1]
//   for each layer (pre-LN):
//       x = x + out_proj(MHA_causal(layer_norm1(x)))      q/k/v/out with bias, scale hd^-0.5
//       x = x + fc2(quick_gelu(fc1(layer_norm2(x))))
//   y = final_layer_norm(x)                               last_hidden_state [B, L, D]
//
// ID injection follows Arc2Face exactly (arc2face/utils.py::project_face_embs
// and models.py::CLIPTextModelWrapper; shared/reference/arc2face-upstream.md 1.3):
//  - the placeholder is the ordinary token "id" = 1014 of the prompt
//    "photo of a id person" = [49406, 1125, 539, 320, 1014, 2533, 49407] padded
//    to 77 with 49407, so position 4;
//  - the wrapper takes the RAW token embeddings (no position embedding),
//    overwrites the rows where input_ids == 1014 with the face vector
//    zero-padded 512 -> hidden_size (F.pad, constant 0), then adds the position
//    embeddings and runs the encoder with the causal mask and the final norm;
//  - the wrapper itself does NOT normalise: its caller (the demo / pipeline)
//    divides the ArcFace vector by its L2 norm first. m->id_normalize = 1
//    (the default) does that division here, so raw ArcFace outputs can be
//    passed and d(id) is the gradient with respect to the raw vector;
//    normalising is idempotent, so already-normalised inputs give the same
//    output. A zero vector gives zeros here (upstream: NaN).
//  - every position holding id_token in row b receives id[b]; rows without
//    the token (e.g. the empty prompt of classifier-free guidance) are plain
//    text rows. The replaced positions get no token_embedding gradient (they
//    were overwritten), exactly as autograd gives upstream.
//
// Parameters are registered under the transformers keys text_model.* (the
// SD1.5 / Arc2Face file layout); loading also accepts the prefix-less keys
// that transformers >= 5 writes, and ignores text_model.embeddings.position_ids.
// Attention runs through the backend's strided attention op on the q/k/v
// projection outputs viewed as [B, L, H, hd] (no transposes). q/k/v are one
// GEMM into [B*L, 3D] when their weights and biases are stacked in memory
// (nn/fused_linear.h): clip_layer_add registers q/k/v_proj.weight in a row,
// then the three biases, so that holds whenever D*D and D are multiples of 64
// (SD1.5: D = 768); otherwise three GEMMs. Table order is free: files are
// read and written by name.
#pragma once
#include "layers.h"

#define CLIP_MAX_LAYERS 64
#define CLIP_ID_TOKEN 1014  // tokenizer.encode("id") in the CLIP BPE vocabulary
#define CLIP_ID_DIM 512     // ArcFace embedding width

typedef struct {
    int hidden, intermediate, layers, heads, max_pos, vocab;
    float eps;
} ClipConfig;

// CLIPTextConfig's defaults (hidden 512, intermediate 2048, 12 layers, 8
// heads, 77 positions, vocab 49408, eps 1e-5); SD1.5 overrides them in its file.
void clip_config_default(ClipConfig *c);
// Reads a transformers config.json (a CLIPTextConfig, or a CLIPConfig whose
// "text_config" is used); missing keys keep the defaults. hidden_act must be
// "quick_gelu". Bad values -> one error line naming the file, -1.
int clip_config_read(ClipConfig *c, const char *path);
int clip_config_parse(ClipConfig *c, const char *json, const char *name);

// ------------------------------------------------------------------ one layer

typedef struct {
    LayerNorm ln1, ln2;
    Linear q, k, v, o, fc1, fc2;
    int D, H, F;
} ClipLayer;

typedef struct {
    size_t mark;                 // activation stack on entry
    const void *x;               // [B*L, D] layer input (caller's buffer)
    void *ln1, *att;             // [B*L, D] each
    void *qkv;                   // q|k|v: fused [B*L, 3D], else 3 blocks [B*L, D]
    int fused;                   // layout of qkv (1: one GEMM, column slices)
    void *mid, *ln2;             // [B*L, D]: x + attention branch, its norm
    void *h, *g;                 // [B*L, F]: fc1 output, quick_gelu(h)
    float *m1, *r1, *m2, *r2;    // [B*L] norm statistics
    float *lse;                  // [B, H, L]
    int B, L;
} ClipLayerSaved;

// prefix.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc1,mlp.fc2}.*
void clip_layer_add(ClipLayer *m, ParamTable *t, const char *prefix, int D, int H, int F, float eps);
// y [B, L, D] (caller-allocated) from x [B, L, D], causal self-attention.
int clip_layer_f(const Ctx *c, const Weights *W, const ClipLayer *m, void *y, const void *x, int B, int L,
                 ClipLayerSaved *sv);
// dx [B, L, D] += d/dx of <dy, y>; parameter gradients +=.
int clip_layer_b(const Ctx *c, const Weights *W, const ClipLayer *m, void *dx, const void *dy, ClipLayerSaved *sv);

// ------------------------------------------------------------------ the model

typedef struct {
    ClipConfig cfg;
    int tok, pos;  // token_embedding [vocab, D], position_embedding [max_pos, D]
    ClipLayer layer[CLIP_MAX_LAYERS];
    LayerNorm final_ln;
    int id_token;      // placeholder token id (CLIP_ID_TOKEN)
    int id_dim;        // width of the ID vector (CLIP_ID_DIM, <= hidden)
    int id_normalize;  // 1: L2-normalise the ID vector before injection (default)
} ClipText;

typedef struct {
    size_t mark;                // activation stack on entry
    int B, L;
    int train;                  // the forward kept its activations (clip_b needs them)
    const int32_t *ids;         // host [B, L], the caller's: must live until clip_b
    int32_t *ids_dev;           // [B, L] on the backend
    const void *id;             // [B, id_dim] caller's ID input, or NULL
    const void *idn;            // [B, id_dim] the injected (normalised) vector
    void *xs[CLIP_MAX_LAYERS + 1];  // [B*L, D]: xs[0] embeddings, xs[i+1] output of layer i
    ClipLayerSaved layer[CLIP_MAX_LAYERS];
    float *fm, *fr;             // [B*L] final norm statistics
} ClipSaved;

// Builds the parameter table (text_model.* keys) for cfg; id_token, id_dim,
// id_normalize get the Arc2Face defaults. Returns 0, or -1 on a config the
// model cannot take (too many layers, hidden % heads, id_dim > hidden).
int clip_add(ClipText *m, ParamTable *t, const ClipConfig *cfg);

// y [B, L, D] (caller-allocated) = last_hidden_state for host input_ids
// ids [B, L] (1 <= L <= max_pos, ids checked against the vocabulary) with the
// ID vectors id [B, id_dim] (context dtype, backend memory) injected at the
// id_token positions; id == NULL: the plain CLIPTextModel.
int clip_f(const Ctx *c, const Weights *W, const ClipText *m, void *y, const int32_t *ids, const void *id, int B,
           int L, ClipSaved *sv);
// Backward of <dy, y>: every parameter gradient +=, and d_id [B, id_dim] +=
// (context dtype; may be NULL) when the forward had an ID input.
int clip_b(const Ctx *c, const Weights *W, const ClipText *m, void *d_id, const void *dy, ClipSaved *sv);

// Activation-stack bytes clip_f keeps for training at (B, L) in dtype dt
// (upper bound; inference needs much less).
size_t clip_act_bytes(const ClipText *m, int B, int L, DType dt);

// ------------------------------------------------------------------ loading

// Key map for files: ignores *.position_ids, adds "text_model." to the
// prefix-less keys of transformers >= 5 (embeddings.*, encoder.*, final_layer_norm.*).
int clip_key_map(const char *file_key, char *out, size_t n);
// Reads config_json, builds m and W->t, allocates W on W->be (NULL: the CPU
// backend) in W->dt (CPU: F32) for inference, and loads the weight files
// through weights_load: safetensors (fp32/fp16/bf16) or torch zip checkpoints
// (.bin/.pt, read by the restricted unpickler of nn/torch_zip.h), e.g.
// Arc2Face's encoder/pytorch_model.bin. Returns 0 / -1 (one error line).
int clip_load(ClipText *m, Weights *W, const char *config_json, const char *const *weight_files, int n);
// Same, allocating master weights and gradients when train != 0.
int clip_load_ex(ClipText *m, Weights *W, const char *config_json, const char *const *weight_files, int n,
                 int train);
// DIR/config.json + DIR/model.safetensors (else DIR/pytorch_model.bin), the
// transformers / diffusers text_encoder folder layout (Arc2Face: models/encoder).
int clip_load_transformers(ClipText *m, Weights *W, const char *dir);
