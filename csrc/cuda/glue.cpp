// Torch glue for the CUDA kernels (built only in CUDA builds): argument checks, the current
// stream, and the CUDA dispatch-key registrations of the ops defined in csrc/ops.cpp.  The GEMM
// ops (convolution, inner product) are in convolution.cpp.  Launchers live in the .cu files.
#include <cfloat>

#include "../conv.h"
#include "../cpu/im2col.h"
#include "../cpu/pooling.h"
#include "../lrn.h"
#include "dropout.cuh"
#include "blas.h"
#include "glue.h"
#include "im2col.cuh"
#include "lrn.cuh"
#include "pooling.cuh"
#include "relu.cuh"
#include "softmax.cuh"

namespace replicate {
namespace cuda_glue {
namespace {

// ---------------------------------------------------------------------------------------------
// im2col / col2im

cuda::ConvShape conv_shape(const cpu::ConvGeom& g) {
  return {g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.pad_h, g.pad_w,
          g.stride_h, g.stride_w, g.dilation_h, g.dilation_w};
}

at::Tensor im2col_op(const at::Tensor& im, at::IntArrayRef kernel, at::IntArrayRef pad, at::IntArrayRef stride,
                     at::IntArrayRef dilation) {
  at::Tensor x;
  cpu::ConvGeom g;
  std::tie(x, g) = im2col_setup("im2col", im, kernel, pad, stride, dilation, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(im.device());
  const int64_t N = x.size(0), rows = g.channels * g.kernel_h * g.kernel_w, S = g.out_h() * g.out_w();
  at::Tensor col = at::empty({N, rows, S}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    REPLICATE_CUDA_OK(cuda::im2col<scalar_t>(x.data_ptr<scalar_t>(), N, conv_shape(g), col.data_ptr<scalar_t>(),
                                             stream()));
  });
  return im.dim() == 3 ? col.squeeze(0) : col;
}

at::Tensor col2im_op(const at::Tensor& col, at::IntArrayRef image_size, int64_t channels, at::IntArrayRef kernel,
                     at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef dilation) {
  at::Tensor c;
  cpu::ConvGeom g;
  std::tie(c, g) = col2im_setup("col2im", col, image_size, channels, kernel, pad, stride, dilation,
                                c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(col.device());
  const int64_t N = c.size(0);
  at::Tensor im = at::empty({N, channels, g.height, g.width}, c.options());
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "replicate_cuda", [&] {
    REPLICATE_CUDA_OK(cuda::col2im<scalar_t>(c.data_ptr<scalar_t>(), N, conv_shape(g), im.data_ptr<scalar_t>(),
                                             stream()));
  });
  return col.dim() == 2 ? im.squeeze(0) : im;
}

// ---------------------------------------------------------------------------------------------
// Pooling

cuda::PoolShape pool_shape(const char* op, const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef stride,
                           at::IntArrayRef pad, bool ceil_mode) {
  check_cuda(op, "input", x, 4, "(N, C, H, W)");
  auto [kh, kw] = pair_arg(op, "kernel", kernel, true);
  auto [sh, sw] = pair_arg(op, "stride", stride, true);
  auto [ph, pw] = pair_arg(op, "pad", pad, false);
  TORCH_CHECK(ph < kh && pw < kw, op, ": pad ", shape_str(pad), " must be smaller than kernel ",
              shape_str(kernel), " (Caffe's rule)");
  TORCH_CHECK(x.size(2) + 2 * ph >= kh && x.size(3) + 2 * pw >= kw, op, ": kernel ", shape_str(kernel),
              " is larger than the padded input ", shape_str(x.sizes()));
  const cpu::PooledHW out = cpu::pooled_hw(x.size(2), x.size(3), kh, kw, sh, sw, ph, pw, ceil_mode);
  return {x.size(0) * x.size(1), x.size(2), x.size(3), out.h, out.w, kh, kw, sh, sw, ph, pw};
}

std::tuple<at::Tensor, at::Tensor> pool_max_forward(const at::Tensor& input, at::IntArrayRef kernel,
                                                    at::IntArrayRef stride, at::IntArrayRef pad, bool ceil_mode) {
  const cuda::PoolShape g = pool_shape("pool_max_forward", input, kernel, stride, pad, ceil_mode);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor top = at::empty({x.size(0), x.size(1), g.pooled_h, g.pooled_w}, x.options());
  at::Tensor mask = at::empty(top.sizes(), x.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pool_max_forward", [&] {
    REPLICATE_CUDA_OK(cuda::max_pool_forward<scalar_t>(x.data_ptr<scalar_t>(), g, top.data_ptr<scalar_t>(),
                                                       mask.data_ptr<int32_t>(), stream()));
  });
  return {top, mask};
}

void check_pool_backward(const char* op, const at::Tensor& grad_output, at::IntArrayRef input_size) {
  check_cuda(op, "grad_output", grad_output, 4, "(N, C, pooled_H, pooled_W)");
  TORCH_CHECK(input_size.size() == 4 && input_size[0] == grad_output.size(0) && input_size[1] == grad_output.size(1),
              op, ": input_size ", shape_str(input_size), " must be (N, C, H, W) matching grad_output ",
              shape_str(grad_output.sizes()));
}

at::Tensor pool_max_backward(const at::Tensor& grad_output, const at::Tensor& mask, at::IntArrayRef input_size) {
  const char* op = "pool_max_backward";
  check_pool_backward(op, grad_output, input_size);
  check_cuda_int(op, "mask", mask, grad_output);
  check_shape(op, "mask", mask, grad_output.sizes());
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const at::Tensor td = grad_output.contiguous(), m = mask.contiguous();
  at::Tensor bottom = at::empty(input_size, td.options());
  const int64_t planes = input_size[0] * input_size[1], in_plane = input_size[2] * input_size[3];
  AT_DISPATCH_FLOATING_TYPES(td.scalar_type(), "replicate_cuda", [&] {
    REPLICATE_CUDA_OK(cuda::max_pool_backward<scalar_t>(td.data_ptr<scalar_t>(), m.data_ptr<int32_t>(), planes,
                                                        in_plane, td.size(2) * td.size(3),
                                                        bottom.data_ptr<scalar_t>(), stream()));
  });
  return bottom;
}

at::Tensor pool_ave_forward(const at::Tensor& input, at::IntArrayRef kernel, at::IntArrayRef stride,
                            at::IntArrayRef pad, bool ceil_mode) {
  const cuda::PoolShape g = pool_shape("pool_ave_forward", input, kernel, stride, pad, ceil_mode);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor top = at::empty({x.size(0), x.size(1), g.pooled_h, g.pooled_w}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pool_ave_forward", [&] {
    REPLICATE_CUDA_OK(cuda::ave_pool_forward<scalar_t>(x.data_ptr<scalar_t>(), g, top.data_ptr<scalar_t>(), stream()));
  });
  return top;
}

at::Tensor pool_ave_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, at::IntArrayRef kernel,
                             at::IntArrayRef stride, at::IntArrayRef pad) {
  const char* op = "pool_ave_backward";
  check_pool_backward(op, grad_output, input_size);
  auto [kh, kw] = pair_arg(op, "kernel", kernel, true);
  auto [sh, sw] = pair_arg(op, "stride", stride, true);
  auto [ph, pw] = pair_arg(op, "pad", pad, false);
  TORCH_CHECK(ph < kh && pw < kw, op, ": pad ", shape_str(pad), " must be smaller than kernel ",
              shape_str(kernel), " (Caffe's rule)");
  const cuda::PoolShape g{input_size[0] * input_size[1], input_size[2], input_size[3], grad_output.size(2),
                          grad_output.size(3), kh, kw, sh, sw, ph, pw};
  bool fits = false;  // the pooled size of either rounding mode (Caffe's default CEIL, or FLOOR)
  for (bool ceil_mode : {true, false}) {
    const cpu::PooledHW out = cpu::pooled_hw(g.height, g.width, kh, kw, sh, sw, ph, pw, ceil_mode);
    fits = fits || (g.pooled_h == out.h && g.pooled_w == out.w);
  }
  TORCH_CHECK(fits, op, ": argument 'grad_output' has shape ", shape_str(grad_output.sizes()),
              "; expected the pooled size of input ", shape_str(input_size), ", kernel ", shape_str(kernel),
              ", stride ", shape_str(stride), ", pad ", shape_str(pad));
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const at::Tensor td = grad_output.contiguous();
  at::Tensor bottom = at::empty(input_size, td.options());
  AT_DISPATCH_FLOATING_TYPES(td.scalar_type(), "replicate_cuda", [&] {
    REPLICATE_CUDA_OK(
        cuda::ave_pool_backward<scalar_t>(td.data_ptr<scalar_t>(), g, bottom.data_ptr<scalar_t>(), stream()));
  });
  return bottom;
}

