// Launchers of Caffe's GPU im2col / col2im kernels (im2col.cu), batched over N images laid out
// back to back: im (N, C, H, W), col (N, C*kh*kw, out_h*out_w).  Raw pointers and a stream only.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

struct ConvShape {
  int64_t channels, height, width, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h,
      dilation_w;
};

template <typename T>
cudaError_t im2col(const T* im, int64_t num, const ConvShape& g, T* col, cudaStream_t stream);
// Overwrites im: each pixel is the sum of its column entries, added in Caffe's GPU order
// (output row, then output column, ascending), from zero.
template <typename T>
cudaError_t col2im(const T* col, int64_t num, const ConvShape& g, T* im, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
