// Convolution and InnerProduct on CUDA, the GEMM layers, through the GPU BLAS seam (blas.h).
//   exact: Caffe 1.0's BaseConvolutionLayer GPU path call for call: per image and group one
//          cuBLAS GEMM on the im2col columns, the bias by a K=1 GEMM against ones; backward: bias
//          diff by one GEMV per image, weight diff by one GEMM per image and group accumulated
//          with beta 1 in image order, bottom diff by GEMM + col2im.  (The columns of all images
//          are formed by one batched im2col launch; each image's values are the same.)
//   fast:  the same arithmetic batched over images with torch matmul (TF32 off), the bias by a
//          broadcast add; no bit promise beyond the fast-mode tolerance.  A layer with engine
//          CAFFE gets exact's call sequence in fast mode too, on fast's GEMMs (blas::caffe_order).
// InnerProduct makes Caffe's calls (one GEMM over the batch, bias K=1 GEMM, weight diff GEMM with
// beta 1, bias diff GEMV, bottom GEMM) in both modes; the seam picks cuBLAS or torch.
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "../conv.h"
#include "../inner_product.h"
#include "../cpu/im2col.h"
#include "blas.h"
#include "glue.h"
#include "im2col.cuh"

namespace replicate {
namespace cuda_glue {
namespace {

constexpr auto N_ = blas::NoTrans;
constexpr auto T_ = blas::Trans;

cuda::ConvShape conv_shape(const Conv& c) {
  const cpu::ConvGeom& g = c.g;
  return {g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.pad_h, g.pad_w,
          g.stride_h, g.stride_w, g.dilation_h, g.dilation_w};
}

Conv setup(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
           at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  return conv_setup(op, input, weight, stride, pad, dilation, group, c10::DeviceType::CUDA);
}

// Caffe's calls per image and group: exact mode, or fast mode for a layer with engine CAFFE (the
// library stays the mode's: cuBLAS in exact mode, the fast seam otherwise; see blas::caffe_order).
bool exact() { return blas::caffe_order(); }

// The columns of every image, (N, C*kh*kw, S); the input itself for a 1x1 convolution.
at::Tensor columns(const Conv& c, const at::Tensor& x) {
  if (c.is_1x1) return x.view({c.num, c.col_rows(), c.S});
  at::Tensor col = at::empty({c.num, c.col_rows(), c.S}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "im2col", [&] {
    REPLICATE_CUDA_OK(cuda::im2col<scalar_t>(x.data_ptr<scalar_t>(), c.num, conv_shape(c), col.data_ptr<scalar_t>(),
                                             stream()));
  });
  return col;
}

at::Tensor conv_forward_plain(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group) {
  const char* op = "conv_forward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  if (bias) {
    check_like(op, "bias", *bias, input, {c.out_channels}, 1, "(num_output,)");
  }
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  const at::Tensor col = columns(c, x);
  if (!exact()) {
    at::NoTF32Guard no_tf32;
    at::Tensor top = at::matmul(w.view({c.group, c.M(), c.kernel_dim}), col.view({c.num, c.group, c.kernel_dim, c.S}));
    top = top.view({c.num, c.out_channels, c.g.out_h(), c.g.out_w()});
    if (b.defined()) top.add_(b.view({1, c.out_channels, 1, 1}));
    return top;
  }
  at::Tensor top = at::empty({c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, x.options());
  const at::Tensor ones = at::ones({c.S}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    const T *cd = col.data_ptr<T>(), *wd = w.data_ptr<T>(), *bd = b.defined() ? b.data_ptr<T>() : nullptr;
    T* td = top.data_ptr<T>();
    const int M = c.M(), S = c.S, K = c.kernel_dim;
    for (int64_t n = 0; n < c.num; ++n) {
      const T* col_n = cd + n * c.col_rows() * c.S;
      T* top_n = td + n * c.out_dim();
      for (int64_t gi = 0; gi < c.group; ++gi)
        cuda_blas::gemm<T>(N_, N_, M, S, K, T(1), wd + gi * M * K, col_n + gi * K * S, T(0), top_n + gi * M * S);
      if (bd) cuda_blas::gemm<T>(N_, N_, c.out_channels, S, 1, T(1), bd, ones.data_ptr<T>(), T(1), top_n);
    }
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward_plain(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, std::array<bool, 3> output_mask,
    const std::optional<at::Tensor>& weight_diff, const std::optional<at::Tensor>& bias_diff) {
  const char* op = "conv_backward";
  const Conv c = setup(op, input, weight, stride, pad, dilation, group);
  check_like(op, "grad_output", grad_output, input, {c.num, c.out_channels, c.g.out_h(), c.g.out_w()}, 4,
             "(N, num_output, out_h, out_w)");
  const c10::cuda::CUDAGuard guard(input.device());
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, weight.sizes(), input);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {c.out_channels}, input);
  at::Tensor gx = output_mask[0] ? at::empty(input.sizes(), input.options()) : at::empty({0}, input.options());
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), td = grad_output.contiguous();
  const at::Tensor col = output_mask[1] ? columns(c, x) : at::Tensor();
  // the bottom diff's columns; a 1x1 convolution's columns are the bottom diff itself
  at::Tensor col_diff;
  if (!exact()) {
    at::NoTF32Guard no_tf32;
    const at::Tensor dy = td.view({c.num, c.group, c.M(), c.S});
    if (output_mask[2]) gb.add_(td.sum({0, 2, 3}));
    if (output_mask[1])
      gw.view({c.group, c.M(), c.kernel_dim})
          .add_(at::matmul(dy, col.view({c.num, c.group, c.kernel_dim, c.S}).transpose(-1, -2)).sum(0));
    if (output_mask[0]) {
      col_diff = at::matmul(w.view({c.group, c.M(), c.kernel_dim}).transpose(-1, -2), dy)
                     .view({c.num, c.col_rows(), c.S});
      if (c.is_1x1) gx.view({c.num, c.col_rows(), c.S}).copy_(col_diff);
    }
  } else {
    if (output_mask[0])
      col_diff = c.is_1x1 ? gx.view({c.num, c.col_rows(), c.S}) : at::empty({c.num, c.col_rows(), c.S}, x.options());
    const at::Tensor ones = at::ones({c.S}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
      using T = scalar_t;
      const T *wd = w.data_ptr<T>(), *tdd = td.data_ptr<T>();
      const int M = c.M(), S = c.S, K = c.kernel_dim;
      if (output_mask[2])  // backward_gpu_bias for every image first, as Caffe's Backward_gpu
        for (int64_t n = 0; n < c.num; ++n)
          cuda_blas::gemv<T>(N_, c.out_channels, S, T(1), tdd + n * c.out_dim(), ones.data_ptr<T>(), T(1), gb.data_ptr<T>());
      for (int64_t n = 0; n < c.num; ++n) {
        const T* t = tdd + n * c.out_dim();
        if (output_mask[1]) {  // weight_gpu_gemm
          const T* col_n = col.data_ptr<T>() + n * c.col_rows() * c.S;
          for (int64_t gi = 0; gi < c.group; ++gi)
            cuda_blas::gemm<T>(N_, T_, M, K, S, T(1), t + gi * M * S, col_n + gi * K * S, T(1), gw.data_ptr<T>() + gi * M * K);
        }
        if (output_mask[0]) {  // backward_gpu_gemm
          T* cd_n = col_diff.data_ptr<T>() + n * c.col_rows() * c.S;
          for (int64_t gi = 0; gi < c.group; ++gi)
            cuda_blas::gemm<T>(T_, N_, K, S, M, T(1), wd + gi * M * K, t + gi * M * S, T(0), cd_n + gi * K * S);
        }
      }
    });
  }
  if (output_mask[0] && !c.is_1x1) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "col2im", [&] {
      REPLICATE_CUDA_OK(cuda::col2im<scalar_t>(col_diff.data_ptr<scalar_t>(), c.num, conv_shape(c),
                                               gx.data_ptr<scalar_t>(), stream()));
    });
  }
  return {gx, gw, gb};
}

