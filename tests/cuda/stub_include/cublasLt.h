#pragma once
// Stub for the glue syntax check (tests/cuda/test_sources.py) only: the few declarations that
// torch's ATen/cuda headers and csrc/cuda/*.cpp use, with the CUDA toolkit's real signatures.
typedef struct cublasLtContext* cublasLtHandle_t;
