// Launch configuration shared by the CUDA kernels: Caffe's 512 threads per block and a
// grid-stride loop (CUDA_KERNEL_LOOP) over 64-bit indices.  Included by .cu files only.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

constexpr int kThreads = 512;  // Caffe's CAFFE_CUDA_NUM_THREADS

inline unsigned launch_blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < (int64_t(1) << 30) ? b : (int64_t(1) << 30));
}

#define REPLICATE_KERNEL_LOOP(i, n)                                                              \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);                      \
       i += int64_t(blockDim.x) * gridDim.x)

}  // namespace cuda
}  // namespace replicate