// ---------------------------------------------------------------------------------------------
// LRN

std::tuple<at::Tensor, at::Tensor, at::Tensor> lrn_across_forward(const at::Tensor& input, int64_t size,
                                                                  double alpha, double beta, double k) {
  const char* op = "lrn_across_forward";
  check_lrn(op, input, size, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor top = at::empty_like(x), scale = at::empty_like(x), power = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    REPLICATE_CUDA_OK(cuda::lrn_across_forward<T>(x.data_ptr<T>(), x.size(0), x.size(1), x.size(2) * x.size(3), size,
                                                  caffe_param<T>(alpha), caffe_param<T>(beta), caffe_param<T>(k),
                                                  top.data_ptr<T>(), scale.data_ptr<T>(), power.data_ptr<T>(),
                                                  stream()));
  });
  return {top, scale, power};
}

at::Tensor lrn_across_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& output,
                               const at::Tensor& scale, const at::Tensor& scale_power, int64_t size, double alpha,
                               double beta) {
  const char* op = "lrn_across_backward";
  check_lrn(op, input, size, c10::DeviceType::CUDA);
  check_lrn_saved(op, {{"grad_output", &grad_output}, {"output", &output}, {"scale", &scale}, {"scale_power", &scale_power}},
                  input);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), td = grad_output.contiguous(), y = output.contiguous(),
                   sc = scale.contiguous(), scp = scale_power.contiguous();
  at::Tensor bottom = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    REPLICATE_CUDA_OK(cuda::lrn_across_backward<T>(td.data_ptr<T>(), x.data_ptr<T>(), y.data_ptr<T>(), sc.data_ptr<T>(),
                                                   scp.data_ptr<T>(), x.size(0), x.size(1), x.size(2) * x.size(3),
                                                   size, caffe_param<T>(alpha), caffe_param<T>(beta),
                                                   bottom.data_ptr<T>(), stream()));
  });
  return bottom;
}

