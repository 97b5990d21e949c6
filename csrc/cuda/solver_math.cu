// The solver's elementwise GPU kernels, as Caffe 1.0 writes them:
//   SGDUpdate (sgd_solver.cu)        g[i] = h[i] = momentum * h[i] + local_rate * g[i]
//   caffe_gpu_sign (math_functions)  y[i] = (0 < x[i]) - (x[i] < 0)
// and an unfused axpy for the GPU seam's fast mode (csrc/cuda/blas.cpp).
//
// Built with --fmad=false (setup.py, `make cuda-compile`): both products of SGDUpdate are rounded
// on their own before the sum, exactly as the expression reads.  Caffe's own build left nvcc's
// default (--fmad=true), which lets the compiler contract one of the two products into an FMA;
// which one it picks is the compiler's choice and not part of Caffe's source, so this file keeps
// the written arithmetic.  The difference is at most the rounding of one product (half an ulp
// of that product) per update.  With both products rounded, this kernel gives the same bits as
// the CPU op's fast mode (scal(momentum, h) then h += local_rate * g, unfused), since IEEE
// addition is commutative.
#include "launch.cuh"
#include "solver_math.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__global__ void sgd_update_kernel(int64_t n, T* g, T* h, T momentum, T local_rate) {
  REPLICATE_KERNEL_LOOP(i, n) { g[i] = h[i] = momentum * h[i] + local_rate * g[i]; }
}

template <typename T>
__global__ void sign_kernel(int64_t n, const T* x, T* y) {
  REPLICATE_KERNEL_LOOP(i, n) { y[i] = (T(0) < x[i]) - (x[i] < T(0)); }
}

template <typename T>
__global__ void axpy_kernel(int64_t n, T alpha, const T* x, T* y) {
  REPLICATE_KERNEL_LOOP(i, n) { y[i] += alpha * x[i]; }
}

}  // namespace

template <typename T>
cudaError_t sgd_update_value(int64_t n, T* g, T* h, T momentum, T local_rate, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  sgd_update_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, g, h, momentum, local_rate);
  return cudaGetLastError();
}

template <typename T>
cudaError_t sign(int64_t n, const T* x, T* y, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  sign_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, x, y);
  return cudaGetLastError();
}

template <typename T>
cudaError_t axpy(int64_t n, T alpha, const T* x, T* y, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  axpy_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, alpha, x, y);
  return cudaGetLastError();
}

#define REPLICATE_SOLVER_INSTANTIATE(T)                                                  \
  template cudaError_t sgd_update_value<T>(int64_t, T*, T*, T, T, cudaStream_t);        \
  template cudaError_t sign<T>(int64_t, const T*, T*, cudaStream_t);                     \
  template cudaError_t axpy<T>(int64_t, T, const T*, T*, cudaStream_t);
REPLICATE_SOLVER_INSTANTIATE(float)
REPLICATE_SOLVER_INSTANTIATE(double)

}  // namespace cuda
}  // namespace replicate
