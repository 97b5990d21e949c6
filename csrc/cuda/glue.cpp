// Torch glue for the CUDA kernels (built only in CUDA builds): argument checks, the current
// stream, and the CUDA dispatch-key registrations of the ops defined in csrc/ops.cpp.
// Ops without a CUDA kernel yet fail with torch's "no CUDA implementation" error.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "../common.h"
#include "relu.cuh"

namespace replicate {
namespace cuda_glue {
namespace {

void check_cuda(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), op, ": argument '", arg, "' must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": argument '", arg,
              "' has dtype ", t.scalar_type(), "; expected float32 or float64");
}

at::Tensor relu_forward(const at::Tensor& input, double negative_slope) {
  check_cuda("relu_forward", "input", input);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_forward", [&] {
    C10_CUDA_CHECK(cuda::relu_forward<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.numel(),
                                                caffe_param<scalar_t>(negative_slope),
                                                at::cuda::getCurrentCUDAStream()));
  });
  return y;
}

at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& input, double negative_slope) {
  check_cuda("relu_backward", "input", input);
  check_cuda("relu_backward", "grad_output", grad_output);
  check_shape("relu_backward", "grad_output", grad_output, input.sizes());
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), dy = grad_output.contiguous();
  at::Tensor dx = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_backward", [&] {
    C10_CUDA_CHECK(cuda::relu_backward<scalar_t>(dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                                 dx.data_ptr<scalar_t>(), x.numel(),
                                                 caffe_param<scalar_t>(negative_slope),
                                                 at::cuda::getCurrentCUDAStream()));
  });
  return dx;
}

}  // namespace
}  // namespace cuda_glue

TORCH_LIBRARY_IMPL(replicate, CUDA, m) {
  m.impl("relu_forward", &cuda_glue::relu_forward);
  m.impl("relu_backward", &cuda_glue::relu_backward);
}

}  // namespace replicate
