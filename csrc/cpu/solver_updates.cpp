// The update steps of Caffe 1.0's other solvers (src/caffe/solvers/{nesterov,adagrad,rmsprop,adadelta,
// adam}_solver.cpp), CPU, in place on one learnable blob, each in Caffe's order (update_blob,
// solver_common.h): SGDSolver::Normalize, Regularize, the solver's ComputeUpdateValue (here), then
// Blob::Update.
// BLAS-level calls (caffe_cpu_axpby, caffe_cpu_scale, caffe_axpy, caffe_scal) go through the BLAS
// seam; Caffe's elementwise vs* helpers (caffe_powx, caffe_add, caffe_mul, caffe_div,
// caffe_add_scalar) are the plain loops of a non-MKL Caffe build.  caffe_powx calls libm's pow per
// element with a run-time exponent: the exponent is read through a volatile so that the compiler
// cannot fold pow(x, 2) into x * x or pow(x, 0.5) into sqrt (whose bits may differ).
#include <cmath>
#include <type_traits>
#include <vector>

#include "solver_common.h"

namespace replicate {
namespace cpu {
namespace {

// y[i] = pow(a[i], b): caffe_powx (vsPowx), the float overload being glibc's powf.
template <typename T>
void powx(int n, const T* a, T b, T* y) {
  volatile T vb = b;
  const T e = vb;
  for (int i = 0; i < n; ++i) y[i] = std::pow(a[i], e);
}

// y[i] = a[i] + b[i] (caffe_add / vsAdd)
template <typename T>
void vadd(int n, const T* a, const T* b, T* y) {
  for (int i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

// y[i] = a[i] * b[i] (caffe_mul / vsMul)
template <typename T>
void vmul(int n, const T* a, const T* b, T* y) {
  for (int i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

// y[i] = a[i] / b[i] (caffe_div / vsDiv)
template <typename T>
void vdiv(int n, const T* a, const T* b, T* y) {
  for (int i = 0; i < n; ++i) y[i] = a[i] / b[i];
}

// y[i] += alpha (caffe_add_scalar)
template <typename T>
void add_scalar(int n, T alpha, T* y) {
  for (int i = 0; i < n; ++i) y[i] += alpha;
}

// NesterovSolver::ComputeUpdateValue: u = h; h = rate * g + momentum * h; u = (1 + momentum) * h
// - momentum * u; g = u.
void nesterov_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, double local_rate, double momentum,
                     double local_decay, int64_t regularization, double diff_scale) {
  const char* op = "nesterov_update";
  check_update_args(op, data, diff, {{"history", &history}}, regularization);
  update_blob(op, data, diff, {&history}, local_decay, regularization, diff_scale, [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* h = hs[0];
    const T mom = static_cast<T>(momentum);
    std::vector<T> u(h, h + n);
    blas::axpby<T>(n, static_cast<T>(local_rate), g, mom, h);
    blas::axpby<T>(n, T(1) + mom, h, -mom, u.data());
    std::copy(u.begin(), u.end(), g);
  });
}

// AdaGradSolver::ComputeUpdateValue: u = g^2; h = u + h; u = h^0.5; u += delta; u = g / u;
// g = rate * u + 0 * g.
void adagrad_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, double local_rate, double delta,
                    double local_decay, int64_t regularization, double diff_scale) {
  const char* op = "adagrad_update";
  check_update_args(op, data, diff, {{"history", &history}}, regularization);
  update_blob(op, data, diff, {&history}, local_decay, regularization, diff_scale, [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* h = hs[0];
    std::vector<T> u(n);
    powx<T>(n, g, T(2), u.data());
    vadd<T>(n, u.data(), h, h);
    powx<T>(n, h, T(0.5), u.data());
    add_scalar<T>(n, static_cast<T>(delta), u.data());
    vdiv<T>(n, g, u.data(), u.data());
    blas::axpby<T>(n, static_cast<T>(local_rate), u.data(), T(0), g);
  });
}

// RMSPropSolver::ComputeUpdateValue: u = g^2; h = (1 - rms_decay) * u + rms_decay * h; u = h^0.5;
// u += delta; u = g / u; g = rate * u + 0 * g.
void rmsprop_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, double local_rate, double rms_decay,
                    double delta, double local_decay, int64_t regularization, double diff_scale) {
  const char* op = "rmsprop_update";
  check_update_args(op, data, diff, {{"history", &history}}, regularization);
  update_blob(op, data, diff, {&history}, local_decay, regularization, diff_scale, [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* h = hs[0];
    const T decay = static_cast<T>(rms_decay);
    std::vector<T> u(n);
    powx<T>(n, g, T(2), u.data());
    blas::axpby<T>(n, T(T(1) - decay), u.data(), decay, h);
    powx<T>(n, h, T(0.5), u.data());
    add_scalar<T>(n, static_cast<T>(delta), u.data());
    vdiv<T>(n, g, u.data(), u.data());
    blas::axpby<T>(n, static_cast<T>(local_rate), u.data(), T(0), g);
  });
}

// AdaDeltaSolver::ComputeUpdateValue (momentum is the decay; h the gradients' history, h2 the
// updates'): u = g^2; h = (1 - m) * u + m * h; t = delta; u = t + h2; t = t + h; u = u / t;
// u = u^0.5; g = g * u; u = g^2; h2 = (1 - m) * u + m * h2; g = rate * g (caffe_cpu_scale).
void adadelta_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, at::Tensor& history2,
                     double local_rate, double momentum, double delta, double local_decay, int64_t regularization,
                     double diff_scale) {
  const char* op = "adadelta_update";
  check_update_args(op, data, diff, {{"history", &history}, {"history2", &history2}}, regularization);
  update_blob(op, data, diff, {&history, &history2}, local_decay, regularization, diff_scale,
              [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* h = hs[0];
    T* h2 = hs[1];
    const T mom = static_cast<T>(momentum);
    std::vector<T> u(n), t(n, static_cast<T>(delta));
    powx<T>(n, g, T(2), u.data());
    blas::axpby<T>(n, T(T(1) - mom), u.data(), mom, h);
    vadd<T>(n, t.data(), h2, u.data());
    vadd<T>(n, t.data(), h, t.data());
    vdiv<T>(n, u.data(), t.data(), u.data());
    powx<T>(n, u.data(), T(0.5), u.data());
    vmul<T>(n, g, u.data(), g);
    powx<T>(n, g, T(2), u.data());
    blas::axpby<T>(n, T(T(1) - mom), u.data(), mom, h2);
    blas::scale<T>(n, static_cast<T>(local_rate), g, g);
  });
}

// AdamSolver::ComputeUpdateValue (t = iter + 1): m = (1 - b1) * g + b1 * m; u = g * g;
// v = (1 - b2) * u + b2 * v; u = v^0.5; u += eps; u = m / u; g = (rate * correction) * u
// (caffe_cpu_scale), correction = sqrt(1 - b2^t) / (1 - b1^t) in double (pow(float, int) promotes)
// and stored as Dtype before the product, as Caffe's `const Dtype correction`.
void adam_update(at::Tensor& data, at::Tensor& diff, at::Tensor& m, at::Tensor& v, double local_rate,
                 double beta1, double beta2, double delta, int64_t t, double local_decay, int64_t regularization,
                 double diff_scale) {
  const char* op = "adam_update";
  check_update_args(op, data, diff, {{"m", &m}, {"v", &v}}, regularization);
  TORCH_CHECK(t >= INT32_MIN && t <= INT32_MAX, op, ": t out of Caffe's int range");
  update_blob(op, data, diff, {&m, &v}, local_decay, regularization, diff_scale, [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* hm = hs[0];
    T* hv = hs[1];
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const int ti = static_cast<int>(t);
    const T correction = std::sqrt(T(1) - std::pow(b2, ti)) / (T(1) - std::pow(b1, ti));
    std::vector<T> u(n);
    blas::axpby<T>(n, T(T(1) - b1), g, b1, hm);
    vmul<T>(n, g, g, u.data());
    blas::axpby<T>(n, T(T(1) - b2), u.data(), b2, hv);
    powx<T>(n, hv, T(0.5), u.data());
    add_scalar<T>(n, static_cast<T>(delta), u.data());
    vdiv<T>(n, hm, u.data(), u.data());
    blas::scale<T>(n, T(static_cast<T>(local_rate) * correction), u.data(), g);
  });
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("nesterov_update", &cpu::nesterov_update);
  m.impl("adagrad_update", &cpu::adagrad_update);
  m.impl("rmsprop_update", &cpu::rmsprop_update);
  m.impl("adadelta_update", &cpu::adadelta_update);
  m.impl("adam_update", &cpu::adam_update);
}

}  // namespace replicate
