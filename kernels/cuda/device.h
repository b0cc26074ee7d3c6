// device.h: plain C interface to the CUDA device: memory, copies, the stream
// every launcher uses, and error reporting.
//
// All functions return 0 on success, or -1 after a2f_set_error() with one line
// naming the call and CUDA's message (e.g. "cudaMalloc(1073741824 bytes): out
// of memory"). Launchers of kernels/cuda/*.cu take the stream explicitly;
// dev_stream() is the framework's default one.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct CUstream_st *cudaStream_t;  // same typedef as the CUDA runtime's

#ifdef __cplusplus
extern "C" {
#endif

// Selects device `ordinal`, creates the default stream. Idempotent.
int dev_init(int ordinal);
cudaStream_t dev_stream(void);
// Name, compute capability, memory of the current device ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB").
int dev_describe(char *buf, size_t n);

void *dev_malloc(size_t bytes);  // NULL + error on failure (out of memory names the size)
void dev_free(void *p);
int dev_upload(void *dst, const void *src, size_t bytes);    // host -> device, synchronous
int dev_download(void *dst, const void *src, size_t bytes);  // device -> host, synchronous
int dev_memset(void *dst, int byte, size_t bytes);
int dev_sync(void);  // waits for the default stream; reports asynchronous kernel errors
// A device scratch buffer of at least `bytes`, shared by all launchers on the
// default stream (grown with cudaMalloc when too small, never shrunk). Used
// for deterministic two-stage reductions. NULL + error when out of memory.
void *dev_workspace(size_t bytes);
// Turns a launcher's status into 0 / -1 + error line naming `what`.
int dev_check(int status, const char *what);

#ifdef __cplusplus
}
#endif
