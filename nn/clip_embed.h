// clip_embed.h: CLIP's embedding stage with Arc2Face's ID injection (see
// clip.h for the semantics). Internal to nn/clip.c; exposed for tests.
#pragma once
#include "clip.h"

// sv->xs[0] [B*L, D] (allocated by the caller) = token embeddings of
// sv->ids_dev, rows at id_token overwritten by pad(normalize(sv->id)) when
// sv->id != NULL, plus the position embeddings. Sets sv->idn; pushes the
// normalised ID vectors (and a zero pad row) on the activation stack.
int clip_embed_f(const Ctx *c, const Weights *W, const ClipText *m, ClipSaved *sv);
// From dx0 [B*L, D] = d(xs[0]): token and position embedding gradients +=,
// d_id [B, id_dim] += (when non-NULL and the forward injected an ID).
// Temporaries go on the gradient stack (the caller resets it).
int clip_embed_b(const Ctx *c, const Weights *W, const ClipText *m, void *d_id, const void *dx0,
                 const ClipSaved *sv);
