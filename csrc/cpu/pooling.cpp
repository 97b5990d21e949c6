// Pooling (MAX with argmax mask, AVE) as Caffe 1.0's PoolingLayer::Forward_cpu / Backward_cpu.
#include "pooling.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "../common.h"

namespace replicate {
namespace cpu {

int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode, bool padded) {
  const float q = static_cast<float>(in + 2 * pad - kernel) / stride;
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(q) : std::floor(q)) + 1;
  if (padded && (out - 1) * stride >= in + pad) --out;
  return out;
}

namespace {

PoolGeom geometry(const char* op, const at::Tensor& x, at::IntArrayRef kernel, at::IntArrayRef stride,
                  at::IntArrayRef pad, bool ceil_mode) {
  check_input(op, "input", x, 4, "(N, C, H, W)");
  auto [kh, kw] = pair_arg(op, "kernel", kernel, true);
  auto [sh, sw] = pair_arg(op, "stride", stride, true);
  auto [ph, pw] = pair_arg(op, "pad", pad, false);
  TORCH_CHECK(ph < kh && pw < kw, op, ": pad ", shape_str(pad), " must be smaller than kernel ",
              shape_str(kernel), " (Caffe's rule)");
  PoolGeom g{x.size(2), x.size(3), kh, kw, sh, sw, ph, pw, 0, 0};
  TORCH_CHECK(g.height + 2 * ph >= kh && g.width + 2 * pw >= kw, op, ": kernel ", shape_str(kernel),
              " is larger than the padded input ", shape_str(x.sizes()));
  const PooledHW out = pooled_hw(g.height, g.width, kh, kw, sh, sw, ph, pw, ceil_mode);
  g.pooled_h = out.h;
  g.pooled_w = out.w;
  return g;
}

std::tuple<at::Tensor, at::Tensor> max_forward(const at::Tensor& input, at::IntArrayRef kernel,
                                               at::IntArrayRef stride, at::IntArrayRef pad, bool ceil_mode) {
  const PoolGeom g = geometry("pool_max_forward", input, kernel, stride, pad, ceil_mode);
  const at::Tensor x = input.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.height * g.width, out_plane = g.pooled_h * g.pooled_w;
  at::Tensor top = at::empty({x.size(0), x.size(1), g.pooled_h, g.pooled_w}, x.options());
  at::Tensor mask = at::empty(top.sizes(), x.options().dtype(at::kInt));
  REPLICATE_DISPATCH(x.scalar_type(), "pool_max_forward", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* out = top.data_ptr<scalar_t>();
    int32_t* m = mask.data_ptr<int32_t>();
    at::parallel_for(0, planes, grain(in_plane), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) max_pool_plane(in + p * in_plane, g, out + p * out_plane, m + p * out_plane);
    });
  });
  return {top, mask};
}

at::Tensor max_backward(const at::Tensor& grad_output, const at::Tensor& mask, at::IntArrayRef input_size) {
  const char* op = "pool_max_backward";
  check_input(op, "grad_output", grad_output, 4, "(N, C, pooled_H, pooled_W)");
  check_int_tensor(op, "mask", mask, at::kInt);
  check_shape(op, "mask", mask, grad_output.sizes());
  TORCH_CHECK(input_size.size() == 4 && input_size[0] == grad_output.size(0) && input_size[1] == grad_output.size(1),
              op, ": input_size ", shape_str(input_size), " must be (N, C, H, W) matching grad_output ",
              shape_str(grad_output.sizes()));
  const at::Tensor td = grad_output.contiguous(), m = mask.contiguous();
  at::Tensor bottom = at::empty(input_size, td.options());  // zeroed plane by plane below
  const int64_t planes = input_size[0] * input_size[1], in_plane = input_size[2] * input_size[3];
  const int64_t out_plane = td.size(2) * td.size(3);
  std::atomic<bool> ok{true};
  REPLICATE_DISPATCH(td.scalar_type(), op, [&] {
    const scalar_t* t = td.data_ptr<scalar_t>();
    const int32_t* mk = m.data_ptr<int32_t>();
    scalar_t* bd = bottom.data_ptr<scalar_t>();
    at::parallel_for(0, planes, grain(in_plane), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        std::fill_n(bd + p * in_plane, in_plane, scalar_t(0));
        if (!max_pool_backward_plane(t + p * out_plane, mk + p * out_plane, out_plane, in_plane, bd + p * in_plane))
          ok = false;
      }
    });
  });
  TORCH_CHECK(ok, op, ": argument 'mask' holds an index outside [-1, ", in_plane, ") of the ", input_size[2], "x",
              input_size[3], " input plane");
  return bottom;
}