// WITHIN_CHANNEL's AVE pooling: kernel size, stride 1, pad (size - 1) / 2, CEIL.
cuda::PoolShape within_pool(const at::Tensor& x, int64_t size) {
  const int64_t pad = (size - 1) / 2;
  return {x.size(0) * x.size(1), x.size(2), x.size(3), cpu::pooled_size(x.size(2), size, 1, pad, true),
          cpu::pooled_size(x.size(3), size, 1, pad, true), size, size, 1, 1, pad, pad};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lrn_within_forward(const at::Tensor& input, int64_t size,
                                                                  double alpha_arg, double beta_arg) {
  const char* op = "lrn_within_forward";
  check_lrn(op, input, size, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  const cuda::PoolShape g = within_pool(x, size);
  at::Tensor top = at::empty_like(x), pooled = at::empty_like(x), powered = at::empty_like(x),
             squared = at::empty_like(x);
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg);
    const cudaStream_t s = stream();
    REPLICATE_CUDA_OK(cuda::power_forward<T>(x.data_ptr<T>(), n, T(2), T(1), T(0), squared.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::ave_pool_forward<T>(squared.data_ptr<T>(), g, pooled.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::power_forward<T>(pooled.data_ptr<T>(), n, -beta, alpha, T(1), powered.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::mul<T>(x.data_ptr<T>(), powered.data_ptr<T>(), n, top.data_ptr<T>(), s));
  });
  return {top, pooled, powered};
}

at::Tensor lrn_within_backward(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& pool_output,
                               const at::Tensor& power_output, int64_t size, double alpha_arg, double beta_arg) {
  const char* op = "lrn_within_backward";
  check_lrn(op, input, size, c10::DeviceType::CUDA);
  check_lrn_saved(op, {{"grad_output", &grad_output}, {"pool_output", &pool_output}, {"power_output", &power_output}},
                  input);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), td = grad_output.contiguous(), pooled = pool_output.contiguous(),
                   powered = power_output.contiguous();
  const cuda::PoolShape g = within_pool(x, size);
  const int64_t n = x.numel();
  at::Tensor bottom = at::empty_like(x), prod_diff = at::empty_like(x), power_top_diff = at::empty_like(x),
             pool_top_diff = at::empty_like(x), sq_top_diff = at::empty_like(x), sq_diff = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    const T alpha = caffe_param<T>(alpha_arg), beta = caffe_param<T>(beta_arg);
    const cudaStream_t s = stream();
    // Eltwise PROD backward (stable_prod_grad): each input's diff is the other input times top diff.
    REPLICATE_CUDA_OK(cuda::mul<T>(powered.data_ptr<T>(), td.data_ptr<T>(), n, prod_diff.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::mul<T>(x.data_ptr<T>(), td.data_ptr<T>(), n, power_top_diff.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::power_backward<T>(pooled.data_ptr<T>(), powered.data_ptr<T>(), power_top_diff.data_ptr<T>(),
                                              n, -beta, alpha, T(1), pool_top_diff.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::ave_pool_backward<T>(pool_top_diff.data_ptr<T>(), g, sq_top_diff.data_ptr<T>(), s));
    REPLICATE_CUDA_OK(cuda::power_backward<T>(x.data_ptr<T>(), nullptr, sq_top_diff.data_ptr<T>(), n, T(2), T(1), T(0),
                                              sq_diff.data_ptr<T>(), s));
    // Split backward: the two branches' diffs added.
    REPLICATE_CUDA_OK(cuda::add<T>(prod_diff.data_ptr<T>(), sq_diff.data_ptr<T>(), n, bottom.data_ptr<T>(), s));
  });
  return bottom;
}

// ---------------------------------------------------------------------------------------------
// ReLU and dropout

at::Tensor relu_forward(const at::Tensor& input, double negative_slope) {
  check_cuda("relu_forward", "input", input);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_forward", [&] {
    REPLICATE_CUDA_OK(cuda::relu_forward<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.numel(),
                                                   caffe_param<scalar_t>(negative_slope), stream()));
  });
  return y;
}

