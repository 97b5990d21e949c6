#pragma once
// Stub for the glue syntax check (tests/cuda/test_sources.py) only: the few declarations that
// torch's ATen/cuda headers and csrc/cuda/*.cpp use, with the CUDA toolkit's real signatures.
typedef enum { CUSOLVER_STATUS_SUCCESS = 0 } cusolverStatus_t;
#define CUSOLVER_VERSION 11000
