// Caffe 1.0's LSTMUnit on CPU (the cell of the LSTM layer's unrolled net).
//
// lstm_unit_layer.cpp defines its own activations on Dtype:
//   sigmoid(x) = 1. / (1. + exp(-x))      (float blobs: glibc's float exp, then double arithmetic,
//                                          rounded to float on return)
//   tanh(x)    = 2. * sigmoid(2. * x) - 1. (2. * x is double, so the template deduces
//                                          sigmoid<double>: a double exp; rounded to float on return)
// and every other step is Dtype arithmetic in Caffe's order; with -ffp-contract=off nothing fuses.
#include <cmath>

#include "../common.h"

namespace replicate {
namespace cpu {
namespace {

template <typename T>
T unit_sigmoid(T x) {
  return static_cast<T>(1. / (1. + std::exp(-x)));
}

template <typename T>
T unit_tanh(T x) {
  return static_cast<T>(2. * unit_sigmoid<double>(2. * x) - 1.);
}

struct UnitShape {
  int64_t num, dim;
};

UnitShape check_unit(const char* op, const at::Tensor& c_prev, const at::Tensor& x, const at::Tensor& cont) {
  check_input(op, "c_prev", c_prev, 3, "1 x N x D");
  TORCH_CHECK(c_prev.size(0) == 1, op, ": c_prev must be 1 x N x D, got ", shape_str(c_prev.sizes()));
  const int64_t n = c_prev.size(1), d = c_prev.size(2);
  check_like(op, "x", x, c_prev, {1, n, 4 * d}, 3, "1 x N x 4D");
  check_like(op, "cont", cont, c_prev, {1, n}, 2, "1 x N");
  return {n, d};
}

std::tuple<at::Tensor, at::Tensor> lstm_unit_forward(const at::Tensor& c_prev_in, const at::Tensor& x_in,
                                                     const at::Tensor& cont_in) {
  const char* op = "lstm_unit_forward";
  const UnitShape s = check_unit(op, c_prev_in, x_in, cont_in);
  const at::Tensor c_prev = c_prev_in.contiguous(), x = x_in.contiguous(), cont = cont_in.contiguous();
  at::Tensor c_out = at::empty_like(c_prev, at::MemoryFormat::Contiguous);
  at::Tensor h_out = at::empty_like(c_prev, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(c_prev.scalar_type(), op, [&] {
    using T = scalar_t;
    const int64_t D = s.dim;
    const T* cp = c_prev.data_ptr<T>();
    const T* X = x.data_ptr<T>();
    const T* ct = cont.data_ptr<T>();
    T* C = c_out.data_ptr<T>();
    T* H = h_out.data_ptr<T>();
    for (int64_t n = 0; n < s.num; ++n) {
      const T* xr = X + n * 4 * D;
      const T k = ct[n];
      for (int64_t d = 0; d < D; ++d) {
        const T i = unit_sigmoid<T>(xr[d]);
        const T f = (k == 0) ? T(0) : static_cast<T>(k * unit_sigmoid<T>(xr[D + d]));
        const T o = unit_sigmoid<T>(xr[2 * D + d]);
        const T g = unit_tanh<T>(xr[3 * D + d]);
        const T fc = f * cp[n * D + d];
        const T ig = i * g;
        const T c = fc + ig;
        C[n * D + d] = c;
        const T tanh_c = unit_tanh<T>(c);
        H[n * D + d] = o * tanh_c;
      }
    }
  });
  return {c_out, h_out};
}

// Returns (c_prev diff, x diff); Caffe computes both whenever either is asked for.
std::tuple<at::Tensor, at::Tensor> lstm_unit_backward(const at::Tensor& c_diff_in, const at::Tensor& h_diff_in,
                                                      const at::Tensor& c_prev_in, const at::Tensor& x_in,
                                                      const at::Tensor& cont_in, const at::Tensor& c_in) {
  const char* op = "lstm_unit_backward";
  const UnitShape s = check_unit(op, c_prev_in, x_in, cont_in);
  check_like(op, "c", c_in, c_prev_in, c_prev_in.sizes(), 3, "1 x N x D");
  check_like(op, "c_diff", c_diff_in, c_prev_in, c_prev_in.sizes(), 3, "1 x N x D");
  check_like(op, "h_diff", h_diff_in, c_prev_in, c_prev_in.sizes(), 3, "1 x N x D");
  const at::Tensor c_prev = c_prev_in.contiguous(), x = x_in.contiguous(), cont = cont_in.contiguous(),
                   c_top = c_in.contiguous(), c_diff = c_diff_in.contiguous(), h_diff = h_diff_in.contiguous();
  at::Tensor cp_diff = at::empty_like(c_prev, at::MemoryFormat::Contiguous);
  at::Tensor x_diff = at::empty_like(x, at::MemoryFormat::Contiguous);
  REPLICATE_DISPATCH(c_prev.scalar_type(), op, [&] {
    using T = scalar_t;
    const int64_t D = s.dim;
    const T* cp = c_prev.data_ptr<T>();
    const T* X = x.data_ptr<T>();
    const T* ct = cont.data_ptr<T>();
    const T* C = c_top.data_ptr<T>();
    const T* Cd = c_diff.data_ptr<T>();
    const T* Hd = h_diff.data_ptr<T>();
    T* cpd = cp_diff.data_ptr<T>();
    T* xd = x_diff.data_ptr<T>();
    for (int64_t n = 0; n < s.num; ++n) {
      const T* xr = X + n * 4 * D;
      T* xdr = xd + n * 4 * D;
      const T k = ct[n];
      for (int64_t d = 0; d < D; ++d) {
        const T i = unit_sigmoid<T>(xr[d]);
        const T f = (k == 0) ? T(0) : static_cast<T>(k * unit_sigmoid<T>(xr[D + d]));
        const T o = unit_sigmoid<T>(xr[2 * D + d]);
        const T g = unit_tanh<T>(xr[3 * D + d]);
        const T c_prev_v = cp[n * D + d];
        const T tanh_c = unit_tanh<T>(C[n * D + d]);
        const T hd = Hd[n * D + d];
        const T one = T(1);
        const T c_term = Cd[n * D + d] + hd * o * (one - tanh_c * tanh_c);
        cpd[n * D + d] = c_term * f;
        xdr[d] = c_term * g * i * (one - i);
        xdr[D + d] = c_term * c_prev_v * f * (one - f);
        xdr[2 * D + d] = hd * tanh_c * o * (one - o);
        xdr[3 * D + d] = c_term * i * (one - g * g);
      }
    }
  });
  return {cp_diff, x_diff};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(replicate, CPU, m) {
  m.impl("lstm_unit_forward", &cpu::lstm_unit_forward);
  m.impl("lstm_unit_backward", &cpu::lstm_unit_backward);
}

}  // namespace replicate
