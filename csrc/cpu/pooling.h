// Caffe's pooling on one (channel) plane, shared by the Pooling op and LRN WITHIN_CHANNEL.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <limits>

#include "../geom.h"

namespace replicate {
namespace cpu {

struct PoolGeom {
  int64_t height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, pooled_h, pooled_w;
};

// Caffe 1.0's output size along one axis: ceil (default) or floor of (H + 2p - k) / s, computed in
// float as Caffe does, plus one; when the layer has any padding (``padded``: pad_h || pad_w, on
// either axis), a last window that starts inside this axis's padding (or past the image) is dropped.
int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode, bool padded);
// The per-axis form: right only when both axes are padded alike (square padding, LRN
// WITHIN_CHANNEL); Pooling's own geometry, CPU and CUDA, must use pooled_hw below.
inline int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  return pooled_size(in, kernel, stride, pad, ceil_mode, pad != 0);
}
// PoolingLayer::Reshape's (pooled_height_, pooled_width_): the clip applies to BOTH axes whenever
// pad_h_ || pad_w_ is nonzero.
struct PooledHW {
  int64_t h, w;
};
inline PooledHW pooled_hw(int64_t height, int64_t width, int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                          int64_t stride_w, int64_t pad_h, int64_t pad_w, bool ceil_mode) {
  const bool padded = pad_h != 0 || pad_w != 0;
  return {pooled_size(height, kernel_h, stride_h, pad_h, ceil_mode, padded),
          pooled_size(width, kernel_w, stride_w, pad_w, ceil_mode, padded)};
}

// Caffe starts every output at -FLT_MAX (for double too) and keeps the first maximum in
// row-major window order (strict >).  Written without branches (selects), same order.
template <typename T>
void max_pool_plane(const T* in, const PoolGeom& g, T* out, int32_t* mask) {
  for (int64_t ph = 0; ph < g.pooled_h; ++ph) {
    const geom::Span hs = geom::max_span(ph, g.height, g.kernel_h, g.stride_h, g.pad_h);
    const int64_t hstart = hs.start, hend = hs.end;
    for (int64_t pw = 0; pw < g.pooled_w; ++pw) {
      const geom::Span ws = geom::max_span(pw, g.width, g.kernel_w, g.stride_w, g.pad_w);
      const int64_t wstart = ws.start, wend = ws.end;
      T best = T(-FLT_MAX);
      int32_t arg = -1;
      for (int64_t h = hstart; h < hend; ++h) {
        const T* row = in + h * g.width;
        for (int64_t w = wstart; w < wend; ++w) {
          const T v = row[w];
          const bool better = v > best;
          best = better ? v : best;
          arg = better ? static_cast<int32_t>(h * g.width + w) : arg;
        }
      }
      out[ph * g.pooled_w + pw] = best;
      mask[ph * g.pooled_w + pw] = arg;
    }
  }
}

// Returns false if the mask holds an index outside the plane (nothing is written for it).
template <typename T>
bool max_pool_backward_plane(const T* top_diff, const int32_t* mask, int64_t pooled, int64_t plane,
                             T* bottom_diff) {
  bool ok = true;
  for (int64_t i = 0; i < pooled; ++i) {
    const int32_t m = mask[i];
    if (m >= 0 && m < plane) bottom_diff[m] += top_diff[i];
    else if (m != -1) ok = false;
  }
  return ok;
}

// An AVE window: its divisor counts the window clipped to [-pad, size + pad), padding included;
// the summed cells are those inside the image.
struct AveWindow {
  int64_t hstart, hend, wstart, wend;
  int pool_size;
  AveWindow(const PoolGeom& g, int64_t ph, int64_t pw) {
    const geom::Span h = geom::ave_span(ph, g.height, g.kernel_h, g.stride_h, g.pad_h);
    const geom::Span w = geom::ave_span(pw, g.width, g.kernel_w, g.stride_w, g.pad_w);
    hstart = h.start, hend = h.end, wstart = w.start, wend = w.end;
    pool_size = static_cast<int>(h.padded_extent * w.padded_extent);
  }
};

template <typename T>
void ave_pool_plane(const T* in, const PoolGeom& g, T* out) {
  for (int64_t ph = 0; ph < g.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < g.pooled_w; ++pw) {
      const AveWindow win(g, ph, pw);
      T sum = T(0);
      for (int64_t h = win.hstart; h < win.hend; ++h)
        for (int64_t w = win.wstart; w < win.wend; ++w) sum += in[h * g.width + w];
      out[ph * g.pooled_w + pw] = sum / win.pool_size;
    }
  }
}

// bottom_diff must be zeroed by the caller (Caffe's caffe_set before the loop).
template <typename T>
void ave_pool_backward_plane(const T* top_diff, const PoolGeom& g, T* bottom_diff) {
  for (int64_t ph = 0; ph < g.pooled_h; ++ph) {
    for (int64_t pw = 0; pw < g.pooled_w; ++pw) {
      const AveWindow win(g, ph, pw);
      const T d = top_diff[ph * g.pooled_w + pw];
      for (int64_t h = win.hstart; h < win.hend; ++h)
        for (int64_t w = win.wstart; w < win.wend; ++w) bottom_diff[h * g.width + w] += d / win.pool_size;
    }
  }
}

}  // namespace cpu
}  // namespace replicate
