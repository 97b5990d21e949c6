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
  check_tensor(op, arg, t, dim, expected_shape, c10::DeviceType::CUDA);
}
inline void check_cuda_int(const char* op, const char* arg, const at::Tensor& t, const at::Tensor& ref) {
  TORCH_CHECK(t.defined() && t.is_cuda() && t.scalar_type() == at::kInt, op, ": argument '", arg,
              "' must be a CUDA tensor of dtype int32, got ",
              t.defined() ? std::string(c10::toString(t.scalar_type())) + " on " + t.device().str()
                          : std::string("undefined"));
  check_same_device(op, arg, t, ref);
}

inline cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }

// Every launcher returns cudaGetLastError() of its launches.
#define REPLICATE_CUDA_OK(expr) C10_CUDA_CHECK(expr)

}  // namespace cuda_glue
}  // namespace replicate
