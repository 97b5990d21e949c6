// ReLU as Caffe 1.0's ReLULayer (CPU):
//   top = max(x, 0) + slope * min(x, 0);  bottom_diff = top_diff * ((x > 0) + slope * (x <= 0)).
#include <algorithm>

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

at::Tensor relu_forward(const at::Tensor& input, double negative_slope) {
  check_input("relu_forward", "input", input, -1, "any shape");
  const at::Tensor x = input.contiguous();
  at::Tensor top = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), "relu_forward", [&] {
    using T = scalar_t;
    const T slope = caffe_param<T>(negative_slope);
    const T* in = x.data_ptr<T>();
    T* out = top.data_ptr<T>();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      relu_value_range(in + b, out + b, e - b, slope);
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
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      relu_grad_range(t + b, in + b, out + b, e - b, slope);
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
