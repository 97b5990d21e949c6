// Caffe 1.0's loss layers on CPU (besides SoftmaxWithLoss, csrc/cpu/softmax.cpp): EuclideanLoss,
// HingeLoss, SigmoidCrossEntropyLoss, MultinomialLogisticLoss, ContrastiveLoss, InfogainLoss.
//
// Each forward returns the 0-d loss plus what Caffe's layer keeps in its members for the backward
// (the difference blob, the sigmoid output, the normaliser, the squared distances).  Sums are in
// Caffe's order: its dots and asums go through the BLAS seam, its own loops are sequential float
// accumulations here too.  Labels are read as Caffe reads them, static_cast<int> of the float.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../blas.h"
#include "../common.h"
#include "softmax.h"

namespace replicate {
namespace cpu {
namespace {

const float kLogThreshold = 1e-20f;  // Caffe's kLOG_THRESHOLD (loss_layer.hpp)

int count_of(const char* op, const at::Tensor& t) {
  TORCH_CHECK(t.numel() <= INT32_MAX, op, ": the blob has more elements than Caffe's int count");
  return static_cast<int>(t.numel());
}

// The 0-d loss weight Caffe reads from top[0]->cpu_diff()[0].
template <typename T>
T loss_weight_of(const char* op, const at::Tensor& grad_loss, const at::Tensor& like) {
  check_input(op, "grad_loss", grad_loss, -1, "() holding the loss weight");
  check_same_dtype(op, "grad_loss", grad_loss, like);
  TORCH_CHECK(grad_loss.numel() == 1, op, ": argument 'grad_loss' has shape ", shape_str(grad_loss.sizes()),
              "; expected () holding the loss weight");
  return grad_loss.item<T>();
}

// Per-sample labels (one per row of `num` rows): static_cast<int> of the label blob's values.
std::vector<int> row_labels(const char* op, const at::Tensor& label, int64_t num, int64_t dim) {
  TORCH_CHECK(label.defined() && label.device().is_cpu(), op, ": argument 'label' must be a CPU tensor");
  TORCH_CHECK(label.numel() >= num, op, ": argument 'label' has ", label.numel(), " values; expected ", num,
              " (one per sample)");
  const at::Tensor l = label.is_floating_point() ? label.to(at::kDouble).contiguous()
                                                 : label.to(at::kLong).contiguous();
  std::vector<int> out(num);
  for (int64_t i = 0; i < num; ++i) {
    out[i] = l.scalar_type() == at::kDouble ? static_cast<int>(l.data_ptr<double>()[i])
                                            : static_cast<int>(l.data_ptr<int64_t>()[i]);
    TORCH_CHECK(out[i] >= 0 && out[i] < dim, op, ": label ", out[i], " of sample ", i, " is outside [0, ", dim, ")");
  }
  return out;
}

int64_t num_of(const char* op, const at::Tensor& x) {
  check_input(op, "input", x, -1, "(N, ...)");
  TORCH_CHECK(x.dim() >= 1 && x.size(0) > 0, op, ": argument 'input' has shape ", shape_str(x.sizes()),
              "; expected (N, ...) with N > 0");
  return x.size(0);
}

// ---- EuclideanLoss: sum((a - b)^2) / N / 2 ------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> euclidean_loss_forward(const at::Tensor& a, const at::Tensor& b) {
  const char* op = "euclidean_loss_forward";
  const int64_t num = num_of(op, a);
  check_input(op, "b", b, -1, "the count of a");
  check_same_dtype(op, "b", b, a);
  check_same_device(op, "b", b, a);
  TORCH_CHECK(b.numel() == a.numel(), op, ": inputs must have the same dimension (", shape_str(a.sizes()), " and ",
              shape_str(b.sizes()), ")");
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  at::Tensor diff = at::empty_like(x, at::MemoryFormat::Contiguous);
  at::Tensor loss = at::empty({}, a.options());
  REPLICATE_DISPATCH(a.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, x);
    const T *xa = x.data_ptr<T>(), *yb = y.data_ptr<T>();
    T* d = diff.data_ptr<T>();
    for (int i = 0; i < n; ++i) d[i] = xa[i] - yb[i];
    const T dot = blas::dot<T>(n, d, d);
    loss.fill_(dot / static_cast<int>(num) / T(2));
  });
  return {loss, diff};
}

