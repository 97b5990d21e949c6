// Caffe 1.0's ReLU arithmetic (relu_layer.cpp), shared by the ReLU op and the convolution's fused
// ReLU (csrc/cpu/convolution.cpp), so both compute the same expression.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace replicate {
namespace cpu {

// top = max(x, 0) + slope * min(x, 0)
template <typename T>
inline T relu_value(T x, T slope) {
  return std::max(x, T(0)) + slope * std::min(x, T(0));
}

template <typename T> struct FloatBits;
template <> struct FloatBits<float> { using U = uint32_t; using S = int32_t; static constexpr U inf = 0x7f800000u; };
template <> struct FloatBits<double> {
  using U = uint64_t;
  using S = int64_t;
  static constexpr U inf = 0x7ff0000000000000ull;
};

// bottom_diff = top_diff * ((x > 0) + slope * (x <= 0)); x is the bottom, or for Caffe's in-place
// ReLU the rectified top (same sign pattern).  The two comparisons are read off x's bits (x > 0:
// sign clear, not zero, not NaN; x <= 0: neither that nor NaN), giving Caffe's 1s and 0s without a
// branch: compared as floats, GCC branches on each element (the comparisons may trap), and random
// signs made that 5x slower.  The 0/1s convert from signed integers, which SSE2 vectorises.
template <typename T>
inline T relu_grad(T t, T x, T slope) {
  using U = typename FloatBits<T>::U;
  using S = typename FloatBits<T>::S;
  U u;
  std::memcpy(&u, &x, sizeof u);
  const U pos = U(u - 1) < FloatBits<T>::inf;                    // 0 < u <= +inf
  const U neg = U((u & (~U(0) >> 1)) <= FloatBits<T>::inf) & (pos ^ 1);  // not NaN, not > 0
  return t * (T(S(pos)) + slope * T(S(neg)));
}

}  // namespace cpu
}  // namespace replicate
