// The GPU half of the BLAS seam: cuBLAS with Caffe's arguments (exact) or torch ops (fast).
// Fast mode's axpy is our own kernel (solver_math.cu) rather than torch's add(alpha=): it rounds
// the product on its own like the CPU seam's fast axpy, so both backends' fast modes agree bit
// for bit on axpy, scal and the SGD update; torch's CUDA add may contract it into an FMA.
#include "blas.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <cublas_v2.h>

#include "solver_math.cuh"

namespace replicate {
namespace cuda_blas {
namespace {

bool exact() { return blas::mode() == blas::Mode::Exact; }

// torch's handle for the current device and stream, in plain fp32/fp64 math (no TF32) with
// host scalars.  torch resets the math mode each time it hands out the handle.
cublasHandle_t handle() {
  cublasHandle_t h = at::cuda::getCurrentCUDABlasHandle();
  TORCH_CUDABLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  TORCH_CUDABLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  return h;
}

cublasOperation_t cu(Op op) { return op == blas::NoTrans ? CUBLAS_OP_N : CUBLAS_OP_T; }

cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                         const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                         float* C, int ldc) {
  return cublasSgemm(h, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t gemm_call(cublasHandle_t h, cublasOperation_t a, cublasOperation_t b, int m, int n, int k,
                         const double* alpha, const double* A, int lda, const double* B, int ldb,
                         const double* beta, double* C, int ldc) {
  return cublasDgemm(h, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t gemv_call(cublasHandle_t h, cublasOperation_t a, int m, int n, const float* alpha, const float* A,
                         int lda, const float* x, const float* beta, float* y) {
  return cublasSgemv(h, a, m, n, alpha, A, lda, x, 1, beta, y, 1);
}
cublasStatus_t gemv_call(cublasHandle_t h, cublasOperation_t a, int m, int n, const double* alpha,
                         const double* A, int lda, const double* x, const double* beta, double* y) {
  return cublasDgemv(h, a, m, n, alpha, A, lda, x, 1, beta, y, 1);
}
cublasStatus_t asum_call(cublasHandle_t h, int n, const float* x, float* r) { return cublasSasum(h, n, x, 1, r); }
cublasStatus_t asum_call(cublasHandle_t h, int n, const double* x, double* r) { return cublasDasum(h, n, x, 1, r); }
cublasStatus_t scal_call(cublasHandle_t h, int n, const float* a, float* x) { return cublasSscal(h, n, a, x, 1); }
cublasStatus_t scal_call(cublasHandle_t h, int n, const double* a, double* x) { return cublasDscal(h, n, a, x, 1); }
cublasStatus_t axpy_call(cublasHandle_t h, int n, const float* a, const float* x, float* y) {
  return cublasSaxpy(h, n, a, x, 1, y, 1);
}
cublasStatus_t axpy_call(cublasHandle_t h, int n, const double* a, const double* x, double* y) {
  return cublasDaxpy(h, n, a, x, 1, y, 1);
}
cublasStatus_t dot_call(cublasHandle_t h, int n, const float* x, const float* y, float* r) {
  return cublasSdot(h, n, x, 1, y, 1, r);
}
cublasStatus_t dot_call(cublasHandle_t h, int n, const double* x, const double* y, double* r) {
  return cublasDdot(h, n, x, 1, y, 1, r);
}

// A view of device memory as a tensor on the current device.
template <typename T>
at::Tensor view(const T* p, at::IntArrayRef sizes) {
  const auto opts = at::TensorOptions()
                        .dtype(c10::CppTypeToScalarType<T>::value)
                        .device(at::kCUDA, at::cuda::current_device());
  return at::from_blob(const_cast<T*>(p), sizes, opts);
}

}  // namespace

template <typename T>
void gemm(Op ta, Op tb, int M, int N, int K, T alpha, const T* A, const T* B, T beta, T* C) {
  if (M == 0 || N == 0) return;
  if (exact()) {
    // caffe_gpu_gemm: C^T = op(B)^T op(A)^T in cuBLAS's column-major terms.
    const int lda = ta == blas::NoTrans ? K : M, ldb = tb == blas::NoTrans ? N : K;
    TORCH_CUDABLAS_CHECK(gemm_call(handle(), cu(tb), cu(ta), N, M, K, &alpha, B, ldb, A, lda, &beta, C, N));
    return;
  }
  at::NoTF32Guard no_tf32;
  const at::Tensor a = ta == blas::NoTrans ? view(A, {M, K}) : view(A, {K, M}).t();
  const at::Tensor b = tb == blas::NoTrans ? view(B, {K, N}) : view(B, {N, K}).t();
  at::Tensor c = view(C, {M, N});
  c.addmm_(a, b, beta, alpha);
}

template <typename T>
void gemv(Op ta, int M, int N, T alpha, const T* A, const T* x, T beta, T* y) {
  if (M == 0 || N == 0) return;
  if (exact()) {
    // caffe_gpu_gemv: the row-major MxN A is cuBLAS's column-major NxM, so the op flips.
    const cublasOperation_t op = ta == blas::NoTrans ? CUBLAS_OP_T : CUBLAS_OP_N;
    TORCH_CUDABLAS_CHECK(gemv_call(handle(), op, N, M, &alpha, A, N, x, &beta, y));
    return;
  }
  at::NoTF32Guard no_tf32;
  const at::Tensor a = ta == blas::NoTrans ? view(A, {M, N}) : view(A, {M, N}).t();
  const int xs = ta == blas::NoTrans ? N : M, ys = ta == blas::NoTrans ? M : N;
  at::Tensor out = view(y, {ys});
  out.addmv_(a, view(x, {xs}), beta, alpha);
}

template <typename T>
T asum(int n, const T* x) {
  if (n == 0) return T(0);
  if (exact()) {
    T r = 0;
    TORCH_CUDABLAS_CHECK(asum_call(handle(), n, x, &r));
    return r;
  }
  return view(x, {n}).abs().sum().template item<T>();
}

template <typename T>
void scal(int n, T alpha, T* x) {
  if (n == 0) return;
  if (exact()) {
    TORCH_CUDABLAS_CHECK(scal_call(handle(), n, &alpha, x));
    return;
  }
  view(x, {n}).mul_(alpha);
}

template <typename T>
void axpy(int n, T alpha, const T* x, T* y) {
  if (n == 0) return;
  if (exact()) {
    TORCH_CUDABLAS_CHECK(axpy_call(handle(), n, &alpha, x, y));
    return;
  }
  C10_CUDA_CHECK(cuda::axpy<T>(n, alpha, x, y, at::cuda::getCurrentCUDAStream()));
}

template <typename T>
T dot(int n, const T* x, const T* y) {
  if (n == 0) return T(0);
  if (exact()) {
    T r = 0;
    TORCH_CUDABLAS_CHECK(dot_call(handle(), n, x, y, &r));
    return r;
  }
  return at::dot(view(x, {n}), view(y, {n})).template item<T>();
}

#define REPLICATE_CUDA_BLAS_INSTANTIATE(T)                                         \
  template void gemm<T>(Op, Op, int, int, int, T, const T*, const T*, T, T*);     \
  template void gemv<T>(Op, int, int, T, const T*, const T*, T, T*);               \
  template T asum<T>(int, const T*);                                               \
  template void scal<T>(int, T, T*);                                               \
  template void axpy<T>(int, T, const T*, T*);                                     \
  template T dot<T>(int, const T*, const T*);
REPLICATE_CUDA_BLAS_INSTANTIATE(float)
REPLICATE_CUDA_BLAS_INSTANTIATE(double)

}  // namespace cuda_blas
}  // namespace replicate
