// Caffe's im2col / col2im for one image, in Caffe's loop order (channel, kernel
// row, kernel column, output row, output column); col2im accumulates in that order.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../geom.h"

namespace replicate {
namespace cpu {

struct ConvGeom {
  int64_t channels, height, width;
  int64_t kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w;
  int64_t out_h() const { return geom::conv_out(height, kernel_h, pad_h, stride_h, dilation_h); }
  int64_t out_w() const { return geom::conv_out(width, kernel_w, pad_w, stride_w, dilation_w); }
};

inline bool in_range(int64_t a, int64_t b) { return static_cast<uint64_t>(a) < static_cast<uint64_t>(b); }

// The output columns x whose input column first + x * stride lies in [0, width): [lo, hi).
inline void valid_span(int64_t first, int64_t stride, int64_t width, int64_t ow, int64_t& lo, int64_t& hi) {
  lo = first >= 0 ? 0 : (-first + stride - 1) / stride;
  hi = first > width - 1 ? 0 : std::min<int64_t>(ow, (width - 1 - first) / stride + 1);
  if (hi < lo) hi = lo;
}

// col is (C*kh*kw) x (out_h*out_w), its rows `ld` apart (default out_h*out_w: Caffe's layout; fast
// mode puts several images' columns side by side).  Each row segment is written as zeros, the
// in-range span, zeros: the same values Caffe's element-by-element loop writes.
template <typename T>
void im2col(const T* im, const ConvGeom& g, T* col_base, int64_t ld = -1) {
  const int64_t oh = g.out_h(), ow = g.out_w(), plane = g.height * g.width;
  if (ld < 0) ld = oh * ow;
  int64_t r = 0;
  for (int64_t c = 0; c < g.channels; ++c, im += plane) {
    for (int64_t kr = 0; kr < g.kernel_h; ++kr) {
      for (int64_t kc = 0; kc < g.kernel_w; ++kc, ++r) {
        T* col = col_base + r * ld;
        const int64_t first = -g.pad_w + kc * g.dilation_w;
        int64_t lo, hi;
        valid_span(first, g.stride_w, g.width, ow, lo, hi);
        int64_t row = -g.pad_h + kr * g.dilation_h;
        for (int64_t y = 0; y < oh; ++y, row += g.stride_h, col += ow) {
          if (!in_range(row, g.height)) {
            std::fill_n(col, ow, T(0));
            continue;
          }
          const T* src = im + row * g.width + first;
          std::fill_n(col, lo, T(0));
          if (g.stride_w == 1) {
            std::copy(src + lo, src + hi, col + lo);
          } else {
            for (int64_t x = lo; x < hi; ++x) col[x] = src[x * g.stride_w];
          }
          std::fill(col + hi, col + ow, T(0));
        }
      }
    }
  }
}

// im is overwritten (Caffe zeroes it first), then each column entry is added, in Caffe's order
// (channel, kernel row, kernel column, output row, output column); within one output row the
// entries land on distinct pixels, so adding the span at once keeps every pixel's order.  `ld`: as
// im2col's.
template <typename T>
void col2im(const T* col_base, const ConvGeom& g, T* im, int64_t ld = -1) {
  const int64_t oh = g.out_h(), ow = g.out_w(), plane = g.height * g.width;
  if (ld < 0) ld = oh * ow;
  std::fill_n(im, g.channels * plane, T(0));
  int64_t r = 0;
  for (int64_t c = 0; c < g.channels; ++c, im += plane) {
    for (int64_t kr = 0; kr < g.kernel_h; ++kr) {
      for (int64_t kc = 0; kc < g.kernel_w; ++kc, ++r) {
        const T* col = col_base + r * ld;
        const int64_t first = -g.pad_w + kc * g.dilation_w;
        int64_t lo, hi;
        valid_span(first, g.stride_w, g.width, ow, lo, hi);
        int64_t row = -g.pad_h + kr * g.dilation_h;
        for (int64_t y = 0; y < oh; ++y, row += g.stride_h, col += ow) {
          if (!in_range(row, g.height)) continue;
          T* dst = im + row * g.width + first;
          if (g.stride_w == 1) {
            for (int64_t x = lo; x < hi; ++x) dst[x] += col[x];
          } else {
            for (int64_t x = lo; x < hi; ++x) dst[x * g.stride_w] += col[x];
          }
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace replicate

namespace at { class Tensor; }
#include <c10/util/ArrayRef.h>
namespace replicate {
namespace cpu {
// Validated geometry for the ops; errors name the op and argument.
ConvGeom conv_geometry(const char* op, int64_t C, int64_t H, int64_t W, c10::IntArrayRef kernel,
                       c10::IntArrayRef pad, c10::IntArrayRef stride, c10::IntArrayRef dilation);
}  // namespace cpu
}  // namespace replicate
