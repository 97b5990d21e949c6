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

// The element loops over a range (relu.cpp), compiled for AVX2 too and chosen at load time
// (GCC's target_clones): max, min, products, sums and integer-to-float conversions give the same
// bits at any vector width (no fused multiply-adds: -ffp-contract=off).  The in-place forms have
// their own loops (a loop whose output may alias its input runs unvectorised when they are equal).
void relu_value_range(const float* x, float* out, int64_t n, float slope);
void relu_value_range(const double* x, double* out, int64_t n, double slope);
void relu_value_in_place(float* x, int64_t n, float slope);
void relu_value_in_place(double* x, int64_t n, double slope);
void relu_grad_range(const float* t, const float* x, float* out, int64_t n, float slope);
void relu_grad_range(const double* t, const double* x, double* out, int64_t n, double slope);
void relu_grad_in_place(float* t, const float* x, int64_t n, float slope);
void relu_grad_in_place(double* t, const double* x, int64_t n, double slope);

}  // namespace cpu
}  // namespace replicate
