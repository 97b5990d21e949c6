// InnerProduct as Caffe 1.0's InnerProductLayer (CPU): one GEMM over the whole batch, bias by a
// K=1 GEMM against ones; backward: weight diff GEMM (beta 1), bias diff GEMV (beta 1), bottom GEMM.
#include "../blas.h"
#include "../common.h"
#include "../inner_product.h"

namespace replicate {
namespace cpu {
namespace {

at::Tensor ip_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      bool transpose) {
  const char* op = "inner_product_forward";
  const int64_t N = ip_setup(op, input, weight, transpose, c10::DeviceType::CPU, bias);
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const int64_t M = x.size(0), K = x.size(1);
  at::Tensor top = at::empty({M, N}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    T* out = top.data_ptr<T>();
    blas::gemm<T>(blas::NoTrans, transpose ? blas::NoTrans : blas::Trans, M, N, K, T(1), x.data_ptr<T>(),
                  w.data_ptr<T>(), T(0), out);
    if (bias) {
      const at::Tensor b = bias->contiguous();
      const std::vector<T> ones(M, T(1));
      blas::gemm<T>(blas::NoTrans, blas::NoTrans, M, N, 1, T(1), ones.data(), b.data_ptr<T>(), T(1), out);
    }
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ip_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, bool transpose,
    std::array<bool, 3> output_mask, const std::optional<at::Tensor>& weight_diff,
    const std::optional<at::Tensor>& bias_diff) {
  const char* op = "inner_product_backward";
  const int64_t N = ip_setup(op, input, weight, transpose, c10::DeviceType::CPU);
  const int64_t M = input.size(0), K = input.size(1);
  check_like(op, "grad_output", grad_output, input, {M, N}, 2, "(M, num_output)");
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), td = grad_output.contiguous();
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, weight.sizes(), input);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {N}, input);
  at::Tensor gx = output_mask[0] ? at::empty({M, K}, x.options()) : at::empty({0}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *t = td.data_ptr<T>();
    if (output_mask[1]) {
      if (transpose)
        blas::gemm<T>(blas::Trans, blas::NoTrans, K, N, M, T(1), xd, t, T(1), gw.data_ptr<T>());
      else
        blas::gemm<T>(blas::Trans, blas::NoTrans, N, K, M, T(1), t, xd, T(1), gw.data_ptr<T>());
    }
    if (output_mask[2]) {
      const std::vector<T> ones(M, T(1));
      blas::gemv<T>(blas::Trans, M, N, T(1), t, ones.data(), T(1), gb.data_ptr<T>());
    }
    if (output_mask[0])
      blas::gemm<T>(blas::NoTrans, transpose ? blas::Trans : blas::NoTrans, M, K, N, T(1), t, wd, T(0),
                    gx.data_ptr<T>());
  });
  return {gx, gw, gb};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("inner_product_forward", &cpu::ip_forward);
  m.impl("inner_product_backward", &cpu::ip_backward);
}

}  // namespace replicate