// One bottom's diff: (sign * loss_weight / num) * diff, by axpby into a cleared blob.
at::Tensor euclidean_loss_backward(const at::Tensor& grad_loss, const at::Tensor& diff, double sign, int64_t num) {
  const char* op = "euclidean_loss_backward";
  check_input(op, "diff", diff, -1, "the shape of the bottoms");
  TORCH_CHECK(num > 0, op, ": num must be positive, got ", num);
  const at::Tensor d = diff.contiguous();
  at::Tensor bottom = at::zeros_like(d, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(d.scalar_type(), op, [&] {
    using T = scalar_t;
    const T alpha = static_cast<T>(sign) * loss_weight_of<T>(op, grad_loss, d) / static_cast<int>(num);
    blas::axpby<T>(count_of(op, d), alpha, d.data_ptr<T>(), T(0), bottom.data_ptr<T>());
  });
  return bottom;
}

// ---- HingeLoss: t = max(0, 1 + x * (label ? -1 : 1)); L1 asum(t) / N, L2 dot(t, t) / N ----------------
// Caffe builds t in the bottom's diff during Forward; Backward flips the label entries back and scales.

std::tuple<at::Tensor, at::Tensor> hinge_loss_forward(const at::Tensor& input, const at::Tensor& label,
                                                      int64_t norm) {
  const char* op = "hinge_loss_forward";
  const int64_t num = num_of(op, input);
  TORCH_CHECK(norm == 1 || norm == 2, op, ": Unknown Norm ", norm, " (L1 1, L2 2)");
  const int64_t dim = input.numel() / num;
  const std::vector<int> labels = row_labels(op, label, num, dim);
  at::Tensor diff = input.clone(at::MemoryFormat::Contiguous);
  at::Tensor loss = at::empty({}, input.options());
  REPLICATE_DISPATCH(input.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, diff);
    T* d = diff.data_ptr<T>();
    for (int64_t i = 0; i < num; ++i) d[i * dim + labels[i]] *= -1;
    for (int i = 0; i < n; ++i) d[i] = std::max(T(0), 1 + d[i]);
    const T total = norm == 1 ? blas::asum<T>(n, d) : blas::dot<T>(n, d, d);
    loss.fill_(total / static_cast<int>(num));
  });
  return {loss, diff};
}

at::Tensor hinge_loss_backward(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& label,
                               int64_t norm) {
  const char* op = "hinge_loss_backward";
  const int64_t num = num_of(op, diff);
  TORCH_CHECK(norm == 1 || norm == 2, op, ": Unknown Norm ", norm, " (L1 1, L2 2)");
  const int64_t dim = diff.numel() / num;
  const std::vector<int> labels = row_labels(op, label, num, dim);
  at::Tensor bottom = diff.clone(at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(diff.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, bottom);
    T* d = bottom.data_ptr<T>();
    for (int64_t i = 0; i < num; ++i) d[i * dim + labels[i]] *= -1;
    const T loss_weight = loss_weight_of<T>(op, grad_loss, bottom);
    const int inum = static_cast<int>(num);
    if (norm == 1) {
      for (int i = 0; i < n; ++i) d[i] = static_cast<T>((T(0) < d[i]) - (d[i] < T(0)));  // caffe_cpu_sign
      blas::scal<T>(n, loss_weight / inum, d);
    } else {
      blas::scal<T>(n, loss_weight * 2 / inum, d);
    }
  });
  return bottom;
}

// ---- SigmoidCrossEntropyLoss -------------------------------------------------------------------