at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& input, double negative_slope) {
  check_cuda("relu_backward", "input", input);
  check_like("relu_backward", "grad_output", grad_output, input, input.sizes());
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), dy = grad_output.contiguous();
  at::Tensor dx = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_backward", [&] {
    REPLICATE_CUDA_OK(cuda::relu_backward<scalar_t>(dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                                    dx.data_ptr<scalar_t>(), x.numel(),
                                                    caffe_param<scalar_t>(negative_slope), stream()));
  });
  return dx;
}

// in place: the kernel reads dy[i] and x[i] before writing dx[i] at the same index
void relu_backward_(at::Tensor& grad_output, const at::Tensor& input, double negative_slope) {
  check_cuda("relu_backward_", "input", input);
  check_like("relu_backward_", "grad_output", grad_output, input, input.sizes());
  TORCH_CHECK(grad_output.is_contiguous(), "relu_backward_: argument 'grad_output' must be contiguous (it is written "
              "in place)");
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_backward_", [&] {
    scalar_t* d = grad_output.data_ptr<scalar_t>();
    REPLICATE_CUDA_OK(cuda::relu_backward<scalar_t>(d, x.data_ptr<scalar_t>(), d, x.numel(),
                                                    caffe_param<scalar_t>(negative_slope), stream()));
  });
}

