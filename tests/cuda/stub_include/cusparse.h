#pragma once
// Stub for the glue syntax check (tests/cuda/test_sources.py) only: the few declarations that
// torch's ATen/cuda headers and csrc/cuda/*.cpp use, with the CUDA toolkit's real signatures.
typedef struct cusparseContext* cusparseHandle_t;
typedef enum { CUSPARSE_STATUS_SUCCESS = 0 } cusparseStatus_t;
const char* cusparseGetErrorString(cusparseStatus_t);
#define CUSPARSE_VERSION 12000
#define CUSPARSE_VER_MAJOR 12
