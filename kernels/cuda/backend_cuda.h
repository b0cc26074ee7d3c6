// backend_cuda.h: the CUDA Backend table (plain C; kernels/cuda/backend.cu).
#pragma once
#include "../backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// Initialises device 0 on first use; NULL + a2f_last_error() when none.
const Backend *cuda_backend(void);

#ifdef __cplusplus
}
#endif
