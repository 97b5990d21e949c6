// Index arithmetic shared by the CPU kernels (csrc/cpu) and their CUDA twins (csrc/cuda): plain
// inline functions, __host__ __device__ under nvcc, no torch or std headers, so one definition
// serves both and the two backends cannot drift apart.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define REPLICATE_HD __host__ __device__
#else
#define REPLICATE_HD
#endif

namespace replicate {
namespace geom {

REPLICATE_HD inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
REPLICATE_HD inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// Caffe's convolution output size (im2col's height_col / width_col).
REPLICATE_HD inline int64_t conv_out(int64_t size, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation) {
  return (size + 2 * pad - (dilation * (kernel - 1) + 1)) / stride + 1;
}

// A pooling window along one axis for output position p: the clipped range [start, end) and,
// for AVE, the extent of the window clipped to [-pad, size + pad) (Caffe counts padding cells
// in the divisor).
struct Span {
  int64_t start, end, padded_extent;
};
REPLICATE_HD inline Span max_span(int64_t p, int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t s = p * stride - pad;
  return {imax(s, 0), imin(s + kernel, size), 0};
}
REPLICATE_HD inline Span ave_span(int64_t p, int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t s = p * stride - pad, e = imin(s + kernel, size + pad);
  return {imax(s, 0), imin(e, size), e - s};
}

// The pooled outputs [first, last) whose window covers input position i (Caffe's GPU backward
// kernels walk these instead of scattering).
REPLICATE_HD inline void covering(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t pooled,
                                  int64_t& first, int64_t& last) {
  const int64_t ip = i + pad;
  first = ip < kernel ? 0 : (ip - kernel) / stride + 1;
  last = imin(ip / stride + 1, pooled);
}

}  // namespace geom
}  // namespace replicate