at::Tensor dropout_apply(const char* op, const char* arg, const at::Tensor& input, const at::Tensor& mask,
                         double ratio) {
  check_cuda(op, arg, input);
  check_cuda_int(op, "mask", mask, input);
  check_shape(op, "mask", mask, input.sizes());
  TORCH_CHECK(ratio >= 0. && ratio < 1., op, ": dropout ratio must be in [0, 1), got ", ratio);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous(), m = mask.contiguous();
  at::Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    // Caffe's scale_ = 1 / (1 - threshold_) in Dtype, handed to the kernel as a float.
    const T threshold = caffe_param<T>(ratio);
    const float scale = static_cast<float>(static_cast<T>(1. / (1. - threshold)));
    REPLICATE_CUDA_OK(cuda::dropout_apply<T>(x.data_ptr<T>(), m.data_ptr<int32_t>(), x.numel(), scale,
                                             out.data_ptr<T>(), stream()));
  });
  return out;
}

at::Tensor dropout_forward(const at::Tensor& input, const at::Tensor& mask, double ratio) {
  return dropout_apply("dropout_forward", "input", input, mask, ratio);
}

at::Tensor dropout_backward(const at::Tensor& grad_output, const at::Tensor& mask, double ratio) {
  return dropout_apply("dropout_backward", "grad_output", grad_output, mask, ratio);
}

// ---------------------------------------------------------------------------------------------
// Softmax, softmax loss, accuracy

cuda::Split split_axis(const char* op, const char* arg, const at::Tensor& x, int64_t axis) {
  check_cuda(op, arg, x, -1, "(..., C, ...) with C on `axis`");
  TORCH_CHECK(x.dim() >= 1, op, ": argument '", arg, "' must have at least one dimension");
  const int64_t a = axis < 0 ? axis + x.dim() : axis;
  TORCH_CHECK(a >= 0 && a < x.dim(), op, ": axis ", axis, " is out of range for shape ", shape_str(x.sizes()));
  cuda::Split s{1, x.size(a), 1};
  for (int64_t i = 0; i < a; ++i) s.outer *= x.size(i);
  for (int64_t i = a + 1; i < x.dim(); ++i) s.inner *= x.size(i);
  return s;
}

// Labels as Caffe reads them, static_cast<int> of the label blob, as int32 on the input's device
// (a CPU label tensor is copied over).
at::Tensor read_labels(const char* op, const at::Tensor& label, const cuda::Split& s, const at::Tensor& like) {
  TORCH_CHECK(label.defined() && (label.is_cuda() || label.device().is_cpu()), op,
              ": argument 'label' must be a CPU or CUDA tensor");
  TORCH_CHECK(label.numel() == s.outer * s.inner, op, ": argument 'label' has shape ", shape_str(label.sizes()),
              "; expected ", s.outer * s.inner, " labels (outer x inner of the input)");
  const at::Tensor wide = label.is_floating_point() ? label.to(at::kDouble) : label.to(at::kLong);
  return wide.to(like.device()).to(at::kInt).contiguous().view({-1});
}

void check_labels(const char* op, const at::Tensor& bad, int64_t channels) {
  TORCH_CHECK(bad.item<int32_t>() == 0, op, ": a label is outside [0, ", channels, ")");
}

at::Tensor softmax_impl(const at::Tensor& x, const cuda::Split& s) {
  at::Tensor top = at::empty_like(x);
  at::Tensor scratch = at::empty({s.outer * s.inner}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "softmax_forward", [&] {
    REPLICATE_CUDA_OK(cuda::softmax_forward<scalar_t>(x.data_ptr<scalar_t>(), s, top.data_ptr<scalar_t>(),
                                                      scratch.data_ptr<scalar_t>(), stream()));
  });
  return top;
}

at::Tensor softmax_forward(const at::Tensor& input, int64_t axis) {
  const cuda::Split s = split_axis("softmax_forward", "input", input, axis);
  const c10::cuda::CUDAGuard guard(input.device());
  return softmax_impl(input.contiguous(), s);
}

