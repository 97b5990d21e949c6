// Softmax and SoftmaxWithLoss as Caffe 1.0's SoftmaxLayer / SoftmaxWithLossLayer (CPU).
// Forward: per outer index, the channel max (std::max in channel order), subtracted by a K=1
// GEMM, expf, the sum of exps by GEMV over channels, division.  Backward: strided dots, a K=1
// GEMM, product with the output.  Loss: -sum(logf(max(p, FLT_MIN))) / normalizer.
// Fast mode in float32 takes the forward's probabilities from torch's softmax (vectorised).
#include "softmax.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include <ATen/ops/softmax.h>
#include <c10/core/GradMode.h>

#include "../blas.h"

namespace replicate {
namespace cpu {

AxisSplit split_axis(const char* op, const char* arg, const at::Tensor& x, int64_t axis) {
  check_input(op, arg, x, -1, "(..., C, ...) with C on `axis`");
  TORCH_CHECK(x.dim() >= 1, op, ": argument '", arg, "' must have at least one dimension");
  const int64_t a = axis < 0 ? axis + x.dim() : axis;
  TORCH_CHECK(a >= 0 && a < x.dim(), op, ": axis ", axis, " is out of range for shape ", shape_str(x.sizes()));
  AxisSplit s{1, x.size(a), 1};
  for (int64_t i = 0; i < a; ++i) s.outer *= x.size(i);
  for (int64_t i = a + 1; i < x.dim(); ++i) s.inner *= x.size(i);
  return s;
}

std::vector<int> read_labels(const char* op, const at::Tensor& label, const AxisSplit& s) {
  TORCH_CHECK(label.defined() && label.device().is_cpu(), op, ": argument 'label' must be a CPU tensor");
  TORCH_CHECK(label.numel() == s.outer * s.inner, op, ": argument 'label' has shape ", shape_str(label.sizes()),
              "; expected ", s.outer * s.inner, " labels (outer x inner of the input)");
  const at::Tensor l = label.is_floating_point() ? label.to(at::kDouble).contiguous() : label.to(at::kLong).contiguous();
  std::vector<int> out(l.numel());
  if (l.scalar_type() == at::kDouble) {
    const double* p = l.data_ptr<double>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int>(p[i]);
  } else {
    const int64_t* p = l.data_ptr<int64_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int>(p[i]);
  }
  return out;
}

namespace {

void check_label_value(const char* op, int label, int64_t channels, int64_t index) {
  TORCH_CHECK(label >= 0 && label < channels, op, ": label ", label, " at index ", index,
              " is outside [0, ", channels, ")");
}

}  // namespace

at::Tensor softmax_forward_impl(const char* op, const at::Tensor& x, const AxisSplit& s) {
  if (!blas::caffe_order() && x.scalar_type() == at::kFloat) {
    // fast mode: torch's own (vectorised) softmax over the same axis, not Caffe's order of calls
    c10::AutoGradMode no_grad(false);
    // (outer, C) when inner is 1: torch vectorises over the last axis only (a 3-D view with a
    // trailing 1 took its strided path, 6x slower at 256x1000)
    const at::Tensor v = s.inner == 1 ? x.reshape({s.outer, s.channels}) : x.reshape({s.outer, s.channels, s.inner});
    return at::softmax(v, 1).reshape(x.sizes()).contiguous();
  }
  at::Tensor top = x.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* in = x.data_ptr<T>();
    T* out = top.data_ptr<T>();
    const int C = static_cast<int>(s.channels), inner = static_cast<int>(s.inner);
    const std::vector<T> ones(C, T(1));
    at::parallel_for(0, s.outer, grain(s.dim() * 4), [&](int64_t b, int64_t e) {
      std::vector<T> scale(inner);
      for (int64_t i = b; i < e; ++i) {
        const T* xi = in + i * s.dim();
        T* ti = out + i * s.dim();
        std::copy_n(xi, inner, scale.data());
        for (int j = 0; j < C; ++j)
          for (int k = 0; k < inner; ++k) scale[k] = std::max(scale[k], xi[j * inner + k]);
        blas::gemm<T>(blas::NoTrans, blas::NoTrans, C, inner, 1, T(-1), ones.data(), scale.data(), T(1), ti);
        for (int64_t k = 0; k < s.dim(); ++k) ti[k] = std::exp(ti[k]);
        blas::gemv<T>(blas::Trans, C, inner, T(1), ti, ones.data(), T(0), scale.data());
        for (int j = 0; j < C; ++j)
          for (int k = 0; k < inner; ++k) ti[j * inner + k] = ti[j * inner + k] / scale[k];
      }
    });
  });
  return top;
}

