// The BLAS-level steps of Caffe 1.0's SGDSolver and of the net's elementwise sums, through the
// BLAS seam so that exact mode makes Caffe's own calls:
//   sgd_update: SGDSolver::Normalize (scal 1/iter_size), Regularize (L2: axpy(decay, w, diff);
//               L1: axpy(decay, sign(w), diff)), ComputeUpdateValue (axpby(rate, diff, momentum,
//               history); copy history -> diff) and Blob::Update (axpy(-1, diff, w)), in that order,
//               in place on one learnable blob.  Each step touches only this blob's buffers, so
//               running Net::Update per blob right after its update value gives Caffe's bits.
//   blas_axpy / blas_scal / blas_dot: caffe_axpy, caffe_scal, caffe_cpu_dot (Eltwise SUM, Split
//               fan-in, gradient clipping, loss weights).
#include <type_traits>

#include "../blas.h"
#include "../common.h"
#include "solver_common.h"

namespace replicate {
namespace cpu {
namespace {

void sgd_update(at::Tensor& data, at::Tensor& diff, at::Tensor& history, double local_rate, double momentum,
                double local_decay, int64_t regularization, double diff_scale) {
  const char* op = "sgd_update";
  check_update_args(op, data, diff, {{"history", &history}}, regularization);
  update_blob(op, data, diff, {&history}, local_decay, regularization, diff_scale, [&](int n, auto* g, auto** hs) {
    using T = std::remove_pointer_t<decltype(g)>;
    T* h = hs[0];
    blas::axpby<T>(n, static_cast<T>(local_rate), g, static_cast<T>(momentum), h);
    std::copy(h, h + n, g);
  });
}

void blas_axpy(double alpha, const at::Tensor& x, at::Tensor& y) {
  const char* op = "blas_axpy";
  check_inplace(op, "y", y, c10::DeviceType::CPU);
  check_like(op, "x", x, y, y.sizes(), -1, "the shape of y");
  const at::Tensor xc = x.contiguous();
  REPLICATE_DISPATCH(y.scalar_type(), op, [&] {
    using T = scalar_t;
    blas::axpy<T>(static_cast<int>(y.numel()), static_cast<T>(alpha), xc.data_ptr<T>(), y.data_ptr<T>());
  });
}

void blas_scal(double alpha, at::Tensor& x) {
  const char* op = "blas_scal";
  check_inplace(op, "x", x, c10::DeviceType::CPU);
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    blas::scal<T>(static_cast<int>(x.numel()), static_cast<T>(alpha), x.data_ptr<T>());
  });
}

at::Tensor blas_dot(const at::Tensor& x, const at::Tensor& y) {
  const char* op = "blas_dot";
  check_input(op, "x", x, -1, "any shape");
  check_like(op, "y", y, x, x.sizes(), -1, "the shape of x");
  TORCH_CHECK(x.numel() <= INT32_MAX, op, ": more elements than Caffe's int count");
  const at::Tensor xc = x.contiguous(), yc = y.contiguous();
  at::Tensor out = at::empty({}, x.options());
  REPLICATE_DISPATCH(x.scalar_type(), op, [&] {
    using T = scalar_t;
    *out.data_ptr<T>() = blas::dot<T>(static_cast<int>(x.numel()), xc.data_ptr<T>(), yc.data_ptr<T>());
  });
  return out;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("sgd_update", &cpu::sgd_update);
  m.impl("blas_axpy", &cpu::blas_axpy);
  m.impl("blas_scal", &cpu::blas_scal);
  m.impl("blas_dot", &cpu::blas_dot);
}

}  // namespace replicate
