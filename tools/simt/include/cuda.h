// cuda.h: the SIMT emulator's stand-in for the driver API header: the runtime API of
// simt.h plus the few driver types that runtime-API programs mention.
#pragma once
#include "simt.h"
typedef enum { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1 } CUresult;
typedef unsigned long long CUdeviceptr;
typedef cudaStream_t CUstream;
typedef cudaEvent_t CUevent;
typedef int CUdevice;
