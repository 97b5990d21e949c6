// Launchers of the CUDA ReLU kernels: raw pointers and a stream only (no torch headers), so this
// compiles with nvcc alone; csrc/cuda/glue.cpp wraps them as torch op kernels in CUDA builds.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

template <typename T>
cudaError_t relu_forward(const T* x, T* y, int64_t n, T negative_slope, cudaStream_t stream);
template <typename T>
cudaError_t relu_backward(const T* top_diff, const T* x, T* bottom_diff, int64_t n, T negative_slope,
                          cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
