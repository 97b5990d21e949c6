// An InnerProduct's arguments as Caffe's InnerProductLayer reads them, checked once for the CPU
// kernels (csrc/cpu/inner_product.cpp) and the CUDA glue (csrc/cuda/convolution.cpp).
#pragma once
#include "common.h"

namespace replicate {

// input (M, K) on `device`; weight (N, K), or (K, N) with transpose (Caffe's `transpose`), like the
// input; bias (N,) when given.  Returns N, the number of outputs.  Errors name the op and argument.
inline int64_t ip_setup(const char* op, const at::Tensor& input, const at::Tensor& weight, bool transpose,
                        c10::DeviceType device, const std::optional<at::Tensor>& bias = std::nullopt) {
  check_tensor(op, "input", input, 2, "(M, K): the batch flattened from Caffe's axis", device);
  check_tensor(op, "weight", weight, 2, transpose ? "(K, num_output)" : "(num_output, K)", device);
  check_same_dtype(op, "weight", weight, input);
  check_same_device(op, "weight", weight, input);
  const int64_t K = input.size(1), N = transpose ? weight.size(1) : weight.size(0);
  TORCH_CHECK((transpose ? weight.size(0) : weight.size(1)) == K, op, ": argument 'weight' has shape ",
              shape_str(weight.sizes()), "; expected ", transpose ? "(" : "(num_output, ", K,
              transpose ? ", num_output)" : ")", " for an input of ", K, " features");
  if (bias) check_like(op, "bias", *bias, input, {N}, 1, "(num_output,)");
  return N;
}

}  // namespace replicate