at::Tensor ave_forward(const at::Tensor& input, at::IntArrayRef kernel, at::IntArrayRef stride,
                       at::IntArrayRef pad, bool ceil_mode) {
  const PoolGeom g = geometry("pool_ave_forward", input, kernel, stride, pad, ceil_mode);
  const at::Tensor x = input.contiguous();
  const int64_t planes = x.size(0) * x.size(1), in_plane = g.height * g.width, out_plane = g.pooled_h * g.pooled_w;
  at::Tensor top = at::empty({x.size(0), x.size(1), g.pooled_h, g.pooled_w}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), "pool_ave_forward", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* out = top.data_ptr<scalar_t>();
    at::parallel_for(0, planes, grain(in_plane), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) ave_pool_plane(in + p * in_plane, g, out + p * out_plane);
    });
  });
  return top;
}

at::Tensor ave_backward(const at::Tensor& grad_output, at::IntArrayRef input_size, at::IntArrayRef kernel,
                        at::IntArrayRef stride, at::IntArrayRef pad) {
  const char* op = "pool_ave_backward";
  check_input(op, "grad_output", grad_output, 4, "(N, C, pooled_H, pooled_W)");
  TORCH_CHECK(input_size.size() == 4 && input_size[0] == grad_output.size(0) && input_size[1] == grad_output.size(1),
              op, ": input_size ", shape_str(input_size), " must be (N, C, H, W) matching grad_output ",
              shape_str(grad_output.sizes()));
  auto [kh, kw] = pair_arg(op, "kernel", kernel, true);
  auto [sh, sw] = pair_arg(op, "stride", stride, true);
  auto [ph, pw] = pair_arg(op, "pad", pad, false);
  TORCH_CHECK(ph < kh && pw < kw, op, ": pad ", shape_str(pad), " must be smaller than kernel ",
              shape_str(kernel), " (Caffe's rule)");
  const PoolGeom g{input_size[2], input_size[3], kh, kw, sh, sw, ph, pw, grad_output.size(2), grad_output.size(3)};
  // the pooled size of either rounding mode (Caffe's default CEIL, or FLOOR)
  bool fits = false;
  for (bool ceil_mode : {true, false}) {
    const PooledHW out = pooled_hw(g.height, g.width, kh, kw, sh, sw, ph, pw, ceil_mode);
    fits = fits || (g.pooled_h == out.h && g.pooled_w == out.w);
  }
  const PooledHW want = pooled_hw(g.height, g.width, kh, kw, sh, sw, ph, pw, true);
  TORCH_CHECK(fits, op, ": argument 'grad_output' has shape ", shape_str(grad_output.sizes()), "; expected (",
              input_size[0], ", ", input_size[1], ", ", want.h, ", ", want.w, ") for input ",
              shape_str(input_size), ", kernel ",
              shape_str(kernel), ", stride ", shape_str(stride), ", pad ", shape_str(pad));
  const at::Tensor td = grad_output.contiguous();
  at::Tensor bottom = at::empty(input_size, td.options());  // zeroed plane by plane below
  const int64_t planes = input_size[0] * input_size[1], in_plane = g.height * g.width, out_plane = g.pooled_h * g.pooled_w;
  REPLICATE_DISPATCH(td.scalar_type(), op, [&] {
    const scalar_t* t = td.data_ptr<scalar_t>();
    scalar_t* bd = bottom.data_ptr<scalar_t>();
    at::parallel_for(0, planes, grain(in_plane), [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        std::fill_n(bd + p * in_plane, in_plane, scalar_t(0));
        ave_pool_backward_plane(t + p * out_plane, g, bd + p * in_plane);
      }
    });
  });
  return bottom;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("pool_max_forward", &cpu::max_forward);
  m.impl("pool_max_backward", &cpu::max_backward);
  m.impl("pool_ave_forward", &cpu::ave_forward);
  m.impl("pool_ave_backward", &cpu::ave_backward);
}

}  // namespace replicate
