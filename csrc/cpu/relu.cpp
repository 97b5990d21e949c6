// ReLU as Caffe 1.0's ReLULayer (CPU):
//   top = max(x, 0) + slope * min(x, 0);  bottom_diff = top_diff * ((x > 0) + slope * (x <= 0)).
#include <algorithm>

#include "../common.h"
#include "relu.h"

namespace replicate {
namespace cpu {
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
      for (int64_t i = b; i < e; ++i) out[i] = relu_value(in[i], slope);
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
      for (int64_t i = b; i < e; ++i) out[i] = relu_grad(t[i], in[i], slope);
    });
  });
  return bottom;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("relu_forward", &cpu::relu_forward);
  m.impl("relu_backward", &cpu::relu_backward);
}

}  // namespace replicate
