// Launchers of Caffe's GPU pooling kernels (pooling_layer.cu) on (planes, H, W) inputs, where
// planes = N * C.  Raw pointers and a stream only.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

struct PoolShape {
  int64_t planes, height, width, pooled_h, pooled_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

template <typename T>
cudaError_t max_pool_forward(const T* in, const PoolShape& g, T* out, int32_t* mask, cudaStream_t stream);
// Overwrites bottom_diff (planes x in_plane): each plane's diffs scattered in ascending output
// order, i.e. each cell's terms in the order of Caffe's gather kernel (see pooling.cu).
template <typename T>
cudaError_t max_pool_backward(const T* top_diff, const int32_t* mask, int64_t planes, int64_t in_plane,
                              int64_t out_plane, T* bottom_diff, cudaStream_t stream);
template <typename T>
cudaError_t ave_pool_forward(const T* in, const PoolShape& g, T* out, cudaStream_t stream);
template <typename T>
cudaError_t ave_pool_backward(const T* top_diff, const PoolShape& g, T* bottom_diff, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