template <typename T>
T caffe_sigmoid(T x) {
  return static_cast<T>(0.5 * std::tanh(0.5 * x) + 0.5);
}

// (loss, the internal Sigmoid's output, the normaliser Caffe keeps for Backward)
std::tuple<at::Tensor, at::Tensor, at::Tensor> sigmoid_cross_entropy_loss_forward(
    const at::Tensor& input, const at::Tensor& target, int64_t normalization, std::optional<int64_t> ignore_label) {
  const char* op = "sigmoid_cross_entropy_loss_forward";
  const int64_t outer = num_of(op, input);
  check_input(op, "target", target, -1, "the count of input");
  check_same_dtype(op, "target", target, input);
  TORCH_CHECK(target.numel() == input.numel(), op,
              ": SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count (", shape_str(input.sizes()),
              " and ", shape_str(target.sizes()), ")");
  const at::Tensor x = input.contiguous(), tg = target.contiguous();
  at::Tensor sig = at::empty_like(x, at::MemoryFormat::Contiguous);
  at::Tensor loss = at::empty({}, input.options()), normalizer = at::empty({}, input.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, x);
    const T *xd = x.data_ptr<T>(), *t = tg.data_ptr<T>();
    T* s = sig.data_ptr<T>();
    for (int i = 0; i < n; ++i) s[i] = caffe_sigmoid(xd[i]);
    int valid = 0;
    T acc = 0;
    for (int i = 0; i < n; ++i) {
      if (ignore_label && static_cast<int>(t[i]) == *ignore_label) continue;
      const T pos = T(xd[i] >= 0);
      acc -= xd[i] * (t[i] - pos) - std::log(1 + std::exp(xd[i] - 2 * xd[i] * pos));
      ++valid;
    }
    const T norm = loss_normalizer<T>(op, normalization, outer, n / outer, valid);
    normalizer.fill_(norm);
    loss.fill_(acc / norm);
  });
  return {loss, sig, normalizer};
}

at::Tensor sigmoid_cross_entropy_loss_backward(const at::Tensor& grad_loss, const at::Tensor& sigmoid,
                                               const at::Tensor& target, const at::Tensor& normalizer,
                                               std::optional<int64_t> ignore_label) {
  const char* op = "sigmoid_cross_entropy_loss_backward";
  check_input(op, "sigmoid", sigmoid, -1, "the shape of the scores");
  check_input(op, "target", target, -1, "the count of the scores");
  check_same_dtype(op, "target", target, sigmoid);
  TORCH_CHECK(target.numel() == sigmoid.numel(), op, ": target has ", target.numel(), " values; expected ",
              sigmoid.numel());
  const at::Tensor s = sigmoid.contiguous(), tg = target.contiguous();
  at::Tensor bottom = at::empty_like(s, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(s.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, s);
    const T *sd = s.data_ptr<T>(), *t = tg.data_ptr<T>();
    T* d = bottom.data_ptr<T>();
    for (int i = 0; i < n; ++i) d[i] = sd[i] - t[i];
    if (ignore_label)
      for (int i = 0; i < n; ++i)
        if (static_cast<int>(t[i]) == *ignore_label) d[i] = 0;
    const T loss_weight = loss_weight_of<T>(op, grad_loss, s) / normalizer.item<T>();
    blas::scal<T>(n, loss_weight, d);
  });
  return bottom;
}

// ---- MultinomialLogisticLoss: -sum(log(max(p[label], 1e-20))) / N ---------------------------------

at::Tensor multinomial_logistic_loss_forward(const at::Tensor& prob, const at::Tensor& label) {
  const char* op = "multinomial_logistic_loss_forward";
  const int64_t num = num_of(op, prob);
  const int64_t dim = prob.numel() / num;
  const std::vector<int> labels = row_labels(op, label, num, dim);
  const at::Tensor p = prob.contiguous();
  at::Tensor loss = at::empty({}, prob.options());
  REPLICATE_DISPATCH(p.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* pd = p.data_ptr<T>();
    T acc = 0;
    for (int64_t i = 0; i < num; ++i) acc -= std::log(std::max(pd[i * dim + labels[i]], T(kLogThreshold)));
    loss.fill_(acc / static_cast<int>(num));
  });
  return loss;
}

