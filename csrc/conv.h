// A convolution's shapes as Caffe's BaseConvolutionLayer derives them, and the im2col/col2im ops'
// arguments, checked once for the CPU kernels (csrc/cpu/convolution.cpp, im2col.cpp) and the CUDA
// glue (csrc/cuda/convolution.cpp, glue.cpp).
#pragma once
#include <string>
#include <tuple>
#include <utility>

#include "common.h"
#include "cpu/im2col.h"

namespace replicate {

struct Conv {
  cpu::ConvGeom g;
  int64_t num, out_channels, group, S, kernel_dim;
  bool is_1x1;
  int64_t in_dim() const { return g.channels * g.height * g.width; }
  int64_t out_dim() const { return out_channels * S; }
  int64_t col_rows() const { return kernel_dim * group; }
  int64_t M() const { return out_channels / group; }
};

// Checks input (N, C, H, W) and weight (num_output, C / group, kh, kw) on `device` and derives the
// geometry; errors name the op and the argument.
inline Conv conv_setup(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group, c10::DeviceType device) {
  check_tensor(op, "input", input, 4, "(N, C, H, W)", device);
  check_tensor(op, "weight", weight, 4, "(num_output, C / group, kh, kw)", device);
  check_same_dtype(op, "weight", weight, input);
  check_same_device(op, "weight", weight, input);
  TORCH_CHECK(group > 0, op, ": group must be positive, got ", group);
  const int64_t C = input.size(1), Cout = weight.size(0);
  TORCH_CHECK(C % group == 0 && Cout % group == 0, op, ": input channels (", C, ") and num_output (", Cout,
              ") must be multiples of group (", group, ")");
  TORCH_CHECK(weight.size(1) == C / group, op, ": argument 'weight' has shape ", shape_str(weight.sizes()),
              "; expected (", Cout, ", ", C / group, ", kh, kw) for ", C, " input channels and group ", group);
  Conv c;
  c.g = cpu::conv_geometry(op, C, input.size(2), input.size(3), {weight.size(2), weight.size(3)}, pad, stride,
                           dilation);
  c.num = input.size(0);
  c.out_channels = Cout;
  c.group = group;
  c.S = c.g.out_h() * c.g.out_w();
  c.kernel_dim = (C / group) * c.g.kernel_h * c.g.kernel_w;
  c.is_1x1 = c.g.kernel_h == 1 && c.g.kernel_w == 1 && c.g.stride_h == 1 && c.g.stride_w == 1 &&
             c.g.pad_h == 0 && c.g.pad_w == 0;
  return c;
}

// im2col's image: (C, H, W) or (N, C, H, W) on `device`.  Returns the batch as a contiguous
// (N, C, H, W) tensor and its geometry.
inline std::pair<at::Tensor, cpu::ConvGeom> im2col_setup(const char* op, const at::Tensor& im, at::IntArrayRef kernel,
                                                         at::IntArrayRef pad, at::IntArrayRef stride,
                                                         at::IntArrayRef dilation, c10::DeviceType device) {
  check_tensor(op, "im", im, -1, "(C, H, W) or (N, C, H, W)", device);
  TORCH_CHECK(im.dim() == 3 || im.dim() == 4, op, ": argument 'im' has shape ", shape_str(im.sizes()),
              "; expected (C, H, W) or (N, C, H, W)");
  at::Tensor x = im.dim() == 3 ? im.unsqueeze(0).contiguous() : im.contiguous();
  const cpu::ConvGeom g = cpu::conv_geometry(op, x.size(1), x.size(2), x.size(3), kernel, pad, stride, dilation);
  return {x, g};
}

// col2im's columns: (C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w) on `device`, for a
// `channels` x image_size image.  Returns them as a contiguous (N, C*kh*kw, out_h*out_w) tensor and
// the image's geometry.
inline std::pair<at::Tensor, cpu::ConvGeom> col2im_setup(const char* op, const at::Tensor& col,
                                                         at::IntArrayRef image_size, int64_t channels,
                                                         at::IntArrayRef kernel, at::IntArrayRef pad,
                                                         at::IntArrayRef stride, at::IntArrayRef dilation,
                                                         c10::DeviceType device) {
  check_tensor(op, "col", col, -1, "(C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w)", device);
  TORCH_CHECK(col.dim() == 2 || col.dim() == 3, op, ": argument 'col' has shape ", shape_str(col.sizes()),
              "; expected (C*kh*kw, out_h*out_w) or (N, C*kh*kw, out_h*out_w)");
  auto [H, W] = pair_arg(op, "image_size", image_size, true);
  TORCH_CHECK(channels > 0, op, ": channels must be positive, got ", channels);
  at::Tensor c = col.dim() == 2 ? col.unsqueeze(0).contiguous() : col.contiguous();
  const cpu::ConvGeom g = cpu::conv_geometry(op, channels, H, W, kernel, pad, stride, dilation);
  const int64_t rows = channels * g.kernel_h * g.kernel_w, S = g.out_h() * g.out_w();
  if (col.dim() == 2) check_shape(op, "col", col, {rows, S});
  else check_shape(op, "col", c, {c.size(0), rows, S});
  return {c, g};
}

namespace cpu {
// Which kernel conv_forward / conv_backward run for these CPU operands from the calling thread:
// "caffe" (Caffe's calls and order: exact mode or `engine: CAFFE`), or fast mode's "winograd"
// (csrc/cpu/conv_winograd.cpp), "onednn" (torch's convolution) or "im2col" (csrc/cpu/convolution.cpp).
std::string conv_algorithm(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef pad, at::IntArrayRef dilation, int64_t group);
}  // namespace cpu

}  // namespace replicate