at::Tensor ip_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      bool transpose) {
  const char* op = "inner_product_forward";
  const int64_t N = ip_setup(op, input, weight, transpose, c10::DeviceType::CUDA, bias);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const int64_t M = x.size(0), K = x.size(1);
  at::Tensor top = at::empty({M, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    cuda_blas::gemm<T>(N_, transpose ? N_ : T_, M, N, K, T(1), x.data_ptr<T>(), w.data_ptr<T>(), T(0), top.data_ptr<T>());
    if (bias) {
      const at::Tensor b = bias->contiguous(), ones = at::ones({M}, x.options());
      cuda_blas::gemm<T>(N_, N_, M, N, 1, T(1), ones.data_ptr<T>(), b.data_ptr<T>(), T(1), top.data_ptr<T>());
    }
  });
  return top;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ip_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, bool transpose,
    std::array<bool, 3> output_mask, const std::optional<at::Tensor>& weight_diff,
    const std::optional<at::Tensor>& bias_diff) {
  const char* op = "inner_product_backward";
  const int64_t N = ip_setup(op, input, weight, transpose, c10::DeviceType::CUDA);
  const int64_t M = input.size(0), K = input.size(1);
  check_like(op, "grad_output", grad_output, input, {M, N}, 2, "(M, num_output)");
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), td = grad_output.contiguous();
  at::Tensor gw = param_diff_out(op, "weight_diff", output_mask[1], weight_diff, weight.sizes(), input);
  at::Tensor gb = param_diff_out(op, "bias_diff", output_mask[2], bias_diff, {N}, input);
  at::Tensor gx = output_mask[0] ? at::empty({M, K}, x.options()) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    const T *xd = x.data_ptr<T>(), *wd = w.data_ptr<T>(), *t = td.data_ptr<T>();
    if (output_mask[1]) {
      if (transpose) cuda_blas::gemm<T>(T_, N_, K, N, M, T(1), xd, t, T(1), gw.data_ptr<T>());
      else cuda_blas::gemm<T>(T_, N_, N, K, M, T(1), t, xd, T(1), gw.data_ptr<T>());
    }
    if (output_mask[2]) {
      const at::Tensor ones = at::ones({M}, x.options());
      cuda_blas::gemv<T>(T_, M, N, T(1), t, ones.data_ptr<T>(), T(1), gb.data_ptr<T>());
    }
    if (output_mask[0]) cuda_blas::gemm<T>(N_, transpose ? T_ : N_, M, K, N, T(1), t, wd, T(0), gx.data_ptr<T>());
  });
  return {gx, gw, gb};
}

}  // namespace
// A ReLU fused by the net (see csrc/cpu/convolution.cpp): on CUDA the ReLU op itself, after the
// convolution's forward and before its backward.
at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group,
                        std::optional<double> relu_slope) {
  at::Tensor top = conv_forward_plain(input, weight, bias, stride, pad, dilation, group);
  if (!relu_slope) return top;
  static auto relu = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("replicate::relu_forward", "")
                         .typed<at::Tensor(const at::Tensor&, double)>();
  return relu.call(top, *relu_slope);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, std::array<bool, 3> output_mask,
    const std::optional<at::Tensor>& weight_diff, const std::optional<at::Tensor>& bias_diff,
    const std::optional<at::Tensor>& relu_top, double relu_slope) {
  if (!relu_top)
    return conv_backward_plain(grad_output, input, weight, stride, pad, dilation, group, output_mask, weight_diff,
                               bias_diff);
  static auto relu_back = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("replicate::relu_backward", "")
                              .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double)>();
  return conv_backward_plain(relu_back.call(grad_output, *relu_top, relu_slope), input, weight, stride, pad, dilation,
                             group, output_mask, weight_diff, bias_diff);
}

}  // namespace cuda_glue

TORCH_LIBRARY_IMPL(replicate, CUDA, m) {
  m.impl("conv_forward", &cuda_glue::conv_forward);
  m.impl("conv_backward", &cuda_glue::conv_backward);
  m.impl("inner_product_forward", &cuda_glue::ip_forward);
  m.impl("inner_product_backward", &cuda_glue::ip_backward);
}

}  // namespace replicate
