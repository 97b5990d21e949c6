// Helpers shared by the torch glue of the CUDA kernels (glue.cpp, convolution.cpp): argument
// checks for CUDA tensors, the current stream, launcher error checks.  CUDA builds only.
#pragma once
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "../common.h"

namespace replicate {
namespace cuda_glue {

// A float32/float64 CUDA tensor with `dim` dimensions (-1: any); errors name op and argument.
inline void check_cuda(const char* op, const char* arg, const at::Tensor& t, int64_t dim = -1,
                       const char* expected_shape = "any shape") {
  TORCH_CHECK(t.defined(), op, ": argument '", arg, "' is undefined; expected ", expected_shape);
  TORCH_CHECK(t.is_cuda(), op, ": argument '", arg, "' is on ", t.device(),
              "; this kernel expects a CUDA tensor of shape ", expected_shape);
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": argument '", arg,
              "' has dtype ", t.scalar_type(), "; expected float32 or float64 of shape ", expected_shape);
  TORCH_CHECK(dim < 0 || t.dim() == dim, op, ": argument '", arg, "' has shape ", shape_str(t.sizes()),
              "; expected ", expected_shape);
}

inline void check_same_device(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  TORCH_CHECK(t.device() == ref.device(), op, ": argument '", arg, "' is on ", t.device(), "; expected ",
              ref.device(), " like the input");
}

// An int32 CUDA tensor on the input's device (masks).
inline void check_cuda_int(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.scalar_type() == at::kInt, op, ": argument '", arg,
              "' must be a CUDA tensor of dtype int32, got ",
              t.defined() ? std::string(c10::toString(t.scalar_type())) + " on " + t.device().str()
                          : std::string("undefined"));
  check_same_device(op, arg, t, ref);
}

// A parameter diff for a backward op, as common.h's param_diff_out, on the CUDA device.
inline at::Tensor param_diff(const char* op, const char* arg, bool wanted, const std::optional<at::Tensor>& acc,
                             at::IntArrayRef shape, const at::Tensor& like) {
  if (!wanted) return at::empty({0}, like.options());
  if (!acc) return at::zeros(shape, like.options());
  check_cuda(op, arg, *acc, static_cast<int64_t>(shape.size()), shape_str(shape).c_str());
  check_same_dtype(op, arg, *acc, like);
  check_same_device(op, arg, *acc, like);
  check_shape(op, arg, *acc, shape);
  return acc->clone(at::MemoryFormat::Contiguous);
}

inline cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }

// Every launcher returns cudaGetLastError() of its launches.
#define REPLICATE_CUDA_OK(expr) C10_CUDA_CHECK(expr)

}  // namespace cuda_glue
}  // namespace replicate
