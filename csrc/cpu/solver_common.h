// The steps every CPU solver update (sgd_update in solver_math.cpp, the other solvers in
// solver_updates.cpp) takes on one learnable blob, in Caffe 1.0's order:
//   SGDSolver::Normalize (scal 1/iter_size), Regularize (L2: axpy(decay, w, diff); L1: axpy(decay,
//   sign(w), diff)), the solver's ComputeUpdateValue, then Blob::Update (axpy(-1, diff, w)).
#pragma once
#include <initializer_list>
#include <utility>
#include <vector>

#include "../blas.h"
#include "../common.h"

namespace replicate {
namespace cpu {

// SGDSolver::Normalize and Regularize on one blob.
template <typename T>
void normalize_regularize(int n, const T* w, T* g, double diff_scale, double local_decay, int64_t regularization) {
  const T scale = static_cast<T>(diff_scale);
  if (scale != T(1)) blas::scal<T>(n, scale, g);
  const T decay = static_cast<T>(local_decay);
  if (decay != T(0)) {
    if (regularization == 0) {
      blas::axpy<T>(n, decay, w, g);
    } else {
      std::vector<T> sign(n);
      for (int i = 0; i < n; ++i) sign[i] = T((T(0) < w[i]) - (w[i] < T(0)));
      blas::axpy<T>(n, decay, sign.data(), g);
    }
  }
}

// The arguments of an update op: data a CPU tensor updated in place, diff and every history
// (name, tensor) like it, regularization 0 (L2) or 1 (L1).
inline void check_update_args(const char* op, const at::Tensor& data, const at::Tensor& diff,
                              std::initializer_list<std::pair<const char*, const at::Tensor*>> histories,
                              int64_t regularization) {
  check_inplace(op, "data", data, c10::DeviceType::CPU);
  check_inplace_like(op, "diff", diff, data);
  for (const auto& h : histories) check_inplace_like(op, h.first, *h.second, data);
  TORCH_CHECK(regularization == 0 || regularization == 1, op,
              ": regularization must be 0 (L2) or 1 (L1), got ", regularization);
}

// One blob's update, its arguments checked (check_update_args): in data's dtype T, Normalize and
// Regularize; ``compute_update_value(n, g, h)`` (g the diff, h[k] the k-th of ``histories``, all
// T*), which leaves the update value in g; then Blob::Update.
template <typename F>
void update_blob(const char* op, at::Tensor& data, at::Tensor& diff, std::initializer_list<at::Tensor*> histories,
                 double local_decay, int64_t regularization, double diff_scale, F&& compute_update_value) {
  const int n = static_cast<int>(data.numel());
  REPLICATE_DISPATCH(data.scalar_type(), op, [&] {
    using T = scalar_t;
    T* w = data.data_ptr<T>();
    T* g = diff.data_ptr<T>();
    std::vector<T*> h;
    for (at::Tensor* t : histories) h.push_back(t->data_ptr<T>());
    normalize_regularize<T>(n, w, g, diff_scale, local_decay, regularization);
    compute_update_value(n, g, h.data());
    blas::axpy<T>(n, T(-1), g, w);
  });
}

}  // namespace cpu
}  // namespace replicate
