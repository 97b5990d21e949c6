// The im2col / col2im ops: (C, H, W) <-> (C*kh*kw, out_h*out_w), or batched with a leading N.
#include "im2col.h"

#include "../common.h"
#include "../conv.h"

namespace replicate {
namespace cpu {

ConvGeom conv_geometry(const char* op, int64_t C, int64_t H, int64_t W, at::IntArrayRef kernel,
                       at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef dilation) {
  auto [kh, kw] = pair_arg(op, "kernel", kernel, true);
  auto [ph, pw] = pair_arg(op, "pad", pad, false);
  auto [sh, sw] = pair_arg(op, "stride", stride, true);
  auto [dh, dw] = pair_arg(op, "dilation", dilation, true);
  ConvGeom g{C, H, W, kh, kw, ph, pw, sh, sw, dh, dw};
  TORCH_CHECK(g.out_h() > 0 && g.out_w() > 0, op, ": kernel ", shape_str(kernel), " with dilation ",
              shape_str(dilation), " does not fit the padded ", H, "x", W, " input");
  return g;
}

namespace {

at::Tensor im2col_op(const at::Tensor& im, at::IntArrayRef kernel, at::IntArrayRef pad, at::IntArrayRef stride,
                     at::IntArrayRef dilation) {
  const char* op = "im2col";
  at::Tensor x;
  ConvGeom g;
  std::tie(x, g) = im2col_setup(op, im, kernel, pad, stride, dilation, c10::DeviceType::CPU);
  const int64_t N = x.size(0), rows = g.channels * g.kernel_h * g.kernel_w, S = g.out_h() * g.out_w();
  at::Tensor col = at::empty({N, rows, S}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    const scalar_t* xd = x.data_ptr<scalar_t>();
    scalar_t* cd = col.data_ptr<scalar_t>();
    at::parallel_for(0, N, grain(rows * S), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) im2col(xd + n * g.channels * g.height * g.width, g, cd + n * rows * S);
    });
  });
  return im.dim() == 3 ? col.squeeze(0) : col;
}

at::Tensor col2im_op(const at::Tensor& col, at::IntArrayRef image_size, int64_t channels, at::IntArrayRef kernel,
                     at::IntArrayRef pad, at::IntArrayRef stride, at::IntArrayRef dilation) {
  const char* op = "col2im";
  at::Tensor c;
  ConvGeom g;
  std::tie(c, g) = col2im_setup(op, col, image_size, channels, kernel, pad, stride, dilation, c10::DeviceType::CPU);
  const int64_t N = c.size(0), rows = channels * g.kernel_h * g.kernel_w, S = g.out_h() * g.out_w();
  const int64_t H = g.height, W = g.width;
  at::Tensor im = at::empty({N, channels, H, W}, c.options());
  REPLICATE_DISPATCH(c.scalar_type(), op, [&] {
    const scalar_t* cd = c.data_ptr<scalar_t>();
    scalar_t* id = im.data_ptr<scalar_t>();
    at::parallel_for(0, N, grain(rows * S), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) col2im(cd + n * rows * S, g, id + n * channels * H * W);
    });
  });
  return col.dim() == 2 ? im.squeeze(0) : im;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("im2col", &cpu::im2col_op);
  m.impl("col2im", &cpu::col2im_op);
}

}  // namespace replicate
