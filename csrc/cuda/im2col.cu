// Caffe 1.0's im2col_gpu_kernel / col2im_gpu_kernel (util/im2col.cu).  im2col: one thread per
// (image, channel, output pixel) copies its kh*kw window, zeros outside the image.  col2im: one
// thread per image pixel gathers (no atomics) the column entries that land on it, summing in
// Caffe's order: output rows ascending, then output columns ascending.  This differs from
// Caffe's CPU col2im (kernel offsets ascending, i.e. output positions descending), so CPU and
// GPU sums of three or more terms can round differently, in Caffe as here.
#include "../geom.h"
#include "im2col.cuh"
#include "launch.cuh"

namespace replicate {
namespace cuda {
namespace {

template <typename T>
__global__ void im2col_kernel(int64_t n, const T* im, ConvShape g, int64_t oh, int64_t ow, T* col) {
  REPLICATE_KERNEL_LOOP(index, n) {
    const int64_t w_col = index % ow;
    const int64_t h_col = (index / ow) % oh;
    const int64_t c_all = index / (ow * oh);  // image * channels + channel
    const int64_t img = c_all / g.channels, c_im = c_all % g.channels;
    const int64_t h_off = h_col * g.stride_h - g.pad_h, w_off = w_col * g.stride_w - g.pad_w;
    const int64_t rows = g.channels * g.kernel_h * g.kernel_w;
    T* dst = col + (img * rows + c_im * g.kernel_h * g.kernel_w) * (oh * ow) + h_col * ow + w_col;
    const T* src = im + c_all * g.height * g.width;
    for (int64_t i = 0; i < g.kernel_h; ++i) {
      for (int64_t j = 0; j < g.kernel_w; ++j) {
        const int64_t h = h_off + i * g.dilation_h, w = w_off + j * g.dilation_w;
        *dst = (h >= 0 && w >= 0 && h < g.height && w < g.width) ? src[h * g.width + w] : T(0);
        dst += oh * ow;
      }
    }
  }
}

template <typename T>
__global__ void col2im_kernel(int64_t n, const T* col, ConvShape g, int64_t oh, int64_t ow, T* im) {
  REPLICATE_KERNEL_LOOP(index, n) {
    T val = 0;
    const int64_t w_im = index % g.width + g.pad_w;
    const int64_t h_im = (index / g.width) % g.height + g.pad_h;
    const int64_t c_all = index / (g.width * g.height);
    const int64_t img = c_all / g.channels, c_im = c_all % g.channels;
    const int64_t ext_w = (g.kernel_w - 1) * g.dilation_w + 1, ext_h = (g.kernel_h - 1) * g.dilation_h + 1;
    const int64_t w_start = w_im < ext_w ? 0 : (w_im - ext_w) / g.stride_w + 1;
    const int64_t w_end = geom::imin(w_im / g.stride_w + 1, ow);
    const int64_t h_start = h_im < ext_h ? 0 : (h_im - ext_h) / g.stride_h + 1;
    const int64_t h_end = geom::imin(h_im / g.stride_h + 1, oh);
    const T* src = col + img * g.channels * g.kernel_h * g.kernel_w * oh * ow;
    for (int64_t h_col = h_start; h_col < h_end; ++h_col) {
      for (int64_t w_col = w_start; w_col < w_end; ++w_col) {
        int64_t h_k = h_im - h_col * g.stride_h, w_k = w_im - w_col * g.stride_w;
        if (h_k % g.dilation_h == 0 && w_k % g.dilation_w == 0) {
          h_k /= g.dilation_h;
          w_k /= g.dilation_w;
          val += src[(((c_im * g.kernel_h + h_k) * g.kernel_w + w_k) * oh + h_col) * ow + w_col];
        }
      }
    }
    im[index] = val;
  }
}

}  // namespace

template <typename T>
cudaError_t im2col(const T* im, int64_t num, const ConvShape& g, T* col, cudaStream_t stream) {
  const int64_t oh = geom::conv_out(g.height, g.kernel_h, g.pad_h, g.stride_h, g.dilation_h);
  const int64_t ow = geom::conv_out(g.width, g.kernel_w, g.pad_w, g.stride_w, g.dilation_w);
  const int64_t n = num * g.channels * oh * ow;
  if (n == 0) return cudaSuccess;
  im2col_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, im, g, oh, ow, col);
  return cudaGetLastError();
}

template <typename T>
cudaError_t col2im(const T* col, int64_t num, const ConvShape& g, T* im, cudaStream_t stream) {
  const int64_t oh = geom::conv_out(g.height, g.kernel_h, g.pad_h, g.stride_h, g.dilation_h);
  const int64_t ow = geom::conv_out(g.width, g.kernel_w, g.pad_w, g.stride_w, g.dilation_w);
  const int64_t n = num * g.channels * g.height * g.width;
  if (n == 0) return cudaSuccess;
  col2im_kernel<T><<<launch_blocks(n), kThreads, 0, stream>>>(n, col, g, oh, ow, im);
  return cudaGetLastError();
}

template cudaError_t im2col<float>(const float*, int64_t, const ConvShape&, float*, cudaStream_t);
template cudaError_t im2col<double>(const double*, int64_t, const ConvShape&, double*, cudaStream_t);
template cudaError_t col2im<float>(const float*, int64_t, const ConvShape&, float*, cudaStream_t);
template cudaError_t col2im<double>(const double*, int64_t, const ConvShape&, double*, cudaStream_t);

}  // namespace cuda
}  // namespace replicate
