// Accuracy as Caffe 1.0's AccuracyLayer (CPU): a sample is correct when fewer than top_k classes
// score >= the true class (so a tie with the true class counts against it); also the per-class
// accuracy of Caffe's optional second top.
#include "softmax.h"

namespace replicate {
namespace cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> accuracy_forward(const at::Tensor& input, const at::Tensor& label, int64_t axis,
                                                    int64_t top_k, std::optional<int64_t> ignore_label) {
  const char* op = "accuracy_forward";
  const AxisSplit s = split_axis(op, "input", input, axis);
  TORCH_CHECK(top_k >= 1 && top_k <= s.channels, op, ": top_k must be in [1, ", s.channels, "], got ", top_k);
  const std::vector<int> labels = read_labels(op, label, s);
  const at::Tensor x = input.contiguous();
  at::Tensor acc = at::empty({}, x.options()), per_class = at::zeros({s.channels}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* xd = x.data_ptr<T>();
    T* pc = per_class.data_ptr<T>();
    std::vector<T> nums(s.channels, T(0));
    T accuracy = T(0);
    int count = 0;
    for (int64_t i = 0; i < s.outer; ++i)
      for (int64_t j = 0; j < s.inner; ++j) {
        const int l = labels[i * s.inner + j];
        if (ignore_label && l == *ignore_label) continue;
        TORCH_CHECK(l >= 0 && l < s.channels, op, ": label ", l, " at index ", i * s.inner + j,
                    " is outside [0, ", s.channels, ")");
        ++nums[l];
        const T truth = xd[i * s.dim() + l * s.inner + j];
        int better = -1;  // the true class counts itself
        for (int64_t k = 0; k < s.channels && better < top_k; ++k) better += (xd[i * s.dim() + k * s.inner + j] >= truth);
        if (better < top_k) {
          ++accuracy;
          ++pc[l];
        }
        ++count;
      }
    acc.fill_(count == 0 ? T(0) : accuracy / count);
    for (int64_t c = 0; c < s.channels; ++c) pc[c] = nums[c] == T(0) ? T(0) : pc[c] / nums[c];
  });
  return {acc, per_class};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) { m.impl("accuracy_forward", &cpu::accuracy_forward); }

}  // namespace replicate
