// ReLU as Caffe 1.0's ReLULayer GPU kernels (relu_layer.cu):
//   forward  y = x > 0 ? x : x * slope
//   backward dx = dy * ((x > 0) + (x <= 0) * slope)
// Built with --fmad=false so no product is fused that Caffe's kernel rounds.
#include "relu.cuh"

namespace replicate {
namespace cuda {
namespace {

constexpr int kThreads = 512;  // Caffe's CAFFE_CUDA_NUM_THREADS

inline unsigned blocks(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <typename T>
__global__ void relu_forward_kernel(const T* x, T* y, int64_t n, T slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    y[i] = x[i] > 0 ? x[i] : x[i] * slope;
}

template <typename T>
__global__ void relu_backward_kernel(const T* dy, const T* x, T* dx, int64_t n, T slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    dx[i] = dy[i] * ((x[i] > 0) + (x[i] <= 0) * slope);
}

}  // namespace

template <typename T>
cudaError_t relu_forward(const T* x, T* y, int64_t n, T negative_slope, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  relu_forward_kernel<T><<<blocks(n), kThreads, 0, stream>>>(x, y, n, negative_slope);
  return cudaGetLastError();
}

template <typename T>
cudaError_t relu_backward(const T* top_diff, const T* x, T* bottom_diff, int64_t n, T negative_slope,
                          cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  relu_backward_kernel<T><<<blocks(n), kThreads, 0, stream>>>(top_diff, x, bottom_diff, n, negative_slope);
  return cudaGetLastError();
}

template cudaError_t relu_forward<float>(const float*, float*, int64_t, float, cudaStream_t);
template cudaError_t relu_forward<double>(const double*, double*, int64_t, double, cudaStream_t);
template cudaError_t relu_backward<float>(const float*, const float*, float*, int64_t, float, cudaStream_t);
template cudaError_t relu_backward<double>(const double*, const double*, double*, int64_t, double, cudaStream_t);

}  // namespace cuda
}  // namespace replicate