at::Tensor softmax_backward(const at::Tensor& grad_output, const at::Tensor& output, int64_t axis) {
  const char* op = "softmax_backward";
  const cuda::Split s = split_axis(op, "output", output, axis);
  check_like(op, "grad_output", grad_output, output, output.sizes(), -1, "the shape of output");
  const c10::cuda::CUDAGuard guard(output.device());
  const at::Tensor y = output.contiguous(), td = grad_output.contiguous();
  at::Tensor bottom = at::empty_like(y);
  at::Tensor scratch = at::empty({s.outer * s.inner}, y.options());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "replicate_cuda", [&] {
    REPLICATE_CUDA_OK(cuda::softmax_backward<scalar_t>(td.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), s,
                                                       bottom.data_ptr<scalar_t>(), scratch.data_ptr<scalar_t>(),
                                                       stream()));
  });
  return bottom;
}

// Caffe's GPU losses: per-position values summed by caffe_gpu_asum, then divided on the host.
std::tuple<at::Tensor, at::Tensor> softmax_loss_forward(const at::Tensor& input, const at::Tensor& label,
                                                        int64_t axis, int64_t normalization,
                                                        std::optional<int64_t> ignore_label) {
  const char* op = "softmax_loss_forward";
  const cuda::Split s = split_axis(op, "input", input, axis);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor labels = read_labels(op, label, s, input);
  const at::Tensor prob = softmax_impl(input.contiguous(), s);
  const int64_t pos = s.outer * s.inner;
  at::Tensor losses = at::empty({pos}, prob.options()), counts = at::empty({pos}, prob.options());
  at::Tensor bad = at::zeros({1}, labels.options());
  at::Tensor loss = at::empty({}, prob.options());
  AT_DISPATCH_FLOATING_TYPES(prob.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    REPLICATE_CUDA_OK(cuda::softmax_loss_forward<T>(prob.data_ptr<T>(), labels.data_ptr<int32_t>(), s,
                                                    ignore_label.has_value(),
                                                    static_cast<int>(ignore_label.value_or(0)), losses.data_ptr<T>(),
                                                    counts.data_ptr<T>(), bad.data_ptr<int32_t>(), stream()));
    check_labels(op, bad, s.channels);
    const T sum = cuda_blas::asum<T>(static_cast<int>(pos), losses.data_ptr<T>());
    T valid_count = -1;
    if (normalization == 1 && ignore_label) valid_count = cuda_blas::asum<T>(static_cast<int>(pos), counts.data_ptr<T>());
    loss.fill_(sum / loss_normalizer<T>(op, normalization, s.outer, s.inner, static_cast<int>(valid_count)));
  });
  return {loss, prob};
}

at::Tensor softmax_loss_backward(const at::Tensor& grad_loss, const at::Tensor& prob, const at::Tensor& label,
                                 int64_t axis, int64_t normalization, std::optional<int64_t> ignore_label) {
  const char* op = "softmax_loss_backward";
  const cuda::Split s = split_axis(op, "prob", prob, axis);
  TORCH_CHECK(grad_loss.defined() && grad_loss.numel() == 1, op, ": argument 'grad_loss' must hold one value, the loss weight");
  check_same_dtype(op, "grad_loss", grad_loss, prob);
  const c10::cuda::CUDAGuard guard(prob.device());
  const at::Tensor labels = read_labels(op, label, s, prob);
  at::Tensor bottom = prob.clone(at::MemoryFormat::Contiguous);
  const int64_t pos = s.outer * s.inner;
  at::Tensor counts = at::empty({pos}, prob.options());
  at::Tensor bad = at::zeros({1}, labels.options());
  AT_DISPATCH_FLOATING_TYPES(prob.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    REPLICATE_CUDA_OK(cuda::softmax_loss_backward<T>(labels.data_ptr<int32_t>(), s, ignore_label.has_value(),
                                                     static_cast<int>(ignore_label.value_or(0)), bottom.data_ptr<T>(),
                                                     counts.data_ptr<T>(), bad.data_ptr<int32_t>(), stream()));
    check_labels(op, bad, s.channels);
    T valid_count = -1;
    if (normalization == 1 && ignore_label) valid_count = cuda_blas::asum<T>(static_cast<int>(pos), counts.data_ptr<T>());
    const T loss_weight =
        grad_loss.item<T>() / loss_normalizer<T>(op, normalization, s.outer, s.inner, static_cast<int>(valid_count));
    cuda_blas::scal<T>(static_cast<int>(bottom.numel()), loss_weight, bottom.data_ptr<T>());
  });
  return bottom;
}

