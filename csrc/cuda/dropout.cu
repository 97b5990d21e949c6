// Dropout (TRAIN phase) as Caffe 1.0's DropoutForward / DropoutBackward GPU kernels:
// out = in * (mask kept) * scale, the kept flag converted to Dtype and scale passed as float.
#include "dropout.cuh"
#include "launch.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__global__ void dropout_kernel(int64_t n, const T* in, const int32_t* mask, float scale, T* out) {
  REPLICATE_KERNEL_LOOP(i, n) out[i] = in[i] * static_cast<T>(static_cast<uint32_t>(mask[i])) * scale;
}

}  // namespace

template <typename T>
cudaError_t dropout_apply(const T* in, const int32_t* mask, int64_t n, float scale, T* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  dropout_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, in, mask, scale, out);
  return cudaGetLastError();
}

template cudaError_t dropout_apply<float>(const float*, const int32_t*, int64_t, float, float*, cudaStream_t);
template cudaError_t dropout_apply<double>(const double*, const int32_t*, int64_t, float, double*, cudaStream_t);

}  // namespace cuda
}  // namespace replicate