at::Tensor multinomial_logistic_loss_backward(const at::Tensor& grad_loss, const at::Tensor& prob,
                                              const at::Tensor& label) {
  const char* op = "multinomial_logistic_loss_backward";
  const int64_t num = num_of(op, prob);
  const int64_t dim = prob.numel() / num;
  const std::vector<int> labels = row_labels(op, label, num, dim);
  const at::Tensor p = prob.contiguous();
  at::Tensor bottom = at::zeros_like(p, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(p.scalar_type(), op, [&] {
    using T = scalar_t;
    const T* pd = p.data_ptr<T>();
    T* d = bottom.data_ptr<T>();
    const T scale = -loss_weight_of<T>(op, grad_loss, p) / static_cast<int>(num);
    for (int64_t i = 0; i < num; ++i)
      d[i * dim + labels[i]] = scale / std::max(pd[i * dim + labels[i]], T(kLogThreshold));
  });
  return bottom;
}

// ---- ContrastiveLoss -------------------------------------------------------------------------------
// d2 = |a - b|^2 per pair (sdot); similar pairs add d2, dissimilar ones max(margin - d, 0)^2
// (legacy: max(margin - d2, 0)); the sum / N / 2.

struct PairShape {
  int64_t num, channels;
};

PairShape pair_shape(const char* op, const at::Tensor& a) {
  const int64_t num = num_of(op, a);
  return {num, a.numel() / num};
}

std::vector<int> similarity(const char* op, const at::Tensor& y, int64_t num) {
  TORCH_CHECK(y.defined() && y.device().is_cpu(), op, ": argument 'y' must be a CPU tensor");
  TORCH_CHECK(y.numel() == num, op, ": argument 'y' has ", y.numel(), " values; expected ", num);
  const at::Tensor l = y.to(at::kDouble).contiguous();
  std::vector<int> out(num);
  for (int64_t i = 0; i < num; ++i) out[i] = static_cast<int>(l.data_ptr<double>()[i]);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> contrastive_loss_forward(const at::Tensor& a, const at::Tensor& b,
                                                                        const at::Tensor& y, double margin_d,
                                                                        bool legacy) {
  const char* op = "contrastive_loss_forward";
  const PairShape s = pair_shape(op, a);
  check_input(op, "b", b, -1, "the count of a");
  check_same_dtype(op, "b", b, a);
  TORCH_CHECK(b.numel() == a.numel(), op, ": a and b differ in shape (", shape_str(a.sizes()), " and ",
              shape_str(b.sizes()), ")");
  const std::vector<int> sim = similarity(op, y, s.num);
  const at::Tensor x = a.contiguous(), z = b.contiguous();
  at::Tensor diff = at::empty_like(x, at::MemoryFormat::Contiguous);
  at::Tensor dist_sq = at::empty({s.num}, a.options());
  at::Tensor loss = at::empty({}, a.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const int n = count_of(op, x), C = static_cast<int>(s.channels);
    const T margin = caffe_param<T>(margin_d);
    const T *xa = x.data_ptr<T>(), *zb = z.data_ptr<T>();
    T *d = diff.data_ptr<T>(), *d2 = dist_sq.data_ptr<T>();
    for (int i = 0; i < n; ++i) d[i] = xa[i] - zb[i];
    T acc(0.0);
    for (int64_t i = 0; i < s.num; ++i) {
      d2[i] = blas::dot<T>(C, d + i * C, d + i * C);
      if (sim[i]) {
        acc += d2[i];
      } else if (legacy) {
        acc += std::max(margin - d2[i], T(0.0));
      } else {
        const T dist = std::max<T>(margin - std::sqrt(d2[i]), T(0.0));
        acc += dist * dist;
      }
    }
    loss.fill_(acc / static_cast<T>(s.num) / T(2));
  });
  return {loss, diff, dist_sq};
}

// The diff of bottom 0 (sign 1) or bottom 1 (sign -1).
at::Tensor contrastive_loss_backward(const at::Tensor& grad_loss, const at::Tensor& diff, const at::Tensor& dist_sq,
                                     const at::Tensor& y, double margin_d, bool legacy, double sign) {
  const char* op = "contrastive_loss_backward";
  const PairShape s = pair_shape(op, diff);
  check_like(op, "dist_sq", dist_sq, diff, {s.num}, 1, "(N)");
  const std::vector<int> sim = similarity(op, y, s.num);
  const at::Tensor d = diff.contiguous(), d2t = dist_sq.contiguous();
  at::Tensor bottom = at::zeros_like(d, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(d.scalar_type(), op, [&] {
    using T = scalar_t;
    const int C = static_cast<int>(s.channels);
    const T margin = caffe_param<T>(margin_d);
    const T alpha = static_cast<T>(sign) * loss_weight_of<T>(op, grad_loss, d) / static_cast<T>(s.num);
    const T *dd = d.data_ptr<T>(), *d2 = d2t.data_ptr<T>();
    T* out = bottom.data_ptr<T>();
    for (int64_t j = 0; j < s.num; ++j) {
      T* row = out + j * C;
      if (sim[j]) {
        blas::axpby<T>(C, alpha, dd + j * C, T(0.0), row);
        continue;
      }
      T mdist(0.0), beta(0.0);
      if (legacy) {
        mdist = margin - d2[j];
        beta = -alpha;
      } else {
        const T dist = std::sqrt(d2[j]);
        mdist = margin - dist;
        beta = -alpha * mdist / (dist + T(1e-4));
      }
      if (mdist > T(0.0)) blas::axpby<T>(C, beta, dd + j * C, T(0.0), row);
      else std::fill_n(row, C, T(0));
    }
  });
  return bottom;
}

// ---- InfogainLoss: -sum_l H[label, l] * log(max(p_l, 1e-20)) / normaliser, on the softmax of the scores

struct Infogain {
  AxisSplit s;
  std::vector<int> labels;
  at::Tensor H;
};

Infogain infogain_args(const char* op, const at::Tensor& prob, const at::Tensor& label, const at::Tensor& H,
                       int64_t axis, std::optional<int64_t> ignore_label) {
  Infogain g{split_axis(op, "prob", prob, axis), {}, {}};
  TORCH_CHECK(label.numel() == g.s.outer * g.s.inner, op, ": Number of labels must match number of predictions; "
              "label count ", label.numel(), ", predictions ", g.s.outer * g.s.inner, " (outer x inner of ",
              shape_str(prob.sizes()), ")");
  g.labels = read_labels(op, label, g.s);
  for (size_t i = 0; i < g.labels.size(); ++i) {
    const int l = g.labels[i];
    if (ignore_label && l == *ignore_label) continue;
    TORCH_CHECK(l >= 0 && l < g.s.channels, op, ": label ", l, " at index ", i, " is outside [0, ", g.s.channels, ")");
  }
  check_input(op, "H", H, -1, "(K, K)");
  check_same_dtype(op, "H", H, prob);
  TORCH_CHECK(H.numel() == g.s.channels * g.s.channels, op, ": H has ", H.numel(), " values; it must be ",
              g.s.channels, "x", g.s.channels);
  g.H = H.contiguous();
  return g;
}

at::Tensor infogain_loss_forward(const at::Tensor& prob, const at::Tensor& label, const at::Tensor& H, int64_t axis,
                                 int64_t normalization, std::optional<int64_t> ignore_label) {
  const char* op = "infogain_loss_forward";
  const Infogain g = infogain_args(op, prob, label, H, axis, ignore_label);
  const at::Tensor p = prob.contiguous();
  at::Tensor loss = at::empty({}, prob.options());
  REPLICATE_DISPATCH(p.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *pd = p.data_ptr<T>(), *h = g.H.data_ptr<T>();
    const int64_t K = g.s.channels, inner = g.s.inner;
    int64_t count = 0;
    T acc = 0;
    for (int64_t i = 0; i < g.s.outer; ++i)
      for (int64_t j = 0; j < inner; ++j) {
        const int l = g.labels[i * inner + j];
        if (ignore_label && l == *ignore_label) continue;
        for (int64_t c = 0; c < K; ++c)
          acc -= h[l * K + c] * std::log(std::max(pd[i * inner * K + c * inner + j], T(kLogThreshold)));
        ++count;
      }
    loss.fill_(acc / loss_normalizer<T>(op, normalization, g.s.outer, inner, count));
  });
  return loss;
}

at::Tensor infogain_loss_backward(const at::Tensor& grad_loss, const at::Tensor& prob, const at::Tensor& label,
                                  const at::Tensor& H, int64_t axis, int64_t normalization,
                                  std::optional<int64_t> ignore_label) {
  const char* op = "infogain_loss_backward";
  const Infogain g = infogain_args(op, prob, label, H, axis, ignore_label);
  const at::Tensor p = prob.contiguous();
  at::Tensor bottom = at::empty_like(p, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(p.scalar_type(), op, [&] {
    using T = scalar_t;
    const T *pd = p.data_ptr<T>(), *h = g.H.data_ptr<T>();
    T* d = bottom.data_ptr<T>();
    const int64_t K = g.s.channels, inner = g.s.inner, dim = g.s.dim();
    std::vector<T> sum_rows(K);
    for (int64_t r = 0; r < K; ++r) {
      sum_rows[r] = 0;
      for (int64_t c = 0; c < K; ++c) sum_rows[r] += h[r * K + c];
    }
    int64_t count = 0;
    for (int64_t i = 0; i < g.s.outer; ++i)
      for (int64_t j = 0; j < inner; ++j) {
        const int l = g.labels[i * inner + j];
        if (ignore_label && l == *ignore_label) {
          for (int64_t c = 0; c < K; ++c) d[i * dim + c * inner + j] = 0;
          continue;
        }
        for (int64_t c = 0; c < K; ++c)
          d[i * dim + c * inner + j] = pd[i * dim + c * inner + j] * sum_rows[l] - h[l * K + c];
        ++count;
      }
    const T loss_weight =
        loss_weight_of<T>(op, grad_loss, p) / loss_normalizer<T>(op, normalization, g.s.outer, inner, count);
    blas::scal<T>(count_of(op, bottom), loss_weight, d);
  });
  return bottom;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("euclidean_loss_forward", &cpu::euclidean_loss_forward);
  m.impl("euclidean_loss_backward", &cpu::euclidean_loss_backward);
  m.impl("hinge_loss_forward", &cpu::hinge_loss_forward);
  m.impl("hinge_loss_backward", &cpu::hinge_loss_backward);
  m.impl("sigmoid_cross_entropy_loss_forward", &cpu::sigmoid_cross_entropy_loss_forward);
  m.impl("sigmoid_cross_entropy_loss_backward", &cpu::sigmoid_cross_entropy_loss_backward);
  m.impl("multinomial_logistic_loss_forward", &cpu::multinomial_logistic_loss_forward);
  m.impl("multinomial_logistic_loss_backward", &cpu::multinomial_logistic_loss_backward);
  m.impl("contrastive_loss_forward", &cpu::contrastive_loss_forward);
  m.impl("contrastive_loss_backward", &cpu::contrastive_loss_backward);
  m.impl("infogain_loss_forward", &cpu::infogain_loss_forward);
  m.impl("infogain_loss_backward", &cpu::infogain_loss_backward);
}

}  // namespace replicate
