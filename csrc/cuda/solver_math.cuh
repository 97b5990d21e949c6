// Launchers of the solver's GPU kernels (Caffe 1.0's sgd_solver.cu and two of its
// math_functions.cu helpers): raw pointers and a stream only, so this compiles with nvcc alone;
// csrc/cuda/solver_ops.cpp and csrc/cuda/blas.cpp call them in CUDA builds.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

// Caffe's SGDUpdate kernel (SGDSolver::ComputeUpdateValue on the GPU), per element:
//   g[i] = h[i] = momentum * h[i] + local_rate * g[i]
template <typename T>
cudaError_t sgd_update_value(int64_t n, T* g, T* h, T momentum, T local_rate, cudaStream_t stream);
// caffe_gpu_sign: y[i] = (0 < x[i]) - (x[i] < 0).
template <typename T>
cudaError_t sign(int64_t n, const T* x, T* y, cudaStream_t stream);
// y[i] = y[i] + alpha * x[i], the product rounded on its own: the CPU seam's fast-mode axpy
// (csrc/blas.cpp, built with -ffp-contract=off), used by the GPU seam's fast mode.
template <typename T>
cudaError_t axpy(int64_t n, T alpha, const T* x, T* y, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
