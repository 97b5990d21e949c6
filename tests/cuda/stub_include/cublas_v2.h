#pragma once
// Stub for the glue syntax check (tests/cuda/test_sources.py) only: the few declarations that
// torch's ATen/cuda headers and csrc/cuda/*.cpp use, with the CUDA toolkit's real signatures.
#include <cuda_runtime.h>
typedef struct cublasContext* cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_INITIALIZED = 1 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
typedef enum { CUBLAS_POINTER_MODE_HOST = 0, CUBLAS_POINTER_MODE_DEVICE = 1 } cublasPointerMode_t;
#define CUBLAS_VERSION 120000
const char* cublasGetStatusString(cublasStatus_t);
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t);
cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t);
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float*, const float*, int, const float*, int, const float*, float*, int);
cublasStatus_t cublasDgemm(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const double*, const double*, int, const double*, int, const double*, double*, int);
cublasStatus_t cublasSgemv(cublasHandle_t, cublasOperation_t, int, int, const float*, const float*, int, const float*, int, const float*, float*, int);
cublasStatus_t cublasDgemv(cublasHandle_t, cublasOperation_t, int, int, const double*, const double*, int, const double*, int, const double*, double*, int);
cublasStatus_t cublasSasum(cublasHandle_t, int, const float*, int, float*);
cublasStatus_t cublasDasum(cublasHandle_t, int, const double*, int, double*);
cublasStatus_t cublasSscal(cublasHandle_t, int, const float*, float*, int);
cublasStatus_t cublasDscal(cublasHandle_t, int, const double*, double*, int);
cublasStatus_t cublasSaxpy(cublasHandle_t, int, const float*, const float*, int, float*, int);
cublasStatus_t cublasDaxpy(cublasHandle_t, int, const double*, const double*, int, double*, int);
cublasStatus_t cublasSdot(cublasHandle_t, int, const float*, int, const float*, int, float*);
cublasStatus_t cublasDdot(cublasHandle_t, int, const double*, int, const double*, int, double*);
