// A convolution's shapes as Caffe's BaseConvolutionLayer derives them, checked once for the CPU
// kernels (csrc/cpu/convolution.cpp) and the CUDA glue (csrc/cuda/convolution.cpp).
#pragma once
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

}  // namespace replicate
