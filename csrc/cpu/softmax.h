// Shared by Softmax, SoftmaxWithLoss and Accuracy.
#pragma once
#include <vector>

#include "../common.h"

namespace replicate {
namespace cpu {

struct AxisSplit {
  int64_t outer, channels, inner;
  int64_t dim() const { return channels * inner; }
};
AxisSplit split_axis(const char* op, const char* arg, const at::Tensor& x, int64_t axis);

// Labels as Caffe reads them: static_cast<int> of the (float) label blob, one per outer*inner.
std::vector<int> read_labels(const char* op, const at::Tensor& label, const AxisSplit& s);

// Caffe's SoftmaxLayer::Forward_cpu on a contiguous tensor.
at::Tensor softmax_forward_impl(const char* op, const at::Tensor& x, const AxisSplit& s);

}  // namespace cpu
}  // namespace replicate
