// Fast mode's Winograd convolution (csrc/cpu/conv_winograd.cpp): 3x3, stride 1 convolutions in
// float32 by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016), forward and backward.
#pragma once
#include <array>
#include <optional>
#include <tuple>

#include "../conv.h"

namespace replicate {
namespace cpu {
namespace winograd {

// Whether fast mode computes this call by Winograd: float32, not in Caffe's order (exact mode or
// `engine: CAFFE`), a 3x3 kernel at stride 1 and dilation 1, groups of at least kMinChannels input
// and output channels, a batch that fills its chunks of 16 images at least 3/4 on average (12
// images a chunk: 12 to 16, 24 to 32, ...), and REPLICATE_CONV_WINOGRAD not 0. With
// REPLICATE_CONV_WINOGRAD=always any batch qualifies (tests; chunks then may run mostly empty).
bool applies(const Conv& c, const at::Tensor& x);

// top = conv(x, w) + b, rectified in place with `relu_slope` when given (the net's fused ReLU).
at::Tensor forward(const Conv& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                   std::optional<float> relu_slope);

// The diffs of conv_backward: the top diff first multiplied by the ReLU's backward when `relu_top`
// is defined; the parameter diffs added into `weight_diff` / `bias_diff` when given.
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const Conv& c, const at::Tensor& td, const at::Tensor& x,
                                                        const at::Tensor& w, const at::Tensor& relu_top,
                                                        float relu_slope, std::array<bool, 3> output_mask,
                                                        const std::optional<at::Tensor>& weight_diff,
                                                        const std::optional<at::Tensor>& bias_diff);

}  // namespace winograd
}  // namespace cpu
}  // namespace replicate