// Accuracy: Caffe's AccuracyForwardGPU per position; the sums of its 0/1 values are exact in any
// order, so the totals (and the per-class split, by bincount) equal the CPU op's.
std::tuple<at::Tensor, at::Tensor> accuracy_forward(const at::Tensor& input, const at::Tensor& label, int64_t axis,
                                                    int64_t top_k, std::optional<int64_t> ignore_label) {
  const char* op = "accuracy_forward";
  const cuda::Split s = split_axis(op, "input", input, axis);
  TORCH_CHECK(top_k >= 1 && top_k <= s.channels, op, ": top_k must be in [1, ", s.channels, "], got ", top_k);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  const at::Tensor labels = read_labels(op, label, s, x);
  const int64_t pos = s.outer * s.inner;
  at::Tensor hits = at::empty({pos}, x.options()), counts = at::empty({pos}, x.options());
  at::Tensor bad = at::zeros({1}, labels.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "replicate_cuda", [&] {
    using T = scalar_t;
    REPLICATE_CUDA_OK(cuda::accuracy_forward<T>(x.data_ptr<T>(), labels.data_ptr<int32_t>(), s, static_cast<int>(top_k),
                                                ignore_label.has_value(), static_cast<int>(ignore_label.value_or(0)),
                                                hits.data_ptr<T>(), counts.data_ptr<T>(), bad.data_ptr<int32_t>(),
                                                stream()));
  });
  check_labels(op, bad, s.channels);
  const at::Tensor valid = counts > 0;
  const at::Tensor l = labels.masked_select(valid).to(at::kLong);
  const at::Tensor correct = at::bincount(l, hits.masked_select(valid), s.channels).to(x.scalar_type());
  const at::Tensor nums = at::bincount(l, {}, s.channels).to(x.scalar_type());
  const at::Tensor total = counts.sum(), right = hits.sum();
  const at::Tensor acc = at::where(total > 0, right / total, at::zeros({}, x.options()));
  const at::Tensor per_class = at::where(nums > 0, correct / nums, at::zeros({}, x.options()));
  return {acc, per_class};
}

}  // namespace
}  // namespace cuda_glue

TORCH_LIBRARY_IMPL(replicate, CUDA, m) {
  m.impl("im2col", &cuda_glue::im2col_op);
  m.impl("col2im", &cuda_glue::col2im_op);
  m.impl("pool_max_forward", &cuda_glue::pool_max_forward);
  m.impl("pool_max_backward", &cuda_glue::pool_max_backward);
  m.impl("pool_ave_forward", &cuda_glue::pool_ave_forward);
  m.impl("pool_ave_backward", &cuda_glue::pool_ave_backward);
  m.impl("lrn_across_forward", &cuda_glue::lrn_across_forward);
  m.impl("lrn_across_backward", &cuda_glue::lrn_across_backward);
  m.impl("lrn_within_forward", &cuda_glue::lrn_within_forward);
  m.impl("lrn_within_backward", &cuda_glue::lrn_within_backward);
  m.impl("relu_forward", &cuda_glue::relu_forward);
  m.impl("relu_backward", &cuda_glue::relu_backward);
  m.impl("relu_backward_", &cuda_glue::relu_backward_);
  m.impl("dropout_forward", &cuda_glue::dropout_forward);
  m.impl("dropout_backward", &cuda_glue::dropout_backward);
  m.impl("softmax_forward", &cuda_glue::softmax_forward);
  m.impl("softmax_backward", &cuda_glue::softmax_backward);
  m.impl("softmax_loss_forward", &cuda_glue::softmax_loss_forward);
  m.impl("softmax_loss_backward", &cuda_glue::softmax_loss_backward);
  m.impl("accuracy_forward", &cuda_glue::accuracy_forward);
}

}  // namespace replicate
