// The im2col / col2im ops: (C, H, W) <-> (C*kh*kw, out_h*out_w), or batched with a leading N.
#include "im2col.h"

#include "../common.h"

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
  check_input(op, "im", im, -1, "(C, H, W) or (N, C, H, W)");
  TORCH_CHECK(im.dim() == 3 || im.dim() == 4, op, ": argument 'im' has shape ", shape_str(im.sizes()),
              "; expected (C, H, W) or (N, C, H, W)");
  const at::Tensor x = im.dim() == 3 ? im.unsqueeze(0).contiguous() : im.contiguous();
  const ConvGeom g = conv_geometry(op, x.size(1), x.size(2), x.size(3), kernel, pad, stride, dilation);
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
  check_input(op, "col", col, -1, "(C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w)");
  TORCH_CHECK(col.dim() == 2 || col.dim() == 3, op, ": argument 'col' has shape ", shape_str(col.sizes()),
              "; expected (C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w)");
  auto [H, W] = pair_arg(op, "image_size", image_size, true);
  TORCH_CHECK(channels > 0, op, ": channels must be positive, got ", channels);
  const at::Tensor c = col.dim() == 2 ? col.unsqueeze(0).contiguous() : col.contiguous();
  const ConvGeom g = conv_geometry(op, channels, H, W, kernel, pad, stride, dilation);
  const int64_t N = c.size(0), rows = channels * g.kernel_h * g.kernel_w, S = g.out_h() * g.out_w();
  if (col.dim() == 2) check_shape(op, "col", col, {rows, S});
  else check_shape(op, "col", c, {N, rows, S});
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
