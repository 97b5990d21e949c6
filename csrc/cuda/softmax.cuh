// Launchers of Caffe's GPU softmax, softmax-loss and accuracy kernels (softmax_layer.cu,
// softmax_loss_layer.cu, accuracy_layer.cu) on an (outer, channels, inner) split of a contiguous
// tensor.  Labels arrive as int32 (the glue casts Caffe's float labels with static_cast<int>).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace replicate {
namespace cuda {

struct Split {
  int64_t outer, channels, inner;
};

// kernel_channel_max, kernel_channel_subtract, kernel_exp, kernel_channel_sum, kernel_channel_div;
// `scratch` holds outer * inner values.
template <typename T>
cudaError_t softmax_forward(const T* in, const Split& s, T* out, T* scratch, cudaStream_t stream);
// copy, kernel_channel_dot, kernel_channel_subtract, caffe_gpu_mul.
template <typename T>
cudaError_t softmax_backward(const T* top_diff, const T* top, const Split& s, T* bottom_diff, T* scratch,
                             cudaStream_t stream);
// SoftmaxLossForwardGPU: per (outer, inner) loss -log(max(p, FLT_MIN)) and count 1 (0 if ignored).
// bad_label is set to 1 when a label outside [0, channels) is met (Caffe reads out of bounds).
template <typename T>
cudaError_t softmax_loss_forward(const T* prob, const int32_t* label, const Split& s, bool has_ignore,
                                 int ignore_label, T* loss, T* counts, int32_t* bad_label, cudaStream_t stream);
// SoftmaxLossBackwardGPU on bottom_diff (a copy of prob): subtract 1 at the label, zero ignored.
template <typename T>
cudaError_t softmax_loss_backward(const int32_t* label, const Split& s, bool has_ignore, int ignore_label,
                                  T* bottom_diff, T* counts, int32_t* bad_label, cudaStream_t stream);
// AccuracyForwardGPU: per (outer, inner) 1 if fewer than top_k classes score >= the true class,
// count 1 (0 and 0 when ignored).
template <typename T>
cudaError_t accuracy_forward(const T* in, const int32_t* label, const Split& s, int top_k, bool has_ignore,
                             int ignore_label, T* acc, T* counts, int32_t* bad_label, cudaStream_t stream);

}  // namespace cuda
}  // namespace replicate
