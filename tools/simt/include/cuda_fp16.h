// cuda_fp16.h: the SIMT emulator's stand-in; everything lives in simt.h.
#pragma once
#include "simt.h"
