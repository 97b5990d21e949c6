// Launcher of Caffe's GPU DropoutForward / DropoutBackward kernel (dropout_layer.cu) with the
// 0/1 mask as an input (drawn by the caller, as for the CPU op).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

// out = in * mask * scale; Caffe's kernel takes `scale` as a float, for double too.
template <typename T>
cudaError_t dropout_apply(const T* in, const int32_t* mask, int64_t n, float scale, T* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
