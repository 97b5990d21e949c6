// ReLU as Caffe 1.0's ReLULayer (CPU):
//   top = max(x, 0) + slope * min(x, 0);  bottom_diff = top_diff * ((x > 0) + slope * (x <= 0)).
#include <algorithm>
#include <cstdlib>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "../common.h"
#include "relu.h"

namespace replicate {
namespace cpu {

#define REPLICATE_CLONES __attribute__((target_clones("avx2", "default")))
REPLICATE_CLONES void relu_value_range(const float* x, float* out, int64_t n, float slope) {
  for (int64_t i = 0; i < n; ++i) out[i] = relu_value(x[i], slope);
}
REPLICATE_CLONES void relu_value_range(const double* x, double* out, int64_t n, double slope) {
  for (int64_t i = 0; i < n; ++i) out[i] = relu_value(x[i], slope);
}
REPLICATE_CLONES void relu_grad_range(const float* t, const float* x, float* out, int64_t n, float slope) {
  for (int64_t i = 0; i < n; ++i) out[i] = relu_grad(t[i], x[i], slope);
}
REPLICATE_CLONES void relu_grad_range(const double* t, const double* x, double* out, int64_t n, double slope) {
  for (int64_t i = 0; i < n; ++i) out[i] = relu_grad(t[i], x[i], slope);
}
REPLICATE_CLONES void relu_value_in_place(float* x, int64_t n, float slope) {
  for (int64_t i = 0; i < n; ++i) x[i] = relu_value(x[i], slope);
}
REPLICATE_CLONES void relu_value_in_place(double* x, int64_t n, double slope) {
  for (int64_t i = 0; i < n; ++i) x[i] = relu_value(x[i], slope);
}
REPLICATE_CLONES void relu_grad_in_place(float* t, const float* x, int64_t n, float slope) {
  for (int64_t i = 0; i < n; ++i) t[i] = relu_grad(t[i], x[i], slope);
}
REPLICATE_CLONES void relu_grad_in_place(double* t, const double* x, int64_t n, double slope) {
  for (int64_t i = 0; i < n; ++i) t[i] = relu_grad(t[i], x[i], slope);
}
#undef REPLICATE_CLONES

namespace {

// An out-of-place ReLU whose output is larger than any cache of these machines writes it with
// streaming (non-temporal) stores: each chunk of elements is computed by the loops above into a
// small buffer, then copied out.  An ordinary store first reads the output's cache line from memory
// (read for ownership), so a memory-bound forward moved 3 bytes for each 2 it needs and a backward 4
// for 3.  The values are the loops' own, so the bits are the same; only where they are stored
// differs.  REPLICATE_STREAM_MIN_BYTES (read once) sets the output size from which it streams
// (default 64 MB; 0: always, as the tests run the goldens through it).
int64_t stream_min_bytes() {
  static const int64_t v = [] {
    const char* e = std::getenv("REPLICATE_STREAM_MIN_BYTES");
    return e && *e ? int64_t(std::strtoll(e, nullptr, 10)) : int64_t(64) << 20;
  }();
  return v;
}

#if defined(__x86_64__)
constexpr int64_t kStreamChunkBytes = 4096;  // an L1-resident buffer per call

inline void stream_copy(const float* src, float* dst, int64_t n) {  // dst 16-byte aligned
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_load_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}
inline void stream_copy(const double* src, double* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_load_pd(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// compute(i, m, dst) writes the elements [i, i + m) of the range to dst[0, m); streamed to out when
// `stream`, else straight into it.
template <typename T, typename F>
void store_range(bool stream, T* out, int64_t n, const F& compute) {
  if (!stream) {
    compute(0, n, out);
    return;
  }
  int64_t head = std::min<int64_t>(n, ((16 - (reinterpret_cast<uintptr_t>(out) & 15)) & 15) / sizeof(T));
  if (reinterpret_cast<uintptr_t>(out) % sizeof(T)) head = n;  // not element-aligned: no streaming
  if (head) compute(0, head, out);
  alignas(64) T buf[kStreamChunkBytes / sizeof(T)];
  constexpr int64_t chunk = kStreamChunkBytes / sizeof(T);
  for (int64_t i = head; i < n; i += chunk) {
    const int64_t m = std::min(chunk, n - i);
    compute(i, m, buf);
    stream_copy(buf, out + i, m);
  }
  _mm_sfence();  // the streamed stores are ordered before the op returns (and the tensor is read)
}
#else
template <typename T, typename F>
void store_range(bool, T* out, int64_t n, const F& compute) { compute(0, n, out); }
#endif

at::Tensor relu_forward(const at::Tensor& input, double negative_slope) {
  check_input("relu_forward", "input", input, -1, "any shape");
  const at::Tensor x = input.contiguous();
  at::Tensor top = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), "relu_forward", [&] {
    using T = scalar_t;
    const T slope = caffe_param<T>(negative_slope);
    const T* in = x.data_ptr<T>();
    T* out = top.data_ptr<T>();
    const bool stream = x.numel() * int64_t(sizeof(T)) >= stream_min_bytes();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      store_range(stream, out + b, e - b,
                  [&](int64_t i, int64_t m, T* dst) { relu_value_range(in + b + i, dst, m, slope); });
    });
  });
  return top;
}

// `input` is the layer's bottom; for Caffe's in-place ReLU that is the rectified output, which has
// the same sign pattern.
at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& input, double negative_slope) {
  const char* op = "relu_backward";
  check_input(op, "input", input, -1, "any shape");
  check_like(op, "grad_output", grad_output, input, input.sizes(), -1, "the shape of input");
  const at::Tensor x = input.contiguous(), td = grad_output.contiguous();
  at::Tensor bottom = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T slope = caffe_param<T>(negative_slope);
    const T *in = x.data_ptr<T>(), *t = td.data_ptr<T>();
    T* out = bottom.data_ptr<T>();
    const bool stream = x.numel() * int64_t(sizeof(T)) >= stream_min_bytes();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      store_range(stream, out + b, e - b,
                  [&](int64_t i, int64_t m, T* dst) { relu_grad_range(t + b + i, in + b + i, dst, m, slope); });
    });
  });
  return bottom;
}

// In place, as Caffe's in-place ReLU writes its bottom diff over the top diff (one blob): the same
// expression element by element, so the same bits as relu_backward; no second buffer.
void relu_backward_(at::Tensor& grad_output, const at::Tensor& input, double negative_slope) {
  const char* op = "relu_backward_";
  check_input(op, "input", input, -1, "any shape");
  check_like(op, "grad_output", grad_output, input, input.sizes(), -1, "the shape of input");
  TORCH_CHECK(grad_output.is_contiguous(), op, ": argument 'grad_output' must be contiguous (it is written in place)");
  const at::Tensor x = input.contiguous();
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T slope = caffe_param<T>(negative_slope);
    const T* in = x.data_ptr<T>();
    T* t = grad_output.data_ptr<T>();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      relu_grad_in_place(t + b, in + b, e - b, slope);
    });
  });
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("relu_forward", &cpu::relu_forward);
  m.impl("relu_backward", &cpu::relu_backward);
  m.impl("relu_backward_", &cpu::relu_backward_);
}

}  // namespace replicate