namespace {

at::Tensor softmax_forward(const at::Tensor& input, int64_t axis) {
  const AxisSplit s = split_axis("softmax_forward", "input", input, axis);
  return softmax_forward_impl("softmax_forward", input.contiguous(), s);
}

at::Tensor softmax_backward(const at::Tensor& grad_output, const at::Tensor& output, int64_t axis) {
  const char* op = "softmax_backward";
  const AxisSplit s = split_axis(op, "output", output, axis);
  check_like(op, "grad_output", grad_output, output, output.sizes(), -1, "the shape of output");
  const at::Tensor y = output.contiguous();
  at::Tensor bottom = grad_output.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(y.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* yd = y.data_ptr<T>();
    T* bd = bottom.data_ptr<T>();
    const int C = static_cast<int>(s.channels), inner = static_cast<int>(s.inner);
    const std::vector<T> ones(C, T(1));
    at::parallel_for(0, s.outer, grain(s.dim() * 4), [&](int64_t b, int64_t e) {
      std::vector<T> scale(inner);
      for (int64_t i = b; i < e; ++i) {
        for (int k = 0; k < inner; ++k)
          scale[k] = blas::strided_dot<T>(C, bd + i * s.dim() + k, inner, yd + i * s.dim() + k, inner);
        blas::gemm<T>(blas::NoTrans, blas::NoTrans, C, inner, 1, T(-1), ones.data(), scale.data(), T(1),
                      bd + i * s.dim());
      }
    });
    const int64_t n = bottom.numel();
    for (int64_t i = 0; i < n; ++i) bd[i] = bd[i] * yd[i];
  });
  return bottom;
}

std::tuple<at::Tensor, at::Tensor> softmax_loss_forward(const at::Tensor& input, const at::Tensor& label,
                                                        int64_t axis, int64_t normalization,
                                                        std::optional<int64_t> ignore_label) {
  const char* op = "softmax_loss_forward";
  const AxisSplit s = split_axis(op, "input", input, axis);
  const std::vector<int> labels = read_labels(op, label, s);
  at::Tensor prob = softmax_forward_impl(op, input.contiguous(), s);
  at::Tensor loss = at::empty({}, input.options());
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* p = prob.data_ptr<T>();
    T acc = T(0);
    int64_t count = 0;
    for (int64_t i = 0; i < s.outer; ++i)
      for (int64_t j = 0; j < s.inner; ++j) {
        const int l = labels[i * s.inner + j];
        if (ignore_label && l == *ignore_label) continue;
        check_label_value(op, l, s.channels, i * s.inner + j);
        acc -= std::log(std::max(p[i * s.dim() + l * s.inner + j], T(FLT_MIN)));
        ++count;
      }
    loss.fill_(acc / loss_normalizer<T>(op, normalization, s.outer, s.inner, count));
  });
  return {loss, prob};
}

at::Tensor softmax_loss_backward(const at::Tensor& grad_loss, const at::Tensor& prob, const at::Tensor& label,
                                 int64_t axis, int64_t normalization, std::optional<int64_t> ignore_label) {
  const char* op = "softmax_loss_backward";
  const AxisSplit s = split_axis(op, "prob", prob, axis);
  check_input(op, "grad_loss", grad_loss, -1, "() holding the loss weight");
  check_same_dtype(op, "grad_loss", grad_loss, prob);
  TORCH_CHECK(grad_loss.numel() == 1, op, ": argument 'grad_loss' has shape ", shape_str(grad_loss.sizes()),
              "; expected () holding the loss weight");
  const std::vector<int> labels = read_labels(op, label, s);
  at::Tensor bottom = prob.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(prob.scalar_type(), op, [&] {
    using T = scalar_t;
    T* bd = bottom.data_ptr<T>();
    int64_t count = 0;
    for (int64_t i = 0; i < s.outer; ++i)
      for (int64_t j = 0; j < s.inner; ++j) {
        const int l = labels[i * s.inner + j];
        if (ignore_label && l == *ignore_label) {
          for (int64_t c = 0; c < s.channels; ++c) bd[i * s.dim() + c * s.inner + j] = T(0);
          continue;
        }
        check_label_value(op, l, s.channels, i * s.inner + j);
        bd[i * s.dim() + l * s.inner + j] -= T(1);
        ++count;
      }
    const T top_diff = grad_loss.item<T>();
    const T loss_weight = top_diff / loss_normalizer<T>(op, normalization, s.outer, s.inner, count);
    blas::scal<T>(static_cast<int>(bottom.numel()), loss_weight, bd);
  });
  return bottom;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("softmax_forward", &cpu::softmax_forward);
  m.impl("softmax_backward", &cpu::softmax_backward);
  m.impl("softmax_loss_forward", &cpu::softmax_loss_forward);
  m.impl("softmax_loss_backward", &cpu::softmax_loss_backward);
}

}  // namespace replicate
