// LRN's arguments, checked once for the CPU kernels (csrc/cpu/lrn.cpp) and the CUDA glue
// (csrc/cuda/glue.cpp).
#pragma once
#include <initializer_list>
#include <utility>

#include "common.h"

namespace replicate {

// input (N, C, H, W) on `device`; Caffe's LRN takes an odd local size.
inline void check_lrn(const char* op, const at::Tensor& x, int64_t size, c10::DeviceType device) {
  check_tensor(op, "input", x, 4, "(N, C, H, W)", device);
  TORCH_CHECK(size > 0 && size % 2 == 1, op, ": size must be a positive odd number (Caffe's rule), got ", size);
}

// A backward op's saved tensors (and grad_output): each like the input.
inline void check_lrn_saved(const char* op, std::initializer_list<std::pair<const char*, const at::Tensor*>> args,
                            const at::Tensor& input) {
  for (auto [name, t] : args) check_like(op, name, *t, input, input.sizes(), 4, "(N, C, H, W) like input");
}

}  // namespace replicate
