// Caffe 1.0's ReLU arithmetic (relu_layer.cpp), shared by the ReLU op and the convolution's fused
// ReLU (csrc/cpu/convolution.cpp), so both compute the same expression.
#pragma once
#include <algorithm>

namespace replicate {
namespace cpu {

// top = max(x, 0) + slope * min(x, 0)
template <typename T>
inline T relu_value(T x, T slope) {
  return std::max(x, T(0)) + slope * std::min(x, T(0));
}

// bottom_diff = top_diff * ((x > 0) + slope * (x <= 0)); x is the bottom, or for Caffe's in-place
// ReLU the rectified top (same sign pattern)
template <typename T>
inline T relu_grad(T t, T x, T slope) {
  return t * (T(x > 0) + slope * T(x <= 0));
}

}  // namespace cpu
}  // namespace replicate
