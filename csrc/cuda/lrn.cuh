// Launchers of Caffe's GPU LRN kernels (lrn_layer.cu) and of the elementwise steps of its
// WITHIN_CHANNEL composition (power_layer.cu, eltwise_layer.cu, split_layer.cu).  (N, C, H, W)
// contiguous; raw pointers and a stream only.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

// LRNFillScale (one thread per (n, h, w), its own running sum of squares over the channel
// window: scale = k + sum * alpha / size) then LRNComputeOutput (powf), which also keeps
// scale^-beta for the backward op.
template <typename T>
cudaError_t lrn_across_forward(const T* in, int64_t num, int64_t channels, int64_t hw, int64_t size, T alpha,
                               T beta, T k, T* out, T* scale, T* scale_power, cudaStream_t stream);
// LRNComputeDiff: one thread per (n, h, w), running sum of top_diff * top / scale.  Caffe
// recomputes pow(scale, -beta); the forward's value is the same function of the same input.
template <typename T>
cudaError_t lrn_across_backward(const T* top_diff, const T* bottom, const T* top, const T* scale,
                                const T* scale_power, int64_t num, int64_t channels, int64_t hw, int64_t size,
                                T alpha, T beta, T* bottom_diff, cudaStream_t stream);

// PowerLayer::Forward_gpu: y = (shift + scale * x)^power, step by step as Caffe (copy, scal,
// add_scalar, powx).
template <typename T>
cudaError_t power_forward(const T* x, int64_t n, T power, T scale, T shift, T* y, cudaStream_t stream);
// PowerLayer::Backward_gpu: bottom_diff = top_diff * dy/dx in Caffe's steps.
template <typename T>
cudaError_t power_backward(const T* x, const T* y, const T* top_diff, int64_t n, T power, T scale, T shift,
                           T* bottom_diff, cudaStream_t stream);
// out = a * b (caffe_gpu_mul).
template <typename T>
cudaError_t mul(const T* a, const T* b, int64_t n, T* out, cudaStream_t stream);
// out = a + b (caffe_gpu_add).
template <typename T>
cudaError_t add(const T* a, const T* b, int64_t n, T* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
