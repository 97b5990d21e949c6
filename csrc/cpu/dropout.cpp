// Dropout as Caffe 1.0's DropoutLayer in TRAIN phase (CPU): top = x * mask * scale with
// scale = 1 / (1 - ratio) rounded to Dtype; the 0/1 mask (Caffe's unsigned ints) is an input,
// drawn by the caller (replicate.rng reproduces Caffe's Bernoulli draws).  TEST phase is a copy.
#include "../common.h"

namespace replicate {
namespace cpu {
namespace {

template <typename T>
T dropout_scale(double ratio) {
  const T threshold = caffe_param<T>(ratio);
  return static_cast<T>(1. / (1. - threshold));
}

void check_dropout(const char* op, const char* arg, const at::Tensor& x, const at::Tensor& mask, double ratio) {
  check_input(op, arg, x, -1, "any shape");
  check_int_tensor(op, "mask", mask, at::kInt);
  check_shape(op, "mask", mask, x.sizes());
  TORCH_CHECK(ratio >= 0. && ratio < 1., op, ": dropout ratio must be in [0, 1), got ", ratio);
}

at::Tensor apply(const char* op, const at::Tensor& input, const at::Tensor& mask, double ratio) {
  const at::Tensor x = input.contiguous(), m = mask.contiguous();
  at::Tensor out = at::empty_like(x);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T scale = dropout_scale<T>(ratio);
    const T* in = x.data_ptr<T>();
    const int32_t* md = m.data_ptr<int32_t>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = in[i] * static_cast<T>(static_cast<uint32_t>(md[i])) * scale;
    });
  });
  return out;
}

at::Tensor dropout_forward(const at::Tensor& input, const at::Tensor& mask, double ratio) {
  check_dropout("dropout_forward", "input", input, mask, ratio);
  return apply("dropout_forward", input, mask, ratio);
}

at::Tensor dropout_backward(const at::Tensor& grad_output, const at::Tensor& mask, double ratio) {
  check_dropout("dropout_backward", "grad_output", grad_output, mask, ratio);
  return apply("dropout_backward", grad_output, mask, ratio);
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("dropout_forward", &cpu::dropout_forward);
  m.impl("dropout_backward", &cpu::dropout_backward);
}

}  // namespace replicate
